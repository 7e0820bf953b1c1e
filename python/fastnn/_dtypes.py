"""Tensor dtypes: torch's names for them and torch's rules for the dtype of a result.

A fastnn dtype is a NumPy scalar type (fastnn.float32 is numpy.float32), so `t.dtype ==
fastnn.float32` holds for a float32 tensor. fastnn holds booleans, integers (int8 ... int64,
uint8) and floats (float16, float32, float64); a result that would need anything else (complex
numbers, for instance) is a TypeError naming the dtype.

The result of an op on several operands follows torch's promotion, not NumPy's:
  - a Python number is "weak": it keeps the tensor's dtype when it is of the same kind or a
    lower one (int tensor + 2 is int, float16 tensor + 2.5 is float16), and gives the default
    float dtype (float32 unless set_default_dtype changed it) when a float meets an integer or
    boolean tensor;
  - a 0-d tensor is weak next to tensors with dimensions unless it is of a higher kind (bool <
    integer < float): float32 tensor + float64 0-d tensor is float32, int tensor + float64 0-d
    tensor is float64;
  - integer and float give the float (int64 + float16 is float16; NumPy says float64).
"""

import builtins

import numpy as np

bool = np.bool_
uint8 = np.uint8
int8 = np.int8
int16 = np.int16
short = np.int16
int32 = np.int32
int = np.int32
int64 = np.int64
long = np.int64
float16 = np.float16
half = np.float16
float32 = np.float32
float = np.float32
float64 = np.float64
double = np.float64

_HOLDABLE = frozenset(
    np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64)
)
_KIND = {"b": 0, "u": 1, "i": 1, "f": 2}


_default = np.dtype(np.float32)
_DEFAULTABLE = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def get_default_dtype():
    """The dtype of tensors made from Python floats, of the float factories (zeros, randn, ...),
    of new layers' parameters and of float results of integer inputs."""
    return _default.type


def set_default_dtype(d):
    """torch.set_default_dtype: d is float32, float64 or float16 (a TypeError otherwise, as torch
    refuses non-float defaults)."""
    global _default
    try:
        dt = None if d is None else np.dtype(d)
    except TypeError:
        dt = None
    if dt is None or dt not in _DEFAULTABLE:  # (a dtype compares equal to None: float64)
        raise TypeError(f"only floating-point types are supported as the default type, got {d!r}")
    _default = dt


def check(dt, op):
    """dt as a NumPy dtype when fastnn can hold it; a TypeError naming it and `op` otherwise."""
    dt = np.dtype(dt)
    if dt not in _HOLDABLE:
        raise TypeError(
            f"fastnn.{op}: the result would be {dt}, which a fastnn tensor cannot hold (bool, uint8, "
            "int8, int16, int32, int64, float16, float32 and float64)"
        )
    return dt


_TORCH_NAMES = {"b": "Bool", "u1": "Byte", "i1": "Char", "i2": "Short", "i4": "Int", "i8": "Long"}


def torch_name(dt):
    """torch's scalar-type name for dt in its error messages (Long, Int, Bool, Float, ...)."""
    dt = np.dtype(dt)
    if dt.kind == "f":
        return {2: "Half", 4: "Float", 8: "Double"}[dt.itemsize]
    return _TORCH_NAMES.get("b" if dt.kind == "b" else f"{dt.kind}{dt.itemsize}", str(dt))


def is_float(dt):
    return np.dtype(dt).kind == "f"


def float_of(dt):
    """The dtype of a float function (sin, exp, true division) of data of dtype dt: dt when it
    is a float, else the default dtype (torch: int and bool inputs give float32)."""
    dt = np.dtype(dt)
    return dt if dt.kind == "f" else np.dtype(get_default_dtype())


def promote_types(a, b):
    """torch.promote_types on fastnn's dtypes."""
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    ka, kb = _KIND.get(a.kind), _KIND.get(b.kind)
    if ka is None or kb is None:
        raise TypeError(f"fastnn: no promotion of {a} and {b}: fastnn tensors hold booleans, integers and floats")
    if ka != kb:
        return a if ka > kb else b  # bool < integer < float, and the higher kind's dtype wins
    return np.promote_types(a, b)


def _scalar_dtype(x):
    if isinstance(x, (builtins.bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(x, (builtins.int, np.integer)):
        return np.dtype(np.int64)
    if isinstance(x, (builtins.float, np.floating)):
        return np.dtype(get_default_dtype())
    raise TypeError(f"fastnn: expected a number, got {type(x).__name__}")


def _combine(higher, lower):
    if higher is None:
        return lower
    if lower is None:
        return higher
    kh, kl = _KIND[higher.kind], _KIND[lower.kind]
    if kh == 2:
        return higher
    if kh == 0 or kl == 2:
        return promote_types(higher, lower)
    return higher


def result_type(*operands):
    """torch.result_type: operands are arrays or tensors (anything with .dtype and .ndim) and
    Python or NumPy numbers (weak)."""
    dim = zero = wrapped = None
    for x in operands:
        dt = getattr(x, "dtype", None)
        if dt is None or isinstance(x, np.generic):
            d = _scalar_dtype(x)
            wrapped = d if wrapped is None else promote_types(wrapped, d)
        elif x.ndim == 0:
            zero = np.dtype(dt) if zero is None else promote_types(zero, dt)
        else:
            dim = np.dtype(dt) if dim is None else promote_types(dim, dt)
    return _combine(dim, _combine(zero, wrapped))


_INT64 = np.dtype(np.int64)


def binary_result_type(a, b):
    """result_type(a, b) for an array a and an array or number b, the common cases first (one
    dtype; a Python float next to floats; a Python int next to numbers)."""
    da = a.dtype
    tb = type(b)
    if tb is builtins.float:
        return da if da.kind == "f" else _default
    if tb is builtins.int:
        return da if da.kind != "b" else _INT64
    if getattr(b, "dtype", None) == da and not isinstance(b, np.generic):
        return da
    return result_type(a, b)


def is_number(x):
    return isinstance(x, (builtins.bool, builtins.int, builtins.float, np.bool_, np.integer, np.floating))


def can_cast(frm, to):
    """torch's rule for writing a result of dtype frm into a tensor of dtype to (in-place ops,
    out=): not a float into an integer or boolean tensor, not an integer into a boolean one."""
    return _KIND[np.dtype(frm).kind] <= _KIND[np.dtype(to).kind]


def scalar_dtype(x):
    """The dtype torch gives a tensor made from the Python number x alone."""
    return _scalar_dtype(x)
