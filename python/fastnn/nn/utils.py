"""fastnn.nn.utils: clip_grad_norm_ and clip_grad_value_ (row-sparse gradients are coalesced,
then measured and scaled or clipped through their rows). Gradients on a CUDA device are measured
and scaled there; the norm is read back once (as the CPU's kernel returns a float)."""

import numpy as np

from .. import _device as _dev
from .. import _dtypes, ops
from .._device import xp as _xp
from ..sparse import RowSparse
from ..tensor import _HOST, Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector"]


def _grads(parameters):
    """The gradient arrays to measure or modify in place; a row-sparse gradient is coalesced
    first (in the parameter's .grad), so its values are the dense gradient's nonzero rows."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    out = []
    for p in parameters:
        if isinstance(p.grad, RowSparse):
            p.grad = p.grad.coalesce()
            out.append(p.grad.values)
        elif p.grad is not None:
            out.append(p.grad._data)
    return out


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients in place so their total norm is at most max_norm; returns the norm."""
    grads = _grads(parameters)
    if not grads:
        return Tensor(np.asarray(0.0, _dtypes.get_default_dtype()))
    norm_type = float(norm_type)
    host = all(isinstance(g, _HOST) for g in grads)
    if not host:
        _dev.check_same_device(*grads)
    if all(g.dtype == np.float32 and g.flags.c_contiguous for g in grads):
        total = ops.grad_norm(grads, norm_type)  # one kernel call, float64 accumulation
    elif host:
        if norm_type == float("inf"):
            total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
        else:
            total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    else:
        total = _device_norm(grads, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= g.dtype.type(coef)  # the coefficient in the gradient's dtype (float32 or float64), as torch
    # the norm in the gradients' dtype, as torch's
    return Tensor(_dev.move(np.asarray(total, grads[0].dtype), _dev.device_of(grads[0])))


def _device_norm(grads, p):
    """The norm of order p of device arrays in the array namespace: float64 sums per array on the
    device, added there, read back once."""
    xp = _xp(grads[0])
    parts = []
    for g in grads:
        if not g.size:
            continue
        a = xp.abs(g.astype(np.float64))
        parts.append(a.max() if p == float("inf") else (a * a).sum() if p == 2.0 else (a**p).sum())
    if not parts:
        return 0.0
    total = xp.stack(parts)
    total = total.max() if p == float("inf") else total.sum() ** (1.0 / p)
    return float(total.get())


def clip_grad_value_(parameters, clip_value):
    for g in _grads(parameters):
        _xp(g).clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters):
    arrays = [p._data.reshape(-1) for p in parameters]
    if not all(isinstance(a, _HOST) for a in arrays):
        _dev.check_same_device(*arrays)
    return Tensor(_xp(arrays[0]).concatenate(arrays) if arrays else np.zeros(0, np.float32))
