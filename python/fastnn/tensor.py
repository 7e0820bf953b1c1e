"""fastnn.Tensor: a small reverse-mode autograd over NumPy arrays and fastnn.ops, with PyTorch's names.

A Tensor holds a NumPy array (on the CPU) or a CuPy array (on a CUDA device; see fastnn._device)
of its own dtype: an array keeps its dtype, Python floats get the default dtype (float32 unless
set_default_dtype changed it), Python ints int64. float32 runs on the kernels of fastnn.ops,
float64 on their NumPy float64 references (fastnn.ref.f64). An operation on tensors that require
gradients records a node: its parents and a function from the output's gradient to the parents'
gradients. `backward()` runs the nodes in reverse topological order, accumulates `.grad` on the
leaves that require it and frees the graph. The heavy forwards and backwards (convolution,
pooling, linear layers, activations, losses) are kernel calls made by fastnn.nn.functional; the
elementwise arithmetic here is the array's own namespace (NumPy or CuPy). The operands of one
op must share a device (torch's RuntimeError otherwise), except that a 0-d CPU tensor next to
a CUDA tensor is copied to it, as torch treats CPU scalars; `to()` moves differentiably.
"""

import contextlib
import functools
import itertools
import math
import operator

import numpy as np

from . import _compat, _dtypes, _quiet, ops
from . import _device as _dev
from . import return_types as _rt
from ._device import xp as _xp
from .sparse import RowSparse

float32 = np.float32
float64 = np.float64
int64 = np.int64
long = np.int64
bool_ = np.bool_

_grad_enabled = True


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which operations record no graph."""

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


def is_grad_enabled():
    return _grad_enabled


class Node:
    """One recorded operation: the parents whose gradients backward(g) returns, in order, and
    the node each parent had when the operation used it (an in-place operation on a tensor
    gives it a new node: backward refuses a graph that used its earlier value)."""

    __slots__ = ("parents", "versions", "backward", "name")

    def __init__(self, parents, backward, name):
        self.parents = parents
        self.versions = tuple(p._node for p in parents)
        self.backward = backward
        self.name = name


_HOST = (np.ndarray, np.generic)  # host data: arrays, and the NumPy scalars of 0-d ufunc results


def _python_dtype(dt):
    """The dtype torch gives data of Python numbers that NumPy read as dt: floats the default
    dtype, integers int64, booleans bool."""
    if dt.kind not in "fiub":
        raise TypeError(f"fastnn.tensor: expected numbers, got an array of {dt}")
    if dt.kind == "f":
        return _dtypes._default
    if dt.kind in "iu":
        return np.dtype(np.int64)
    return dt


def _array_dtype(dt):
    """An array's own dtype, which a tensor keeps (TypeError for one it cannot hold)."""
    if dt.kind not in "fiub" or dt.newbyteorder("=") not in _dtypes._HOLDABLE:
        raise TypeError(
            f"can't convert np.ndarray of type {dt}. The only supported types are: float64, float32, float16, "
            "int64, int32, int16, int8, uint8, and bool."
        )
    return dt.newbyteorder("=")


def _as_array(data, dtype=None):
    """data as a C-contiguous array: arrays (NumPy, CUDA, a tensor's) keep their dtype; Python
    numbers and lists get torch's (the default float dtype for floats, int64 for integers)."""
    if isinstance(data, Tensor):
        data = data._data
    if not isinstance(data, np.ndarray) and hasattr(data, "__cuda_array_interface__"):
        return _as_device_array(data, dtype)
    a = np.asarray(data)
    if dtype is None:
        dt = a.dtype
        if isinstance(data, _HOST):
            dtype = dt if dt in _dtypes._HOLDABLE else _array_dtype(dt)
        else:
            dtype = _python_dtype(dt)
    # np.asarray keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)
    return np.asarray(a, dtype=dtype, order="C")


def _as_device_array(data, dtype):
    """A CUDA array (CuPy's, or any with __cuda_array_interface__: viewed by CuPy without a copy)
    in its own dtype (or dtype), C-contiguous."""
    a = _dev.require_cuda().asarray(data)
    dt = _array_dtype(a.dtype) if dtype is None else np.dtype(dtype)
    if a.dtype != dt:
        a = a.astype(dt)
    if not a.flags.c_contiguous:
        a = _xp(a).ascontiguousarray(a)
    return a


def _same_device(x, y):
    """Tensors x, y on one device: a 0-d CPU tensor next to a CUDA tensor is moved to it (a
    differentiable copy, as torch treats CPU scalars); any other mix is torch's RuntimeError."""
    a, b = x._data, y._data
    ca, cb = isinstance(a, _HOST), isinstance(b, _HOST)
    if ca and cb:
        return x, y
    if ca and not a.ndim:
        return x._to_device(_dev.device_of(b)), y
    if cb and not b.ndim:
        return x, y._to_device(_dev.device_of(a))
    _dev.check_same_device(a, b)
    return x, y


def _operand(other, dt, a):
    """A number or a bare array `other` as the second operand of an op on array a: a host array
    of dtype dt next to a host array; next to a device array a scalar of dtype dt (CuPy takes
    NumPy scalars, not NumPy arrays; dt None: as it is) or a device array."""
    if isinstance(a, _HOST):
        if not isinstance(other, (int, float, np.ndarray, np.generic)) and hasattr(other, "__cuda_array_interface__"):
            _dev.check_same_device(a, _as_array(other))
        return np.asarray(other, dtype=dt)
    if isinstance(other, np.ndarray) and other.ndim:
        _dev.check_same_device(a, other)
    if hasattr(other, "__cuda_array_interface__"):
        b = _as_array(other, dt)
        _dev.check_same_device(a, b)
        return b
    if isinstance(other, np.ndarray):
        other = other[()]
    return other if dt is None else np.dtype(dt).type(other)


def _on_device(x, a):
    """The index or value x (numbers, slices, arrays, nested tuples) usable with device array a:
    NumPy arrays copied to a's device (as CuPy and torch accept host indices)."""
    if isinstance(x, np.ndarray):
        return _dev.move(x, _dev.device_of(a))
    if isinstance(x, tuple):
        return tuple(_on_device(v, a) for v in x)
    if isinstance(x, list) and any(isinstance(v, (np.ndarray, Tensor)) for v in x):
        return [_on_device(v._data if isinstance(v, Tensor) else v, a) for v in x]
    return x


