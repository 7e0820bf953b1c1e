"""pool2d benchmark: fastnn.ops max/avg pooling (2x2, stride 2) on NCHW vs the NumPy reference,
torch on NCHW (its default) and torch on channels_last (the layout its fast kernels want).

Max pooling is timed with indices on every side (fastnn always returns them; torch with
return_indices=True). Every result is checked against fastnn.ref first.
"""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import U32
from .harness import Case, optional, within

torch = optional("torch")
SHAPE = (64, 32, 32, 32)
QUICK_SHAPE = (4, 32, 32, 32)


def _within(desired_fn, magnitude_fn):
    """A max is exact; an average of 4 float32 values summed in float32 is within 4 roundings
    of the mean of their magnitudes (the bound: 4 eps * avg(|x|)); one wrong term is far above."""
    return within(lambda: (desired_fn(), 4 * U32 * magnitude_fn()))


def _cases(shape):
    x = np.random.default_rng(list(shape)).standard_normal(shape, dtype=np.float32)
    n, c, h, w = shape
    nbytes_max = x.nbytes + n * c * (h // 2) * (w // 2) * (4 + 8)  # read x, write y + int64 idx
    nbytes_avg = x.nbytes + n * c * (h // 2) * (w // 2) * 4
    out = np.empty((n, c, h // 2, w // 2), np.float32)
    idx = np.empty(out.shape, np.int64)
    imax = {
        "fastnn": lambda: ops.max_pool2d_forward(x, 2, out=out, indices=idx)[0],
        "numpy": lambda: ref.max_pool2d_forward(x, 2)[0],
    }
    iavg = {"fastnn": lambda: ops.avg_pool2d_forward(x, 2, out=out), "numpy": lambda: ref.avg_pool2d_forward(x, 2)}
    if torch:
        F = torch.nn.functional
        xt = torch.from_numpy(x)
        xc = xt.contiguous(memory_format=torch.channels_last)
        imax["torch"] = lambda: F.max_pool2d(xt, 2, return_indices=True)[0]
        imax["torch_cl"] = lambda: F.max_pool2d(xc, 2, return_indices=True)[0]
        iavg["torch"] = lambda: F.avg_pool2d(xt, 2)
        iavg["torch_cl"] = lambda: F.avg_pool2d(xc, 2)
    name = "x".join(map(str, shape))
    return [
        Case(
            f"maxpool2x2 {name}", imax, _within(lambda: ref.max_pool2d_forward(x, 2)[0], lambda: 0.0), bytes=nbytes_max
        ),
        Case(
            f"avgpool2x2 {name}",
            iavg,
            _within(lambda: ref.avg_pool2d_forward(x, 2), lambda: ref.avg_pool2d_forward(np.abs(x), 2)),
            bytes=nbytes_avg,
        ),
    ]


def cases(quick=False):
    """2x2 max and average pooling of a batch-64, 32-channel 32x32 layer (quick: batch 4)."""
    return _cases(QUICK_SHAPE if quick else SHAPE)
