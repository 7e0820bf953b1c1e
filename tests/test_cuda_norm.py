"""fastnn.cuda's batch norm and grad_norm: the checks on CUDA arrays (FakeDeviceArray: every bad
argument refused before any launch), the dispatch end to end on the emulated device (fake CuPy,
tests/fake_cupy.py), and with a GPU and CuPy, against the CPU ops (skipped elsewhere; the
kernels themselves are checked by tests/test_cuda_emu_norm.py)."""

import math

import numpy as np
import pytest
from conftest import compute_sanitizer, randn
from fastnn import cuda, ops
from test_batchnorm import MODES, _case, _copy, check_backward, check_forward
from test_cuda import FakeDeviceArray, _cupy


class _NoLaunch:
    """Stands in for fastnn._cuda: any kernel call fails the test (checks come first)."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise AssertionError(f"fastnn._cuda.{name} called before the arguments were checked")

        return call


@pytest.fixture
def no_launch(monkeypatch):
    monkeypatch.setattr(cuda, "_module", _NoLaunch())
    monkeypatch.setattr(cuda, "_tried", True)


def F(a):
    return FakeDeviceArray(a)


def _bn_args(rng, shape=(2, 3, 4, 5)):
    c = shape[1]
    return (
        F(randn(rng, *shape)),
        F(randn(rng, c)),
        F(randn(rng, c)),
        F(np.zeros(c, np.float32)),
        F(np.ones(c, np.float32)),
    )


@pytest.mark.parametrize(
    "change,exc,match",
    [
        (lambda a: {"x": F(a["x"].a.astype(np.float64))}, TypeError, "batch_norm2d_forward: x must be float32"),
        (lambda a: {"x": F(a["x"].a[0])}, ValueError, "expected x to be 4-D"),
        (lambda a: {"x": FakeDeviceArray(a["x"].a, strides=(4, 8, 24, 96))}, ValueError, "x must be C-contiguous"),
        (lambda a: {"weight": F(np.ones(4, np.float32))}, ValueError, "expected weight of shape \\(3,\\)"),
        (lambda a: {"bias": np.zeros(3, np.float32)}, TypeError, "bias must be a CUDA array"),
        (lambda a: {"running_var": None}, ValueError, "both given or both None, got running_mean only"),
        (lambda a: {"running_mean": None, "running_var": None, "training": False}, ValueError, "evaluation mode"),
        (lambda a: {"x": F(np.ones((1, 3, 1, 1), np.float32))}, ValueError, "Expected more than 1 value per channel"),
        (lambda a: {"eps": -1.0}, ValueError, "expected eps >= 0"),
        (lambda a: {"momentum": math.nan}, ValueError, "expected a finite momentum"),
        (lambda a: {"running_var": a["running_mean"]}, ValueError, "running_mean must not alias running_var"),
        (lambda a: {"out": a["x"]}, ValueError, "out must not alias x"),
        (lambda a: {"out": F(np.zeros((2, 3, 4, 4), np.float32))}, ValueError, "out must have shape"),
    ],
    ids=[
        "float64",
        "3-D",
        "strided",
        "weight shape",
        "numpy bias",
        "one running stat",
        "eval without stats",
        "one value",
        "eps",
        "momentum",
        "running aliased",
        "out aliased",
        "out shape",
    ],
)
def test_batch_norm_forward_checks(rng, no_launch, change, exc, match):
    x, w, b, rm, rv = _bn_args(rng)
    a = dict(x=x, weight=w, bias=b, running_mean=rm, running_var=rv, training=True, momentum=0.1, eps=1e-5, out=None)
    a.update(change(a))
    out = a.pop("out")
    with pytest.raises(exc, match=match):
        ops.batch_norm2d_forward(*a.values(), out=out)


def test_batch_norm_forward_checks_running_stats_are_writable(rng, no_launch):
    x, w, b, rm, rv = _bn_args(rng)
    ro = FakeDeviceArray(np.zeros(3, np.float32))
    ro.__cuda_array_interface__["data"] = (ro.a.ctypes.data, True)
    with pytest.raises(ValueError, match="batch_norm2d_forward: running_mean is read-only"):
        ops.batch_norm2d_forward(x, w, b, ro, rv, True)


def test_batch_norm_backward_checks(rng, no_launch):
    x, w, b, rm, rv = _bn_args(rng)
    sm, si = F(np.zeros(3, np.float32)), F(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="batch_norm2d_backward: expected dy and x of the same shape"):
        ops.batch_norm2d_backward(F(randn(rng, 2, 3, 4, 4)), x, w, sm, si)
    with pytest.raises(ValueError, match="expected save_mean and save_invstd"):
        ops.batch_norm2d_backward(x, x, w, None, si)
    with pytest.raises(ValueError, match="expected save_invstd of shape \\(3,\\)"):
        ops.batch_norm2d_backward(x, x, w, sm, F(np.ones(2, np.float32)))
    with pytest.raises(TypeError, match="save_mean must be a CUDA array"):
        ops.batch_norm2d_backward(x, x, w, np.zeros(3, np.float32), si)
    with pytest.raises(ValueError, match="out must not alias dy"):
        ops.batch_norm2d_backward(x, F(randn(rng, 2, 3, 4, 5)), w, sm, si, out=x)


def test_grad_norm_checks(rng, no_launch):
    a = F(randn(rng, 5))
    with pytest.raises(ValueError, match="grad_norm: expected norm_type > 0"):
        ops.grad_norm([a], 0.0)
    with pytest.raises(ValueError, match="grad_norm: expected norm_type > 0"):
        ops.grad_norm([a], math.nan)
    with pytest.raises(TypeError, match="grad_norm: arrays\\[1\\] must be float32"):
        ops.grad_norm([a, F(np.zeros(3))])
    with pytest.raises(TypeError, match="grad_norm: arrays\\[0\\] must be a CUDA array"):
        ops.grad_norm([randn(rng, 3), a])
    with pytest.raises(ValueError, match="grad_norm: arrays\\[0\\] must be C-contiguous"):
        ops.grad_norm([FakeDeviceArray(randn(rng, 3, 4), strides=(4, 12))])
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


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_emulated_grad_norm_matches_cpu(rng, emulated_gpu, p):
    cp = emulated_gpu
    arrays = [randn(rng, *s) for s in ((3,), (4097,), (0,), (5, 7))]
    got = ops.grad_norm([cp.asarray(a) for a in arrays], p)
    assert isinstance(got, float)
    # float64 sums of < 5000 terms in a different order: far below 1e-13 relative
    assert got == pytest.approx(ops.grad_norm(arrays, p), rel=1e-13)
    assert ops.grad_norm((cp.asarray(np.zeros(4, np.float32)),), str(p)) == 0.0


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


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_gpu_grad_norm_matches_cpu(rng, p):
    cp = _cupy()
    # 5M elements: more than 1024 blocks of 4096, so the capped grid strides further
    arrays = [randn(rng, *s) for s in ((3,), (4097,), (0,), (5, 7), (5_000_001,))]
    dev = [cp.asarray(a) for a in arrays]
    got = ops.grad_norm(dev, p)
    assert isinstance(got, float) and got == ops.grad_norm(dev, p)  # deterministic
    # float64 sums of 5M terms in two different orders: ~1e-12 relative at worst (depth ~ 1e3 adds)
    assert got == pytest.approx(ops.grad_norm(arrays, p), rel=1e-12)


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
