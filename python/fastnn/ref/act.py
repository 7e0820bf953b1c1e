"""Reference activations, forward and backward, in float64: the oracle for tests and the
baseline for benchmarks. Same names and signatures as fastnn.ops."""

import math

import numpy as np

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_K = 0.044715


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _ret(r, out):
    if out is None:
        return r
    out[...] = r
    return out


def _phi_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2 with math.erfc elementwise (NumPy has no erf, scipy is not
    a dependency); erfc keeps relative accuracy in the left tail, where 1 + erf cancels."""
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return 0.5 * erfc(-x / math.sqrt(2.0)) if x.size else np.zeros_like(x)


def _check_approximate(op, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"fastnn.ref.{op}: expected approximate to be 'none' or 'tanh', got {approximate!r}")


def relu_forward(x, *, out=None):
    """y = max(x, 0), NaN kept."""
    x = _f64(x)
    return _ret(np.where(x < 0, 0.0, x), out)


def relu_backward(dy, x, *, out=None):
    """dx = dy where x > 0 (or NaN), else 0: torch's threshold_backward."""
    x = _f64(x)
    return _ret(np.where(x <= 0, 0.0, _f64(dy)), out)


def leaky_relu_forward(x, negative_slope=0.01, *, out=None):
    x = _f64(x)
    return _ret(np.where(x > 0, x, x * negative_slope), out)


def leaky_relu_backward(dy, x, negative_slope=0.01, *, out=None):
    dy = _f64(dy)
    return _ret(np.where(_f64(x) > 0, dy, dy * negative_slope), out)


def sigmoid_forward(x, *, out=None):
    x = _f64(x)
    with np.errstate(over="ignore"):
        return _ret(1.0 / (1.0 + np.exp(-x)), out)


def sigmoid_backward(dy, y, *, out=None):
    y = _f64(y)
    return _ret(_f64(dy) * (1.0 - y) * y, out)


def tanh_forward(x, *, out=None):
    return _ret(np.tanh(_f64(x)), out)


def tanh_backward(dy, y, *, out=None):
    y = _f64(y)
    return _ret(_f64(dy) * (1.0 - y * y), out)


def gelu_forward(x, approximate="none", *, out=None):
    """x * Phi(x), or x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    _check_approximate("gelu_forward", approximate)
    x = _f64(x)
    if approximate == "tanh":
        # x * sigmoid(2u) == x/2 (1 + tanh u), without the cancellation of 1 + tanh u for x < 0
        with np.errstate(over="ignore"):
            return _ret(x / (1.0 + np.exp(-2.0 * _SQRT_2_OVER_PI * (x + _K * x**3))), out)
    return _ret(x * _phi_cdf(x), out)


def gelu_backward(dy, x, approximate="none", *, out=None):
    _check_approximate("gelu_backward", approximate)
    x, dy = _f64(x), _f64(dy)
    if approximate == "tanh":
        # with s = sigmoid(2u): (1 + tanh u) / 2 = s and 1 - tanh^2 u = 4 s (1 - s), which keep
        # their relative accuracy where tanh u is near -1 (1 + t would cancel)
        with np.errstate(over="ignore", invalid="ignore"):  # e = inf: e * s unused (s < 0.5)
            e = np.exp(-2.0 * _SQRT_2_OVER_PI * (x + _K * x**3))
            s = 1.0 / (1.0 + e)
            one_minus_s = np.where(s < 0.5, 1.0 - s, e * s)
        d = s + 2.0 * x * s * one_minus_s * _SQRT_2_OVER_PI * (1.0 + 3.0 * _K * x * x)
    else:
        d = _phi_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    # Below x = -5 the derivative is negative and underflows to 0 (float32's past x ~ -13,
    # float64's past ~ -38; ~ -10 and ~ -23 in the tanh form): an infinite dy there gives -dy,
    # its product with a tiny negative number, not inf * 0 = NaN
    with np.errstate(invalid="ignore"):
        g = dy * d
    return _ret(np.where((d == 0) & (x < -5) & np.isfinite(x) & np.isinf(dy), -dy, g), out)
