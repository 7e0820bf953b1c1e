"""batch_norm2d_forward / backward against the float64 reference and torch (F.batch_norm with
autograd), finite differences of the reference backward, thread invariance, bad input.

Also, folded here from the device test files: batch norm and grad_norm on cuda arrays (from test_cuda_norm.py); on the emulated device (from test_cuda_emu_norm.py)."""

import math

import numpy as np
import pytest
from conftest import compute_sanitizer, num_threads, randn, refusal
from fastnn import ops, ref
from fastnn.ref.rounding import EPS32, U32
from test_cuda import BUILT, FakeDeviceArray, _cupy

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


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4)])
def test_empty_batch_in_eval_saves_the_running_statistics(shape):
    # eval saves the running statistics whatever the batch; an empty one saved zeros, as training
    # does, unlike the reference (found by the fuzz suite, tests/fuzz)
    rm, rv = np.array([0.5, -1, 3], np.float32), np.array([2, 0.25, 1], np.float32)
    _, sm, si = ops.batch_norm2d_forward(np.zeros(shape, np.float32), None, None, rm, rv, False)
    _, rsm, rsi = ref.batch_norm2d_forward(np.zeros(shape, np.float32), None, None, rm, rv, False)
    np.testing.assert_array_equal(sm, rm)
    np.testing.assert_allclose(si, rsi, rtol=U32)
    np.testing.assert_array_equal(
        si, ops.batch_norm2d_forward(np.ones((1, 3, 1, 1), np.float32), None, None, rm, rv, False)[2]
    )


def test_an_infinite_value_gives_an_infinite_mean():
    # a channel holding inf (not NaN) has an infinite mean, as the reference's and torch's; the
    # two-pass mean's correction (x - mean: inf - inf) made it NaN (found by the fuzz suite)
    x = np.ones((2, 3, 2, 2), np.float32)
    x[1, 0, 1, 1], x[0, 2, 0, 1] = -np.inf, np.inf
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    _, sm, si = ops.batch_norm2d_forward(x, None, None, rm, rv, True)
    with np.errstate(invalid="ignore"):  # the reference's x - mean at inf
        _, rsm, rsi = ref.batch_norm2d_forward(x, None, None, np.zeros(3), np.ones(3), True)
    np.testing.assert_array_equal(sm, rsm)
    assert sm[0] == -np.inf and sm[2] == np.inf and sm[1] == 1
    assert np.isnan(si[[0, 2]]).all() and np.isnan(rsi[[0, 2]]).all()
    assert rm[0] == -np.inf and rm[2] == np.inf


