"""torch's argument names: a PyTorch program that passes arguments by keyword (F.conv2d(input=x,
weight=w), module(input=x), x.sum(dim=1, keepdim=True), torch.cat(tensors=..., dim=1)) runs
unchanged. The names are read from torch itself: inspect.signature where torch's function is
Python, the first line of its docstring or its operator schema where it is built in."""

import inspect
import re

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _names(sig, skip=("self",)):
    """The parameter names of sig, *args as '*args', **kwargs left out."""
    out = []
    for p in sig.parameters.values():
        if p.name in skip or p.kind == p.VAR_KEYWORD:
            continue
        out.append("*" + p.name if p.kind == p.VAR_POSITIONAL else p.name)
    return out


def _signature(f):
    try:
        return inspect.signature(f)
    except (TypeError, ValueError):
        return None


def _doc_names(f, name):
    """The parameter names in the `name(a, b=1, *, c=None) -> Tensor` line(s) that begin f's
    docstring."""
    m = re.match(rf"\s*{name}\(((?:[^()]|\([^()]*\))*)\)", f.__doc__ or "")
    if m is None:
        return None
    args = re.split(r",\s*(?![^()\[\]]*[)\]])", m.group(1))
    return [re.match(r"\**\w+", a.strip()).group(0) for a in args if a.strip() and a.strip() != "*"]


# -- torch.nn.functional ------------------------------------------------------------------------
FUNCTIONAL = sorted(
    n
    for n in dir(TF)
    if not n.startswith("_")
    and callable(getattr(TF, n))
    and not isinstance(getattr(TF, n), type)
    and n in dir(F)
    and callable(getattr(F, n))
)


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_functional_names_match_torch(name):
    theirs = getattr(TF, name)
    sig = _signature(theirs)
    expected = _names(sig) if sig is not None and _names(sig) != ["*args"] else None
    if expected is None and hasattr(theirs, "__wrapped__"):  # torch's boolean_dispatch (max_pool2d)
        expected = _doc_names(theirs, name)
    if expected is None:  # a builtin: its documented signature
        expected = _doc_names(theirs, name)
    if expected is None:
        pytest.skip(f"torch.nn.functional.{name}: no readable signature")
    ours = inspect.signature(getattr(F, name))
    assert _names(ours) == expected
    if sig is not None and _names(sig) == expected:  # defaults too, where torch's are readable
        for p in sig.parameters.values():
            d = ours.parameters[p.name].default
            assert d is p.default or d == p.default, f"{name}({p.name}=): {d!r} is not torch's {p.default!r}"


def test_functional_names_are_readable_for_most():
    unreadable = [n for n in FUNCTIONAL if _signature(getattr(TF, n)) is None and not _doc_names(getattr(TF, n), n)]
    assert unreadable == []


# -- module forward ----------------------------------------------------------------------------
MODULES = sorted(
    n
    for n in dir(torch.nn)
    if isinstance(getattr(torch.nn, n), type)
    and issubclass(getattr(torch.nn, n), torch.nn.Module)
    # the base and container classes: torch's forward is the unimplemented placeholder
    and getattr(torch.nn, n).forward is not torch.nn.Module.forward
    and isinstance(getattr(nn, n, None), type)
)


@pytest.mark.parametrize("name", MODULES)
def test_module_forward_names_match_torch(name):
    theirs = inspect.signature(getattr(torch.nn, name).forward)
    ours = inspect.signature(getattr(nn, name).forward)
    assert _names(ours) == _names(theirs)
    for p in theirs.parameters.values():
        q = ours.parameters[p.name]
        assert q.kind == p.kind, f"{name}.forward({p.name}): {q.kind} is not torch's {p.kind}"
        assert q.default is p.default or q.default == p.default, f"{name}.forward({p.name}=): {q.default!r}"


