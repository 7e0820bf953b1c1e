"""Reference layer norm over the trailing dims in float64 (fastnn.ops' names and signatures):
torch.nn.functional.layer_norm's math, mean/rstd shaped as x with the normalised dims set to 1."""

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _axes(x, normalized_shape):
    ns = (normalized_shape,) if np.ndim(normalized_shape) == 0 else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(ns) :]) != ns or len(ns) > x.ndim:
        raise ValueError(
            f"fastnn.ref.layer_norm_forward: expected x whose trailing dimensions are {ns}, got x of shape {x.shape}"
        )
    return tuple(range(x.ndim - len(ns), x.ndim))


def layer_norm_forward(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = _f64(x)
    ax = _axes(x, normalized_shape)
    mean = x.mean(axis=ax, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=ax, keepdims=True) + eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    return y, mean, rstd


def layer_norm_backward(dy, x, mean, rstd, weight=None):
    """(dx, dweight, dbias); dweight and dbias are None when weight is None (as fastnn.ops)."""
    dy, x = _f64(dy), _f64(x)
    m = int(np.size(mean))
    k = x.ndim
    while k > 0 and int(np.prod(x.shape[: x.ndim - k])) != m:
        k -= 1
    if weight is not None:
        k = np.ndim(weight)
    ax = tuple(range(x.ndim - k, x.ndim))
    lead = x.shape[: x.ndim - k] + (1,) * k
    mean, rstd = _f64(mean).reshape(lead), _f64(rstd).reshape(lead)
    xhat = (x - mean) * rstd
    g = dy if weight is None else dy * _f64(weight)
    dx = rstd * (g - g.mean(axis=ax, keepdims=True) - xhat * (g * xhat).mean(axis=ax, keepdims=True))
    if weight is None:
        return dx, None, None
    red = tuple(range(x.ndim - k))
    return dx, (dy * xhat).sum(axis=red), dy.sum(axis=red)
