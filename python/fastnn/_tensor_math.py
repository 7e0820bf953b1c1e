"""Tensor's elementwise functions, comparisons and logic, and the in-place variants, with torch's
names, signatures, result dtypes (fastnn._dtypes) and gradients.

The classes here hold methods only; fastnn._tensor_api attaches them to Tensor, and the
module-level forms (fastnn.sin(t), ...) come from `function`. Every op takes the array module of
its data (NumPy or CuPy), computes in the result dtype (an integer input of a float function
gives float32, as torch) and gives its gradients in each input's dtype.

erf: NumPy has no erf; on the host it is math.erf elementwise (float64, within an ulp), on a
CUDA device cupyx.scipy.special.erf.
"""

import functools
import math

import numpy as np

from . import _compat, _dtypes, _quiet
from . import _device as _dev
from ._device import xp as _xp
from .tensor import (
    _HOST,
    Tensor,
    _check_broadcast,
    _check_view_write,
    _same_device,
    _unbroadcast,
    _write_back,
    is_grad_enabled,
)

_LEAF_MESSAGE = "a leaf Variable that requires grad is being used in an in-place operation."


# -- shared by the tensor modules ------------------------------------------------------------------
def tensor_of(x, like=None):
    """x as a Tensor: a tensor as it is; a number as a 0-d tensor of torch's dtype for it (on
    like's device); anything else by fastnn's construction rules."""
    if isinstance(x, Tensor):
        return x
    if _dtypes.is_number(x):
        a = np.asarray(x, dtype=_dtypes.scalar_dtype(x))
        if like is not None and not isinstance(like._data, _HOST):
            a = _dev.move(a, _dev.device_of(like._data))
        return Tensor(a, dtype=a.dtype)
    return Tensor(x)


def aligned(*tensors):
    """The tensors on one device (a 0-d CPU tensor joins a CUDA one; otherwise torch's
    RuntimeError for a mix)."""
    ts = list(tensors)
    if all(isinstance(t._data, _HOST) for t in ts):
        return ts
    first = next(t for t in ts if not isinstance(t._data, _HOST) or t._data.ndim)
    return [t if t is first else _same_device(first, t)[1] for t in ts]


def common(*tensors, floats=False):
    """The tensors cast (differentiably) to torch's result dtype of all of them (floats: a
    float dtype for integer ones)."""
    dt = _dtypes.result_type(*(t._data for t in tensors))
    if floats:
        dt = _dtypes.float_of(dt)
    return [t if t.dtype == dt else t.to(dt) for t in tensors]


def broadcast_shape(*shapes):
    """numpy.broadcast_shapes with torch's RuntimeError for shapes that do not broadcast."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        for i, s in enumerate(shapes):
            for t in shapes[i + 1 :]:
                _check_broadcast(s, t)
        raise


def function(method, name=None):
    """The module-level form of a Tensor method: fastnn.<name>(input, *args, **kwargs). out= is
    not supported: a NotImplementedError that says so, never silently ignored."""
    name = name or method.__name__

    @functools.wraps(method)
    def f(input, *args, out=None, **kwargs):
        if out is not None:
            raise _compat.out_unsupported(name)
        return method(tensor_of(input), *args, **kwargs)

    f.__name__ = f.__qualname__ = name
    return f


def zeros_grad(xp, g, x, out):
    """The gradient of a piecewise-constant function (floor, sign, ...): zero, as torch."""
    return xp.zeros(x.shape, g.dtype)


def _scalar(xp, value, dt):
    """A number as a 0-d array of dtype dt for arrays of module xp."""
    with np.errstate(over="ignore"):
        return xp.asarray(np.asarray(value, dtype=dt))


def unary(name, fwd, grad=None, floats=True, doc=None):
    """A method out = fwd(xp, x) and its backward g -> grad(xp, g, x, out) (None: zero). x is
    the data, cast to the default float dtype first for integer and bool inputs when floats."""

    def method(self):
        a = self._data
        xp = _xp(a)
        dt = _dtypes.float_of(a.dtype) if floats else a.dtype
        x = a if a.dtype == dt else a.astype(dt)
        token = _quiet.enter()  # inf, nan: no NumPy RuntimeWarning, as torch
        try:
            out = xp.asarray(fwd(xp, x))
        finally:
            _quiet.leave(token)
        if out.dtype != dt:
            out = out.astype(dt)

        def backward(g):  # (the backward pass runs quiet)
            return ((grad or zeros_grad)(xp, g, x, out),)

        return Tensor._result(out, (self,), backward, name)

    method._quiet = True  # fastnn._tensor_api need not wrap it
    method.__name__ = method.__qualname__ = name
    method.__doc__ = doc or f"{name} elementwise (torch.{name})."
    return method


_erf_host = np.frompyfunc(math.erf, 1, 1)


def _erf(xp, x):
    if xp is np:
        out = np.asarray(_erf_host(np.asarray(x, np.float64)), dtype=np.float64)
        return out.astype(x.dtype)
    try:
        from cupyx.scipy import special
    except ImportError:  # CuPy without cupyx: on the host, and back
        return _dev.move(_erf(np, _dev.to_host(x)), _dev.device_of(x))
    return special.erf(x)


def _int_divisor_check(a, b):
    """torch's RuntimeError for an integer division by zero (NumPy would give 0 and warn)."""
    if np.dtype(a.dtype).kind in "iub" and isinstance(b, _HOST) and np.any(np.asarray(b) == 0):
        raise RuntimeError("ZeroDivisionError")