def _basic_index(key):
    """True when indexing with key picks each element at most once (ints, slices, None,
    Ellipsis, boolean masks), so a[key] = g scatters a gradient exactly."""
    if isinstance(key, tuple):
        return all(_basic_index(k) for k in key)
    if isinstance(key, (int, np.integer, slice)) or key is None or key is Ellipsis:
        return True
    return getattr(key, "dtype", None) == np.bool_


def _unbroadcast(g, shape):
    """g summed down to `shape` (the axes a broadcast added or stretched)."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


_F32 = np.dtype(np.float32)
_INPUT = ("input",)


def _kernels(op, names, *tensors):
    """The kernels for op on tensors (None: absent) named by names: fastnn.ops when they are
    float32, fastnn.ref.f64 (the NumPy float64 references with fastnn.ops' signatures) when
    float64. Tensors of two float dtypes are torch's RuntimeError; other dtypes, and float64 on
    a CUDA device (no float64 kernels there), a TypeError naming the op."""
    for t in tensors:
        if t is not None and t._data.dtype != _F32:
            break
    else:
        return ops  # all float32: the common case, decided in one pass
    dt = first = None
    for name, t in zip(names, tensors):
        if t is None:
            continue
        d = t._data.dtype
        if dt is None:
            dt, first = d, name
        elif d != dt:
            raise RuntimeError(
                f"fastnn.nn.functional.{op}: expected {first} and {name} to have the same dtype, got {dt} and {d}"
            )
    if dt == np.float64:
        if any(t is not None and not isinstance(t._data, _HOST) for t in tensors):
            raise TypeError(f"fastnn.nn.functional.{op}: float64 runs on the CPU only, got a CUDA tensor")
        from .ref import f64

        return f64
    raise TypeError(f"fastnn.nn.functional.{op}: expected {first} to be float32 or float64, got {dt}")


# Views. A tensor's array is C-contiguous (the kernels take no strides), so a strided view (a
# column, a transpose, a narrow of an inner dim, one element) is a copy. Such a copy keeps, in
# its _base slot, (the strided view of the source's memory it was made from, the source): an
# in-place op or an assignment on it writes it back there, so it reaches the tensor it was taken
# from, as torch's views do; a view of such a copy keeps (None, the copy), and the write goes on
# up. (A write to the source after the copy was made does not reach the copy.) The slot is unset
# on every other tensor it is None.


def _strided_view(out, view, source):
    """out, taken from source by indexing, transposing or narrowing: its _base set when its array
    is a C-contiguous copy of view (a strided array sharing source's memory), or when source is
    itself such a copy (out's array a view of source's)."""
    if view is not None or source._base is not None:
        out._base = (view, source)  # the source held, as a torch view holds its base
    return out


def _check_view_write(t):
    """Before an in-place op on t in grad mode: refused where t is a strided view's copy of a
    tensor that requires grad (a leaf: torch's RuntimeError; otherwise torch rebases the view's
    graph, which fastnn does not)."""
    b = t._base
    if b is None:
        return
    src = b[1]
    if not src.requires_grad:
        return _check_view_write(src)
    if src._node is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    raise NotImplementedError(
        "fastnn: an in-place operation on a strided view (a column, a transpose, ...) of a tensor that "
        "requires grad is not supported (torch rebases the view's graph); use an out-of-place op, or do "
        "it under torch.no_grad()"
    )


def _write_back(t):
    """After an in-place write to t: its values into the strided view it is a copy of, and on up
    the chain of tensors it was taken from."""
    b = t._base
    while b is not None:
        if b[0] is not None:
            b[0][...] = t._data
        t = b[1]
        b = t._base


def _view_or_copy(out, a, source):
    """a[key] as a tensor's array: a C-contiguous view as it is, a 0-d or strided one copied and
    kept as the view (_strided_view) when it shares a's memory (basic indexing; advanced indexing
    copies)."""
    if out.ndim and out.flags.c_contiguous:
        return out, None
    b = out.base  # basic indexing gives a view of a's owner; advanced indexing, a new array
    view = out if b is not None and (b is a or b is a.base) else None
    out = _xp(out).ascontiguousarray(out) if out.ndim else out.copy()
    return out, view


class Tensor:
    """An n-dimensional array with an optional gradient (torch.Tensor's names)."""

    __slots__ = ("_data", "grad", "requires_grad", "_node", "_retain", "_base", "__weakref__")
    __array_priority__ = 100  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = _as_array(data, dtype)
        self.grad = None
        self._node = None
        self._retain = False
        self._base = None
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)

    # -- construction of results ------------------------------------------------------------
    @staticmethod
    def _result(data, parents, backward, name):
        """A new tensor from an op; records a node when grad mode is on and a parent needs it."""
        out = Tensor.__new__(Tensor)
        # NumPy gives a 0-d op's result as a scalar (np.float64): keep an array, which promotes
        # as a 0-d tensor (a NumPy scalar next to a tensor is a weak Python-like number)
        out._data = np.asarray(data) if isinstance(data, np.generic) else data
        out.grad = None
        out._retain = False
        out._base = None
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._node = Node(parents, backward, name)
        else:
            out.requires_grad = False
            out._node = None
        return out

    # -- properties ---------------------------------------------------------------------------
    @property
    def data(self):
        """A tensor that shares this one's memory, detached (torch's .data: writes through it
        reach this tensor and are not recorded). Assigning a tensor or an array replaces the
        memory. The array itself is `_data` (and `numpy()`)."""
        return self.detach()

    @data.setter
    def data(self, value):
        self._data = value._data if isinstance(value, Tensor) else _as_array(value)

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def device(self):
        """fastnn.device: cpu, or cuda:<index> for a CuPy array (compares equal to "cuda")."""
        return _dev.device_of(self._data)

    @property
    def is_cuda(self):
        return not isinstance(self._data, _HOST)

    def size(self, dim=None):
        return self._data.shape if dim is None else self._data.shape[dim]

    def dim(self):
        return self._data.ndim

    def numel(self):
        return self._data.size

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        cuda = not isinstance(self._data, _HOST)
        body = np.array2string(_dev.to_host(self._data), separator=", ", precision=4, threshold=20)
        extra = f", device='{self.device}'" if cuda else ""
        extra += ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra})"

    def __format__(self, format_spec):
        # as torch: a 0-d tensor formats as its number (f"{loss:.4f}"); others as object does
        if self._data.ndim == 0 and type(self) is Tensor:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def _host_error(self):
        return TypeError(
            f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
            "tensor to host memory first."
        )

    def __array__(self, dtype=None, copy=None):
        if not isinstance(self._data, _HOST):
            raise self._host_error()  # as torch: a CUDA tensor never becomes NumPy implicitly
        return self._data if dtype is None else self._data.astype(dtype)

    # -- conversion ---------------------------------------------------------------------------
    def numpy(self, force=False):
        """The NumPy array (shared memory); a CUDA tensor is a TypeError unless force=True,
        which copies it to the host (detached)."""
        if not isinstance(self._data, _HOST):
            if not force:
                raise self._host_error()
            return self._data.get()
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._data

    def item(self):
        a = self._data
        if a.size != 1:
            raise ValueError(f"a Tensor with {a.size} elements cannot be converted to a Python scalar")
        if not isinstance(a, _HOST):
            a = a.get()  # an explicit device-to-host copy
        return a.reshape(()).item()

    def tolist(self):
        return _dev.to_host(self._data).tolist()

    def detach(self):
        """A tensor that shares this one's memory, outside the graph."""
        if isinstance(self._data, np.generic):  # a NumPy scalar (some 0-d results) is not shared
            self._data = np.asarray(self._data)
        return Tensor._result(self._data, (), None, "detach")

    def clone(self):
        return Tensor._result(self._data.copy(), (self,), lambda g: (g,), "clone")

    def float(self):
        return self.to(np.float32)

    def long(self):
        return self.to(np.int64)

    def to(self, *args, **kwargs):
        """to(dtype), to(device), to(device, dtype), to(other) (other's device and dtype), with
        device a fastnn.device, "cpu", "cuda", "cuda:1" or an ordinal. Returns self when nothing
        changes (copy=True: a copy); a move or a float-to-float conversion is differentiable.
        non_blocking and memory_format are accepted and ignored."""
        dev, dt = _to_args(args, kwargs)
        out = self
        if dev is not None:
            out = out._to_device(dev)
        if dt is not None and dt != out._data.dtype:
            src = out._data.dtype
            if dt.kind == "f" and src.kind == "f":
                out = Tensor._result(out._data.astype(dt), (out,), lambda g: (g.astype(src),), "to")
            else:
                out = Tensor(out._data.astype(dt), dtype=dt)
        if kwargs.get("copy") and out is self:
            out = self.clone()
        return out

    def _to_device(self, dev):
        a = self._data
        if dev.type == "cpu":
            if isinstance(a, _HOST):
                return self
        elif not isinstance(a, _HOST) and (dev.index is None or int(a.device.id) == dev.index):
            return self
        src = _dev.device_of(a)
        return Tensor._result(_dev.move(a, dev), (self,), lambda g: (_dev.move(g, src),), "to")

    def cuda(self, device=None, non_blocking=False):
        """This tensor on a CUDA device (the current one, or `device`: an ordinal or "cuda:1")."""
        d = _dev.as_device("cuda" if device is None else device)
        if d.type != "cuda":
            raise RuntimeError(f"Invalid device, must be cuda device, got {d}")
        return self._to_device(d)

    def cpu(self):
        return self._to_device(_dev.CPU)

    def contiguous(self, memory_format=None):
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only floating point tensors can require gradients")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        self._retain = True

    # -- autograd -----------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = _xp(self._data).ones_like(self._data)
        else:
            g = _as_array(gradient)
            if _dev.device_of(g) != _dev.device_of(self._data) or (g.__class__ is not self._data.__class__):
                raise RuntimeError(
                    f"invalid gradient at index 0 - expected device {self.device} but got {_dev.device_of(g)}"
                )
            g = g.astype(self._data.dtype, copy=False).reshape(self._data.shape)
        _run_backward(self, g, retain_graph)

    # -- arithmetic ---------------------------------------------------------------------------
    def _binary(self, other, fwd, name, grads, true_div=False):
        """fwd(a, b) (operators: NumPy's or CuPy's) with grads(g, a, b, out) -> (ga, gb), both on
        the operands cast to the result dtype of torch's promotion (fastnn._dtypes; true_div:
        a float dtype for integer operands); a number or bare array `other` is a constant (no
        parent). The gradients are cast back to each operand's dtype."""
        token = _quiet.enter()  # inf, nan, 1 / 0: no NumPy RuntimeWarning, as torch
        try:
            x = self
            if isinstance(other, Tensor):
                o = other
                if not (isinstance(x._data, _HOST) and isinstance(o._data, _HOST)):
                    x, o = _same_device(x, o)
                a, b = x._data, o._data
                parents = (x, o)
                dt = _dtypes.binary_result_type(a, b)
            else:
                a = x._data
                dt = _dtypes.binary_result_type(a, other if _dtypes.is_number(other) else _as_array(other))
                b = _operand(other, dt, a)
                parents = (x,)
            if true_div:
                dt = _dtypes.float_of(dt)
            ca = a if a.dtype == dt else a.astype(dt)
            cb = b if b.dtype == dt else b.astype(dt)
            try:
                out = fwd(ca, cb)
            except ValueError:
                _check_broadcast(a.shape, b.shape)
                raise
        finally:
            _quiet.leave(token)

        def backward(g):
            ga, gb = grads(g, ca, cb, out)
            ga = None if ga is None else _unbroadcast(ga, a.shape).astype(a.dtype, copy=False)
            if len(parents) == 1:
                return (ga,)
            return ga, None if gb is None else _unbroadcast(gb, b.shape).astype(b.dtype, copy=False)

        return Tensor._result(out, parents, backward, name)

    def __add__(self, other):
        return self._binary(other, _add, "add", lambda g, a, b, o: (g, g))

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, _sub, "sub", lambda g, a, b, o: (g, -g))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        return self._binary(other, _mul, "mul", lambda g, a, b, o: (g * b, g * a))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, _div, "div", lambda g, a, b, o: (g / b, -g * a / (b * b)), true_div=True)

    def __rtruediv__(self, other):  # other / self, other a constant
        return self._binary(other, _rdiv, "div", lambda g, a, b, o: (-g * b / (a * a), None), true_div=True)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(Tensor(other), self)

    def _compare(self, other, fn):
        """fn(self, other) -> a bool tensor, compared in torch's promoted dtype; NotImplemented
        for an operand that is not a tensor, a number or an array (so `t == None` is False)."""
        a = self._data
        if isinstance(other, Tensor):
            host = isinstance(a, _HOST) and isinstance(other._data, _HOST)
            x, y = (self, other) if host else _same_device(self, other)
            a, o = x._data, y._data
            dt = _dtypes.binary_result_type(a, o)
        elif (
            _dtypes.is_number(other)
            or isinstance(other, (np.ndarray, list))
            or hasattr(other, "__cuda_array_interface__")
        ):
            dt = _dtypes.binary_result_type(a, other if _dtypes.is_number(other) else _as_array(other))
            o = _operand(other, dt, a)
        else:
            return NotImplemented
        a = a if a.dtype == dt else a.astype(dt)
        o = o if o.dtype == dt else o.astype(dt)
        if not isinstance(a, _HOST):
            fn = getattr(_xp(a), fn.__name__)
        try:
            return Tensor(fn(a, o))
        except ValueError:
            _check_broadcast(a.shape, o.shape)
            raise

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self._data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        return int(self.item())

    # -- elementwise functions ------------------------------------------------------------------
    def exp(self):
        token = _quiet.enter()
        try:
            out = _xp(self._data).exp(self._data)
        finally:
            _quiet.leave(token)
        return Tensor._result(out, (self,), lambda g: (g * out,), "exp")

    def log(self):
        a = self._data
        token = _quiet.enter()
        try:
            out = _xp(a).log(a)
        finally:
            _quiet.leave(token)
        return Tensor._result(out, (self,), lambda g: (g / a,), "log")

    def sqrt(self):
        token = _quiet.enter()
        try:
            out = _xp(self._data).sqrt(self._data)
        finally:
            _quiet.leave(token)
        return Tensor._result(out, (self,), lambda g: (g / (2 * out),), "sqrt")

    def abs(self):
        a = self._data
        xp = _xp(a)
        return Tensor._result(xp.abs(a), (self,), lambda g: (g * xp.sign(a),), "abs")

    def clamp(self, min=None, max=None):
        a = self._data
        xp = _xp(a)
        numbers = [v for v in (min, max) if _dtypes.is_number(v)]
        dt = _dtypes.result_type(a, *numbers)  # torch: an int tensor clamped to floats is float32
        out = xp.clip(a if a.dtype == dt else a.astype(dt), min, max)
        keep = xp.ones(a.shape, bool)
        if min is not None:
            keep &= a >= min
        if max is not None:
            keep &= a <= max
        return Tensor._result(out, (self,), lambda g: (g * keep,), "clamp")

    clip = clamp

    # The kernel-backed activations (fastnn.nn.functional's relu, sigmoid, tanh, softmax and
    # log_softmax call these).
    def relu(self):
        K, X = _kernels("relu", _INPUT, self), self._data
        return Tensor._result(K.relu_forward(X), (self,), lambda g: (K.relu_backward(g, X),), "relu")

    def sigmoid(self):
        K = _kernels("sigmoid", _INPUT, self)
        y = K.sigmoid_forward(self._data)
        return Tensor._result(y, (self,), lambda g: (K.sigmoid_backward(g, y),), "sigmoid")

    def tanh(self):
        K = _kernels("tanh", _INPUT, self)
        y = K.tanh_forward(self._data)
        return Tensor._result(y, (self,), lambda g: (K.tanh_backward(g, y),), "tanh")

    def softmax(self, dim, dtype=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:  # torch: cast first
            return self.to(dtype).softmax(dim)
        if self._data.ndim == 0:  # a 0-d tensor: one element along dim 0 or -1, as torch
            return self.reshape(1).softmax(dim).reshape(())
        X = self._data
        if X.dtype == np.float32:
            y = ops.softmax_forward(X, dim)
            return Tensor._result(y, (self,), lambda g: (ops.softmax_backward(g, y, dim),), "softmax")
        m = X.max(axis=dim, keepdims=True)
        e = _xp(X).exp(X - m)
        y = e / e.sum(axis=dim, keepdims=True)
        return Tensor._result(y, (self,), lambda g: (y * (g - (g * y).sum(axis=dim, keepdims=True)),), "softmax")

    def log_softmax(self, dim, dtype=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:  # torch: cast first
            return self.to(dtype).log_softmax(dim)
        if self._data.ndim == 0:  # a 0-d tensor: one element along dim 0 or -1, as torch
            return self.reshape(1).log_softmax(dim).reshape(())
        X = self._data
        if X.dtype == np.float32:
            y = ops.log_softmax_forward(X, dim)
            return Tensor._result(y, (self,), lambda g: (ops.log_softmax_backward(g, y, dim),), "log_softmax")
        xp = _xp(X)
        m = X.max(axis=dim, keepdims=True)
        z = X - m
        y = z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True))
        return Tensor._result(y, (self,), lambda g: (g - xp.exp(y) * g.sum(axis=dim, keepdims=True),), "log_softmax")

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, *, dtype=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:  # torch: cast first
            return self.to(dtype).sum(dim, keepdim)
        a = self._data
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        dtype = a.dtype if a.dtype.kind == "f" else np.int64  # torch: bool and int sums are int64
        token = _quiet.enter()  # an overflow to inf: no NumPy RuntimeWarning, as torch
        try:
            out = xp.asarray(a.sum(axis=axis, keepdims=keepdim, dtype=dtype))
        finally:
            _quiet.leave(token)

        def backward(g):
            if not keepdim and axis is not None:
                g = xp.expand_dims(g, axis)
            return (xp.broadcast_to(g, a.shape).copy(),)

        return Tensor._result(out, (self,), backward, "sum")

    def mean(self, dim=None, keepdim=False, *, dtype=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:  # torch: cast first
            return self.to(dtype).mean(dim, keepdim)
        a = self._data
        if a.dtype.kind != "f":
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
                f"dtype. Got: {_dtypes.torch_name(a.dtype)}"
            )
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        n = a.size if axis is None else math.prod(a.shape[i] for i in axis)
        token = _quiet.enter()  # an overflow to inf: no NumPy RuntimeWarning, as torch
        try:
            out = xp.asarray(a.mean(axis=axis, keepdims=keepdim), dtype=a.dtype)
        finally:
            _quiet.leave(token)

        def backward(g):
            if not keepdim and axis is not None:
                g = xp.expand_dims(g, axis)
            return (xp.broadcast_to(g / n, a.shape).astype(a.dtype),)

        return Tensor._result(out, (self,), backward, "mean")

    def _extreme(self, dim, keepdim, argname, name):
        a = self._data
        xp = _xp(a)
        if dim is None:
            if a.size == 0:
                raise RuntimeError(
                    f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
                    "reduction dim with the 'dim' argument."
                )
            out = xp.asarray(a.max() if name == "max" else a.min())

            def backward(g):
                # as torch: shared evenly by the elements equal to the result (NaN: the NaNs)
                hit = xp.where(xp.isnan(out), xp.isnan(a), a == out)
                return ((g / hit.sum().astype(g.dtype)) * hit,)

            return Tensor._result(out, (self,), backward, name)
        d = _dim(dim, a.ndim)
        if a.ndim == 0:
            values = Tensor._result(a.copy(), (self,), lambda g: (g,), name)
            return getattr(_rt, name)(values, Tensor(xp.zeros((), np.int64)))
        if a.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
        dim = d
        idx = xp.expand_dims(getattr(xp, argname)(a, axis=dim), dim)
        vals = xp.take_along_axis(a, idx, dim)

        def backward(g):
            gg = g if keepdim else xp.expand_dims(g, dim)
            if xp is np:
                d = np.zeros_like(a)
                np.put_along_axis(d, idx, gg, dim)
                return (d,)
            # the gradient where the position along dim is the chosen one, zero elsewhere
            pos = xp.arange(a.shape[dim]).reshape((-1,) + (1,) * (a.ndim - 1 - dim))
            return (xp.where(pos == idx, gg, xp.zeros((), a.dtype)),)

        values = Tensor._result(vals if keepdim else vals.squeeze(dim), (self,), backward, name)
        indices = Tensor(idx if keepdim else idx.squeeze(dim))
        return getattr(_rt, name)(values, indices)

    def max(self, dim=None, keepdim=False):
        """max(): the largest element; max(dim, keepdim=False): (values, indices) as
        fastnn.return_types.max; max(other): maximum(self, other)."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        return self._extreme(dim, keepdim, "argmax", "max")

    def min(self, dim=None, keepdim=False):
        """min(): the smallest element; min(dim, keepdim=False): (values, indices) as
        fastnn.return_types.min; min(other): minimum(self, other)."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        return self._extreme(dim, keepdim, "argmin", "min")

    def _argextreme(self, dim, keepdim, name):
        a = self._data
        xp = _xp(a)
        fn = getattr(xp, name)
        if a.size == 0 and (dim is None or a.ndim == 0 or a.shape[_dim(dim, a.ndim)] == 0):
            raise IndexError(f"{name}(): Expected reduction dim to have non-zero size.")
        if dim is None:
            out = xp.asarray(fn(a), dtype=np.int64)
            return Tensor(out.reshape((1,) * a.ndim) if keepdim else out)
        d = _dim(dim, a.ndim)
        if a.ndim == 0:
            return Tensor(xp.zeros((), np.int64))
        return Tensor(xp.asarray(fn(a, axis=d, keepdims=keepdim), dtype=np.int64))

    def argmax(self, dim=None, keepdim=False):
        """The index of the largest element (flattened), or along dim (int64)."""
        return self._argextreme(dim, keepdim, "argmax")

    def argmin(self, dim=None, keepdim=False):
        """The index of the smallest element (flattened), or along dim (int64)."""
        return self._argextreme(dim, keepdim, "argmin")

    # -- shape ----------------------------------------------------------------------------------
    def reshape(self, *shape, **kwargs):
        shape = _shape_args(_by_keyword(shape, kwargs, "shape", "reshape") if kwargs else shape)
        a = self._data
        try:
            out = a.reshape(shape)
        except ValueError:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {a.size}") from None
        return Tensor._result(out, (self,), lambda g: (g.reshape(a.shape),), "reshape")

    def view(self, *shape, **kwargs):
        return self.reshape(*(_by_keyword(shape, kwargs, "size", "view") if kwargs else shape))

    def flatten(self, start_dim=0, end_dim=-1):
        s = self._data.shape
        if not s:
            return self.reshape(1)
        end = end_dim % len(s)
        new = s[:start_dim] + (int(np.prod(s[start_dim : end + 1])),) + s[end + 1 :]
        return self.reshape(new)

    def squeeze(self, dim=None):
        a = self._data
        xp = _xp(a)
        out = xp.squeeze(a) if dim is None else (xp.squeeze(a, dim) if a.shape[dim] == 1 else a)
        return Tensor._result(out, (self,), lambda g: (g.reshape(a.shape),), "squeeze")

    def unsqueeze(self, dim):
        a = self._data
        out = _xp(a).expand_dims(a, dim)
        return Tensor._result(out, (self,), lambda g: (g.reshape(a.shape),), "unsqueeze")

    def permute(self, *dims, **kwargs):
        dims = _shape_args(_by_keyword(dims, kwargs, "dims", "permute") if kwargs else dims)
        inv = tuple(int(i) for i in np.argsort(dims))
        xp = _xp(self._data)
        out, view = _view_or_copy(self._data.transpose(dims), self._data, self)
        t = Tensor._result(out, (self,), lambda g: (xp.ascontiguousarray(g.transpose(inv)),), "permute")
        return _strided_view(t, view, self)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError("t() expects a tensor with <= 2 dimensions")
        return self.permute(*reversed(range(self.ndim)))

    def expand(self, *shape, **kwargs):
        shape = _shape_args(_by_keyword(shape, kwargs, "size", "expand") if kwargs else shape)
        a = self._data
        xp = _xp(a)
        if len(shape) < a.ndim:
            raise RuntimeError(
                f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to the number "
                f"of dimensions in the tensor ({a.ndim})"
            )
        lead = len(shape) - a.ndim
        for i, n in enumerate(shape[:lead]):
            if n == -1:
                raise RuntimeError(
                    f"The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension {i}"
                )
        shape = tuple(a.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        try:
            out = xp.broadcast_to(a, shape)
            # (ascontiguousarray makes a 0-d array 1-d)
            out = xp.ascontiguousarray(out) if out.ndim else out.copy()
        except ValueError:
            raise RuntimeError(
                f"The expanded size of the tensor does not match the existing size: target sizes {list(shape)}, "
                f"tensor sizes {list(a.shape)}"
            ) from None
        return Tensor._result(out, (self,), lambda g: (_unbroadcast(g, a.shape),), "expand")

    def __getitem__(self, key):
        a = self._data
        key = _index(key, a)
        if isinstance(a, _HOST):
            out = a[key]
            if isinstance(out, np.generic):  # one element: as a 0-d view (a copy if advanced)
                out = a[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
            out, view = _view_or_copy(np.asarray(out), a, self)

            def backward(g):
                d = np.zeros_like(a)
                np.add.at(d, key, g)
                return (d,)

            return _strided_view(Tensor._result(out, (self,), backward, "index"), view, self)
        xp = _xp(a)
        out = a[key]
        out = xp.ascontiguousarray(out) if out.ndim else out.copy()

        def backward_device(g):
            d = xp.zeros_like(a)
            if _basic_index(key):
                d[key] = g  # every element picked once: the scatter is a plain assignment
            else:
                _dev.scatter_add(d, key, g)
            return (d,)

        return Tensor._result(out, (self,), backward_device, "index")

    def __setitem__(self, key, value):
        if _grad_enabled and self.requires_grad:
            raise RuntimeError("in-place assignment to a tensor that requires grad is not supported")
        a = self._data
        self._data[_index(key, a)] = _dev.move(_as_array(value), _dev.device_of(a))
        _write_back(self)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _index(key, a):
    """An index for array a: tensors unwrapped; host index arrays copied to a's device (as CuPy
    and torch accept them); a device index into a host array is torch's RuntimeError."""
    if isinstance(key, Tensor):
        key = key._data
    elif isinstance(key, tuple):
        key = tuple(k._data if isinstance(k, Tensor) else k for k in key)
    if isinstance(a, _HOST):
        for k in key if isinstance(key, tuple) else (key,):
            if not isinstance(k, (int, slice, _HOST)) and hasattr(k, "__cuda_array_interface__"):
                raise RuntimeError(
                    f"indices should be either on cpu or on the same device as the indexed tensor "
                    f"(cpu), got indices on {_dev.device_of(k)}"
                )
        return key
    return _on_device(key, a)


def _by_keyword(args, kwargs, name, method):
    """The *args of a method that torch also takes as one keyword (x.reshape(shape=(2, 3)))."""
    if args or set(kwargs) != {name}:
        bad = next((k for k in kwargs if k != name), name)
        raise TypeError(f"{method}() got an unexpected keyword argument '{bad}'")
    return (kwargs[name],)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


def _dim(dim, ndim):
    """dim (negative: from the end) as an axis of an ndim-dimensional array; torch's IndexError
    when out of range. A 0-d tensor takes dim 0 or -1, as torch."""
    dim = operator.index(dim)
    n = ndim if ndim else 1
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _axes(dim, ndim):
    """The axes of dim (None, an int or a sequence of ints) for a reduction: None for all of
    them (dim None or empty, or a 0-d tensor); torch's IndexError for one out of range and
    RuntimeError for one named twice."""
    if dim is None:
        return None
    dims = (dim,) if not isinstance(dim, (tuple, list)) else tuple(dim)
    axes = tuple(_dim(d, ndim) for d in dims)
    if len(set(axes)) != len(axes):
        twice = next(d for d in axes if axes.count(d) > 1)
        raise RuntimeError(f"dim {twice} appears multiple times in the list of dims")
    return axes if axes and ndim else None


def _check_broadcast(sa, sb):
    """torch's RuntimeError when shapes sa and sb do not broadcast together."""
    # (no min/max here: this module's max and min are fastnn.max and fastnn.min)
    short, long_ = (len(sa), len(sb)) if len(sa) <= len(sb) else (len(sb), len(sa))
    for i in range(1, short + 1):
        m, n = sa[-i], sb[-i]
        if m != n and m != 1 and n != 1:
            raise RuntimeError(
                f"The size of tensor a ({m}) must match the size of tensor b ({n}) at non-singleton dimension "
                f"{long_ - i}"
            )


# NumPy's floating-point warnings off in the methods that compute (exp, log, sqrt, sum, mean and
# the operators do it inline, the methods of fastnn._tensor_api's classes are wrapped there)
for _name in ("float", "long", "to", "clamp", "clip", "softmax", "log_softmax", "__matmul__", "__rmatmul__"):
    setattr(Tensor, _name, _quiet.quietly(vars(Tensor)[_name]))
del _name


def _run_backward(root, g, retain_graph):
    token = _quiet.enter()  # the gradients of log(0), 1 / x at 0, ...: inf or nan, no warning
    try:
        _run_backward_quiet(root, g, retain_graph)
    finally:
        _quiet.leave(token)


def _run_backward_quiet(root, g, retain_graph):
    # reverse topological order by an iterative depth-first search
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._node is not None:
            for p, v in zip(t._node.parents, t._node.versions):
                if p._node is not v and v is not None:
                    raise RuntimeError(
                        "one of the variables needed for gradient computation has been modified by an "
                        f"inplace operation: the input of {t._node.name} was changed by {p._node.name} after "
                        f"{t._node.name} used it"
                    )
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
    grads = {id(root): g}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue  # no gradient reached this node (e.g. a fused consumer bypassed it)
        if isinstance(g, np.generic):  # a 0-d result's NumPy scalar: kernels take arrays
            g = np.asarray(g)
        if t._node is None or t._retain:
            # a copy: the same gradient array may reach several tensors, and .grad is the
            # user's to modify in place (clip_grad_norm_, zero_)
            if isinstance(g, RowSparse) or isinstance(t.grad, RowSparse):
                # a row-sparse gradient (Embedding(sparse=True)) stays sparse while only sparse
                # ones arrive; a dense one joining it makes the sum dense
                total = g.clone() if t.grad is None else t.grad + g
                t.grad = total if isinstance(total, RowSparse) else Tensor(total, dtype=t._data.dtype)
            elif t.grad is None:
                if isinstance(t._data, _HOST):
                    t.grad = Tensor(np.array(g, dtype=t._data.dtype, copy=True), dtype=t._data.dtype)
                else:
                    _dev.check_same_device(t._data, g)
                    t.grad = Tensor(g.astype(t._data.dtype, copy=True), dtype=t._data.dtype)
            else:
                t.grad._data = t.grad._data + g
            if t._node is None:
                continue
        node = t._node
        pgrads = node.backward(g)
        for p, v, pg in zip(node.parents, node.versions, pgrads):
            if pg is None or not p.requires_grad or p._node is not v:
                continue  # (a tensor this op used as a constant, in the graph since by an in-place op)
            k = id(p)
            if k in grads:
                grads[k] = grads[k] + pg
            else:
                grads[k] = pg
        if not retain_graph:  # free the saved arrays; a second backward through it raises
            node.backward, node.parents, node.versions = _freed, (), ()


def _freed(g):
    raise RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved "
        "tensors after they have already been freed). Specify retain_graph=True if you "
        "need to backward a second time."
    )


def _outer(xp, x, y):
    """x[..., None...] * y: numpy.multiply.outer (CuPy's ufuncs may lack .outer)."""
    return xp.multiply.outer(x, y) if xp is np else x.reshape(x.shape + (1,) * y.ndim) * y


def matmul(input, other):
    """input @ other through the gemm kernel (float32, broadcast batch dims as numpy.matmul);
    other dtypes through the array's matmul (float operands of two dtypes: torch's RuntimeError).
    On a CUDA device the kernel takes 2-D operands; batched and vector products use CuPy's
    matmul."""
    from . import ops

    a, b = input, other
    if not isinstance(a, Tensor):
        a = Tensor(a)
    if not isinstance(b, Tensor):
        b = Tensor(b)
    A, B = a._data, b._data
    host = isinstance(A, _HOST) and isinstance(B, _HOST)
    if not host:
        a, b = _same_device(a, b)
        A, B = a._data, b._data
    if A.dtype != B.dtype and A.dtype.kind == "f" and B.dtype.kind == "f":
        raise RuntimeError(f"fastnn.matmul: expected both operands to have the same dtype, got {A.dtype} and {B.dtype}")
    if (
        A.ndim == 1
        or B.ndim == 1
        or A.dtype != np.float32
        or B.dtype != np.float32
        or (not host and (A.ndim != 2 or B.ndim != 2))
    ):
        xp = _xp(A)
        out = xp.matmul(A, B)

        def backward(g):
            ga = gb = None
            if a.requires_grad:
                if B.ndim == 1:  # out[...] = A[..., :] . B
                    ga = _outer(xp, g, B)
                elif A.ndim == 1:  # out[..., n] = A . B[..., :, n] (summed over the batch below)
                    ga = xp.matmul(B, g[..., None])[..., 0]
                else:
                    ga = xp.matmul(g, xp.swapaxes(B, -1, -2))
            if b.requires_grad:
                if B.ndim == 1:
                    gb = g * A if A.ndim == 1 else xp.matmul(g.reshape(-1), A.reshape(-1, A.shape[-1]))
                elif A.ndim == 1:
                    gb = A[:, None] * g[..., None, :]
                else:
                    gb = xp.matmul(xp.swapaxes(A, -1, -2), g)
            return (
                None if ga is None else _unbroadcast(xp.asarray(ga), A.shape),
                None if gb is None else _unbroadcast(xp.asarray(gb), B.shape),
            )

        return Tensor._result(out, (a, b), backward, "matmul")
    if not host:
        out = ops.gemm(A, B)

        def backward_device(g):
            g = _xp(g).ascontiguousarray(g)  # the CUDA gemm reads C-contiguous arrays only
            return (
                ops.gemm(g, B, trans_b=True) if a.requires_grad else None,
                ops.gemm(A, g, trans_a=True) if b.requires_grad else None,
            )

        return Tensor._result(out, (a, b), backward_device, "matmul")
    out = ops.gemm(A, B)

    def backward(g):
        ga = _unbroadcast(ops.gemm(g, B, trans_b=True), A.shape) if a.requires_grad else None
        gb = _unbroadcast(ops.gemm(A, g, trans_a=True), B.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._result(out, (a, b), backward, "matmul")


# -- construction -----------------------------------------------------------------------------
# device= (None: the CPU, or the data's device) takes a fastnn.device, "cpu", "cuda", "cuda:1" or
# an ordinal. Random values come from fastnn's host generator and are copied to the device, so a
# seeded CPU run and a CUDA run see the same numbers.


def _place(a, device, requires_grad=False):
    """Tensor of array a (host or device) on `device` (None: where a is)."""
    if device is not None:
        a = _dev.move(a, _dev.as_device(device))
    return Tensor(a, requires_grad=requires_grad, dtype=a.dtype)


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of data (numbers, lists, NumPy / CUDA arrays, tensors)."""
    a = _as_array(data, dtype)
    if device is not None and _dev.device_of(a) != _dev.as_device(device):
        return Tensor(_dev.move(a, _dev.as_device(device)), requires_grad=requires_grad, dtype=a.dtype)  # a copy
    if isinstance(a, _HOST):
        return Tensor(np.array(a, copy=True), requires_grad=requires_grad, dtype=a.dtype)
    return Tensor(a.copy(), requires_grad=requires_grad, dtype=a.dtype)


def as_tensor(data, dtype=None, device=None):
    """data as a tensor without a copy where it already is one (or an array) of that dtype and device."""
    if isinstance(data, Tensor) and dtype is None and (device is None or data.device == _dev.as_device(device)):
        return data
    return _place(_as_array(data, dtype), device)


def from_numpy(a):
    """A tensor sharing a's memory and dtype (writes to either show in the other). fastnn
    tensors are C-contiguous: a strided array (a transposed or sliced view) is copied."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    dt = _array_dtype(a.dtype)
    if a.dtype != dt or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=dt)
    t = Tensor.__new__(Tensor)
    t._data, t.grad, t._node, t._retain, t.requires_grad, t._base = a, None, None, False, False, None
    return t


def _size(shape):
    return _shape_args(shape)


def _float_dtype(dtype):
    """dtype, or the default float dtype when it is None (the float factories)."""
    return np.dtype(_dtypes.get_default_dtype() if dtype is None else dtype)


def _filled(shape, value, dtype, device, requires_grad):
    d = None if device is None else _dev.as_device(device)
    if d is None or d.type == "cpu":
        return Tensor(np.full(shape, value, dtype), requires_grad=requires_grad, dtype=dtype)
    return Tensor(_dev.full(shape, value, dtype, d), requires_grad=requires_grad, dtype=dtype)


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return _filled(_size(size), 0, _float_dtype(dtype), device, requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return _filled(_size(size), 1, _float_dtype(dtype), device, requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    """size filled with fill_value; dtype None: torch's for the value (the default dtype for a
    float, int64 for an int, bool for a bool)."""
    if dtype is None:
        dtype = _dtypes.scalar_dtype(fill_value.item() if isinstance(fill_value, Tensor) else fill_value)
    return _filled(_size((size,)), fill_value, dtype, device, requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):
    return zeros(*size, dtype=dtype, requires_grad=requires_grad, device=device)


def zeros_like(input, dtype=None, requires_grad=False, device=None):
    """Zeros of input's shape on input's device (or `device`)."""
    a = _as_array(input)
    return _place(_xp(a).zeros_like(a, dtype=dtype), device, requires_grad)


def ones_like(input, dtype=None, requires_grad=False, device=None):
    a = _as_array(input)
    return _place(_xp(a).ones_like(a, dtype=dtype), device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None):
    if end is None:
        start, end = 0, start
    a = np.arange(start, end, step)
    return _place(a.astype(_python_dtype(a.dtype) if dtype is None else dtype), device)


def randn(*size, dtype=None, requires_grad=False, device=None):
    from . import random as _random

    return _place(_random.generator().standard_normal(_size(size)).astype(_float_dtype(dtype)), device, requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None):
    from . import random as _random

    return _place(_random.generator().random(_size(size)).astype(_float_dtype(dtype)), device, requires_grad)


def randint(low, high=None, size=(), dtype=np.int64, device=None):
    from . import random as _random

    if high is None:
        low, high = 0, low
    return _place(_random.generator().integers(low, high, size=_size((size,))).astype(dtype), device)


def randperm(n, dtype=np.int64, device=None):
    from . import random as _random

    return _place(_random.generator().permutation(n).astype(dtype), device)


def cat(tensors, dim=0):
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    arrays = [t._data for t in tensors]
    if not all(isinstance(a, _HOST) for a in arrays):
        _dev.check_same_device(*arrays)
    xp = _xp(arrays[0]) if arrays else np
    out = xp.concatenate(arrays, axis=dim)
    sizes = list(itertools.accumulate(a.shape[dim] for a in arrays))[:-1]

    def backward(g):
        return tuple(xp.ascontiguousarray(p) for p in xp.split(g, sizes, axis=dim))

    return Tensor._result(out, tuple(tensors), backward, "cat")


def stack(tensors, dim=0):
    return cat([(t if isinstance(t, Tensor) else Tensor(t)).unsqueeze(dim) for t in tensors], dim)


def _add(a, b):
    return a + b


def _sub(a, b):
    return a - b


def _mul(a, b):
    return a * b


def _div(a, b):
    return a / b


def _rdiv(a, b):
    return b / a


def _to_args(args, kwargs):
    """(device or None, NumPy dtype or None) from the arguments of Tensor.to / Module.to."""
    dev = dt = None
    for a in tuple(args) + (kwargs.get("device"), kwargs.get("dtype")):
        if a is None or isinstance(a, bool):  # bool: non_blocking given by position
            continue
        if isinstance(a, Tensor):
            dev, dt = a.device, a._data.dtype
        elif isinstance(a, (_dev.device, str, int)):
            dev = _dev.as_device(a)
        elif isinstance(a, (type, np.dtype)):
            try:
                dt = np.dtype(a)
            except TypeError:
                continue
    return dev, dt


def _wrap_unary(name):
    @functools.wraps(getattr(Tensor, name))
    def f(input, *args, out=None, **kwargs):
        if out is not None:
            raise _compat.out_unsupported(name)
        return getattr(input if isinstance(input, Tensor) else Tensor(input), name)(*args, **kwargs)

    return f


exp = _wrap_unary("exp")
log = _wrap_unary("log")
sqrt = _wrap_unary("sqrt")
abs = _wrap_unary("abs")
sum = _wrap_unary("sum")
mean = _wrap_unary("mean")
max = _wrap_unary("max")
min = _wrap_unary("min")
argmax = _wrap_unary("argmax")
argmin = _wrap_unary("argmin")
flatten = _wrap_unary("flatten")
reshape = _wrap_unary("reshape")
relu = _wrap_unary("relu")
sigmoid = _wrap_unary("sigmoid")
tanh = _wrap_unary("tanh")
softmax = _wrap_unary("softmax")
log_softmax = _wrap_unary("log_softmax")
clamp = _wrap_unary("clamp")
