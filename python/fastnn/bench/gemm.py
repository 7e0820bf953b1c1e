"""gemm benchmark: fastnn.ops.gemm vs NumPy's BLAS and torch (when installed), plain and as a Linear layer.

Shapes are (M, K, N): a is (M, K), b is (K, N); the Linear form is x (M, K) @ W^T (W is (N, K)) + bias,
then relu. Every impl writes into its own preallocated out (NaN-filled, so an unwritten element fails).
"""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import gamma32
from .harness import Case, optional, within

torch = optional("torch")

SHAPES = [
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (64, 1600, 128),
    (64, 3136, 128),
    (64, 4096, 128),
    (64, 64, 64),
    (64, 128, 10),
]
LINEAR = [(64, 3136, 128), (64, 1600, 128)]
QUICK_SHAPES = [(64, 64, 64), (64, 128, 10), (256, 256, 256)]
QUICK_LINEAR = [(64, 1600, 128)]


def _check(a, b, **epilogue):
    """Validator against fastnn.ref.gemm with |out - ref| <= gamma_{K+1} * (|op(a)| @ |op(b)| + |bias|).

    Why this tolerance: it is the a-priori bound for a float32 dot product of length K in any
    summation order, blocking or FMA use (Higham, Accuracy and Stability, sec. 3.1), plus one rounding
    for the bias add (relu is exact), so a correct kernel never fails it; on these Gaussian inputs a
    single dropped or doubled product term (the usual tile-edge bug) exceeds it in many elements.
    """
    k = a.shape[1]
    bias = epilogue.get("bias")

    def expected():
        magnitude = ref.gemm(
            np.abs(a), np.abs(b), trans_b=epilogue.get("trans_b", False), bias=None if bias is None else np.abs(bias)
        )
        gamma = gamma32(k + 1)
        return ref.gemm(a, b, **epilogue), gamma * magnitude

    return within(expected)


def _nan(m, n):
    return np.full((m, n), np.nan, dtype=np.float32)


def gemm_case(m, k, n):
    """out = a @ b: fastnn.ops.gemm, np.matmul, torch.mm, each with out=."""
    rng = np.random.default_rng([m, k, n])
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    out = {impl: _nan(m, n) for impl in ("fastnn", "numpy", "torch")}
    impls = {"fastnn": lambda: ops.gemm(a, b, out=out["fastnn"]), "numpy": lambda: np.matmul(a, b, out=out["numpy"])}
    if torch:
        at, bt, ot = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out["torch"])
        impls["torch"] = lambda: torch.mm(at, bt, out=ot)
    return Case(f"gemm {m}x{k}x{n}", impls, _check(a, b), flops=2.0 * m * k * n)


def linear_case(m, k, n):
    """out = relu(x @ W^T + bias): the fused gemm epilogue vs numpy's three passes and F.linear+relu."""
    rng = np.random.default_rng([m, k, n, 1])
    x, w = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((n, k), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    out_f, out_n = _nan(m, n), _nan(m, n)

    def numpy_linear():
        np.matmul(x, w.T, out=out_n)
        np.add(out_n, bias, out=out_n)
        return np.maximum(out_n, 0, out=out_n)

    impls = {
        "fastnn": lambda: ops.gemm(x, w, trans_b=True, bias=bias, activation="relu", out=out_f),
        "numpy": numpy_linear,
    }
    if torch:
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias)
        impls["torch"] = lambda: torch.relu_(torch.nn.functional.linear(xt, wt, bt))
    return Case(
        f"linear_relu {m}x{k}x{n}",
        impls,
        _check(x, w, trans_b=True, bias=bias, activation="relu"),
        flops=2.0 * m * k * n,
    )


def cases(quick=False):
    """The gemm cases: a few small shapes when quick (CI smoke), else the training shapes."""
    shapes, linear = (QUICK_SHAPES, QUICK_LINEAR) if quick else (SHAPES, LINEAR)
    return [gemm_case(*s) for s in shapes] + [linear_case(*s) for s in linear]