def _trunc_div(a, b):
    xp = _xp(a)
    _int_divisor_check(a, b)
    if np.dtype(a.dtype).kind == "f":
        return xp.trunc(a / b)
    q = a // b
    return q + ((q < 0) & (q * b != a)).astype(q.dtype)


def _floor_div(a, b):
    _int_divisor_check(a, b)
    return _xp(a).floor_divide(a, b)


def _fmod(a, b):
    _int_divisor_check(a, b)
    return _xp(a).fmod(a, b)


def _remainder(a, b):
    _int_divisor_check(a, b)
    return _xp(a).remainder(a, b)


def _no_derivative(name):
    def grads(g, a, b, out):
        raise RuntimeError(f"derivative for {name} is not implemented")

    return grads


def _zero_grads(g, a, b, out):
    xp = _xp(g)
    return xp.zeros(a.shape, g.dtype), xp.zeros(b.shape, g.dtype)


def _where0(xp, cond, x):
    """x with zeros where cond holds (NaN and inf there included)."""
    return xp.where(cond, xp.zeros((), x.dtype), x)


class ElementwiseMethods:
    """sin ... reciprocal, rounding, erf, lerp, addcmul/addcdiv, atan2, maximum/minimum, fmod,
    remainder, floor_divide, div(rounding_mode=), add/sub(alpha=), mul, pow, nan_to_num, logit."""

    sin = unary("sin", lambda xp, x: xp.sin(x), lambda xp, g, x, o: g * xp.cos(x))
    cos = unary("cos", lambda xp, x: xp.cos(x), lambda xp, g, x, o: -g * xp.sin(x))
    tan = unary("tan", lambda xp, x: xp.tan(x), lambda xp, g, x, o: g * (1 + o * o))
    asin = unary("asin", lambda xp, x: xp.arcsin(x), lambda xp, g, x, o: g / xp.sqrt(1 - x * x))
    acos = unary("acos", lambda xp, x: xp.arccos(x), lambda xp, g, x, o: -g / xp.sqrt(1 - x * x))
    atan = unary("atan", lambda xp, x: xp.arctan(x), lambda xp, g, x, o: g / (1 + x * x))
    sinh = unary("sinh", lambda xp, x: xp.sinh(x), lambda xp, g, x, o: g * xp.cosh(x))
    cosh = unary("cosh", lambda xp, x: xp.cosh(x), lambda xp, g, x, o: g * xp.sinh(x))
    asinh = unary("asinh", lambda xp, x: xp.arcsinh(x), lambda xp, g, x, o: g / xp.sqrt(x * x + 1))
    acosh = unary("acosh", lambda xp, x: xp.arccosh(x), lambda xp, g, x, o: g / xp.sqrt(x * x - 1))
    atanh = unary("atanh", lambda xp, x: xp.arctanh(x), lambda xp, g, x, o: g / (1 - x * x))
    exp2 = unary("exp2", lambda xp, x: xp.exp2(x), lambda xp, g, x, o: g * o * o.dtype.type(math.log(2.0)))
    expm1 = unary("expm1", lambda xp, x: xp.expm1(x), lambda xp, g, x, o: g * (o + 1))
    log1p = unary("log1p", lambda xp, x: xp.log1p(x), lambda xp, g, x, o: g / (1 + x))
    log2 = unary("log2", lambda xp, x: xp.log2(x), lambda xp, g, x, o: g / (x * x.dtype.type(math.log(2.0))))
    log10 = unary("log10", lambda xp, x: xp.log10(x), lambda xp, g, x, o: g / (x * x.dtype.type(math.log(10.0))))
    rsqrt = unary("rsqrt", lambda xp, x: 1 / xp.sqrt(x), lambda xp, g, x, o: g * -0.5 * o * o * o)
    reciprocal = unary("reciprocal", lambda xp, x: 1 / x, lambda xp, g, x, o: -g * o * o)
    erf = unary(
        "erf",
        _erf,
        lambda xp, g, x, o: g * x.dtype.type(2 / math.sqrt(math.pi)) * xp.exp(-x * x),
        doc="The error function elementwise (torch.erf): math.erf on the host, in float64.",
    )

    def neg(self):
        """-self (torch.neg); a RuntimeError on a bool tensor, as torch."""
        if self.dtype == np.bool_:
            raise RuntimeError(
                "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a "
                "mask, use the `~` or `logical_not()` operator instead."
            )
        return Tensor._result(-self._data, (self,), lambda g: (-g,), "neg")

    negative = neg
    __neg__ = neg

    def sign(self):
        """-1, 0 or 1 by the sign (0 for NaN, as torch; a bool tensor stays bool)."""
        a = self._data
        if a.dtype == np.bool_:
            return Tensor._result(a.copy(), (self,), lambda g: (g * 0,), "sign")
        return unary("sign", lambda xp, x: (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype), floats=False)(self)

    def _rounding(self, name, fn):
        if self.dtype.kind != "f":  # integers are whole already (torch returns a copy)
            return Tensor._result(self._data.copy(), (self,), lambda g: (g * 0,), name)
        return unary(name, fn, floats=False)(self)

    def floor(self):
        """The largest whole number <= each element; integer tensors are returned as a copy."""
        return self._rounding("floor", lambda xp, x: xp.floor(x))

    def ceil(self):
        """The smallest whole number >= each element; integer tensors are returned as a copy."""
        return self._rounding("ceil", lambda xp, x: xp.ceil(x))

    def trunc(self):
        """Each element rounded toward zero; integer tensors are returned as a copy."""
        return self._rounding("trunc", lambda xp, x: xp.trunc(x))

    fix = trunc

    def round(self, *, decimals=0):
        """Round half to even (torch.round), to `decimals` decimal places: x * 10^d rounded and
        divided by 10^d in the tensor's dtype (d < 0: x / 10^-d rounded, times 10^-d)."""
        decimals = int(decimals)
        if decimals == 0:
            return self._rounding("round", lambda xp, x: xp.rint(x))
        if self.dtype.kind != "f":
            raise NotImplementedError(f'"round" with decimals is not implemented for {self.dtype}')

        def fwd(xp, x):
            p = x.dtype.type(10.0 ** abs(decimals))
            return xp.rint(x * p) / p if decimals > 0 else xp.rint(x / p) * p

        return unary("round", fwd, floats=False)(self)

    def frac(self):
        """self - trunc(self) (floats only, as torch)."""
        if self.dtype.kind != "f":
            raise NotImplementedError(f'"frac" is not implemented for {self.dtype}')
        return unary("frac", lambda xp, x: x - xp.trunc(x), lambda xp, g, x, o: g, floats=False)(self)

    def square(self):
        """self * self (a bool tensor gives int64, as torch)."""
        x = self if self.dtype != np.bool_ else self.to(np.int64)
        return unary("square", lambda xp, x: x * x, lambda xp, g, x, o: 2 * g * x, floats=False)(x)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        """NaN, +inf and -inf replaced by nan, posinf and neginf (default: the dtype's largest and
        smallest finite values); integer tensors are returned as a copy. Gradient: zero where
        the input was not finite."""
        if self.dtype.kind != "f":
            return Tensor._result(self._data.copy(), (self,), lambda g: (g * 0,), "nan_to_num")
        fi = np.finfo(self.dtype)
        hi = fi.max if posinf is None else posinf
        lo = fi.min if neginf is None else neginf

        def fwd(xp, x):
            out = xp.where(xp.isnan(x), _scalar(xp, nan, x.dtype), x)
            out = xp.where(x == np.inf, _scalar(xp, hi, x.dtype), out)
            return xp.where(x == -np.inf, _scalar(xp, lo, x.dtype), out)

        return unary("nan_to_num", fwd, lambda xp, g, x, o: g * xp.isfinite(x), floats=False)(self)

    def logit(self, eps=None):
        """log(p / (1 - p)), with p clamped to [eps, 1 - eps] when eps is given (gradient zero
        outside that range)."""

        def fwd(xp, x):
            z = x if eps is None else xp.clip(x, x.dtype.type(eps), x.dtype.type(1 - eps))
            return xp.log(z / (1 - z))

        def grad(xp, g, x, o):
            d = g / (x * (1 - x))
            if eps is None:
                return d
            return _where0(xp, (x < x.dtype.type(eps)) | (x > x.dtype.type(1 - eps)), d)

        return unary("logit", fwd, grad)(self)

    # -- binary ---------------------------------------------------------------------------------
    def add(self, other, *, alpha=1):
        """self + alpha * other."""
        return self + _scaled(self, other, alpha)

    def sub(self, other, *, alpha=1):
        """self - alpha * other."""
        return self - _scaled(self, other, alpha)

    subtract = sub

    def mul(self, other):
        """self * other."""
        return self * other

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        """self / other: true division (integers give float32) by default; rounding_mode="trunc"
        rounds toward zero and "floor" down, in the promoted dtype (integer stays integer; an
        integer division by zero is a RuntimeError). The rounded forms have zero gradients."""
        if rounding_mode is None:
            return self / other
        if rounding_mode == "trunc":
            return self._binary(other, _trunc_div, "div", _zero_grads)
        if rounding_mode == "floor":
            return self._binary(other, _floor_div, "div", _zero_grads)
        raise RuntimeError(
            f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'"
        )

    divide = div

    def true_divide(self, other):
        """self / other (integers give float32)."""
        return self / other

    def floor_divide(self, other):
        """floor(self / other) (torch.floor_divide; torch has no derivative for it: backward
        through it is a RuntimeError)."""
        return self._binary(other, _floor_div, "floor_divide", _no_derivative("floor_divide"))

    __floordiv__ = floor_divide

    def __rfloordiv__(self, other):
        return tensor_of(other, self).floor_divide(self)

    def fmod(self, other):
        """The remainder of self / other rounded toward zero (the sign of self)."""

        def grads(g, a, b, o):
            return g, -g * _trunc_div(a, b)

        return self._binary(other, _fmod, "fmod", grads)

    def remainder(self, other):
        """The remainder of self / other rounded down (the sign of other), Python's %."""

        def grads(g, a, b, o):
            return g, -g * _xp(a).floor_divide(a, b)

        return self._binary(other, _remainder, "remainder", grads)

    __mod__ = remainder

    def __rmod__(self, other):
        return tensor_of(other, self).remainder(self)

    def atan2(self, other):
        """The angle of (other, self) in (-pi, pi]; gradients zero where both are 0, as torch."""

        def grads(g, a, b, o):
            xp = _xp(a)
            r2 = a * a + b * b
            with np.errstate(all="ignore"):
                inv = _where0(xp, r2 == 0, 1 / r2)
            return g * b * inv, -g * a * inv

        return self._binary(other, lambda a, b: _xp(a).arctan2(a, b), "atan2", grads, true_div=True)

    arctan2 = atan2

    def _extremum(self, other, name):
        if not isinstance(other, Tensor):
            raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")
        keep_self = np.less if name == "maximum" else np.greater  # where self loses

        def grads(g, a, b, o):
            xp = _xp(a)
            split = xp.where(a == b, g / 2, g)
            lose_a = getattr(xp, keep_self.__name__)(a, b)
            lose_b = getattr(xp, keep_self.__name__)(b, a)
            return _where0(xp, lose_a, split), _where0(xp, lose_b, split)

        return self._binary(other, lambda a, b: getattr(_xp(a), name)(a, b), name, grads)

    def maximum(self, other):
        """The elementwise larger of self and other (NaN if either is; ties split the gradient)."""
        return self._extremum(other, "maximum")

    def minimum(self, other):
        """The elementwise smaller of self and other (NaN if either is; ties split the gradient)."""
        return self._extremum(other, "minimum")

    def pow(self, exponent):
        """self ** exponent (a number or a tensor), in the promoted dtype (int ** float is float32;
        an integer to a negative integer power is a RuntimeError, as torch). Gradients zero where
        the exponent is 0, and for the exponent where self is 0 (exponent >= 0), as torch."""
        if _dtypes.is_number(exponent):
            dt = _dtypes.result_type(self._data, exponent)
            if dt.kind in "iub" and exponent < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")

        def grads(g, a, b, o):
            xp = _xp(a)
            with np.errstate(all="ignore"):
                ga = _where0(xp, b == 0, g * b * xp.power(a, b - 1))
                gb = None
                if isinstance(exponent, Tensor):
                    gb = _where0(xp, (a == 0) & (b >= 0), g * o * xp.log(a))
            return ga, gb

        with np.errstate(all="ignore"):
            return self._binary(exponent, lambda a, b: _xp(a).power(a, b), "pow", grads)

    __pow__ = pow

    def __rpow__(self, base):
        """base ** self for a number base (torch.pow(number, tensor))."""

        def grads(g, a, b, o):
            xp = _xp(a)
            with np.errstate(all="ignore"):
                return _where0(xp, (b == 0) & (a >= 0), g * o * xp.log(b)), None

        with np.errstate(all="ignore"):
            return self._binary(base, lambda a, b: _xp(a).power(b, a), "pow", grads)

    def lerp(self, end, weight):
        """self + weight * (end - self), as torch computes it (from the nearer end); end must have
        self's dtype; weight is a number or a tensor."""
        if not isinstance(end, Tensor):
            raise TypeError(f"lerp(): argument 'end' must be Tensor, not {type(end).__name__}")
        if end.dtype != self.dtype:
            raise RuntimeError(f"expected dtype {self.dtype} for `end` but got dtype {end.dtype}")
        if self.dtype.kind != "f":
            raise RuntimeError(f"lerp: expected a floating point tensor, got {self.dtype}")
        parents = [self, end] + ([weight] if isinstance(weight, Tensor) else [])
        parents = aligned(*parents)
        a, b = parents[0]._data, parents[1]._data
        xp = _xp(a)
        dt = a.dtype
        if isinstance(weight, Tensor):
            wa = parents[2]._data
            w = wa if wa.dtype == dt else wa.astype(dt)
        else:
            wa = w = _scalar(xp, weight, dt)
        broadcast_shape(a.shape, b.shape, w.shape)
        d = b - a
        out = xp.where(xp.abs(w) < 0.5, a + w * d, b - d * (1 - w))

        def backward(g):
            ga = _unbroadcast(g * (1 - w), a.shape)
            gb = _unbroadcast(g * w, b.shape)
            if len(parents) == 2:
                return ga, gb
            return ga, gb, _unbroadcast(g * d, wa.shape).astype(wa.dtype, copy=False)

        return Tensor._result(out, tuple(parents), backward, "lerp")

    def addcmul(self, tensor1, tensor2, *, value=1):
        """self + value * tensor1 * tensor2, in the dtype of all three."""
        s, t1, t2 = common(self, tensor_of(tensor1, self), tensor_of(tensor2, self))
        return s + (t1 * value) * t2

    def addcdiv(self, tensor1, tensor2, *, value=1):
        """self + value * tensor1 / tensor2 (floats only: torch refuses integer division here)."""
        t1, t2 = tensor_of(tensor1, self), tensor_of(tensor2, self)
        if t1.dtype.kind != "f" and t2.dtype.kind != "f":
            raise RuntimeError(
                "Integer division with addcdiv is no longer supported, and in a future release addcdiv will "
                "perform a true division of tensor1 and tensor2."
            )
        s, t1, t2 = common(self, t1, t2)
        return s + (t1 * value) / t2