@pytest.mark.parametrize("big", [1e20, 1e30, 3e38])
def test_values_near_the_float32_range_normalise(rng, big):
    # a channel whose float32 lane sums overflow (|x - mean| past ~1e19) is done again in
    # float64, forward and backward: as the reference, not zeros or infinities (found by the
    # fuzz suite); the other channels keep the float path
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    x[0, 1, 0, 0] = big
    x[1, 2, [0, 1, 3], 2] = big, -big, -big
    w = rng.uniform(0.5, 2, 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    got = ops.batch_norm2d_forward(x, w, None, None, None, True)
    want = ref.batch_norm2d_forward(x, w, None, None, None, True)
    mean_tol, inv_tol = check_forward(x, True, got, want[:3], wt=w)
    gb = ops.batch_norm2d_backward(dy, x, w, got[1], got[2], True)
    check_backward(dy, x, w, got[1], got[2], True, gb, ref.batch_norm2d_backward(dy, x, w, got[1], got[2], True))
    assert np.isfinite(got[0]).all() and np.isfinite(gb[0]).all()


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


# ---------------------------------------------------------------------------------------------
# Batch norm and grad_norm on CUDA arrays (from test_cuda_norm.py)
# Batch norm and grad_norm on CUDA arrays: both devices apply the same meta functions
# (csrc/ops/batchnorm_meta.cpp, csrc/ops/optim_meta.cpp), so a table of bad calls is refused alike
# in the same words (on the emulated device, and on the CUDA module itself where built, before
# any launch: FakeDeviceArray); the dispatch end to end on the emulated device (fake CuPy,
# tests/fake_cupy.py); and with a GPU and CuPy, against the CPU ops (skipped elsewhere; the
# kernels themselves are checked by tests/test_cuda_emu_norm.py).


def _arrays(rng):
    return {
        "x": randn(rng, 2, 3, 4, 5),
        "w": randn(rng, 3),
        "b": randn(rng, 3),
        "rm": np.zeros(3, np.float32),
        "rv": np.ones(3, np.float32),
        "sm": np.zeros(3, np.float32),
        "si": np.ones(3, np.float32),
        "dy": randn(rng, 2, 3, 4, 5),
        "read_only": np.zeros(3, np.float32),
    }


def _fwd(A, a, training=True, momentum=0.1, eps=1e-5, **arrays):
    """batch_norm2d_forward on the arrays of a (each wrapped by A), those of `arrays` replaced."""
    args = dict(x=a["x"], weight=a["w"], bias=a["b"], running_mean=a["rm"], running_var=a["rv"], out=None)
    args.update(arrays)
    d = {k: None if v is None else A(v) for k, v in args.items()}
    return ops.batch_norm2d_forward(
        d["x"], d["weight"], d["bias"], d["running_mean"], d["running_var"], training, momentum, eps, out=d["out"]
    )


# name -> (call(A, arrays), exception): A wraps each array for a device (NumPy itself, fake
# CuPy's ndarray around the same memory, FakeDeviceArray); every call is refused.
BAD_CALLS = {
    "fwd_x_float64": (lambda A, a: _fwd(A, a, x=a["x"].astype(np.float64)), TypeError),
    "fwd_x_3d": (lambda A, a: _fwd(A, a, x=a["x"][0]), ValueError),
    "fwd_x_strided": (lambda A, a: _fwd(A, a, x=a["x"].transpose(0, 1, 3, 2)), ValueError),
    "fwd_weight_shape": (lambda A, a: _fwd(A, a, weight=np.ones(4, np.float32)), ValueError),
    "fwd_bias_float64": (lambda A, a: _fwd(A, a, bias=a["b"].astype(np.float64)), TypeError),
    "fwd_one_running_stat": (lambda A, a: _fwd(A, a, running_var=None), ValueError),
    "fwd_eval_without_stats": (
        lambda A, a: _fwd(A, a, running_mean=None, running_var=None, training=False),
        ValueError,
    ),
    "fwd_one_value": (lambda A, a: _fwd(A, a, x=np.ones((1, 3, 1, 1), np.float32)), ValueError),
    "fwd_eps": (lambda A, a: _fwd(A, a, eps=-1.0), ValueError),
    "fwd_eps_inf": (lambda A, a: _fwd(A, a, eps=float("inf")), ValueError),
    "fwd_momentum": (lambda A, a: _fwd(A, a, momentum=math.nan), ValueError),
    "fwd_running_read_only": (lambda A, a: _fwd(A, a, running_mean=a["read_only"]), ValueError),
    "fwd_running_aliased": (lambda A, a: _fwd(A, a, running_var=a["rm"]), ValueError),
    "fwd_running_overlaps_x": (lambda A, a: _fwd(A, a, running_var=a["x"].reshape(-1)[1:4]), ValueError),
    "fwd_out_aliases_x": (lambda A, a: _fwd(A, a, out=a["x"]), ValueError),
    "fwd_out_overlaps_running_var": (
        lambda A, a: _fwd(A, a, running_var=a["dy"].reshape(-1)[:3], out=a["dy"]),
        ValueError,
    ),
    "fwd_out_shape": (lambda A, a: _fwd(A, a, out=np.zeros((2, 3, 4, 4), np.float32)), ValueError),
    "fwd_out_float64": (lambda A, a: _fwd(A, a, out=np.zeros((2, 3, 4, 5))), TypeError),
    "bwd_shapes": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"][:, :, :3]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"])),
        ValueError,
    ),
    "bwd_dy_3d": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"][0]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"])),
        ValueError,
    ),
    "bwd_no_save_mean": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"]), A(a["x"]), A(a["w"]), None, A(a["si"])),
        ValueError,
    ),
    "bwd_save_invstd_shape": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"][:2])),
        ValueError,
    ),
    "bwd_save_mean_float64": (
        lambda A, a: ops.batch_norm2d_backward(
            A(a["dy"]), A(a["x"]), A(a["w"]), A(a["sm"].astype(np.float64)), A(a["si"])
        ),
        TypeError,
    ),
    "bwd_out_aliases_dy": (
        lambda A, a: ops.batch_norm2d_backward(
            A(a["dy"]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"]), out=A(a["dy"])
        ),
        ValueError,
    ),
    "norm_type_0": (lambda A, a: ops.grad_norm([A(a["x"])], 0.0), ValueError),
    "norm_type_nan": (lambda A, a: ops.grad_norm([A(a["x"])], math.nan), ValueError),
    "norm_float64": (lambda A, a: ops.grad_norm([A(a["x"]), A(np.zeros(3))]), TypeError),
    "norm_strided": (lambda A, a: ops.grad_norm([A(a["x"][:, :, :, ::2])]), ValueError),
}


