"""Kernels on arrays: numpy float32 in, numpy float32 out, no autograd."""
from . import _core

__all__ = ["gemm"]


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
         activation=None, out=None):
    """out = act(alpha * op(a) @ op(b) + beta * c + bias).

    a is (..., M, K) ((..., K, M) if trans_a), b is (..., K, N) ((..., N, K) if trans_b),
    batch dimensions broadcast as in numpy.matmul; c broadcasts to (..., M, N) and defaults
    to out (in-place BLAS update); bias is (N,); activation is None or "relu". Transposed
    views of C-contiguous inputs are read in place; other strided inputs are copied.
    """
    # Positional: pybind11 matches keyword names by building strings on every call.
    return _core.gemm(a, b, c, out, trans_a, trans_b, alpha, beta, bias, activation)