def _scaled(self, other, alpha):
    """alpha * other for add/sub(alpha=): torch refuses a float alpha for integer results."""
    if alpha is None or (not isinstance(alpha, bool) and alpha == 1):
        return other
    dt = _dtypes.result_type(self._data, other if _dtypes.is_number(other) else tensor_of(other)._data)
    if dt.kind != "f" and isinstance(alpha, (float, np.floating)):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    return other * alpha


# -- comparisons and logic ----------------------------------------------------------------------
def _compared(fn):
    def method(self, other):
        out = self._compare(other, fn)
        if out is NotImplemented:
            raise TypeError(f"{fn.__name__}(): expected a tensor or a number, got {type(other).__name__}")
        return out

    return method


def _bitwise(ufunc, name):
    def method(self, other):
        other = tensor_of(other, self)
        x, y = aligned(self, other)
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            raise NotImplementedError(f'"{name}" is not implemented for {x.dtype} and {y.dtype}')
        dt = _dtypes.result_type(x._data, y._data)
        a = x._data if x.dtype == dt else x._data.astype(dt)
        b = y._data if y.dtype == dt else y._data.astype(dt)
        _check_broadcast(a.shape, b.shape)
        return Tensor(getattr(_xp(a), ufunc)(a, b), dtype=dt)

    method.__name__ = name
    method.__doc__ = f"{name} of two bool or integer tensors (bool: the logical operation)."
    return method


