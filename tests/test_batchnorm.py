"""batch_norm2d_forward / backward against the float64 reference and torch (F.batch_norm with
autograd), finite differences of the reference backward, thread invariance, bad input."""

import numpy as np
import pytest
from conftest import num_threads
from fastnn import ops, ref
from fastnn.ref.rounding import U32

# A chunk of the float lanes is 256 floats and one run is H*W: runs of 1, 2, 15, 16, 17, 255,
# 256, 257 values; one channel; M = 2 (the fewest training allows); N = 1; odd sizes; a large
# case split over threads (C * M > 2 * 2^16).
SHAPES = [
    (2, 3, 4, 5),
    (1, 1, 1, 2),
    (3, 2, 1, 1),
    (2, 4, 15, 1),
    (1, 2, 4, 4),
    (2, 3, 17, 1),
    (2, 2, 5, 51),
    (1, 3, 16, 16),
    (3, 2, 257, 1),
    (5, 3, 7, 7),
    (4, 8, 64, 65),
]
# (training, affine, running statistics); eval needs the running statistics
MODES = [
    (True, True, True),
    (True, True, False),
    (True, False, True),
    (True, False, False),
    (False, True, True),
    (False, False, True),
]


def _case(rng, shape, affine, stats):
    n, c, h, w = shape
    # channel offsets up to 8 standard deviations: the mean must be subtracted accurately
    x = (rng.standard_normal(shape) * 2 + rng.uniform(-16, 16, (1, c, 1, 1))).astype(np.float32)
    wt = rng.uniform(0.5, 2, c).astype(np.float32) * rng.choice([-1, 1], c).astype(np.float32) if affine else None
    b = rng.standard_normal(c).astype(np.float32) if affine else None
    rm = rng.standard_normal(c).astype(np.float32) if stats else None
    rv = rng.uniform(0.5, 2, c).astype(np.float32) if stats else None
    dy = rng.standard_normal(shape).astype(np.float32)
    return x, wt, b, rm, rv, dy


def _copy(a):
    return None if a is None else a.copy()


def _c(v):
    return np.asarray(v, np.float64).reshape(1, -1, 1, 1)


def check_forward(x, training, got, want, wt=None, running=None, c=1.0, y_extra=0.0, torch_stats=False):
    """got = ops' (y, save_mean, save_invstd), want = the float64 desired values; running =
    (running_mean got, want, running_var got, want) or None; c scales the bounds (2 to compare two
    float32 results, each within its bound of the exact values)."""
    y, sm, si = got
    yr, smr, sir = want
    x64 = x.astype(np.float64)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    w = 1.0 if wt is None else np.abs(wt.astype(np.float64))
    if training:
        # the statistics' sums: float lanes of <= 16 values (<= 16 roundings, relative to the sum
        # of |terms|), then float64; save_* rounded to float32 (1/2 ulp). The mean is corrected by
        # the second pass's sum of x - mean (relative to the spread, not to |x|); one-pass float
        # sums (torch's) are relative to |x| (torch_stats). var: 16 ulps of the sum plus 2 (x -
        # mean, its square); invstd = 1/sqrt halves that
        spread = np.abs(x64 - (0 if torch_stats else _c(smr))).mean(axis=(0, 2, 3)) if m else 0 * smr
        mean_tol = U32 * (np.abs(smr) + 16 * spread)
        inv_tol = U32 * 10 * sir
    else:  # the running statistics, rounded once (invstd computed in float64)
        mean_tol, inv_tol = 0 * sir, U32 * sir
    np.testing.assert_array_less(np.abs(sm - smr), c * mean_tol + 1e-300)
    np.testing.assert_array_less(np.abs(si - sir), c * inv_tol + 1e-300)
    # y = (x - mean) * alpha + beta: the mean's and invstd's errors times |alpha|, plus 1/2 ulp
    # each for x - mean, alpha and their product (relative to |(x - mean) alpha|) and the sum (|y|)
    xm_alpha = np.abs(x64 - _c(smr)) * _c(sir * w)
    bound = _c(mean_tol * sir * w) + xm_alpha * _c(inv_tol / sir) + U32 * (2 * xm_alpha + np.abs(yr))
    np.testing.assert_array_less(np.abs(y - yr), c * bound + y_extra + 1e-300)
    if running is not None:
        rm, rm_want, rv, rv_want = running
        # (1 - mom) running + mom batch in float64, rounded once: the batch statistics' errors times
        # momentum, plus 1/2 ulp; var's relative error is twice invstd's
        np.testing.assert_array_less(np.abs(rm - rm_want), c * (0.1 * mean_tol + U32 * np.abs(rm_want)) + 1e-300)
        var = (1 / sir**2) * m / max(m - 1, 1)
        np.testing.assert_array_less(
            np.abs(rv - rv_want), c * (0.1 * 2 * var * inv_tol / sir + U32 * np.abs(rv_want)) + 1e-300
        )
    return mean_tol, inv_tol


