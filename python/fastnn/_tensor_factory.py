"""Factories (full_like, rand_like, randn_like, empty_like, randint_like, eye, linspace,
logspace, Tensor.new_*), dtype conversions (double, half, int, bool, type, type_as), type
queries (is_tensor, is_floating_point, numel) and random sampling (multinomial, bernoulli), with
torch's signatures and dtypes.

Random values come from fastnn's host generator (fastnn.random; or `generator=`, a
fastnn.Generator) and are copied to the tensor's device. The Tensor methods are attached by
fastnn._tensor_api.
"""

import numpy as np

from . import _device as _dev
from . import _dtypes
from ._device import xp as _xp
from ._tensor_math import tensor_of
from .tensor import _HOST, Tensor, _as_array, _shape_args

# torch's legacy type names (Tensor.type()) for fastnn's dtypes
_TYPE_NAMES = {
    np.dtype(np.float32): "FloatTensor",
    np.dtype(np.float64): "DoubleTensor",
    np.dtype(np.float16): "HalfTensor",
    np.dtype(np.uint8): "ByteTensor",
    np.dtype(np.int8): "CharTensor",
    np.dtype(np.int16): "ShortTensor",
    np.dtype(np.int32): "IntTensor",
    np.dtype(np.int64): "LongTensor",
    np.dtype(np.bool_): "BoolTensor",
}


def _placed(a, device, requires_grad, like=None):
    """Tensor of array a on `device` (None: like's device, or the CPU)."""
    if device is not None:
        a = _dev.move(a, _dev.as_device(device))
    elif like is not None and not isinstance(like._data, _HOST):
        a = _dev.move(a, _dev.device_of(like._data))
    dt = _dtypes.check(a.dtype, "tensor")
    if requires_grad and dt.kind != "f":
        raise RuntimeError("only floating point tensors can require gradients")
    return Tensor(a, requires_grad=requires_grad, dtype=dt)


def _like_dtype(t, dtype):
    return np.dtype(t.dtype if dtype is None else dtype)


def _draw(generator):
    from . import random as _random

    return _random.numpy_generator(generator)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False, memory_format=None):
    """A tensor of input's shape (and dtype, device unless given) filled with fill_value."""
    t = tensor_of(input)
    dt = _like_dtype(t, dtype)
    return _placed(np.full(t.shape, np.asarray(fill_value).astype(dt), dt), device, requires_grad, t)


def empty_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None):
    """A tensor of input's shape, dtype and device (zeros: fastnn never hands out uninitialised
    memory)."""
    return full_like(input, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def _float_like(t, dtype, name):
    dt = _like_dtype(t, dtype)
    if dt.kind != "f":
        raise NotImplementedError(f'"{name}" is not implemented for {dt}: it draws floating point values')
    return dt


def rand_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None, generator=None):
    """Uniform values in [0, 1) of input's shape (and float dtype, device unless given)."""
    t = tensor_of(input)
    dt = _float_like(t, dtype, "rand_like")
    return _placed(_draw(generator).random(t.shape).astype(dt), device, requires_grad, t)


def randn_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None, generator=None):
    """Standard normal values of input's shape (and float dtype, device unless given)."""
    t = tensor_of(input)
    dt = _float_like(t, dtype, "randn_like")
    return _placed(_draw(generator).standard_normal(t.shape).astype(dt), device, requires_grad, t)


def randint_like(
    input, low=0, high=None, *, dtype=None, device=None, requires_grad=False, memory_format=None, generator=None
):
    """Integers uniform in [low, high) (randint_like(input, high): [0, high)) of input's shape,
    in input's dtype (a float input gives whole floats, as torch) unless dtype is given."""
    t = tensor_of(input)
    if high is None:
        low, high = 0, low
    if int(high) <= int(low):
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    dt = _like_dtype(t, dtype)
    return _placed(_draw(generator).integers(int(low), int(high), size=t.shape).astype(dt), device, requires_grad, t)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """An n x m (m None: n x n) matrix with ones on the diagonal."""
    n = int(n)
    m = n if m is None else int(m)
    if n < 0 or m < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {min(n, m)}")
    dt = np.dtype(_dtypes.get_default_dtype() if dtype is None else dtype)
    return _placed(np.eye(n, m, dtype=dt), device, requires_grad)