def _reflected(name):
    def method(self, other):
        return getattr(tensor_of(other, self), name)(self)

    return method


def _logical(ufunc, name):
    def method(self, other):
        x, y = aligned(self, tensor_of(other, self))
        a, b = x._data, y._data
        _check_broadcast(a.shape, b.shape)
        return Tensor(getattr(_xp(a), ufunc)(a, b), dtype=np.bool_)

    method.__name__ = name
    method.__doc__ = f"{name}: nonzero elements are True; a bool tensor."
    return method


class CompareMethods:
    """eq ne lt le gt ge and their long names, isnan/isinf/isfinite, logical_*, & | ^ ~,
    equal, isclose, allclose."""

    eq = _compared(np.equal)
    ne = _compared(np.not_equal)
    lt = _compared(np.less)
    le = _compared(np.less_equal)
    gt = _compared(np.greater)
    ge = _compared(np.greater_equal)
    not_equal = ne
    less = lt
    less_equal = le
    greater = gt
    greater_equal = ge

    def isnan(self):
        """True where the element is NaN."""
        a = self._data
        xp = _xp(a)
        return Tensor(xp.isnan(a) if a.dtype.kind == "f" else xp.zeros(a.shape, bool), dtype=np.bool_)

    def isinf(self):
        """True where the element is +inf or -inf."""
        a = self._data
        xp = _xp(a)
        return Tensor(xp.isinf(a) if a.dtype.kind == "f" else xp.zeros(a.shape, bool), dtype=np.bool_)

    def isfinite(self):
        """True where the element is neither NaN nor infinite."""
        a = self._data
        xp = _xp(a)
        return Tensor(xp.isfinite(a) if a.dtype.kind == "f" else xp.ones(a.shape, bool), dtype=np.bool_)

    logical_and = _logical("logical_and", "logical_and")
    logical_or = _logical("logical_or", "logical_or")
    logical_xor = _logical("logical_xor", "logical_xor")

    def logical_not(self):
        """True where the element is zero (False)."""
        return Tensor(_xp(self._data).logical_not(self._data), dtype=np.bool_)

    bitwise_and = _bitwise("bitwise_and", "bitwise_and")
    bitwise_or = _bitwise("bitwise_or", "bitwise_or")
    bitwise_xor = _bitwise("bitwise_xor", "bitwise_xor")
    __and__ = bitwise_and
    __or__ = bitwise_or
    __xor__ = bitwise_xor
    __rand__ = _reflected("bitwise_and")
    __ror__ = _reflected("bitwise_or")
    __rxor__ = _reflected("bitwise_xor")

    def bitwise_not(self):
        """~self: logical not of a bool tensor, bitwise not of an integer one."""
        a = self._data
        if a.dtype.kind == "f":
            raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
        return Tensor(_xp(a).invert(a), dtype=a.dtype)

    __invert__ = bitwise_not

    def equal(self, other):
        """True when other has self's shape and equal elements (a Python bool)."""
        other = tensor_of(other, self)
        if self.shape != other.shape:
            return False
        return bool((self == other)._data.all())

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        """|self - other| <= atol + rtol * |other| elementwise (equal infinities are close; NaNs
        only with equal_nan), computed in the tensors' dtype; both must have one dtype."""
        other = tensor_of(other, self)
        if self.dtype != other.dtype:
            raise RuntimeError(f"{self.dtype} did not match {other.dtype}")
        x, y = aligned(self, other)
        a, b = x._data, y._data
        broadcast_shape(a.shape, b.shape)
        xp = _xp(a)
        close = a == b
        if equal_nan and a.dtype.kind == "f":
            close = close | (xp.isnan(a) & xp.isnan(b))
        if rtol or atol:
            dt = _dtypes.float_of(a.dtype)
            fa, fb = a.astype(dt, copy=False), b.astype(dt, copy=False)
            with np.errstate(all="ignore"):
                allowed = dt.type(atol) + xp.abs(dt.type(rtol) * fb)
                actual = xp.abs(fa - fb)
            close = close | (xp.isfinite(actual) & (actual <= allowed))
        return Tensor(close, dtype=np.bool_)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        """isclose(...) everywhere (a Python bool)."""
        return bool(self.isclose(other, rtol, atol, equal_nan)._data.all())