def _read_only(a):
    a["read_only"].flags.writeable = False
    return a


def _fake(a):
    """FakeDeviceArray with a's strides and writeability (host memory: refused before a launch)."""
    f = FakeDeviceArray(a, strides=None if a.flags.c_contiguous else a.strides)
    f.__cuda_array_interface__["data"] = (a.ctypes.data, not a.flags.writeable)
    return f


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    op = "grad_norm" if name.startswith("norm") else "batch_norm2d_" + ("forward" if name[0] == "f" else "backward")
    with pytest.raises(exc, match=f"^fastnn.ops.{op}: "):
        call(lambda v: v, _read_only(_arrays(rng)))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices (batch norm's and grad_norm's meta functions are the rules of
    each): the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _read_only(_arrays(rng)))
    dev = refusal(call, emulated_gpu.ndarray, _read_only(_arrays(rng)))  # no copy: overlaps stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch or allocation), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _read_only(_arrays(rng)))
    assert refusal(call, _fake, _read_only(_arrays(rng))) == cpu


def test_device_refuses_mixed_arrays(rng, emulated_gpu):
    cp = emulated_gpu
    a = _arrays(rng)
    x, w = cp.asarray(a["x"]), cp.asarray(a["w"])
    with pytest.raises(TypeError, match="batch_norm2d_forward: expected bias to be a CUDA array.*cannot be mixed"):
        ops.batch_norm2d_forward(x, w, a["b"], None, None, True)
    with pytest.raises(TypeError, match="batch_norm2d_backward: expected save_mean to be a CUDA array"):
        ops.batch_norm2d_backward(x, x, w, a["sm"], cp.asarray(a["si"]))
    with pytest.raises(TypeError, match="grad_norm: expected arrays\\[0\\] to be a CUDA array"):
        ops.grad_norm([a["x"], x])
    assert ops.grad_norm([]) == 0.0  # no array: the CPU op's 0.0


# ---- On the emulated device (fake CuPy): ops -> fastnn.cuda -> the bindings -> the kernels ----


@pytest.mark.parametrize("training,affine,stats", MODES)
def test_emulated_batch_norm_matches_cpu(rng, emulated_gpu, training, affine, stats):
    cp = emulated_gpu
    x, wt, b, rm, rv, dy = _case(rng, (2, 2, 5, 3), affine, stats)
    dev = [None if a is None else cp.asarray(a) for a in (x, wt, b, rm, rv, dy)]
    rm_c, rv_c = _copy(rm), _copy(rv)
    got = ops.batch_norm2d_forward(*dev[:5], training)
    want = ops.batch_norm2d_forward(x, wt, b, rm_c, rv_c, training)
    assert all(isinstance(a, cp.ndarray) for a in got)
    got = tuple(a.get() for a in got)
    run = None if rm is None else (dev[3].get(), rm_c.astype(np.float64), dev[4].get(), rv_c.astype(np.float64))
    check_forward(x, training, got, tuple(a.astype(np.float64) for a in want), wt, run, c=2.0)
    out = cp.asarray(np.full(x.shape, np.nan, np.float32))
    g = ops.batch_norm2d_backward(dev[5], dev[0], dev[1], cp.asarray(got[1]), cp.asarray(got[2]), training, out=out)
    assert g[0] is out and (g[1] is None) == (wt is None)
    g = tuple(None if a is None else a.get() for a in g)
    gc = ops.batch_norm2d_backward(dy, x, wt, got[1], got[2], training)
    check_backward(
        dy, x, wt, got[1], got[2], training, g, tuple(None if a is None else a.astype(np.float64) for a in gc), c=2.0
    )