def test_modules_called_by_keyword():
    x = fastnn.randn(2, 3, 8)
    x4 = fastnn.randn(2, 3, 8, 8)
    for m, kw in [
        (nn.Linear(8, 4), dict(input=x)),
        (nn.Conv1d(3, 4, 3), dict(input=x)),
        (nn.Conv2d(3, 4, 3), dict(input=x4)),
        (nn.MaxPool2d(2), dict(input=x4)),
        (nn.AvgPool2d(2), dict(input=x4)),
        (nn.AdaptiveAvgPool2d(1), dict(input=x4)),
        (nn.ReLU(), dict(input=x)),
        (nn.GELU(), dict(input=x)),
        (nn.Softmax(dim=-1), dict(input=x)),
        (nn.LayerNorm(8), dict(input=x)),
        (nn.BatchNorm2d(3), dict(input=x4)),
        (nn.Dropout(0.5), dict(input=x)),
        (nn.Flatten(), dict(input=x)),
        (nn.Embedding(5, 2), dict(input=fastnn.tensor([1, 2]))),
        (nn.LSTM(8, 4), dict(input=x, hx=None)),
        (nn.GRU(8, 4), dict(input=x, hx=None)),
        (nn.RNN(8, 4), dict(input=x, hx=None)),
        (nn.MSELoss(), dict(input=x, target=x)),
        (nn.CrossEntropyLoss(), dict(input=fastnn.randn(2, 5), target=fastnn.tensor([0, 3]))),
        (nn.MultiheadAttention(8, 2), dict(query=x, key=x, value=x, need_weights=False)),
        (nn.TransformerEncoderLayer(8, 2, 16), dict(src=x, src_mask=None, is_causal=False)),
        (nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1), dict(src=x, mask=None)),
    ]:
        m(**kw)


# -- Tensor methods and torch's functions --------------------------------------------------------
def _schemas(name, function):
    """(positional names, keyword-only names) of each overload of aten::name (self read as input
    for a function), out= overloads left out."""
    out = []
    for s in torch._C._jit_get_schemas_for_operator("aten::" + name):
        args = [a for a in s.arguments if a.name != "self" or function]
        if any(a.name == "out" for a in args) or s.overload_name.endswith("out"):
            continue
        named = [("input" if a.name == "self" else a.name, a.kwarg_only) for a in args]
        out.append(([n for n, k in named if not k], [n for n, k in named if k]))
    return out


# keywords fastnn takes that torch's schema does not show (its Python binding adds them, or
# fastnn's own): requires_grad on factories, as_tuple, cuda's arguments, load's max_bytes
EXTRA = {"requires_grad", "as_tuple", "device", "non_blocking", "max_bytes"}
# torch's names that cannot be Python parameter names (uniform_(from, to)) or that fastnn
# takes as *operands (einsum)
SKIP = {"uniform_", "einsum"}


def _check_names(ours, theirs_obj, name, function):
    sig = _signature(ours)
    if sig is None or name in SKIP:
        return None
    params = [p for p in sig.parameters.values() if p.name != "self"]
    pos = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    method = getattr(fastnn.Tensor, name, None)
    if function and method is not None and inspect.unwrap(ours) is inspect.unwrap(method):  # from Tensor.<name>
        pos = ["input"] + pos
    kw = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.name != "out"]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    theirs = _signature(theirs_obj)
    if theirs is not None and _names(theirs) not in (["*args"], ["*args", "*kwargs"]):
        tp = [p for p in theirs.parameters.values() if p.name not in ("self", "out")]  # out=: refused
        overloads = [
            ([p.name for p in tp if p.kind != p.KEYWORD_ONLY], [p.name for p in tp if p.kind == p.KEYWORD_ONLY])
        ]
    else:
        overloads = _schemas(name, function)
    if not overloads:
        return None
    known = set().union(*(set(a) | set(b) for a, b in overloads)) | EXTRA
    assert not [n for n in pos + kw if n not in known], f"{name}: {pos + kw} are not among torch's {overloads}"
    # the positional ones in torch's order (fastnn may also take some of torch's keyword-only ones
    # by position)
    assert variadic or any([n for n in pos if n in a] == a[: len([n for n in pos if n in a])] for a, _ in overloads), (
        f"{name}: order {pos} is not torch's"
    )
    return True


METHODS = sorted(
    n
    for n in dir(torch.Tensor)
    if not n.startswith("_") and callable(getattr(fastnn.Tensor, n, None)) and n in dir(fastnn.Tensor)
)
TOP = sorted(
    n
    for n in dir(torch)
    if not n.startswith("_")
    and n in vars(fastnn)
    and callable(vars(fastnn)[n])
    and not isinstance(vars(fastnn)[n], type)
    and callable(getattr(torch, n))
)


def test_tensor_method_names_match_torch():
    checked = [n for n in METHODS if _check_names(getattr(fastnn.Tensor, n), getattr(torch.Tensor, n), n, False)]
    assert len(checked) > 150


def test_function_names_match_torch():
    checked = [n for n in TOP if _check_names(vars(fastnn)[n], getattr(torch, n), n, True)]
    assert len(checked) > 100


def _arr(x):
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    if isinstance(x, fastnn.Tensor):
        return x.numpy(force=True)
    if isinstance(x, (tuple, list)):  # and torch.return_types / fastnn.return_types
        return [_arr(v) for v in x]
    return np.asarray(x)