# -- in-place ------------------------------------------------------------------------------------
def _version(t):
    """A tensor standing for t's value and graph node now, before an in-place op changes t."""
    old = Tensor.__new__(Tensor)
    old._data, old.grad, old._node, old._retain, old.requires_grad = t._data, None, t._node, False, t.requires_grad
    old._base = None
    return old


def _check_result(self, r, name):
    if tuple(r.shape) != tuple(self.shape):
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(r.shape)}")
    if not _dtypes.can_cast(r.dtype, self.dtype):
        raise RuntimeError(f"{name}: result type {r.dtype} can't be cast to the desired output type {self.dtype}")


def inplace(self, compute, others=(), name="in-place op", direct=None):
    """self <- compute(self) (a Tensor of self's shape), torch's way:
      - on a leaf that requires grad, in grad mode: torch's RuntimeError;
      - in grad mode, when self or one of `others` requires grad: differentiable. self takes the
        result's data (a new array) and graph node; the node's input is self's earlier value, so
        gradients reach what self was computed from. A graph that used self's earlier value
        is refused by backward (its node changed), where torch may or may not refuse it;
      - otherwise the result is written into self's array (its memory, shared with any view,
        stays), cast to its dtype (torch's RuntimeError for float into int and the like).
    direct(array) -> bool: a fast path for the last case that writes the array itself."""
    grad_mode = is_grad_enabled()
    if grad_mode and self.requires_grad and self._node is None:
        raise RuntimeError(_LEAF_MESSAGE)
    if grad_mode and (self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)):
        _check_view_write(self)
        r = compute(_version(self))
        _check_result(self, r, name)
        if r.dtype != self.dtype:
            r = r.to(self.dtype)
        self._data, self._node, self.requires_grad = r._data, r._node, r.requires_grad
        _write_back(self)
        return self
    if isinstance(self._data, np.generic):  # a NumPy scalar (some 0-d results): not writable
        self._data = np.asarray(self._data)
    if direct is None or not direct(self._data):
        r = compute(self)
        _check_result(self, r, name)
        self._data[...] = r._data
    _write_back(self)  # self a copy of a strided view: into the memory it was taken from
    return self


