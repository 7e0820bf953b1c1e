"""Activation benchmark: fastnn.ops <act>_forward on an 8 MiB float32 tensor vs the NumPy
reference and torch (each writing into a preallocated output where it can). Memory-bound for
relu: GB/s counts the bytes read and written."""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import U32
from .harness import Case, optional, within

torch = optional("torch")
N = 2 * 1024 * 1024  # 8 MiB of float32
QUICK_N = 64 * 1024

# name -> (fastnn call on (x, out), reference, torch call on (xt, ot)), relative tolerance:
# the transcendental ones are within ~(4 + |t|) eps of float64, t the exp argument (<= ~40 here
# for gelu's x^2 with |x| < 6), see tests/test_act.py.
ACTS = {
    "relu": (
        lambda x, o: ops.relu_forward(x, out=o),
        ref.relu_forward,
        lambda xt, ot: torch.clamp_min(xt, 0, out=ot),
        0,
    ),
    "sigmoid": (
        lambda x, o: ops.sigmoid_forward(x, out=o),
        ref.sigmoid_forward,
        lambda xt, ot: torch.sigmoid(xt, out=ot),
        16 * U32,
    ),
    "tanh": (
        lambda x, o: ops.tanh_forward(x, out=o),
        ref.tanh_forward,
        lambda xt, ot: torch.tanh(xt, out=ot),
        32 * U32,
    ),
    "gelu": (
        lambda x, o: ops.gelu_forward(x, out=o),
        ref.gelu_forward,
        lambda xt, ot: torch.nn.functional.gelu(xt),
        64 * U32,
    ),
    "gelu_tanh": (
        lambda x, o: ops.gelu_forward(x, approximate="tanh", out=o),
        lambda x: ref.gelu_forward(x, approximate="tanh"),
        lambda xt, ot: torch.nn.functional.gelu(xt, approximate="tanh"),
        64 * U32,
    ),
}


def _case(name, n):
    f, r, t, rtol = ACTS[name]
    x = np.random.default_rng(n).standard_normal(n, dtype=np.float32)
    outs = {k: np.full(n, np.nan, np.float32) for k in ("fastnn", "torch")}
    impls = {"fastnn": lambda: f(x, outs["fastnn"]), "numpy": lambda: r(x)}
    if torch:
        xt, ot = torch.from_numpy(x), torch.from_numpy(outs["torch"])
        impls["torch"] = lambda: np.asarray(t(xt, ot))

    def expected():
        d = r(x)
        # + 8 eps |x|: torch's gelu evaluates 1 + erf (1 + tanh) in float32, which cancels for x < 0
        return d, rtol * np.abs(d) + (8 * U32 * np.abs(x) if name.startswith("gelu") else 1e-37)

    return Case(f"{name} {n * 4 // 1024} KiB", impls, within(expected), bytes=2.0 * x.nbytes)


def cases(quick=False):
    """relu, sigmoid, tanh, gelu, gelu_tanh forward on 8 MiB (quick: 256 KiB)."""
    return [_case(name, QUICK_N if quick else N) for name in ACTS]