def _same(a, b):
    a, b = _arr(a), _arr(b)
    if isinstance(a, list):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


_X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7 - 1
_Y = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
_M = np.eye(4, 3, dtype=np.float32) + 0.5

# (what, keywords): what is "x.<method>" on a tensor of _X, or "torch.<function>"; a value "X",
# "Y", "M", "XY" stands for that tensor (XY: [X, Y]) in the library being called
KEYWORD_CALLS = [
    ("x.sum", dict(dim=1, keepdim=True)),
    ("x.sum", dict(dim=(0, 2), keepdim=False, dtype="float64")),
    ("x.mean", dict(dim=-1, keepdim=True)),
    ("x.max", dict(dim=1, keepdim=True)),
    ("x.min", dict(dim=0)),
    ("x.argmax", dict(dim=2, keepdim=True)),
    ("x.std", dict(dim=1, keepdim=True)),
    ("x.var", dict(dim=1)),
    ("x.prod", dict(dim=1)),
    ("x.cumsum", dict(dim=1)),
    ("x.logsumexp", dict(dim=2, keepdim=False)),
    ("x.softmax", dict(dim=1)),
    ("x.log_softmax", dict(dim=-1)),
    ("x.transpose", dict(dim0=0, dim1=2)),
    ("x.permute", dict(dims=(2, 0, 1))),
    ("x.reshape", dict(shape=(6, 4))),
    ("x.flatten", dict(start_dim=1, end_dim=-1)),
    ("x.unsqueeze", dict(dim=1)),
    ("x.squeeze", dict(dim=0)),
    ("x.chunk", dict(chunks=2, dim=2)),
    ("x.split", dict(split_size=2, dim=2)),
    ("x.narrow", dict(dim=2, start=1, length=2)),
    ("x.clamp", dict(min=-0.5, max=0.5)),
    ("x.pow", dict(exponent=2)),
    ("x.add", dict(other="Y", alpha=2)),
    ("x.sub", dict(other="Y", alpha=0.5)),
    ("x.mul", dict(other="Y")),
    ("x.div", dict(other="Y", rounding_mode="floor")),
    ("x.masked_fill", dict(mask="x>0", value=0.0)),
    ("x.topk", dict(k=2, dim=2, largest=False)),
    ("x.sort", dict(dim=1, descending=True)),
    ("x.norm", dict(p=1, dim=2)),
    ("x.roll", dict(shifts=1, dims=2)),
    ("x.repeat_interleave", dict(repeats=2, dim=0)),
    ("x.swapdims", dict(dim0=0, dim1=1)),
    ("x.movedim", dict(source=0, destination=2)),
    ("torch.cat", dict(tensors="XY", dim=1)),
    ("torch.stack", dict(tensors="XY", dim=0)),
    ("torch.where", dict(condition="x>0", input="X", other="Y")),
    ("torch.clamp", dict(input="X", min=-0.5, max=0.5)),
    ("torch.sum", dict(input="X", dim=1, keepdim=True)),
    ("torch.mean", dict(input="X", dim=1)),
    ("torch.max", dict(input="X", dim=1)),
    ("torch.matmul", dict(input="X", other="M")),
    ("torch.transpose", dict(input="X", dim0=0, dim1=1)),
    ("torch.split", dict(tensor="X", split_size_or_sections=[1, 3], dim=2)),
    ("torch.softmax", dict(input="X", dim=1)),
    ("torch.flatten", dict(input="X", start_dim=1)),
    ("torch.full", dict(size=(2, 3), fill_value=1.5)),
    ("torch.zeros_like", dict(input="X")),
    ("torch.ones_like", dict(input="X")),
    ("torch.exp", dict(input="X")),
    ("torch.maximum", dict(input="X", other="Y")),
    ("torch.gather", dict(input="X", dim=2, index="idx")),
]


@pytest.mark.parametrize("what, kw", KEYWORD_CALLS, ids=[f"{w}-{'-'.join(k)}" for w, k in KEYWORD_CALLS])
def test_keyword_calls_match_torch(what, kw):
    def run(lib):
        x = lib.tensor(_X)
        vals = {
            "X": x,
            "Y": lib.tensor(_Y),
            "M": lib.tensor(_M),
            "XY": [x, lib.tensor(_Y)],
            "x>0": x > 0,
            "idx": lib.tensor(np.zeros((2, 3, 2), np.int64)),
            "float64": lib.float64,
        }
        args = {k: vals.get(v, v) if isinstance(v, str) else v for k, v in kw.items()}
        if what.startswith("x."):
            return getattr(x, what[2:])(**args)
        return getattr(lib, what[6:])(**args)

    _same(run(fastnn), run(torch))