def check_backward(dy, x, wt, sm, si, training, got, want, c=1.0, stat_tol=None):
    """got = ops' (dx, dweight, dbias) from the saved sm, si; want = float64 desired values.
    stat_tol = (mean_tol, inv_tol): the desired values come from other statistics (torch's own),
    each within that much of the exact ones: their effect on the gradients is added."""
    dx, dw, db = got
    dxr, dwr, dbr = want
    g, x64 = dy.astype(np.float64), x.astype(np.float64)
    xm = x64 - _c(sm)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    w = 1.0 if wt is None else np.abs(wt.astype(np.float64))
    si = si.astype(np.float64)
    sabs_dy = np.abs(g).sum(axis=(0, 2, 3))
    sabs_dot = np.abs(xm * g).sum(axis=(0, 2, 3))
    dm, dinv = (0.0, 0.0) if stat_tol is None else (c * stat_tol[0], c * stat_tol[1])
    # sdy, dot: float-lane sums, 16 ulps of the sum of |terms|; dweight = dot invstd moves by
    # sdy invstd per unit of mean and by dot per unit of invstd
    if wt is not None:
        np.testing.assert_array_less(np.abs(db - dbr), c * U32 * (16 * sabs_dy + np.abs(dbr)) + 1e-300)
        np.testing.assert_array_less(
            np.abs(dw - dwr),
            c * U32 * (16 * sabs_dot * si + 2 * np.abs(dwr)) + dm * sabs_dy * si + dinv * sabs_dot + 1e-300,
        )
    else:
        assert dw is None and db is None
    scale = _c(si * w)
    if training and m:
        # dx = (dy - gm - (x - m) k) * scale: the sums' errors through gm and k, plus the roundings
        # of the three terms and of the product; other statistics move (x - m) k and scale
        k = _c(sabs_dot * si * si / m)
        terms = np.abs(g) + _c(sabs_dy / m) + np.abs(xm) * k
        bound = (
            U32 * scale * (17 * terms)
            + 2 * U32 * np.abs(dxr)
            + scale * (_c(dm) * (k + _c(sabs_dy * si * si / m) * np.abs(xm)) + _c(dinv / si) * 3 * terms)
        )
    else:
        bound = 2 * U32 * (np.abs(dxr) + np.abs(g) * scale) + np.abs(g) * _c(w * dinv)
    np.testing.assert_array_less(np.abs(dx - dxr), c * bound + 1e-300)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training,affine,stats", MODES)
def test_against_reference(rng, shape, training, affine, stats):
    x, wt, b, rm, rv, dy = _case(rng, shape, affine, stats)
    rm2, rv2 = _copy(rm), _copy(rv)
    got = ops.batch_norm2d_forward(x, wt, b, rm, rv, training)
    want = ref.batch_norm2d_forward(x, wt, b, rm2, rv2, training)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float32 and got[2].shape == (shape[1],)
    check_forward(x, training, got, want, wt, None if rm is None else (rm, rm2, rv, rv2))
    # the backward from the same saved statistics on both sides
    bwd = ops.batch_norm2d_backward(dy, x, wt, got[1], got[2], training)
    bwd_ref = ref.batch_norm2d_backward(dy, x, wt, got[1], got[2], training)
    check_backward(dy, x, wt, got[1], got[2], training, bwd, bwd_ref)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 1, 1), (2, 3, 17, 1), (5, 3, 7, 7), (4, 8, 64, 65)])