def _inplace_of(name):
    def method(self, *args, **kwargs):
        return inplace(self, lambda s: getattr(s, name)(*args, **kwargs), args + tuple(kwargs.values()), name + "_")

    method.__name__ = name + "_"
    method.__doc__ = f"In-place {name} (torch.Tensor.{name}_)."
    return method


def _filled(s, value):
    """A tensor of s's shape and dtype filled with value (a number or a 0-d tensor). In the
    graph (as torch): s's earlier value gets a zero gradient, a value tensor the sum."""
    a = s._data
    xp = _xp(a)
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(
                f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions."
            )
        v = aligned(s, value)[1]
        out = xp.broadcast_to(v._data.astype(a.dtype), a.shape).copy()
        return Tensor._result(out, (s, v), lambda g: (xp.zeros(a.shape, g.dtype), g.sum().astype(v.dtype)), "fill_")
    out = xp.full(a.shape, value, a.dtype)
    return Tensor._result(out, (s,), lambda g: (xp.zeros(a.shape, g.dtype),), "fill_")


def _copied(s, src):
    """src broadcast to s's shape, in s's dtype and on s's device (copy_); in the graph s's
    earlier value gets a zero gradient, src the gradient summed to its shape."""
    src = src if isinstance(src, Tensor) else Tensor(src)
    a, b = s._data, src._data
    _check_broadcast(a.shape, b.shape)
    if broadcast_shape(a.shape, b.shape) != a.shape:
        raise RuntimeError(f"output with shape {list(a.shape)} doesn't match the broadcast shape {list(b.shape)}")
    moved = src._to_device(_dev.device_of(a)) if _dev.device_of(b) != _dev.device_of(a) else src
    m = moved._data
    xp = _xp(a)
    out = xp.broadcast_to(m if m.dtype == a.dtype else m.astype(a.dtype), a.shape).copy()

    def backward(g):
        return xp.zeros(a.shape, g.dtype), _unbroadcast(g, m.shape).astype(m.dtype)

    return Tensor._result(out, (s, moved), backward, "copy_")


