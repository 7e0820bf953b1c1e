"""Kernels on arrays: numpy float32 in, numpy float32 out, no autograd."""
import numpy as np

from . import _core

__all__ = ["gemm"]


def _as_operand(x, trans):
    """A transposed view of a C-contiguous matrix becomes a flag, not a copy."""
    if isinstance(x, np.ndarray) and not x.flags.c_contiguous and x.ndim >= 2:
        xt = np.swapaxes(x, -1, -2)
        if xt.flags.c_contiguous:
            return xt, not trans
        if x.dtype == np.float32:
            return np.ascontiguousarray(x), trans  # inputs only: never a silent copy of out
    return x, trans


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
         activation=None, out=None):
    """out = act(alpha * op(a) @ op(b) + beta * c + bias).

    a is (..., M, K) ((..., K, M) if trans_a), b is (..., K, N) ((..., N, K) if trans_b),
    batch dimensions broadcast as in numpy.matmul; c broadcasts to (..., M, N) and defaults
    to out (in-place BLAS update); bias is (N,); activation is None or "relu".
    """
    a, trans_a = _as_operand(a, trans_a)
    b, trans_b = _as_operand(b, trans_b)
    return _core.gemm(a, b, c, out=out, trans_a=trans_a, trans_b=trans_b, alpha=alpha,
                      beta=beta, bias=bias, activation=activation)
