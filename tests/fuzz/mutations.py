"""The generic mutations of a valid call, and the verdict on an op's answer to one.

A mutated call may be refused with TypeError or ValueError (IndexError too for an index out of
range) whose message names the op and what it expected; or, where the op takes the mutated
input, its results must equal the reference's on the same (mutated) arguments, and the inputs
it does not write must be unchanged. Anything else fails the case: another exception (a
MemoryError or RecursionError from an input a check could have refused included), a message
that does not name the op, a result the reference does not give, and a read-only array written.
"""

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

# Values far outside the sizes any input has: just past 32 bits, past 2^40 and the int64 edge.
HUGE_DIMS = (2**31 + 1, 2**32 + 1, 2**40)
HUGE_INTS = (2**31, 2**31 - 1, 2**32 + 1, 2**40, 2**63 - 1, -1, -2, -(2**31), -(2**63), 0)
WRONG_ARRAYS = ("none", "list", "str", "float", "int")
WRONG_INTS = (None, "3", 2.5, [1], True, np.float32(2.0), np.array([2, 2]))
DTYPES = ("float64", "float16", "int32", "bool", "object", "int64", "uint8", "complex64")


@dataclass
class Mutation:
    """A mutated call: the label written to the log and shown on failure, the keyword arguments,
    must_refuse (a read-only output: taking it is a failure), index (IndexError allowed too) and
    hidden (the reference's other data, when the mutation draws a new case)."""

    label: str
    kw: dict
    must_refuse: bool = False
    index: bool = False
    hidden: dict | None = None


# ---------------------------------------------------------------------------------------------
# Describing arguments (the log, the failure messages)


def describe_value(v):
    if isinstance(v, np.ndarray):
        s = f"{v.dtype}{list(v.shape)}"
        if v.size and not v.flags.c_contiguous:
            s += f" strides={v.strides}"
        if not v.flags.writeable:
            s += " read-only"
        if v.dtype.kind in "iu" and v.size and v.size <= 8:
            s += f" {v.reshape(-1).tolist()}"
        return s
    if isinstance(v, (list, tuple)) and any(isinstance(a, np.ndarray) for a in v):
        inner = ", ".join(describe_value(a) for a in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def describe(kw):
    return ", ".join(f"{k}={describe_value(v)}" for k, v in kw.items())


# ---------------------------------------------------------------------------------------------
# Arrays with the same values and another layout, huge views, copies


def relayout(a, how):
    """a's values in a non-contiguous view: every other element of a wider buffer ("step"), the
    transpose of a transposed copy ("transposed") or a reversed copy read backwards
    ("reversed")."""
    if a.ndim == 0:
        return a
    if how == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    if how == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), a.dtype)
    v = buf[..., 1::2]
    v[...] = a
    return v


def huge(a, dim, n, how):
    """An array like a with dimension dim of size n and no memory behind it: a view of one
    element with all strides 0 ("stride0"), or ("empty") a real array with another dimension 0."""
    shape = list(a.shape) if a.ndim else [1]
    dim %= len(shape)
    shape[dim] = n
    if how == "empty":
        shape[(dim + 1) % len(shape)] = 0
        return np.empty(shape, a.dtype)
    return np.lib.stride_tricks.as_strided(np.zeros(1, a.dtype), shape=shape, strides=(0,) * len(shape))


def snapshot(v):
    """A deep copy of the arrays in v (C-contiguous, writeable), the rest as it is; an array of
    over 256 MiB (a huge view with no memory behind it) is kept as it is."""
    if isinstance(v, np.ndarray):
        return v if v.nbytes > 2**28 else np.array(v, copy=True)
    if isinstance(v, list):
        return [snapshot(a) for a in v]
    if isinstance(v, tuple):
        return tuple(snapshot(a) for a in v)
    if isinstance(v, dict):
        return {k: snapshot(a) for k, a in v.items()}
    return v


def arrays_in(v):
    if isinstance(v, np.ndarray):
        return [v]
    if isinstance(v, (list, tuple)):
        return [a for x in v for a in arrays_in(x)]
    return []


def wrong_array(a, how):
    return {
        "none": None,
        "list": a.tolist() if isinstance(a, np.ndarray) else [1.0],
        "str": "x",
        "float": 1.5,
        "int": 3,
    }[how]


def retyped(a, dtype):
    if dtype == "object":
        return a.astype(object)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.nan_to_num(a, nan=0, posinf=0, neginf=0).astype(dtype) if dtype[0] in "iub" else a.astype(dtype)


