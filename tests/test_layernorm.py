"""layer norm: every ISA path against the float64 reference, the reference backward against
finite differences, torch parity, thread invariance, bad input."""

import numpy as np
import pytest
from conftest import ISAS, num_threads, randn
from fastnn import _core, ops, ref
from fastnn.ref.rounding import EPS32

# (x shape, normalized_shape): rows of 1, lane +-1, chunk +-1 (kLnChunk = 256), several dims, empty
CASES = [
    ((3, 1), 1),
    ((4, 15), 15),
    ((2, 16), 16),
    ((5, 17), (17,)),
    ((2, 3, 255), 255),
    ((3, 257), 257),
    ((2, 3, 4, 5), (4, 5)),
    ((6, 1000), 1000),
    ((0, 7), 7),
    ((7,), 7),
    ((2, 2, 3), (2, 2, 3)),
    # many rows and a partial last block (the weight gradient's column sums over rows)
    ((64, 9), 9),
    ((65, 33), 33),
    ((3, 67, 20), 20),
    # around the 32-row blocks of the weight gradient's column sums
    ((31, 12), 12),
    ((32, 12), 12),
    ((33, 12), 12),
    ((97, 24), 24),
]


def _data(rng, shape, ns, affine):
    x = randn(rng, *shape) * 2 + 3  # an offset: the two-pass variance must not cancel
    nsh = (ns,) if isinstance(ns, int) else ns
    w = (rng.random(nsh) + 0.5).astype(np.float32) if affine else None
    b = randn(rng, *nsh) if affine else None
    return x, w, b