class InplaceMethods:
    """add_ sub_ mul_ div_ (and +=, -=, *=, /=, ...), clamp_, fill_, zero_, copy_, masked_fill_,
    scatter_, scatter_add_, index_fill_, exp_ log_ sqrt_ abs_ neg_ pow_ and more, uniform_,
    normal_, bernoulli_."""

    def add_(self, other, *, alpha=1):
        """self += alpha * other."""
        return inplace(self, lambda s: s.add(other, alpha=alpha), (other,), "add_")

    def sub_(self, other, *, alpha=1):
        """self -= alpha * other."""
        return inplace(self, lambda s: s.sub(other, alpha=alpha), (other,), "sub_")

    def mul_(self, other):
        """self *= other."""
        return inplace(self, lambda s: s * other, (other,), "mul_")

    def div_(self, other, *, rounding_mode=None):
        """self /= other (an integer tensor takes only a rounding_mode, as torch)."""
        return inplace(self, lambda s: s.div(other, rounding_mode=rounding_mode), (other,), "div_")

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __ifloordiv__(self, other):
        return inplace(self, lambda s: s.floor_divide(other), (other,), "floor_divide_")

    def __imod__(self, other):
        return inplace(self, lambda s: s.remainder(other), (other,), "remainder_")

    def __ipow__(self, other):
        return self.pow_(other)

    def __iand__(self, other):
        return inplace(self, lambda s: s & other, (other,), "bitwise_and_")

    def __ior__(self, other):
        return inplace(self, lambda s: s | other, (other,), "bitwise_or_")

    def __ixor__(self, other):
        return inplace(self, lambda s: s ^ other, (other,), "bitwise_xor_")

    def clamp_(self, min=None, max=None):
        """self = clamp(self, min, max)."""
        return inplace(self, lambda s: s.clamp(min, max), (), "clamp_")

    clip_ = clamp_

    def fill_(self, value):
        """Every element set to value (a number, or a 0-d tensor)."""

        def direct(a):
            if isinstance(value, Tensor):
                return False
            a[...] = value
            return True

        return inplace(self, lambda s: _filled(s, value), (value,), "fill_", direct)

    def zero_(self):
        """Every element set to zero."""

        def direct(a):
            a[...] = 0
            return True

        return inplace(self, lambda s: _filled(s, 0), (), "zero_", direct)

    def copy_(self, src, non_blocking=False):
        """self's elements set to src's (broadcast to self's shape, cast to its dtype, copied
        from src's device)."""
        return inplace(self, lambda s: _copied(s, src), (src,), "copy_")

    exp_ = _inplace_of("exp")
    log_ = _inplace_of("log")
    sqrt_ = _inplace_of("sqrt")
    abs_ = _inplace_of("abs")
    neg_ = _inplace_of("neg")
    negative_ = neg_
    pow_ = _inplace_of("pow")
    sin_ = _inplace_of("sin")
    cos_ = _inplace_of("cos")
    tanh_ = _inplace_of("tanh")
    sigmoid_ = _inplace_of("sigmoid")
    relu_ = _inplace_of("relu")
    floor_ = _inplace_of("floor")
    ceil_ = _inplace_of("ceil")
    round_ = _inplace_of("round")
    trunc_ = _inplace_of("trunc")
    reciprocal_ = _inplace_of("reciprocal")
    rsqrt_ = _inplace_of("rsqrt")
    square_ = _inplace_of("square")
    sign_ = _inplace_of("sign")
    lerp_ = _inplace_of("lerp")
    addcmul_ = _inplace_of("addcmul")
    addcdiv_ = _inplace_of("addcdiv")
    fmod_ = _inplace_of("fmod")
    remainder_ = _inplace_of("remainder")
    masked_fill_ = _inplace_of("masked_fill")
    scatter_ = _inplace_of("scatter")
    scatter_add_ = _inplace_of("scatter_add")
    index_fill_ = _inplace_of("index_fill")
    nan_to_num_ = _inplace_of("nan_to_num")

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        """Values drawn uniformly from [a, b) by fastnn's generator (or `generator`)."""
        return _fill_random(self, lambda rng: rng.uniform(a, b, self._data.shape), "uniform_", generator)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Values drawn from N(mean, std^2) by fastnn's generator (or `generator`)."""
        return _fill_random(self, lambda rng: rng.normal(mean, std, self._data.shape), "normal_", generator)

    def bernoulli_(self, p=0.5, *, generator=None):
        """Each element set to 1 with probability p (a number, or a tensor broadcast to self's
        shape), else 0, in self's dtype."""
        if isinstance(p, Tensor):
            probs = np.broadcast_to(_dev.to_host(p._data), self._data.shape)
        else:
            probs = p
        return _fill_random(self, lambda rng: rng.random(self._data.shape) < probs, "bernoulli_", generator)


def _fill_random(self, draw, name, generator=None):
    from . import random as _random

    if is_grad_enabled() and self.requires_grad and self._node is None:
        raise RuntimeError(_LEAF_MESSAGE)
    values = np.asarray(draw(_random.numpy_generator(generator)))

    def compute(s):
        a = s._data
        out = _dev.move(values.astype(a.dtype), _dev.device_of(a))
        return Tensor(out, dtype=a.dtype)

    def direct(a):
        _dev.assign(a, values)
        return True

    return inplace(self, compute, (), name, direct)
