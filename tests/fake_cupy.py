"""A stand-in for CuPy on machines without a GPU: "device" arrays that hold host memory.

With `_fastnn_cuda_emu.device` (csrc/cuda/module.cpp compiled against the emulator: device
pointers are host pointers) in place of fastnn._cuda, fastnn.cuda and everything above it (ops,
Tensor, nn, optim, train) run end to end on the emulated kernels. The fixture `emulated_gpu`
(tests/conftest.py) installs both.

The arrays are as strict as CuPy's where it matters for finding host/device mix-ups:
  - implicit conversion to NumPy (np.asarray(d), float() of a big array) is a TypeError, as in
    CuPy; `.get()` and `asnumpy()` copy to the host explicitly;
  - a NumPy array in a ufunc, a NumPy function or an assignment together with a device array is
    a TypeError ("Unsupported type"), as in CuPy; Python and NumPy scalars are accepted;
  - reductions return 0-d device arrays, not NumPy scalars.
Everything else is NumPy's arithmetic on the held array, so results are NumPy's bits.
"""

import numpy as _np

__all__ = ["ndarray", "asarray", "asnumpy", "cuda"]


class _Pointer:
    def __init__(self, ptr):
        self.ptr = ptr


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _unwrap(x):
    """Device arrays -> their host arrays, in nested tuples / lists / dicts; a NumPy array is a
    TypeError (CuPy refuses host arrays next to device ones)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        raise _unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return ndarray(x)
    if isinstance(x, _np.generic):  # reductions give 0-d device arrays in CuPy
        return ndarray(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(fn, args, kwargs):
    return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))


class ndarray:
    """A device array of the fake: a NumPy array behind __cuda_array_interface__."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a):
        self._a = a

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "version": 3,
            "data": (a.__array_interface__["data"][0], not a.flags.writeable),
            "strides": None if a.flags.c_contiguous else a.strides,
        }

    # CuPy refuses implicit conversion to NumPy.
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
            "a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def get(self):
        return self._a.copy()

    @property
    def data(self):
        return _Pointer(self._a.__array_interface__["data"][0])

    @property
    def device(self):
        return _Device(0)

    def __getattr__(self, name):  # shape, dtype, reshape, astype, sum, T, ...
        if name in ("__array_interface__", "__array_struct__"):
            # NumPy would read the host memory through these: CuPy has neither
            raise AttributeError(f"'fake_cupy.ndarray' object has no attribute '{name}'")
        v = getattr(self._a, name)
        if callable(v):
            return lambda *args, **kwargs: _call(v, args, kwargs)
        return _wrap(v)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return f"fake_cupy.ndarray({self._a!r})"

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())

    def __getstate__(self):
        raise TypeError("fake_cupy arrays are device arrays: copy them to the host first")


def _operator(ufunc, reflected=False):
    if reflected:
        return lambda self, other: ufunc(other, self)

    def op(self, other):
        # CuPy defers to the other operand's reflected operator when that has a higher
        # __array_priority__ and is not a device array
        if not isinstance(other, ndarray) and getattr(other, "__array_priority__", 0) > ndarray.__array_priority__:
            return NotImplemented
        return ufunc(self, other)

    return op


for _name, _uf in [
    ("add", _np.add),
    ("sub", _np.subtract),
    ("mul", _np.multiply),
    ("truediv", _np.true_divide),
    ("floordiv", _np.floor_divide),
    ("mod", _np.remainder),
    ("pow", _np.power),
    ("matmul", _np.matmul),
    ("and", _np.bitwise_and),
    ("or", _np.bitwise_or),
    ("xor", _np.bitwise_xor),
]:
    setattr(ndarray, f"__{_name}__", _operator(_uf))
    setattr(ndarray, f"__r{_name}__", _operator(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", lambda self, other, _uf=_uf: _uf(self, other, out=self))
for _name, _uf in [
    ("lt", _np.less),
    ("le", _np.less_equal),
    ("gt", _np.greater),
    ("ge", _np.greater_equal),
    ("eq", _np.equal),
    ("ne", _np.not_equal),
]:
    setattr(ndarray, f"__{_name}__", _operator(_uf))
ndarray.__neg__ = lambda self: _np.negative(self)
ndarray.__pos__ = lambda self: self.copy()
ndarray.__abs__ = lambda self: _np.absolute(self)
ndarray.__invert__ = lambda self: _np.invert(self)
ndarray.__hash__ = None


class _Device:
    def __init__(self, id):
        self.id = id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


class _Stream:
    ptr = 0  # the legacy default stream

    def synchronize(self):
        pass


class _Cuda:
    Device = _Device

    @staticmethod
    def get_current_stream():
        return _Stream()

    @staticmethod
    def is_available():
        return True


cuda = _Cuda()


def asarray(a, dtype=None, order=None):
    """Host or device data -> a device array (a copy from the host, as a transfer is)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return ndarray(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """cupy.array: a new device array (copy=False: the same one where nothing changes)."""
    if isinstance(obj, ndarray):
        a = _np.array(obj._a, dtype=dtype, copy=copy or None, order=order, ndmin=ndmin)
        return obj if a is obj._a else ndarray(a)
    return ndarray(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def empty(shape, dtype=float):
    """An uninitialised device array, as cupy.empty; here poisoned (NaN, or the smallest
    integer), so an element a kernel never writes shows in a comparison."""
    dt = _np.dtype(dtype)
    fill = _np.nan if dt.kind == "f" else (_np.iinfo(dt).min if dt.kind in "iu" else 0)
    return ndarray(_np.full(shape, fill, dt))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else _np.asarray(a)


def get_array_module(*arrays):
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in arrays) else _np


class _Ufunc:
    """A NumPy ufunc on device arrays: calls, and at() in place (CuPy's ufunc.at)."""

    def __init__(self, ufunc):
        self._uf = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._uf, args, kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        self._uf.at(a._a, _unwrap(indices), *(() if b is None else (_unwrap(b),)))


def __getattr__(name):
    """The rest of the namespace: NumPy's functions on device arrays, dtypes as they are."""
    v = getattr(_np, name)
    if isinstance(v, _np.ufunc):
        return _Ufunc(v)
    if callable(v) and not isinstance(v, type):
        return lambda *args, **kwargs: _call(v, args, kwargs)
    return v
