"""fastnn.nn.init: torch.nn.init's initialisers (in place, driven by fastnn.manual_seed). Values
are drawn on the host and copied to a CUDA tensor's device: the same values on every device."""

import math

import numpy as np

from .. import _compat
from .. import _device as _dev
from .. import random as _random

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "trunc_normal_",
    "eye_",
]


def _fans(t):
    shape = t._data.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def uniform_(t, a=0.0, b=1.0):
    _dev.assign(t._data, _random.generator().uniform(a, b, t._data.shape))
    return t


def normal_(t, mean=0.0, std=1.0):
    _dev.assign(t._data, _random.generator().normal(mean, std, t._data.shape))
    return t


def constant_(t, val):
    t._data[...] = val
    return t


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain=1.0):
    fan_in, fan_out = _fans(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def xavier_normal_(t, gain=1.0):
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fans(t)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out))


def orthogonal_(t, gain=1):
    """t (2 or more dims, flattened to (rows, cols)) set to a (semi-)orthogonal matrix times gain:
    the Q of a Gaussian matrix's QR, its signs fixed by R's diagonal, as torch does."""
    shape = t._data.shape
    if len(shape) < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if t._data.size == 0:
        return t
    rows = shape[0]
    cols = t._data.size // rows
    flat = _random.generator().standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    _dev.assign(t._data, (gain * q).reshape(shape))
    return t


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """t drawn from the normal distribution N(mean, std^2) truncated to [a, b] (a value outside is
    drawn again)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    gen = _random.generator()
    out = gen.normal(mean, std, t._data.shape)
    for _ in range(100):
        bad = (out < a) | (out > b)
        if not bad.any():
            break
        out[bad] = gen.normal(mean, std, int(bad.sum()))
    _dev.assign(t._data, np.clip(out, a, b))
    return t


def eye_(t):
    """A 2-D t set to the identity matrix (ones on the diagonal of a rectangular one)."""
    if t._data.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    _dev.assign(t._data, np.eye(*t._data.shape))
    return t


def __getattr__(name):
    # torch.nn.init's other names: NotImplementedError naming them
    raise _compat.missing(__name__, "torch.nn.init", name)