def _check(isa, x, ns, w, b, dy, eps=1e-5):
    y, mean, rstd = _core.layer_norm_forward(x, ns, w, b, eps, isa=isa)
    yr, mr, rr = ref.layer_norm_forward(x, ns, w, b, eps)
    assert mean.shape == mr.shape and rstd.shape == rr.shape and y.dtype == np.float32
    # statistics: float64 sums of float32 terms, rounded once more to float32
    np.testing.assert_allclose(mean, mr, rtol=4 * EPS32, atol=4 * EPS32 * np.abs(x).max(initial=0))
    np.testing.assert_allclose(rstd, rr, rtol=8 * EPS32)
    # y: x - mean rounds at |x|'s scale (|mean| rstd relative to xhat), then two products and a sum
    wa = 1.0 if w is None else np.abs(w)
    ba = 0.0 if b is None else np.abs(b)
    xhat = (x - mr) * rr
    bound = 8 * EPS32 * ((np.abs(xhat) + np.abs(x) * rr + 1) * wa + ba)
    np.testing.assert_array_less(np.abs(y - yr), bound + 1e-30)
    dx, dw, db = _core.layer_norm_backward(dy, x, mean, rstd, w, isa=isa)
    dxr, dwr, dbr = ref.layer_norm_backward(dy, x, mean, rstd, w)
    # dx = rstd (g - mean g - xhat mean(g xhat)): each term is bounded by rstd |g| (|xhat| + 2) summed
    # over a row; float32 rounding of those terms
    g = np.abs(dy) * wa
    rows = tuple(range(x.ndim - (1 if isinstance(ns, int) else len(ns)), x.ndim))
    scale = rr * (
        g + g.mean(axis=rows, keepdims=True) + np.abs(xhat) * (g * np.abs(xhat)).mean(axis=rows, keepdims=True)
    )
    np.testing.assert_array_less(
        np.abs(dx - dxr), 32 * EPS32 * (scale + np.abs(x) * rr * rr * g.max(initial=0)) + 1e-30
    )
    if w is None:
        assert dw is None and db is None
    else:
        m = max(x.size // max(w.size, 1), 1)
        # blocks of kLnRowBlock = 32 rows summed in float32 (at most 31 roundings of u = EPS32/2
        # each, relative to the block's sum of |dy|), then float64 across blocks, one last rounding
        np.testing.assert_array_less(
            np.abs(db - dbr), (31 / 2 + 2) * EPS32 * np.abs(dy).sum(axis=tuple(range(x.ndim - w.ndim))) + 1e-30
        )
        np.testing.assert_array_less(
            np.abs(dw - dwr),
            8
            * EPS32
            * m
            * np.abs(dy).max(initial=0)
            * (np.abs(xhat).max(initial=0) + np.abs(x).max(initial=0) * rr.max(initial=0))
            + 1e-30,
        )


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_norm_against_reference(rng, isa, case, affine):
    shape, ns = case
    x, w, b = _data(rng, shape, ns, affine)
    _check(isa, x, ns, w, b, randn(rng, *shape))


@pytest.mark.parametrize("isa", ISAS)
def test_layer_norm_weight_without_bias_and_constant_rows(rng, isa):
    x = np.full((3, 40), 7.25, np.float32)  # var = 0: rstd = 1/sqrt(eps), y = bias exactly
    w = (rng.random(40) + 0.5).astype(np.float32)
    y, mean, rstd = _core.layer_norm_forward(x, 40, w, None, 1e-5, isa=isa)
    assert (y == 0).all() and (mean == 7.25).all()
    np.testing.assert_allclose(rstd, 1 / np.sqrt(1e-5), rtol=1e-6)
    x, _, b = _data(rng, (5, 33), 33, True)
    _check(isa, x, 33, w[:33].copy(), None, randn(rng, 5, 33))
    _check(isa, x, 33, None, b, randn(rng, 5, 33), eps=0.1)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("big", [1e20, 1e30, 3e38, -3e38])
def test_values_near_the_float32_range_normalise(rng, isa, big):
    # a row whose float32 sums overflow (|x - mean| past ~1e19: its square past FLT_MAX, or x -
    # mean itself) is done again in float64: y, dx as the reference's, not zeros or infinities
    # (found by the fuzz suite); the other rows keep the float path
    x, w, b = _data(rng, (4, 37), 37, True)
    x[1, 5] = big
    x[2, [0, 9, 30]] = big, -big, -big
    x[3, 36] = -big / 2
    _check(isa, x, 37, w, b, randn(rng, 4, 37))
    _check(isa, x, 37, None, None, randn(rng, 4, 37))


def test_reference_backward_matches_finite_differences(rng):
    x = rng.standard_normal((3, 2, 5)) * 2 + 1
    w, b = rng.random((2, 5)) + 0.5, rng.standard_normal((2, 5))
    dy = rng.standard_normal(x.shape)
    ns = (2, 5)
    _, mean, rstd = ref.layer_norm_forward(x, ns, w, b)
    dx, dw, db = ref.layer_norm_backward(dy, x, mean, rstd, w)
    h = 1e-6

    def num(f, a):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            a[i] += h
            fp = f()
            a[i] -= 2 * h
            fm = f()
            a[i] += h
            g[i] = (fp - fm) / (2 * h)
        return g

    loss = lambda: float((ref.layer_norm_forward(x, ns, w, b)[0] * dy).sum())
    np.testing.assert_allclose(dx, num(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, num(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, num(loss, b), rtol=1e-6, atol=1e-7)
    dx0, _, _ = ref.layer_norm_backward(dy, x, mean, rstd)
    loss0 = lambda: float((ref.layer_norm_forward(x, ns)[0] * dy).sum())
    np.testing.assert_allclose(dx0, num(loss0, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("affine", [True, False])
def test_torch_parity(rng, affine):
    torch = pytest.importorskip("torch")
    x, w, b = _data(rng, (4, 6, 48), (6, 48), affine)
    dy = randn(rng, *x.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    wt = torch.from_numpy(w.copy()).requires_grad_() if affine else None
    bt = torch.from_numpy(b.copy()).requires_grad_() if affine else None
    yt = torch.nn.functional.layer_norm(xt, (6, 48), wt, bt)
    yt.backward(torch.from_numpy(dy))
    y, mean, rstd = ops.layer_norm_forward(x, (6, 48), w, b)
    dx, dw, db = ops.layer_norm_backward(dy, x, mean, rstd, w)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    if affine:
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-5, atol=1e-4)
    _, tm, tr = torch.native_layer_norm(torch.from_numpy(x), [6, 48], None, None, 1e-5)
    assert tuple(tm.shape) == mean.shape
    np.testing.assert_allclose(rstd, tr.numpy(), rtol=1e-5)


def test_thread_counts_bit_identical(rng):
    x, w, b = _data(rng, (301, 700), 700, True)
    dy = randn(rng, *x.shape)
    res = []
    for n in (1, 2, 3, 7):
        with num_threads(n):
            y, m, r = ops.layer_norm_forward(x, 700, w, b)
            res.append((y, m, r) + ops.layer_norm_backward(dy, x, m, r, w))
    for other in res[1:]:
        for a, c in zip(res[0], other):
            np.testing.assert_array_equal(a, c)


def test_bad_input(rng):
    x = randn(rng, 4, 8)
    with pytest.raises(TypeError, match="layer_norm_forward.*float32"):
        ops.layer_norm_forward(x.astype(np.float64), 8)
    with pytest.raises(ValueError, match=r"layer_norm_forward.*trailing dimensions.*\(5,\).*\(4, 8\)"):
        ops.layer_norm_forward(x, 5)
    with pytest.raises(ValueError, match="layer_norm_forward.*trailing"):
        ops.layer_norm_forward(x, (2, 4, 8))
    with pytest.raises(TypeError, match="layer_norm_forward.*normalized_shape"):
        ops.layer_norm_forward(x, 8.0)
    with pytest.raises(ValueError, match=r"layer_norm_forward.*weight of shape.*\(8,\).*\(7,\)"):
        ops.layer_norm_forward(x, 8, np.ones(7, np.float32))
    with pytest.raises(ValueError, match="layer_norm_forward.*C-contiguous"):
        ops.layer_norm_forward(randn(rng, 8, 4).T, 8)
    with pytest.raises(ValueError, match="layer_norm_forward.*eps"):
        ops.layer_norm_forward(x, 8, eps=-1)
    y, m, r = ops.layer_norm_forward(x, 8)
    with pytest.raises(ValueError, match="layer_norm_backward.*dy and x of the same shape"):
        ops.layer_norm_backward(x[:2].copy(), x, m, r)
    with pytest.raises(ValueError, match="layer_norm_backward.*rstd with one value per row"):
        ops.layer_norm_backward(x, x, m, r[:2].copy(), np.ones(8, np.float32))
    with pytest.raises(ValueError, match="layer_norm_backward.*mean with one value per row"):
        ops.layer_norm_backward(x, x, randn(rng, 3), r)
    # ints past int64 name the op (were pybind11's RuntimeError; found by the fuzz suite)
    with pytest.raises(ValueError, match="^fastnn.ops.layer_norm_forward: expected normalized_shape to fit in int64"):
        ops.layer_norm_forward(randn(rng, 2, 3), (2**63,))
    with pytest.raises(TypeError, match="^fastnn.ops.layer_norm_forward: expected normalized_shape to be an int or a"):
        ops.layer_norm_forward(randn(rng, 2, 1), True)  # a bool is not an int (was taken as 1)


# ---------------------------------------------------------------------------------------------
# Every backend (conftest.backend: the CPU at each ISA, the emulated device in each fiber order,
# a GPU when present), against the float64 reference and the CPU's default path.

# Rows of one element, under and over a warp, not a multiple of the 256-thread block.
LN_SHAPES = [(1, 1), (3, 31), (5, 256), (2, 300), (4, 1000), (0, 5)]


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", LN_SHAPES, ids=str)
def test_layer_norm_every_backend(rng, backend, shape, affine):
    m, n = shape
    x, dy = randn(rng, m, n) * np.float32(3) + np.float32(1), randn(rng, m, n)
    w, b = (randn(rng, n), randn(rng, n)) if affine else (None, None)
    y, mean, rstd = backend.run.layer_norm_forward(x, (n,), w, b, 1e-5)
    assert mean.shape == rstd.shape == (m, 1)
    y_ref, mean_ref, rstd_ref = ref.layer_norm_forward(x, (n,), w, b, 1e-5)
    tol = (n + 16) * EPS32 * 8  # float32 sums of n terms in a tree (the CPU sums in chunks)
    np.testing.assert_allclose(mean.reshape(m), mean_ref.reshape(m), rtol=tol, atol=tol * 3)
    np.testing.assert_allclose(rstd.reshape(m), rstd_ref.reshape(m), rtol=tol)
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol * 4)
    cpu = ops.layer_norm_forward(x, (n,), w, b, 1e-5)[0]
    np.testing.assert_allclose(y, cpu, rtol=tol, atol=tol * 4)
    dx, dw, db = backend.run.layer_norm_backward(dy, x, mean, rstd, w)
    dx_ref, dw_ref, db_ref = ref.layer_norm_backward(dy, x, mean.reshape(m, 1), rstd.reshape(m, 1), w)
    scale = float(np.abs(dx_ref).max()) if m * n else 1.0
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=tol * 8 * max(scale, 1.0))
    if affine:
        mt = (m + 16) * EPS32 * 8
        np.testing.assert_allclose(dw, dw_ref, rtol=mt, atol=mt * max(1.0, m))
        np.testing.assert_allclose(db, db_ref, rtol=mt, atol=mt * max(1.0, m))
    else:
        assert dw is None and db is None


def test_layer_norm_rank_10_every_backend(rng, backend):
    """x of ten dims over nine (more than a shape keeps inline, csrc/core/shape.h)."""
    shape = (3, 2, 1, 2, 1, 1, 2, 1, 1, 5)
    ns = shape[1:]
    x, dy, w, b = randn(rng, *shape), randn(rng, *shape), randn(rng, *ns), randn(rng, *ns)
    y, mean, rstd = backend.run.layer_norm_forward(x, ns, w, b, 1e-5)
    assert y.shape == shape and mean.shape == rstd.shape == (3,) + (1,) * 9
    y_ref, mean_ref, rstd_ref = ref.layer_norm_forward(x, ns, w, b, 1e-5)
    tol = 56 * EPS32 * 8
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol * 4)
    dx, dw, db = backend.run.layer_norm_backward(dy, x, mean, rstd, w)
    assert dx.shape == shape and dw.shape == db.shape == ns
    dx_ref, dw_ref, db_ref = ref.layer_norm_backward(dy, x, mean, rstd, w)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=tol * 8 * max(float(np.abs(dx_ref).max()), 1.0))
    np.testing.assert_allclose(dw, dw_ref, rtol=tol, atol=tol * 3)
    np.testing.assert_allclose(db, db_ref, rtol=tol, atol=tol * 3)


@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_matches_the_cpu_every_backend(rng, backend, affine):
    P, G = backend.put, backend.get
    x, dy = randn(rng, 7, 300), randn(rng, 7, 300)
    w, b = (randn(rng, 300), randn(rng, 300)) if affine else (None, None)
    g = lambda a: None if a is None else P(a)  # noqa: E731
    y, mean, rstd = ops.layer_norm_forward(x, (300,), w, b)
    gy, gmean, grstd = ops.layer_norm_forward(P(x), (300,), g(w), g(b))
    np.testing.assert_allclose(G(gy), y, rtol=1e-4, atol=1e-4)
    dx, dw, db = ops.layer_norm_backward(dy, x, mean, rstd, w)
    gdx, gdw, gdb = ops.layer_norm_backward(P(dy), P(x), gmean, grstd, g(w))
    np.testing.assert_allclose(G(gdx), dx, rtol=1e-4, atol=1e-4)
    if affine:
        np.testing.assert_allclose(G(gdw), dw, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(G(gdb), db, rtol=1e-4, atol=1e-4)
