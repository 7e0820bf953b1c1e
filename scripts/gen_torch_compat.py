"""Write docs/torch-compat.md: per torch namespace, the names fastnn supports, supports in part
(with what is missing) and does not support.

torch's names come from python/fastnn/_torch_names.txt, so the page regenerates without torch;
--refresh-names rewrites that file from the installed torch first. What fastnn has is looked up
on the package; what it has only in part is fastnn._compat.PARTIAL.

    python scripts/gen_torch_compat.py [--refresh-names] [--check] [--print-names]

torch's names are read in a fresh interpreter (what dir() shows depends on what was imported).
"""

import argparse
import functools
import importlib
import pathlib
import sys
import textwrap
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "torch-compat.md"


# -- torch's public names (needs torch) --------------------------------------------------------


def _public(module, prefix):
    """module's public names: its __all__, its submodules under prefix, and the functions and
    classes defined in prefix or torch's C extension (not what it imports from elsewhere)."""
    listed = set(getattr(module, "__all__", None) or ())
    out = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if name in listed:
            out.add(name)
        elif isinstance(obj, types.ModuleType):
            if obj.__name__.startswith(prefix + "."):
                out.add(name)
        elif isinstance(obj, types.BuiltinFunctionType):
            out.add(name)
        elif callable(obj) and (getattr(obj, "__module__", None) or "").startswith((prefix, "torch._C")):
            out.add(name)
    return out


def torch_public_names():
    """{namespace: sorted names} from the installed torch."""
    import torch
    import torch.distributions
    import torch.nn.functional
    import torch.nn.init
    import torch.optim.lr_scheduler
    import torch.utils.data

    names = {"torch.Tensor": {n for n in dir(torch.Tensor) if not n.startswith("_")}}
    for ns in (
        "torch",
        "torch.nn",
        "torch.nn.functional",
        "torch.nn.init",
        "torch.optim",
        "torch.optim.lr_scheduler",
        "torch.utils.data",
        "torch.distributions",
    ):
        names[ns] = _public(importlib.import_module(ns), ns)
    names[_OUT] = {n for n in names["torch"] if _takes_out(torch, n)}
    return torch.__version__, {ns: sorted(v) for ns, v in names.items()}


_OUT = "torch out="  # the section of torch's functions that take out=


def _takes_out(torch, name):
    """Whether torch.<name> is a function that takes out=: in its Python signature, or, for a
    builtin, in an overload its Python binding declares (torch/_C/_VariableFunctions.pyi; an
    operator's out overload is not always bound: full_like has one, torch.full_like(out=) is a
    TypeError)."""
    import inspect

    obj = getattr(torch, name)
    if isinstance(obj, type) or not callable(obj):
        return False
    try:
        return "out" in inspect.signature(obj).parameters
    except (TypeError, ValueError):
        pass
    return isinstance(obj, types.BuiltinFunctionType) and name in _bound_with_out(torch)


@functools.cache
def _bound_with_out(torch):
    """The names of torch's builtin functions with an overload that takes out=."""
    import re

    stub = pathlib.Path(torch.__file__).parent / "_C" / "_VariableFunctions.pyi"
    found = set()
    for name, args in re.findall(r"^def (\w+)\((.*?)\)\s*->", stub.read_text(), re.S | re.M):
        if re.search(r"\bout: ", args):
            found.add(name)
    return found


def names_text(version, names):
    lines = [f"# torch {version}'s public names, one namespace a section: scripts/gen_torch_compat.py --refresh-names"]
    for ns, ns_names in names.items():
        lines += ["", f"[{ns}]", *ns_names]
    return "\n".join(lines) + "\n"


# -- the page ---------------------------------------------------------------------------------


def _fastnn_object(path):
    module, _, attr = path.partition(".Tensor")
    obj = importlib.import_module(module)
    return obj.Tensor if attr or path.endswith(".Tensor") else obj


def classify(namespace):
    """(supported, {partial name: note}, unsupported) for a torch namespace."""
    from fastnn import _compat

    obj = _fastnn_object(_compat.NAMESPACES[namespace])
    partial = _compat.PARTIAL.get(namespace, {})
    supported, unsupported = [], []
    for name in sorted(_compat.torch_names(namespace)):
        if name in partial:
            continue
        (supported if hasattr(obj, name) else unsupported).append(name)
    return supported, dict(sorted(partial.items())), unsupported


def _names_paragraph(names):
    return textwrap.fill(", ".join(f"`{n}`" for n in names), width=100, break_long_words=False, break_on_hyphens=False)


def render():
    from fastnn import _compat

    version = _compat.NAMES_FILE.read_text().split("torch ", 1)[1].split("'", 1)[0]
    rows = {ns: classify(ns) for ns in _compat.NAMESPACES}
    out = [
        "# PyTorch compatibility",
        "",
        "<!-- generated by scripts/gen_torch_compat.py from the code; do not edit -->",
        "",
        textwrap.fill(
            f"Which of torch {version}'s public names fastnn has, per namespace. *Supported*: fastnn has "
            "the name. *In part*: some arguments or cases are missing, and passing "
            "them raises `NotImplementedError` saying so. *Not supported*: "
            "looking the name up on fastnn raises `NotImplementedError` naming the torch feature (an "
            "`AttributeError` too, so `hasattr` answers False).",
            width=100,
        ),
        "",
        textwrap.fill(
            "Across the board: tensors are float32 for most ops (integer and bool tensors for indexing, "
            "comparisons and shapes), `out=` is not accepted (`NotImplementedError` saying to use the "
            "returned tensor), and the devices are the CPU and CUDA.",
            width=100,
        ),
        "",
        "| namespace | torch names | supported | in part | not supported |",
        "|---|---:|---:|---:|---:|",
    ]
    for ns, (sup, part, uns) in rows.items():
        total = len(sup) + len(part) + len(uns)
        out.append(f"| `{ns}` | {total} | {len(sup)} | {len(part)} | {len(uns)} |")
    for ns, (sup, part, uns) in rows.items():
        out += ["", f"## `{ns}`", "", f"Supported ({len(sup)}):", "", _names_paragraph(sup) if sup else "none"]
        if part:
            out += ["", f"In part ({len(part)}):", "", "| name | not supported |", "|---|---|"]
            out += [f"| `{name}` | {note} |" for name, note in part.items()]
        out += ["", f"Not supported ({len(uns)}):", "", _names_paragraph(uns) if uns else "none"]
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh-names", action="store_true", help="rewrite the torch names from the installed torch")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not up to date; write nothing")
    parser.add_argument(
        "--print-names", action="store_true", help="print the installed torch's names file; write nothing"
    )
    args = parser.parse_args(argv)
    if args.print_names:  # in a fresh interpreter: torch's lazy submodules show once imported
        sys.stdout.write(names_text(*torch_public_names()))
        return 0
    sys.path.insert(0, str(ROOT / "python"))
    from fastnn import _compat

    if args.refresh_names:
        _compat.NAMES_FILE.write_text(names_text(*torch_public_names()))
        _compat._names = None
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run scripts/gen_torch_compat.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