@pytest.mark.parametrize("training,affine,stats", MODES)
def test_against_torch(rng, shape, training, affine, stats):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, wt, b, rm, rv, dy = _case(rng, shape, affine, stats)
    rmt, rvt = (None if a is None else torch.from_numpy(a.copy()) for a in (rm, rv))
    xt = torch.from_numpy(x).requires_grad_()
    wtt, bt = (None if a is None else torch.from_numpy(a).requires_grad_() for a in (wt, b))
    yt = F.batch_norm(xt, rmt, rvt, wtt, bt, training=training, momentum=0.1, eps=1e-5)
    yt.backward(torch.from_numpy(dy))
    y, sm, si = ops.batch_norm2d_forward(x, wt, b, rm, rv, training)
    dx, dw, db = ops.batch_norm2d_backward(dy, x, wt, sm, si, training)
    # torch's statistics, in float64, as the desired values of the bounds
    want = ref.batch_norm2d_forward(x, wt, b, _copy(rm), _copy(rv), training)
    tmean, tinv = want[1], want[2]
    tw = [yt.detach().numpy().astype(np.float64), tmean, tinv]
    # both within their bounds of the exact values: twice the bound (torch sums in float32 too)
    # torch computes y = x * alpha + (bias - mean * alpha): its roundings are relative to |x alpha|
    # and |mean alpha|, not to |(x - mean) alpha|
    alpha = np.abs(tinv * (1.0 if wt is None else wt.astype(np.float64)))
    torch_form = 2 * U32 * (np.abs(x.astype(np.float64)) + _c(np.abs(tmean))) * _c(alpha)
    tol = check_forward(
        x,
        training,
        (y, sm, si),
        tw,
        wt,
        None if rm is None else (rm, rmt.numpy(), rv, rvt.numpy()),
        c=2.0,
        y_extra=torch_form,
        torch_stats=True,
    )
    grads = (xt.grad.numpy(), None if wtt is None else wtt.grad.numpy(), None if bt is None else bt.grad.numpy())
    check_backward(
        dy,
        x,
        wt,
        sm,
        si,
        training,
        (dx, dw, db),
        tuple(None if a is None else a.astype(np.float64) for a in grads),
        c=2.0,
        stat_tol=tol,
    )