# ---- On a GPU (CuPy end to end) ----


@pytest.mark.parametrize("training,affine,stats", MODES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 171, 1), (8, 3, 64, 65)], ids=str)
def test_gpu_batch_norm_matches_cpu(rng, shape, training, affine, stats):
    cp = _cupy()
    x, wt, b, rm, rv, dy = _case(rng, shape, affine, stats)
    dev = [None if a is None else cp.asarray(a) for a in (x, wt, b, rm, rv, dy)]
    rm_c, rv_c = _copy(rm), _copy(rv)
    got = tuple(cp.asnumpy(a) for a in ops.batch_norm2d_forward(*dev[:5], training))
    want = ops.batch_norm2d_forward(x, wt, b, rm_c, rv_c, training)
    run = (
        None
        if rm is None
        else (cp.asnumpy(dev[3]), rm_c.astype(np.float64), cp.asnumpy(dev[4]), rv_c.astype(np.float64))
    )
    check_forward(x, training, got, tuple(a.astype(np.float64) for a in want), wt, run, c=2.0)
    g = ops.batch_norm2d_backward(dev[5], dev[0], dev[1], cp.asarray(got[1]), cp.asarray(got[2]), training)
    g2 = ops.batch_norm2d_backward(dev[5], dev[0], dev[1], cp.asarray(got[1]), cp.asarray(got[2]), training)
    g = tuple(None if a is None else cp.asnumpy(a) for a in g)
    for a, a2 in zip(g, g2):  # deterministic: the same bits on a second run
        if a is not None:
            np.testing.assert_array_equal(a, cp.asnumpy(a2))
    gc = ops.batch_norm2d_backward(dy, x, wt, got[1], got[2], training)
    check_backward(
        dy, x, wt, got[1], got[2], training, g, tuple(None if a is None else a.astype(np.float64) for a in gc), c=2.0
    )


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
x = cp.asarray(r.standard_normal((3, 5, 7, 9), dtype=np.float32))
w, b = cp.ones(5, cp.float32), cp.zeros(5, cp.float32)
rm, rv = cp.zeros(5, cp.float32), cp.ones(5, cp.float32)
for training in (True, False):
    y, sm, si = ops.batch_norm2d_forward(x, w, b, rm, rv, training)
    ops.batch_norm2d_backward(x, x, w, sm, si, training)
    ops.batch_norm2d_backward(x, x, None, sm, si, training)
ops.batch_norm2d_forward(x[:0], None, None, rm, rv, True)
for p in (2.0, 1.0, float("inf"), 3.0):
    ops.grad_norm([x, w, cp.asarray(r.standard_normal(10000, dtype=np.float32))], p)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck"])