def _number(x):
    return x.item() if isinstance(x, Tensor) else x


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """steps evenly spaced values from start to end, computed as torch does in the dtype (the
    first half from start, the second from end; integer dtypes from the float values,
    truncated)."""
    start, end, steps = _number(start), _number(end), int(_number(steps))
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = np.dtype(_dtypes.get_default_dtype() if dtype is None else dtype)
    work = dt if dt.kind == "f" else np.dtype(np.float64)
    with np.errstate(all="ignore"):
        s, e = work.type(start), work.type(end)
        if steps == 1:
            vals = np.asarray([s], work)
        else:
            step = (e - s) / work.type(max(steps - 1, 1))
            i = np.arange(steps)
            fi = i.astype(work)
            vals = np.where(i < steps // 2, s + step * fi, e - step * (work.type(steps - 1) - fi)).astype(work)
    return _placed(vals.astype(dt), device, requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps) (in float64, then in the dtype)."""
    start, end, steps = _number(start), _number(end), int(_number(steps))
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = np.dtype(_dtypes.get_default_dtype() if dtype is None else dtype)
    exps = linspace(start, end, steps, dtype=np.float64)._data
    with np.errstate(all="ignore"):
        vals = np.power(np.float64(base), exps)
    return _placed(vals.astype(dt), device, requires_grad)


def is_tensor(obj):
    """True for a fastnn Tensor."""
    return isinstance(obj, Tensor)


def is_floating_point(input):
    """True for a tensor of a float dtype."""
    return input.dtype.kind == "f"


def numel(input):
    """The number of elements."""
    return int(input._data.size)


def _multinomial_rows(p, num_samples, replacement, rng):
    """Category indices for each row of the weights p (float64, rows with a positive sum)."""
    rows, n = p.shape
    if not replacement:
        # the categories with the num_samples largest p / E, E standard exponential draws: the
        # same law as drawing one category after another by weight without putting it back;
        # categories of weight 0 come last (by index) once the others are used up, as torch
        keys = p / rng.standard_exponential((rows, n))
        return np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    cum = np.cumsum(p, axis=1)
    last = n - 1 - np.argmax(p[:, ::-1] > 0, axis=1)  # the last category of positive weight
    u = rng.random((rows, num_samples)) * cum[:, -1:]
    out = np.stack([np.searchsorted(cum[r], u[r], side="right") for r in range(rows)])
    return np.minimum(out, last[:, None])


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """num_samples category indices per row of input (1-d or 2-d non-negative weights, not
    necessarily summing to 1), drawn by fastnn's generator (or `generator`), int64. Without
    replacement each category is drawn at most once, in the order of drawing one after another
    by weight (weight-0 categories only when the others are used up, as torch)."""
    t = tensor_of(input)
    if t.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {t.dtype}")
    if t.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    num_samples = int(num_samples)
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    p = _dev.to_host(t._data).astype(np.float64).reshape(-1, t.shape[-1])
    if not replacement and num_samples > p.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if not np.isfinite(p).all() or (p < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if (p.sum(axis=1) <= 0).any():
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    out = _multinomial_rows(p, num_samples, replacement, _draw(generator)).astype(np.int64)
    out = out.reshape(num_samples) if t.ndim == 1 else out
    return _placed(out, None, False, t)


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws in input's (float) dtype: 1 with probability input (or p, a number, for every
    element), by fastnn's generator (or `generator`). The gradient is zero, as torch."""
    t = tensor_of(input)
    if t.dtype.kind != "f":
        raise NotImplementedError(f'"bernoulli" is not implemented for {t.dtype}')
    probs = _dev.to_host(t._data) if p is None else float(p)
    if np.any(np.asarray(probs) < 0) or np.any(np.asarray(probs) > 1) or np.any(np.isnan(probs)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true")
    draws = (_draw(generator).random(t.shape) < probs).astype(t.dtype)
    a = draws if isinstance(t._data, _HOST) else _dev.move(draws, _dev.device_of(t._data))
    xp = _xp(a)
    return Tensor._result(a, (t,), lambda g: (xp.zeros(g.shape, g.dtype),), "bernoulli")


class FactoryMethods:
    """new_zeros new_ones new_full new_empty new_tensor, double half int bool short byte char
    type type_as, is_floating_point, multinomial, bernoulli."""

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        """A tensor of `size` filled with fill_value, in self's dtype and on its device unless
        given."""
        dt = np.dtype(self.dtype if dtype is None else dtype)
        shape = _shape_args((size,))
        return _placed(np.full(shape, np.asarray(fill_value).astype(dt), dt), device, requires_grad, self)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        """Zeros of `size` (a tuple or ints), in self's dtype and on its device unless given."""
        return self.new_full(_shape_args(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        """Ones of `size`, in self's dtype and on its device unless given."""
        return self.new_full(_shape_args(size), 1, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        """A tensor of `size` (zeros), in self's dtype and on its device unless given."""
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A copy of data as a tensor in self's dtype and on its device unless given."""
        dt = np.dtype(self.dtype if dtype is None else dtype)
        a = _as_array(data, dt)
        a = np.array(a, copy=True) if isinstance(a, _HOST) else a.copy()
        return _placed(a, device, requires_grad, self)

    def double(self, memory_format=None):
        """self as float64."""
        return self.to(np.float64)

    def half(self, memory_format=None):
        """self as float16."""
        return self.to(np.float16)

    def int(self, memory_format=None):
        """self as int32."""
        return self.to(np.int32)

    def short(self, memory_format=None):
        """self as int16."""
        return self.to(np.int16)

    def char(self, memory_format=None):
        """self as int8."""
        return self.to(np.int8)

    def byte(self, memory_format=None):
        """self as uint8."""
        return self.to(np.uint8)

    def bool(self, memory_format=None):
        """self as bool (nonzero is True)."""
        return self.to(np.bool_)

    def type(self, dtype=None, non_blocking=False):
        """type(): torch's type name ("torch.FloatTensor", "torch.cuda.LongTensor", ...);
        type(dtype): self as dtype (a dtype or such a name)."""
        if dtype is None:
            prefix = "torch." if isinstance(self._data, _HOST) else "torch.cuda."
            return prefix + _TYPE_NAMES[np.dtype(self.dtype)]
        if isinstance(dtype, str):
            name = dtype.rpartition(".")[2]
            found = [d for d, n in _TYPE_NAMES.items() if n == name]
            if not found:
                raise ValueError(f"invalid type: '{dtype}'")
            out = self.to(found[0])
            return out.cuda() if ".cuda." in dtype else out
        return self.to(dtype)

    def type_as(self, other):
        """self in other's dtype."""
        return self.to(other.dtype)

    def is_floating_point(self):
        """True for a float dtype."""
        return self.dtype.kind == "f"

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        """fastnn.multinomial(self, ...)."""
        return multinomial(self, num_samples, replacement, generator=generator)

    def bernoulli(self, p=None, *, generator=None):
        """fastnn.bernoulli(self, ...)."""
        return bernoulli(self, p, generator=generator)