# ---------------------------------------------------------------------------------------------
# The mutations of a call: a family is drawn, then its details


def _with(kw, **changes):
    k = dict(kw)
    k.update(changes)
    return k


def array_mutation(draw, kw, name, readonly_refuse=False, no_none=False):
    a = kw[name]
    if not isinstance(a, np.ndarray):  # an optional array left out: give it a wrong type
        how = draw(st.sampled_from(WRONG_ARRAYS[1:]))
        return Mutation(f"{name} as {how}", _with(kw, **{name: wrong_array(np.zeros(2, np.float32), how)}))
    # a saved-from argument (no_none) loses no dim: a broadcast mask reshaped, e.g. (L, 1) as
    # (L,), is a valid mask of another meaning that the saved state would not match (found with
    # a random seed); for the same reason its extra dim is a leading one only
    kinds = ["dtype", "ndim+", "layout", "readonly", "huge", "wrong_type"] + (
        ["ndim-"] if a.ndim and not no_none else []
    )
    kind = draw(st.sampled_from(kinds))
    if kind == "dtype":
        # a float attention mask that a backward's saved state came from, retyped as bool, is a
        # valid mask of another meaning: the state would not match it (found with another seed)
        dt = draw(st.sampled_from([d for d in DTYPES if d != str(a.dtype) and not (no_none and d == "bool")]))
        return Mutation(f"{name} as {dt}", _with(kw, **{name: retyped(a, dt)}))
    if kind == "ndim+":
        where = draw(st.sampled_from(["leading"] if no_none else ["leading", "trailing"]))
        return Mutation(
            f"{name} with an extra {where} dim", _with(kw, **{name: a[None] if where == "leading" else a[..., None]})
        )
    if kind == "ndim-":
        if a.ndim >= 2:
            b = a.reshape(a.shape[:-2] + (a.shape[-2] * a.shape[-1],))
        else:
            b = a.reshape(-1)[:1].reshape(()) if a.size else np.zeros((), a.dtype)
        return Mutation(f"{name} with one dim less", _with(kw, **{name: b}))
    if kind == "layout":
        how = draw(st.sampled_from(["step", "transposed", "reversed"]))
        return Mutation(f"{name} {how} (non-contiguous)", _with(kw, **{name: relayout(a, how)}))
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return Mutation(f"{name} read-only", _with(kw, **{name: b}), must_refuse=readonly_refuse)
    if kind == "huge":
        dim = draw(st.integers(0, max(a.ndim - 1, 0)))
        n = draw(st.sampled_from(HUGE_DIMS))
        how = draw(st.sampled_from(["stride0", "empty"] if a.ndim >= 2 else ["stride0"]))
        return Mutation(f"{name} huge ({how}, dim {dim} = {n})", _with(kw, **{name: huge(a, dim, n, how)}))
    how = draw(st.sampled_from(WRONG_ARRAYS[1:] if no_none else WRONG_ARRAYS))
    return Mutation(f"{name} as {how}", _with(kw, **{name: wrong_array(a, how)}))


def index_mutation(draw, kw, name, end):
    a = kw[name]
    kinds = ["range", "dtype", "huge", "wrong_type", "layout"] if a.size else ["dtype", "huge", "wrong_type"]
    kind = draw(st.sampled_from(kinds))
    if kind == "range":
        bad = draw(st.sampled_from([end, end + 1, -1, -2, 2**31, 2**32, 2**63 - 1, -(2**63), -(2**31)]))
        ignore = kw.get("ignore_index")
        if bad == ignore:
            bad = end
        b = np.array(a, np.int64)
        pos = draw(st.integers(0, b.size - 1))
        b.reshape(-1)[pos] = bad  # 2**32: index 0 if read as 32 bits
        return Mutation(f"{name}[{pos}] = {bad} (valid: [0, {end}))", _with(kw, **{name: b}), index=True)
    if kind == "dtype":
        dt = draw(st.sampled_from(["float64", "float32", "bool", "object", "uint64", "int8"]))
        return Mutation(f"{name} as {dt}", _with(kw, **{name: retyped(a, dt)}))
    if kind == "layout":
        how = draw(st.sampled_from(["step", "reversed"]))
        return Mutation(f"{name} {how} (non-contiguous)", _with(kw, **{name: relayout(a, how)}))
    if kind == "huge":
        dim = draw(st.integers(0, max(a.ndim - 1, 0)))
        n = draw(st.sampled_from(HUGE_DIMS))
        return Mutation(f"{name} huge (stride0, dim {dim} = {n})", _with(kw, **{name: huge(a, dim, n, "stride0")}))
    how = draw(st.sampled_from(WRONG_ARRAYS))
    return Mutation(f"{name} as {how}", _with(kw, **{name: wrong_array(a, how)}))


