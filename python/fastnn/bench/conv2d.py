"""conv2d benchmark: forward, backward-data and backward-weight on the CNN layer shapes of
PERF.md, fastnn vs the NumPy reference, PyTorch's default (oneDNN, NCHW) and PyTorch with
channels_last tensors. Every impl is checked against the float64 reference before timing."""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import EPS32
from .harness import Case, optional, within

torch = optional("torch")

# (B, C, H, OC): 3x3 kernels, stride 1, padding 1 (square images)
SHAPES = [(64, 32, 16, 64), (64, 32, 14, 64), (64, 3, 32, 32), (64, 1, 28, 32)]
QUICK_SHAPES = [(8, 32, 14, 64), (8, 3, 32, 32)]


def _check(desired, magnitude, k):
    """Within 4 (sqrt(k) + 2) eps32 of the sum of |terms|: float32 sums of k products in any
    order stay far inside it; one dropped kernel tap or channel does not."""
    return within(lambda: (desired(), 4 * (np.sqrt(k) + 2) * EPS32 * magnitude()))


def _cases(B, C, H, OC):
    rng = np.random.default_rng([B, C, H, OC])
    x = rng.standard_normal((B, C, H, H), dtype=np.float32)
    w = rng.standard_normal((OC, C, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((B, OC, H, H), dtype=np.float32)
    ax, aw, ady = np.abs(x), np.abs(w), np.abs(dy)
    flops = 2.0 * B * OC * H * H * C * 9
    name = f"{B}x{C}x{H}x{H}->{OC} k3"
    y, dx, dw = (np.empty_like(a) for a in (dy, x, w))
    fwd = {
        "fastnn": lambda: ops.conv2d_forward(x, w, padding=1, out=y),
        "numpy": lambda: ref.conv2d_forward(x, w, padding=1),
    }
    bwd_d = {
        "fastnn": lambda: ops.conv2d_backward_data(dy, w, x.shape, padding=1, out=dx),
        "numpy": lambda: ref.conv2d_backward_data(dy, w, x.shape, padding=1),
    }
    bwd_w = {
        "fastnn": lambda: ops.conv2d_backward_weight(dy, x, w.shape, padding=1, out=dw),
        "numpy": lambda: ref.conv2d_backward_weight(dy, x, w.shape, padding=1),
    }
    if torch:
        F, aten = torch.nn.functional, torch.ops.aten
        for tag, fmt in (("torch", torch.contiguous_format), ("torch_cl", torch.channels_last)):
            xt, wt, dyt = (torch.from_numpy(a).contiguous(memory_format=fmt) for a in (x, w, dy))

            def grads(mask, xt=xt, wt=wt, dyt=dyt):
                return aten.convolution_backward(dyt, xt, wt, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

            fwd[tag] = lambda xt=xt, wt=wt: F.conv2d(xt, wt, None, 1, 1).numpy()
            bwd_d[tag] = lambda grads=grads: grads([True, False, False])[0].contiguous().numpy()
            bwd_w[tag] = lambda grads=grads: grads([False, True, False])[1].contiguous().numpy()
    k_fwd, k_data, k_w = C * 9, OC * 9, B * H * H
    return [
        Case(
            f"conv2d fwd {name}",
            fwd,
            _check(lambda: ref.conv2d_forward(x, w, padding=1), lambda: ref.conv2d_forward(ax, aw, padding=1), k_fwd),
            flops=flops,
        ),
        Case(
            f"conv2d bwd_data {name}",
            bwd_d,
            _check(
                lambda: ref.conv2d_backward_data(dy, w, x.shape, padding=1),
                lambda: ref.conv2d_backward_data(ady, aw, x.shape, padding=1),
                k_data,
            ),
            flops=flops,
        ),
        Case(
            f"conv2d bwd_weight {name}",
            bwd_w,
            _check(
                lambda: ref.conv2d_backward_weight(dy, x, w.shape, padding=1),
                lambda: ref.conv2d_backward_weight(ady, ax, w.shape, padding=1),
                k_w,
            ),
            flops=flops,
        ),
    ]


def cases(quick=False):
    """The conv2d cases: two small batches when quick (CI smoke), else PERF.md's CNN layers."""
    return [c for s in (QUICK_SHAPES if quick else SHAPES) for c in _cases(*s)]