def test_single_value_per_channel_in_training():
    """N*H*W == 1 in training: the ValueError F.batch_norm raises (torch.batch_norm itself would
    return zeros); eval has no such limit."""
    x = np.ones((1, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        ops.batch_norm2d_forward(x, None, None, None, None, True)
    with pytest.raises(ValueError, match="Expected more than 1 value"):
        ref.batch_norm2d_forward(x, None, None, None, None, True)
    y, _, _ = ops.batch_norm2d_forward(x, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), False)
    np.testing.assert_allclose(y, 1 / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_single_value_error_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.ones((1, 3, 1, 1), np.float32)
    with pytest.raises(ValueError) as e:
        ops.batch_norm2d_forward(x, None, None, None, None, True)
    with pytest.raises(ValueError) as et:
        torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True)
    assert str(et.value).split(",")[0] in str(e.value)


def test_empty_batch():
    """N = 0: empty y and dx, running statistics untouched (as torch), dweight = dbias = 0."""
    x = np.zeros((0, 3, 4, 4), np.float32)
    rm, rv, w, b = (
        np.full(3, 0.5, np.float32),
        np.full(3, 2, np.float32),
        np.ones(3, np.float32),
        np.zeros(3, np.float32),
    )
    y, sm, si = ops.batch_norm2d_forward(x, w, b, rm, rv, True)
    assert y.shape == x.shape and (rm == 0.5).all() and (rv == 2).all()
    dx, dw, db = ops.batch_norm2d_backward(x, x, w, sm, si, True)
    assert dx.shape == x.shape and (dw == 0).all() and (db == 0).all()
    y, sm, si = ops.batch_norm2d_forward(np.zeros((2, 0, 3, 3), np.float32), None, None, None, None, True)
    assert y.shape == (2, 0, 3, 3) and sm.shape == (0,)


def test_nan_propagates():
    x = np.ones((2, 2, 3, 3), np.float32)
    x[1, 0, 2, 1] = np.nan
    y, sm, si = ops.batch_norm2d_forward(x, None, None, None, None, True)
    assert np.isnan(y[:, 0]).all() and not np.isnan(y[:, 1]).any()


def _fd(f, a, h=1e-6):
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        fp = f()
        a[i] = old - h
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_reference_backward_finite_differences(rng, training, affine):
    x = rng.standard_normal((2, 3, 2, 3)) + 1.5
    w = rng.uniform(0.5, 2, 3) if affine else None
    b = rng.standard_normal(3) if affine else None
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    dy = rng.standard_normal(x.shape)

    def loss():  # sum(y * dy); eval: the running statistics are constants
        return float((ref.batch_norm2d_forward(x, w, b, rm.copy(), rv.copy(), training)[0] * dy).sum())

    _, sm, si = ref.batch_norm2d_forward(x, w, b, rm.copy(), rv.copy(), training)
    dx, dw, db = ref.batch_norm2d_backward(dy, x, w, sm, si, training)
    # central differences in float64: truncation ~h^2, cancellation ~1e-16 / h
    np.testing.assert_allclose(dx, _fd(loss, x), rtol=1e-6, atol=1e-8)
    if affine:
        np.testing.assert_allclose(dw, _fd(loss, w), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(db, _fd(loss, b), rtol=1e-6, atol=1e-8)


def test_thread_counts_bit_identical(rng):
    x, wt, b, rm, rv, dy = _case(rng, (4, 8, 64, 65), True, True)
    res = []
    for n in (1, 2, 3):
        rm1, rv1 = rm.copy(), rv.copy()
        with num_threads(n):
            y, sm, si = ops.batch_norm2d_forward(x, wt, b, rm1, rv1, True)
            res.append((y, sm, si, rm1, rv1) + ops.batch_norm2d_backward(dy, x, wt, sm, si, True))
    for other in res[1:]:
        for a, c in zip(res[0], other):
            np.testing.assert_array_equal(a, c)


def test_out_arguments(rng):
    x, wt, b, rm, rv, dy = _case(rng, (2, 3, 4, 5), True, True)
    out = np.empty_like(x)
    y, sm, si = ops.batch_norm2d_forward(x, wt, b, rm.copy(), rv.copy(), True, out=out)
    assert y is out
    np.testing.assert_array_equal(out, ops.batch_norm2d_forward(x, wt, b, rm.copy(), rv.copy(), True)[0])
    dout = np.empty_like(x)
    assert ops.batch_norm2d_backward(dy, x, wt, sm, si, True, out=dout)[0] is dout


def test_bad_input(rng):
    x, wt, b, rm, rv, dy = _case(rng, (2, 3, 4, 5), True, True)
    f, bw = ops.batch_norm2d_forward, ops.batch_norm2d_backward
    with pytest.raises(TypeError, match="batch_norm2d_forward.*x to be float32, got float64"):
        f(x.astype(np.float64), wt, b, rm, rv, True)
    with pytest.raises(ValueError, match=r"batch_norm2d_forward.*x of 4 dimensions.*\(2, 3, 20\)"):
        f(x.reshape(2, 3, 20), wt, b, rm, rv, True)
    with pytest.raises(ValueError, match="batch_norm2d_forward.*C-contiguous"):
        f(x.transpose(0, 1, 3, 2), wt, b, rm, rv, True)
    with pytest.raises(ValueError, match=r"batch_norm2d_forward.*weight of shape \(3,\).*\(4,\)"):
        f(x, np.ones(4, np.float32), b, rm, rv, True)
    with pytest.raises(TypeError, match="batch_norm2d_forward.*bias to be a numpy.ndarray"):
        f(x, wt, [0.0, 0.0, 0.0], rm, rv, True)
    ro = rm.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="batch_norm2d_forward.*running_mean to be writeable"):
        f(x, wt, b, ro, rv, True)
    with pytest.raises(ValueError, match="batch_norm2d_forward.*both given or both None"):
        f(x, wt, b, rm, None, True)
    with pytest.raises(ValueError, match="batch_norm2d_forward.*evaluation mode"):
        f(x, wt, b, None, None, False)
    with pytest.raises(ValueError, match="batch_norm2d_forward.*running_mean not to share memory with running_var"):
        f(x, wt, b, rm, rm, True)
    with pytest.raises(ValueError, match=r"batch_norm2d_forward.*out of shape \(2, 3, 4, 5\)"):
        f(x, wt, b, rm, rv, True, out=np.empty((2, 3, 5, 4), np.float32))
    with pytest.raises(ValueError, match="batch_norm2d_forward.*out not to share memory with x"):
        f(x, wt, b, rm, rv, True, out=x)
    buf = np.zeros(x.size + 3, np.float32)
    with pytest.raises(ValueError, match="batch_norm2d_forward.*running_var"):
        f(x, wt, b, rm, buf[x.size - 1 : x.size + 2], True, out=buf[: x.size].reshape(x.shape))
    with pytest.raises(ValueError, match="batch_norm2d_forward.*eps"):
        f(x, wt, b, rm, rv, True, eps=-1.0)
    _, sm, si = f(x, wt, b, rm, rv, True)
    with pytest.raises(ValueError, match="batch_norm2d_backward.*dy and x of the same shape"):
        bw(dy[:1], x, wt, sm, si)
    with pytest.raises(ValueError, match="batch_norm2d_backward.*save_mean and save_invstd"):
        bw(dy, x, wt, None, si)
    with pytest.raises(ValueError, match=r"batch_norm2d_backward.*save_invstd of shape \(3,\)"):
        bw(dy, x, wt, sm, si[:2])
    with pytest.raises(ValueError, match="batch_norm2d_backward.*out not to share memory with dy"):
        bw(dy, x, wt, sm, si, out=dy)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="batch_norm2d_backward.*out to be writeable"):
        bw(dy, x, wt, sm, si, out=ro)
