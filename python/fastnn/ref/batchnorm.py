"""Reference batch normalisation of NCHW arrays in float64 (fastnn.ops' names and signatures).
Outputs are float64 (y, save_mean, save_invstd / dx, dweight, dbias); the running statistics
are updated in place (rounded to their dtype)."""

import numpy as np

_AXES = (0, 2, 3)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _c(v):  # (C,) -> broadcastable over (N, C, H, W)
    return v.reshape(1, -1, 1, 1)


def batch_norm2d_forward(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5, *, out=None):
    X = _f64(x)
    if X.ndim != 4:
        raise ValueError(f"fastnn.ref.batch_norm2d_forward: expected x of 4 dimensions, got shape {X.shape}")
    n, c, h, w = X.shape
    m = n * h * w
    if training:
        if m == 1:
            raise ValueError(
                f"fastnn.ref.batch_norm2d_forward: Expected more than 1 value per channel when "
                f"training, got input size {X.shape}"
            )
        if m == 0:  # empty batch: running statistics untouched (as torch)
            return _ret(X.copy(), out), np.zeros(c), np.zeros(c)
        mean, var = X.mean(axis=_AXES), X.var(axis=_AXES)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * _f64(running_mean) + momentum * mean
            running_var[...] = (1 - momentum) * _f64(running_var) + momentum * var * m / (m - 1)
    else:
        mean, var = _f64(running_mean), _f64(running_var)
    invstd = 1.0 / np.sqrt(var + eps)
    scale = invstd * (1.0 if weight is None else _f64(weight))
    y = (X - _c(mean)) * _c(scale) + (0.0 if bias is None else _c(_f64(bias)))
    return _ret(y, out), mean, invstd


def batch_norm2d_backward(dy, x, weight, save_mean, save_invstd, training=True, *, out=None):
    G, X = _f64(dy), _f64(x)
    n, c, h, w = X.shape
    m = n * h * w
    mean, invstd = _f64(save_mean), _f64(save_invstd)
    sdy = G.sum(axis=_AXES)
    dot = ((X - _c(mean)) * G).sum(axis=_AXES)
    scale = invstd * (1.0 if weight is None else _f64(weight))
    if training and m > 0:
        dx = (G - _c(sdy / m) - (X - _c(mean)) * _c(dot * invstd * invstd / m)) * _c(scale)
    else:
        dx = G * _c(scale)
    if weight is None:
        return _ret(dx, out), None, None
    return _ret(dx, out), dot * invstd, sdy


def _ret(r, out):
    if out is None:
        return r
    out[...] = r
    return out
