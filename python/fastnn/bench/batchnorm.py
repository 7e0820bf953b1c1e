"""Batch-normalisation benchmark: forward + backward in training mode (batch statistics, running
statistics updated, weight and bias) on a 64x32x16x16 float32 NCHW batch (the CNN's second conv
output), fastnn.ops (outputs preallocated) against torch (F.batch_norm with autograd, as a training
step runs it, and its native_batch_norm + backward kernels without autograd) and the float64
NumPy reference. Each result is validated against the reference first."""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import U32
from .harness import Case, optional

torch = optional("torch")


def _case(shape):
    n, c, h, w = shape
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + rng.uniform(-2, 2, (1, c, 1, 1))).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    wt = rng.uniform(0.5, 2, c).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)

    def fastnn_bn():
        _, sm, si = ops.batch_norm2d_forward(x, wt, b, rm, rv, True, out=y)
        _, dw, db = ops.batch_norm2d_backward(dy, x, wt, sm, si, True, out=dx)
        return y, dx, dw, db

    def numpy_bn():
        yr, smr, sir = ref.batch_norm2d_forward(x, wt, b, np.zeros(c), np.ones(c), True)
        return (yr,) + ref.batch_norm2d_backward(dy, x, wt, smr, sir, True)

    impls = {"fastnn": fastnn_bn, "numpy": numpy_bn}
    if torch:
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        wtt, bt = torch.from_numpy(wt.copy()).requires_grad_(), torch.from_numpy(b.copy()).requires_grad_()
        rmt, rvt = torch.zeros(c), torch.ones(c)

        def torch_bn():
            xx = xt.detach().requires_grad_()
            wtt.grad = bt.grad = None
            yy = torch.nn.functional.batch_norm(xx, rmt, rvt, wtt, bt, training=True)
            yy.backward(dyt)
            return yy.detach().numpy(), xx.grad.numpy(), wtt.grad.numpy(), bt.grad.numpy()

        impls["torch"] = torch_bn
        wd, bd = wtt.detach(), bt.detach()
        rmn, rvn = torch.zeros(c), torch.ones(c)

        def torch_native_bn():
            with torch.no_grad():
                yy, sm, si = torch.native_batch_norm(xt, wd, bd, rmn, rvn, True, 0.1, 1e-5)
                dxx, dw, db = torch.ops.aten.native_batch_norm_backward(
                    dyt, xt, wd, rmn, rvn, sm, si, True, 1e-5, [True, True, True]
                )
            return yy.numpy(), dxx.numpy(), dw.numpy(), db.numpy()

        impls["torch_native"] = torch_native_bn
    want = numpy_bn()
    m = n * h * w
    # float32 against float64: the statistics' float sums (16 ulps of the sums of |terms|,
    # tests/test_batchnorm.py) and a few roundings per element, over this data's scale
    # (x is within a few units of its mean, |xhat| < 8, |dy| < 8 here)
    scale = (ref.batch_norm2d_forward(x, wt, b, None, None, True)[2] * wt).reshape(1, c, 1, 1)
    ybound = 64 * U32 * (np.abs(want[0]) + 8 * wt.reshape(1, c, 1, 1))
    dxbound = 64 * U32 * (np.abs(want[1]) + 8 * scale)
    cbound = 64 * U32 * (np.abs(want[2]) + np.abs(want[3]) + 8 * m)

    def check(got):
        for name, a, d, bnd in (
            ("y", got[0], want[0], ybound),
            ("dx", got[1], want[1], dxbound),
            ("dweight", got[2], want[2], cbound),
            ("dbias", got[3], want[3], cbound),
        ):
            err = np.abs(np.asarray(a, np.float64) - d)
            assert (err <= bnd).all(), f"{name}: max error {err.max():.3g} over the bound (m = {m})"

    return Case(f"batch_norm2d fwd+bwd train {n}x{c}x{h}x{w}", impls, check, bytes=5.0 * x.nbytes)  # x, y, dy, x, dx


def cases(quick=False):
    return [_case((4, 8, 8, 8) if quick else (64, 32, 16, 16))]
