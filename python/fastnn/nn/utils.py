"""fastnn.nn.utils: clip_grad_norm_ and clip_grad_value_ (row-sparse gradients are coalesced,
then measured and scaled or clipped through their rows)."""
import numpy as np

from .. import ops
from ..sparse import RowSparse
from ..tensor import Tensor

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
            out.append(p.grad.data)
    return out


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients in place so their total norm is at most max_norm; returns the norm."""
    grads = _grads(parameters)
    if not grads:
        return Tensor(np.float32(0.0))
    norm_type = float(norm_type)
    if all(g.dtype == np.float32 and g.flags.c_contiguous for g in grads):
        total = ops.grad_norm(grads, norm_type)  # one kernel call, float64 accumulation
    elif norm_type == float("inf"):
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= np.float32(coef)
    return Tensor(np.float32(total))


def clip_grad_value_(parameters, clip_value):
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters):
    return Tensor(np.concatenate([p.data.reshape(-1) for p in parameters]))