def test_compute_sanitizer_is_clean(tool):
    """Batch norm and grad_norm under compute-sanitizer (needs a GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)


# ---------------------------------------------------------------------------------------------
# On the emulated device (from test_cuda_emu_norm.py)
# The CUDA batch norm and grad_norm kernels (csrc/cuda/batchnorm.cu, csrc/cuda/grad_norm.cu) run
# by the emulator through the device entries (the `dev` fixture: fastnn._core's arguments),
# against the CPU ops and the float64 references, in the three fiber orders.
#
# Batch norm runs one block of 512 threads per channel: M = N*H*W of 1, 2, 3, 511, 512, 513 and
# more than 512 in one run (H*W > the block), runs of one value, one channel. The bounds are
# test_batchnorm.py's (derived for the CPU's chunked float sums; the GPU's float64 partial sums
# are tighter): against the reference with c = 1, against the CPU op with c = 2 (each within its
# bound of the exact values). grad_norm: arrays below, at and past a block's 4096 elements, empty
# ones, zeros, NaN and inf.

EPS53 = 2.0**-53  # float64 unit roundoff

# (N, C, H, W): a general case, C = 1 with the fewest values training allows, H*W = 1 (every
# mode); M = 513, 512 and 511 (the 512-thread block +-1, runs crossing the block's step) and one
# run longer than the block (training with and without affine and running statistics, eval).
# C = 2 where threads take several values: a run walked past its end reads the next channel.
# Eval takes M = 1 (test_batch_norm_eval_single_value).
BN_SHAPES = [(2, 2, 4, 5), (1, 1, 1, 2), (3, 2, 1, 1)]
BN_EDGE_SHAPES = [(3, 2, 171, 1), (1, 1, 16, 32), (7, 1, 73, 1), (2, 2, 600, 1)]
BN_EDGE_MODES = [(True, True, True), (True, False, False), (False, True, True)]
BN_CASES = [(s, *m) for s in BN_SHAPES for m in MODES] + [(s, *m) for s in BN_EDGE_SHAPES for m in BN_EDGE_MODES]


def _bn_both(dev, x, wt, b, rm, rv, dy, training, momentum=0.1):
    """The emulated and the CPU forward and backward (from the emulated saved statistics), and
    the reference's; the running statistics of each side updated on its own copy."""
    rm_e, rv_e, rm_c, rv_c, rm_r, rv_r = (_copy(a) for a in (rm, rv, rm, rv, rm, rv))
    fe = dev.batch_norm2d_forward(x, wt, b, rm_e, rv_e, training, momentum, 1e-5, None)
    fc = ops.batch_norm2d_forward(x, wt, b, rm_c, rv_c, training, momentum)
    fr = ref.batch_norm2d_forward(x, wt, b, rm_r, rv_r, training, momentum)
    be = dev.batch_norm2d_backward(dy, x, wt, fe[1], fe[2], training, None)
    bc = ops.batch_norm2d_backward(dy, x, wt, fe[1], fe[2], training)
    br = ref.batch_norm2d_backward(dy, x, wt, fe[1], fe[2], training)
    return fe, fc, fr, be, bc, br, (rm_e, rv_e, rm_c, rv_c, rm_r, rv_r)


def _f64(t):
    return tuple(None if a is None else np.asarray(a, np.float64) for a in t)


@pytest.mark.parametrize("shape,training,affine,stats", BN_CASES, ids=str)
def test_batch_norm(rng, order, dev, shape, training, affine, stats):
    x, wt, b, rm, rv, dy = _case(rng, shape, affine, stats)
    fe, fc, fr, be, bc, br, (rm_e, rv_e, rm_c, rv_c, rm_r, rv_r) = _bn_both(dev, x, wt, b, rm, rv, dy, training)
    assert fe[0].shape == shape and fe[1].shape == fe[2].shape == (shape[1],)
    run = None if rm is None else (rm_e, rm_r, rv_e, rv_r)
    check_forward(x, training, fe, fr, wt, run)
    run = None if rm is None else (rm_e, rm_c.astype(np.float64), rv_e, rv_c.astype(np.float64))
    check_forward(x, training, fe, _f64(fc), wt, run, c=2.0)
    check_backward(dy, x, wt, fe[1], fe[2], training, be, br)
    check_backward(dy, x, wt, fe[1], fe[2], training, be, _f64(bc), c=2.0)
    if not training:  # eval: the running statistics are read, never written
        np.testing.assert_array_equal(rm_e, rm)
        np.testing.assert_array_equal(rv_e, rv)


