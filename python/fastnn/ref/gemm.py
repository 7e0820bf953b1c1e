"""Reference gemm: the oracle for tests and the baseline for benchmarks."""

import numpy as np


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, activation=None, out=None):
    """out = act(alpha * op(a) @ op(b) + beta * c + bias), computed and returned in float64."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if trans_a:
        a64 = np.swapaxes(a64, -1, -2)
    if trans_b:
        b64 = np.swapaxes(b64, -1, -2)
    r = alpha * np.matmul(a64, b64)
    if c is None:
        c = out
    if beta != 0:
        r = r + beta * np.asarray(c, dtype=np.float64)
    if bias is not None:
        r = r + np.asarray(bias, dtype=np.float64)
    if activation == "relu":
        r = np.where(r < 0, 0.0, r)  # keeps NaN, like the kernel
    elif activation not in (None, "none"):
        raise ValueError(f"fastnn.ref.gemm: expected activation None or 'relu', got {activation!r}")
    if out is None:
        return r
    out[...] = r
    return out
