"""The CUDA batch norm and grad_norm kernels (csrc/cuda/batchnorm.cu, csrc/cuda/grad_norm.cu) run
by the emulator through the device entries (the `dev` fixture: fastnn._core's arguments),
against the CPU ops and the float64 references, in the three fiber orders.

Batch norm runs one block of 512 threads per channel: M = N*H*W of 1, 2, 3, 511, 512, 513 and
more than 512 in one run (H*W > the block), runs of one value, one channel. The bounds are
test_batchnorm.py's (derived for the CPU's chunked float sums; the GPU's float64 partial sums
are tighter): against the reference with c = 1, against the CPU op with c = 2 (each within its
bound of the exact values). grad_norm: arrays below, at and past a block's 4096 elements, empty
ones, zeros, NaN and inf."""

import math

import numpy as np
import pytest
from fastnn import ops, ref
from fastnn.ref.rounding import EPS32
from test_batchnorm import MODES, _case, _copy, check_backward, check_forward
from test_cuda_emu import dev, emu, order  # noqa: F401  (order, dev: fixtures)

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


# grad_norm: a block takes 4096 elements (16 per thread); sizes 1, one block -1 / +1 (a second
# block with one element), primes, empty arrays (no launch), a 2-D array.
GN_SIZES = [(1,), (4095,), (4097,), (257,), (0,), (3, 0), (7, 13)]


def _gn_bound(arrays, p, depth):
    """|computed - exact| for a float64 sum of the terms |x|^p in which no term passes through
    more than `depth` additions: depth * u * sum (terms >= 0), plus 2 u for each term's rounding
    (pow: one ulp); the root divides the relative error by p and adds <= 1 ulp (pow's)."""
    if math.isinf(p):
        return 0.0  # the max is exact
    v = np.concatenate([np.abs(a.astype(np.float64)).ravel() for a in arrays] + [np.zeros(0)])
    norm = float(np.sum(v**p)) ** (1 / p)
    return ((depth + 2) / p + 2) * EPS53 * norm


def _depths(arrays):
    """The longest chain of additions of a term: GPU, CPU and numpy's reference."""
    n = sum(a.size for a in arrays)
    slots = sum(-(-a.size // 4096) for a in arrays)
    gpu = 16 + 10 + (slots // 256 + 1) + 10  # 16 per thread; warp + block butterflies (5 + 5)
    cpu = 8192 // 8 + 3 + sum(-(-a.size // 8192) for a in arrays)  # 8 lanes per block, lanes tree, blocks
    npy = 128 // 8 + 3 + max(1, n).bit_length()  # numpy's pairwise sum (8 lanes of 128-blocks)
    return gpu, cpu, npy


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0, 0.5])
def test_grad_norm(rng, order, dev, p):
    arrays = [(rng.standard_normal(s) * 4).astype(np.float32) for s in GN_SIZES]
    got = dev.grad_norm(arrays, p)
    assert isinstance(got, float)
    want, cpu = ref.grad_norm(arrays, p), ops.grad_norm(arrays, p)
    gpu_d, cpu_d, npy_d = _depths(arrays)
    b = _gn_bound(arrays, p, gpu_d)
    assert abs(got - want) <= b + _gn_bound(arrays, p, npy_d), (got, want)
    assert abs(got - cpu) <= b + _gn_bound(arrays, p, cpu_d), (got, cpu)


def test_grad_norm_edges(order, dev):
    assert dev.grad_norm([], 2.0) == 0.0
    for p in (2.0, 1.0, math.inf, 3.0):
        assert dev.grad_norm([np.zeros(0, np.float32), np.zeros(5, np.float32), np.zeros((3, 0), np.float32)], p) == 0.0
    assert dev.grad_norm([np.array([3, 4], np.float32)], 2.0) == 5.0
    assert dev.grad_norm([np.array([3, -4], np.float32)], 1.0) == 7.0
    assert dev.grad_norm([np.array([3, -4], np.float32)], math.inf) == 4.0
    big = np.full(5000, 3e38, np.float32)  # float32 sums would overflow; float64 does not
    assert dev.grad_norm([big], 2.0) == pytest.approx(float(big[0]) * math.sqrt(5000), rel=64 * EPS53)
    for p in (2.0, 1.0, math.inf, 3.0):
        x = np.ones(4100, np.float32)
        x[4099] = np.nan  # in the second block of the second array
        assert math.isnan(dev.grad_norm([np.ones(3, np.float32), x], p))
        x[4099] = np.inf
        assert dev.grad_norm([x], p) == math.inf


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