@pytest.mark.parametrize("momentum", [0.0, 0.37, 1.0])
def test_batch_norm_momentum(rng, order, dev, momentum):
    x, wt, b, rm, rv, dy = _case(rng, (3, 1, 5, 3), True, True)
    fe, fc, fr, be, bc, br, (rm_e, rv_e, rm_c, rv_c, rm_r, rv_r) = _bn_both(dev, x, wt, b, rm, rv, dy, True, momentum)
    tol = check_forward(x, True, fe, fr, wt)
    # (1 - momentum) running + momentum batch, in float64 and rounded once: the batch statistics'
    # errors times momentum (the variance's relative error is twice invstd's), plus the rounding
    # (1/2 ulp, 2^-24 relative) and float64's (far below another 2^-24)
    m = 3 * 5 * 3
    var = (1 / fr[2] ** 2) * m / (m - 1)
    np.testing.assert_array_less(np.abs(rm_e - rm_r), momentum * tol[0] + EPS32 * np.abs(rm_r) + 1e-300)
    np.testing.assert_array_less(
        np.abs(rv_e - rv_r), momentum * 2 * var * tol[1] / fr[2] + EPS32 * np.abs(rv_r) + 1e-300
    )
    np.testing.assert_allclose(
        rm_e, rm_c, rtol=0, atol=float(2 * (momentum * tol[0].max() + EPS32 * np.abs(rm_r).max()))
    )
    if momentum == 0.0:
        np.testing.assert_array_equal(rm_e, rm)
        np.testing.assert_array_equal(rv_e, rv)


def test_batch_norm_empty(order, dev):
    """N = 0: save_* = 0, the running statistics untouched, dweight = dbias = 0 (as the CPU op);
    C = 0: nothing to launch."""
    x = np.zeros((0, 3, 4, 4), np.float32)
    w, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    rm, rv = np.full(3, 0.5, np.float32), np.full(3, 2, np.float32)
    y, sm, si = dev.batch_norm2d_forward(x, w, b, rm, rv, True, 0.1, 1e-5, None)
    assert y.shape == x.shape and (sm == 0).all() and (si == 0).all()
    assert (rm == 0.5).all() and (rv == 2).all()
    dx, dw, db = dev.batch_norm2d_backward(x, x, w, sm, si, True, None)
    assert dx.shape == x.shape and (dw == 0).all() and (db == 0).all()
    y, sm, si = dev.batch_norm2d_forward(
        np.zeros((2, 0, 3, 3), np.float32), None, None, None, None, True, 0.1, 1e-5, None
    )
    assert y.shape == (2, 0, 3, 3) and sm.shape == si.shape == (0,)
    # eval: the running statistics, as the CPU op saves them
    cpu = ops.batch_norm2d_forward(x, w, b, rm, rv, False)
    got = dev.batch_norm2d_forward(x, w, b, rm, rv, False, 0.1, 1e-5, None)
    np.testing.assert_array_equal(got[1], cpu[1])
    np.testing.assert_array_equal(got[2], cpu[2])


def test_batch_norm_eval_single_value(rng, order, dev):
    x, wt, b, rm, rv, dy = _case(rng, (1, 3, 1, 1), True, True)
    fe, fc, fr, be, bc, br, _ = _bn_both(dev, x, wt, b, rm, rv, dy, False)
    check_forward(x, False, fe, fr, wt)
    check_backward(dy, x, wt, fe[1], fe[2], False, be, br)


def test_batch_norm_nan_stays_in_its_channel(order, dev):
    x = np.ones((2, 2, 3, 3), np.float32)
    x[1, 0, 2, 1] = np.nan
    y, sm, si = dev.batch_norm2d_forward(x, None, None, None, None, True, 0.1, 1e-5, None)
    assert np.isnan(y[:, 0]).all() and not np.isnan(y[:, 1]).any()


def test_results_do_not_depend_on_the_fiber_order(rng, dev, monkeypatch):
    """Fixed-order sums: bit-identical results whatever order the threads run in."""
    x, wt, b, rm, rv, dy = _case(rng, (3, 2, 171, 1), True, True)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((4097,), (300,))]
    res = []
    for o, seed in (("forward", "1"), ("reverse", "1"), ("random", "2"), ("random", "3")):
        monkeypatch.setenv("FASTNN_EMU_ORDER", o)
        monkeypatch.setenv("FASTNN_EMU_SEED", seed)
        r1, r2 = _copy(rm), _copy(rv)
        f = dev.batch_norm2d_forward(x, wt, b, r1, r2, True, 0.1, 1e-5, None)
        g = dev.batch_norm2d_backward(dy, x, wt, f[1], f[2], True, None)
        res.append([*f, r1, r2, *g, np.array([dev.grad_norm(arrays, p) for p in (2.0, math.inf, 3.0)])])
    for r in res[1:]:
        for a, c in zip(res[0], r):
            np.testing.assert_array_equal(a, c)