def int_mutation(draw, kw, name):
    v = kw[name]
    if draw(st.booleans()):
        bad = draw(st.sampled_from(WRONG_INTS))
        return Mutation(f"{name} = {bad!r}", _with(kw, **{name: bad}))
    n = draw(st.sampled_from(HUGE_INTS))
    if isinstance(v, tuple) and draw(st.booleans()):
        bad = (n, v[1]) if draw(st.booleans()) else (v[0], n)
    else:
        bad = n
    return Mutation(f"{name} = {bad!r}", _with(kw, **{name: bad}))


def shape_mutation(draw, kw, name):
    v = kw[name]
    seq = list(v) if isinstance(v, (tuple, list)) else [v]
    if draw(st.booleans()) or not seq:
        bad = draw(st.sampled_from([None, "x", 2.5, (), tuple(seq) + (1,)]))
    else:
        i = draw(st.integers(0, len(seq) - 1))
        seq[i] = draw(st.sampled_from(HUGE_INTS + (None, 2.5)))
        bad = tuple(seq) if isinstance(v, (tuple, list)) or len(seq) > 1 else seq[0]
    return Mutation(f"{name} = {bad!r}", _with(kw, **{name: bad}))


def list_mutation(draw, kw, name, inplace):
    lst = kw[name]
    if lst is None or not isinstance(lst, list):
        bad = draw(st.sampled_from([[], "x", [np.zeros(3, np.float32)]]))
        return Mutation(f"{name} = {describe_value(bad)}", _with(kw, **{name: bad}))
    kinds = ["wrong_list", "length"] + (["element", "alias"] if lst else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "wrong_list":
        bad = draw(st.sampled_from(["none", "array", "str", "tuple", "nested"]))
        value = {
            "none": None,
            "array": lst[0] if lst else np.zeros(3, np.float32),
            "str": "x",
            "tuple": tuple(lst),
            "nested": [lst],
        }[bad]
        return Mutation(f"{name} as {bad}", _with(kw, **{name: value}))
    if kind == "length":
        value = lst[:-1] if lst else [np.zeros(3, np.float32)]
        return Mutation(f"{name} of {len(value)} arrays (others {len(lst)})", _with(kw, **{name: value}))
    i = draw(st.integers(0, len(lst) - 1))
    if kind == "alias":
        # the array of another list at the same position (or this list's own other element):
        # an output aliasing an input or another output
        others = [n for n in kw if n != name and isinstance(kw[n], list) and len(kw[n]) == len(lst)]
        if others and draw(st.booleans()):
            other = draw(st.sampled_from(others))
            value = list(lst)
            value[i] = kw[other][i]
            return Mutation(f"{name}[{i}] is {other}[{i}]", _with(kw, **{name: value}), must_refuse=False)
        j = draw(st.integers(0, len(lst) - 1))
        value = list(lst)
        value[j] = lst[i]
        return Mutation(f"{name}[{j}] is {name}[{i}]", _with(kw, **{name: value}))
    sub = dict(enumerate(lst))
    m = array_mutation(draw, {f"{name}[{k}]": v for k, v in sub.items()}, f"{name}[{i}]", readonly_refuse=inplace)
    value = [m.kw[f"{name}[{k}]"] for k in range(len(lst))]
    return Mutation(m.label, _with(kw, **{name: value}), must_refuse=m.must_refuse)


def out_mutation(draw, kw, name, like, inputs):
    """out= (or indices=) given: right, read-only, of another shape / dtype / layout, aliasing an
    input exactly or overlapping it partially, or not an array."""
    dt = like.dtype
    rng = np.random.default_rng(0)

    def fresh(shape=like.shape, dtype=dt):
        return rng.standard_normal(shape).astype(dtype)  # finite values: c = out reads them (gemm)

    kinds = ["ok", "readonly", "shape", "dtype", "layout", "wrong_type"]
    same = [n for n in inputs if isinstance(kw[n], np.ndarray) and kw[n].dtype == dt and kw[n].size]
    if same and like.size:
        kinds += ["alias", "overlap"]
    kind = draw(st.sampled_from(kinds))
    if kind == "ok":
        return Mutation(f"{name} given", _with(kw, **{name: fresh()}))
    if kind == "readonly":
        o = fresh()
        o.flags.writeable = False
        return Mutation(f"{name} read-only", _with(kw, **{name: o}), must_refuse=True)
    if kind == "shape":
        shape = list(like.shape)
        how = draw(st.sampled_from(["plus1", "flat", "extra", "less"] if shape else ["extra"]))
        if how == "plus1":
            i = draw(st.integers(0, len(shape) - 1))
            shape[i] += 1
        elif how == "flat":
            shape = [int(np.prod(shape))]
        elif how == "extra":
            shape = [1] + shape
        else:
            shape = shape[1:]
        return Mutation(
            f"{name} of shape {tuple(shape)} (result {like.shape})", _with(kw, **{name: fresh(tuple(shape))})
        )
    if kind == "dtype":
        other = draw(st.sampled_from([d for d in ("float64", "float16", "int32", "int64", "float32") if d != str(dt)]))
        return Mutation(f"{name} as {other}", _with(kw, **{name: fresh(dtype=other)}))
    if kind == "layout":
        how = draw(st.sampled_from(["step", "transposed", "reversed"]))
        return Mutation(f"{name} {how} (non-contiguous)", _with(kw, **{name: relayout(fresh(), how)}))
    if kind == "wrong_type":
        how = draw(st.sampled_from(["list", "str", "float", "int"]))
        return Mutation(f"{name} as {how}", _with(kw, **{name: wrong_array(fresh(), how)}))
    src = draw(st.sampled_from(same))
    a = kw[src]
    n = like.size
    if kind == "alias":
        # the input's own memory from its start (itself when the shapes agree)
        if a.shape == like.shape:
            o = a
        elif a.flags.c_contiguous and a.size >= n:
            o = a.reshape(-1)[:n].reshape(like.shape)
        else:
            buf = np.empty(max(a.size, n), dt)
            b = buf[: a.size].reshape(a.shape)
            b[...] = a
            o = buf[:n].reshape(like.shape)
            kw = _with(kw, **{src: b})
        return Mutation(f"{name} aliasing {src}", _with(kw, **{name: o}))
    # partial overlap: the input rebuilt inside a buffer whose tail out covers
    k = max(1, min(a.size, n) // 2)
    buf = np.empty(a.size + n - k, dt)
    b = buf[: a.size].reshape(a.shape)
    b[...] = a
    o = buf[a.size - k : a.size - k + n].reshape(like.shape)
    return Mutation(f"{name} overlapping the last {k} elements of {src}", _with(kw, **{src: b, name: o}))


def inplace_alias(draw, kw, names):
    """Two arrays updated in place given as one (batch norm's running statistics)."""
    a, b = names
    return Mutation(f"{b} is {a}", _with(kw, **{b: kw[a]}))


def draw_mutation(draw, op, case, result, empty_case):
    """One mutation of case for op (result: the op's results on the valid case, which give the
    outputs' shapes and dtypes); empty_case() draws the op's valid case with an empty batch."""
    kw = case.kw
    families = []
    for n in op.arrays:
        if n in kw:
            families.append(("array", n))
    for n in op.index:
        if isinstance(kw.get(n), np.ndarray):
            families.append(("index", n))
    families += [("int", n) for n in op.ints if n in kw]
    families += [("shape", n) for n in op.shapes if n in kw]
    families += [("list", n) for n in op.lists if n in kw]
    results = result if isinstance(result, (tuple, list)) else [result]
    for n, pos in op.outs.items():
        if pos < len(results) and isinstance(results[pos], np.ndarray):
            families.append(("out", n))
    present = [n for n in op.writes(kw) if isinstance(kw.get(n), np.ndarray)]
    if len(present) == 2:
        families.append(("inplace_alias", None))
    families.append(("empty", None))
    family, name = draw(st.sampled_from(families))
    if family == "array":
        return array_mutation(draw, kw, name, readonly_refuse=name in op.writes(kw), no_none=name in op.saved_from)
    if family == "index":
        return index_mutation(draw, kw, name, int(op.index[name](kw)))
    if family == "int":
        return int_mutation(draw, kw, name)
    if family == "shape":
        return shape_mutation(draw, kw, name)
    if family == "list":
        return list_mutation(draw, kw, name, name in op.writes(kw))
    if family == "out":
        inputs = [n for n in kw if n not in op.outs and isinstance(kw[n], np.ndarray)]
        return out_mutation(draw, kw, name, results[op.outs[name]], inputs)
    if family == "inplace_alias":
        return inplace_alias(draw, kw, present)
    e = empty_case()
    return Mutation(f"empty batch: {describe(e.kw)}", e.kw, hidden=e.hidden)
