"""Loads a corpus program (tests/corpus/<name>.py) for torch, or for fastnn with only its import
lines rewritten (`import torch` -> `import fastnn as torch`, `from torch.utils.data import ...` ->
`from fastnn.utils.data import ...`), and runs the torch and fastnn versions of a program from
the same initial weights.

A program defines build_model(**options) (seeds, builds, returns the model), train(model, steps,
**options) -> (losses, {parameter name: grad}) and main() (the script: trains, reports, returns
the losses)."""

import pathlib
import re
import types

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
PROGRAMS = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in {"runner", "__init__"})

# `import torch[.sub] [as name]` and `from torch[.sub] import ...`, at any indentation
_IMPORT = re.compile(r"^(?P<indent>\s*)import torch(?P<sub>(?:\.\w+)*)(?:\s+as\s+(?P<alias>\w+))?\s*(?:#.*)?$")
_FROM = re.compile(r"^(?P<indent>\s*)from torch(?P<sub>(?:\.\w+)*) import ")
_MENTIONS_TORCH = re.compile(r"^\s*(?:import|from)\s.*\btorch\b")


def to_fastnn(source):
    """source with each torch import line rewritten to import fastnn's module of the same path;
    ValueError on an import of torch this does not know how to rewrite (every other line stays)."""
    out = []
    for line in source.splitlines(keepends=True):
        end = "\n" if line.endswith("\n") else ""
        m = _IMPORT.match(line.rstrip("\n"))
        if m:
            indent, sub, alias = m["indent"], m["sub"], m["alias"]
            if alias:
                line = f"{indent}import fastnn{sub} as {alias}{end}"
            else:  # `import torch.nn` binds torch and loads torch.nn
                line = (
                    f"{indent}import fastnn{sub}; import fastnn as torch{end}"
                    if sub
                    else f"{indent}import fastnn as torch{end}"
                )
        elif _FROM.match(line):
            line = _FROM.sub(lambda m: f"{m['indent']}from fastnn{m['sub']} import ", line, count=1)
        elif _MENTIONS_TORCH.match(line):
            raise ValueError(f"an import of torch the corpus runner cannot rewrite: {line.strip()!r}")
        out.append(line)
    return "".join(out)


def load(name, framework):
    """tests/corpus/<name>.py as a module, for framework "torch" or "fastnn"."""
    path = HERE / f"{name}.py"
    source = path.read_text()
    if framework == "fastnn":
        source = to_fastnn(source)
    elif framework != "torch":
        raise ValueError(f"framework is 'torch' or 'fastnn', not {framework!r}")
    module = types.ModuleType(f"corpus_{name}_{framework}")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def to_numpy(t):
    return None if t is None else np.array(t.detach().cpu().numpy())


def run_pair(name, steps, build=None, train=None):
    """Train the torch and the fastnn version of a program from torch's initial weights (the
    fastnn model loads the torch model's state_dict as NumPy arrays). Returns one dict per
    framework: losses, grads and the final state_dict, as NumPy."""
    build, train = build or {}, train or {}
    results = {}
    initial = None
    for framework in ("torch", "fastnn"):
        program = load(name, framework)
        model = program.build_model(**build)
        if initial is None:
            initial = {k: to_numpy(v) for k, v in model.state_dict().items()}
        else:
            model.load_state_dict(initial)
        losses, grads = program.train(model, steps, **train)
        results[framework] = {
            "losses": np.array(losses, dtype=np.float64),
            "grads": {k: to_numpy(g) for k, g in grads.items()},
            "state": {k: to_numpy(v) for k, v in model.state_dict().items()},
        }
    return results["torch"], results["fastnn"]
