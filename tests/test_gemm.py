"""gemm: every ISA path against the float64 reference (fastnn.ref.gemm), at the edges of each
micro-kernel's tile; epilogue, out=, batching, transposed views, thread invariance, bad input."""

import pickle
import subprocess

import numpy as np
import pytest
from conftest import ISAS, TILES, _AtIsa, num_threads, randn, start_python
from fastnn import _core, ops, ref
from fastnn.ref.rounding import EPS32
from hypothesis import given, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------------
# The shared helpers: one reference check, one case runner.


def gemm_bound(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, **_):
    """Per-element error allowed for a float32 gemm against the float64 reference.

    Each output sums K float32 products in float32 (in K blocks, in an order that differs per
    ISA), then scales and adds beta*C and bias: the rounding error is at most ~K*eps32 times
    |alpha|*(|A| @ |B|) + |beta|*|C| + |bias|, and ~sqrt(K)*eps32 times it for data of random
    sign; 2*(sqrt(K) + 2) covers the epilogue's 2-3 extra roundings with margin (measured: the
    worst error is ~5% of this bound at 300x700x500). One wrong term (a lost K block, a skipped
    row) is ~1, far above it.
    """
    K = a.shape[-2] if trans_a else a.shape[-1]
    mag = ref.gemm(
        np.abs(a),
        np.abs(b),
        None if c is None else np.abs(c),
        trans_a=trans_a,
        trans_b=trans_b,
        alpha=abs(alpha),
        beta=abs(beta),
        bias=None if bias is None else np.abs(bias),
    )
    return 2 * (np.sqrt(K) + 2) * EPS32 * mag


def assert_gemm(actual, a, b, c=None, **kw):
    """actual (float32, from fastnn) against fastnn.ref.gemm(a, b, c, **kw) within gemm_bound.

    Written out because numpy.testing.assert_allclose takes only a scalar atol; NaN must match
    NaN (relu keeps NaN).
    """
    desired = ref.gemm(a, b, c, **kw)
    assert isinstance(actual, np.ndarray) and actual.dtype == np.float32, type(actual)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    bound = gemm_bound(a, b, c, **kw)
    both_nan = np.isnan(actual) & np.isnan(desired)
    bad = ~(np.abs(actual.astype(np.float64) - desired) <= bound) & ~both_nan
    if bad.any():
        i = tuple(int(x) for x in np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} elements beyond the float32 bound; first at {i}: "
            f"actual {actual[i]!r}, desired {desired[i]!r}, bound {bound[i]:.3g}"
        )


def operands(rng, M, N, K, trans_a=False, trans_b=False, batch_a=(), batch_b=()):
    """Random a ((..., M, K) or (..., K, M)) and b ((..., K, N) or (..., N, K)), float32."""
    a = randn(rng, *batch_a, *((K, M) if trans_a else (M, K)))
    b = randn(rng, *batch_b, *((N, K) if trans_b else (K, N)))
    return a, b


def check(rng, isa, M, N, K, trans_a=False, trans_b=False, batch_a=(), batch_b=(), c_shape=None, with_bias=False, **kw):
    """One case: _core.gemm on the `isa` path against the reference; returns the result."""
    a, b = operands(rng, M, N, K, trans_a, trans_b, batch_a, batch_b)
    c = None if c_shape is None else randn(rng, *c_shape)
    bias = randn(rng, N) if with_bias else None
    got = _core.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, bias=bias, isa=isa, **kw)
    assert_gemm(got, a, b, c, trans_a=trans_a, trans_b=trans_b, bias=bias, **kw)
    return got


def tile(isa):
    t = TILES[isa]
    return t["mr"], t["nr"], t["kc"], t["mc"], t["nc"]


def cases(make):
    """pytest params (isa, *case) for every ISA; make(isa) lists that ISA's cases."""
    out = []
    for isa in ISAS:
        seen = set()
        for case in make(isa):
            if case not in seen:
                seen.add(case)
                out.append(pytest.param(isa, *case, id=f"{isa}-" + "-".join(map(str, case))))
    return out


@pytest.fixture
def one_thread():
    """Batched products run on one thread here: the two-thread batched path is exercised, with
    a timeout, by test_thread_invariance_batched_small (it has hung; see that test)."""
    with num_threads(1):
        yield


# ---------------------------------------------------------------------------------------------
# Every ISA path at the edges of its tile (MR x NR register tile, KC, MC, NC blocks).


def _m_edges(isa):  # M around MR and MC; N, K just past NR and KC (two K blocks)
    mr, nr, kc, mc, nc = tile(isa)
    return [(M, nr + 1, kc + 1) for M in (0, 1, mr - 1, mr, mr + 1, 2 * mr + 1, 37, mc + 1)]


def _m_nopack(isa):  # M around where B stops being read in place (4*MR, 8*MR, 64: not exported)
    mr, nr, kc, mc, nc = tile(isa)
    return [(M, 2 * nr + 1, 9) for M in (4 * mr, 4 * mr + 1, 8 * mr, 8 * mr + 1, 64, 65)]


def _n_edges(isa):  # N around NR, 16 and NC; M small (B read in place) and past MC (B packed)
    mr, nr, kc, mc, nc = tile(isa)
    return [(M, N, 7) for M in (mr + 1, mc + 1) for N in (0, 1, nr - 1, nr, nr + 1, 15, 16, 17, 2 * nr + 1, nc + 1)]


def _k_edges(isa):  # K around KC: K > KC accumulates over K blocks
    mr, nr, kc, mc, nc = tile(isa)
    return [(2 * mr + 1, nr + 1, K) for K in (1, 7, kc - 1, kc, kc + 1, 2 * kc + 1)]


def _large(isa):  # a generic large product and a Linear layer (batch 64, 3136 -> 128)
    return [(300, 700, 500), (64, 128, 3136)]


@pytest.mark.parametrize("isa,M,N,K", cases(_m_edges))
def test_tile_edges_m(rng, isa, M, N, K):
    check(rng, isa, M, N, K)


@pytest.mark.parametrize("isa,M,N,K", cases(_m_nopack))
@pytest.mark.parametrize("trans_b", [False, True])
def test_tile_edges_m_b_in_place(rng, isa, M, N, K, trans_b):
    check(rng, isa, M, N, K, trans_b=trans_b)


@pytest.mark.parametrize("isa,M,N,K", cases(_n_edges))
def test_tile_edges_n(rng, isa, M, N, K):
    check(rng, isa, M, N, K)


@pytest.mark.parametrize("isa,M,N,K", cases(_k_edges))
def test_tile_edges_k(rng, isa, M, N, K):
    check(rng, isa, M, N, K)


@pytest.mark.parametrize("isa,M,N,K", cases(_large))
def test_large(rng, isa, M, N, K):
    check(rng, isa, M, N, K)


def _trans_shapes(isa):  # B read in place / packed, A one tile / several MC blocks, NC + 1
    mr, nr, kc, mc, nc = tile(isa)
    return [(mr + 1, nr + 1, kc + 1), (mc + 1, 2 * nr + 1, kc + 1), (2 * mr + 1, nc + 1, 9)]


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("isa,M,N,K", cases(_trans_shapes))
def test_transposes(rng, isa, M, N, K, trans_a, trans_b):
    check(rng, isa, M, N, K, trans_a, trans_b)


def test_tiles_are_sane():
    for isa in ISAS:
        mr, nr, kc, mc, nc = tile(isa)
        assert 1 <= mr <= mc and mc % mr == 0 and nc % nr == 0 and kc >= 1, (isa, TILES[isa])


# ---------------------------------------------------------------------------------------------
# alpha, beta, c, bias, activation (the epilogue runs once, after the last K block).


def _epilogue_shapes(isa):  # one K block, just past KC, two KC blocks plus one
    mr, nr, kc, mc, nc = tile(isa)
    return [(2 * mr + 1, nr + 1, K) for K in (7, kc + 1, 2 * kc + 1)]


@pytest.mark.parametrize("isa,M,N,K", cases(_epilogue_shapes))
class TestEpilogue:
    def test_alpha_beta(self, rng, isa, M, N, K):
        check(rng, isa, M, N, K, c_shape=(M, N), alpha=-0.5, beta=2.0)

    def test_beta_one_alpha_two_transposed(self, rng, isa, M, N, K):
        check(rng, isa, M, N, K, True, True, c_shape=(M, N), alpha=2.0, beta=1.0)

    def test_bias(self, rng, isa, M, N, K):
        check(rng, isa, M, N, K, with_bias=True)

    def test_bias_relu(self, rng, isa, M, N, K):
        got = check(rng, isa, M, N, K, with_bias=True, activation="relu")
        assert (got == 0).any() and (got > 0).any()  # the case has both signs before relu

    def test_beta_bias_relu(self, rng, isa, M, N, K):
        check(rng, isa, M, N, K, c_shape=(M, N), alpha=0.5, beta=-1.5, with_bias=True, activation="relu")

    def test_activation_none_string(self, rng, isa, M, N, K):
        check(rng, isa, M, N, K, with_bias=True, activation="none")

    def test_alpha_zero(self, rng, isa, M, N, K):
        check(rng, isa, M, N, K, c_shape=(M, N), alpha=0.0, beta=0.5, with_bias=True)

    def test_beta_zero_does_not_read_c(self, rng, isa, M, N, K):
        a, b = operands(rng, M, N, K)
        c = np.full((M, N), np.nan, np.float32)
        got = _core.gemm(a, b, c, beta=0.0, isa=isa)
        assert not np.isnan(got).any()
        assert_gemm(got, a, b)

    def test_beta_zero_does_not_read_out(self, rng, isa, M, N, K):
        a, b = operands(rng, M, N, K)
        out = np.full((M, N), np.nan, np.float32)  # c defaults to out, unread when beta == 0
        got = _core.gemm(a, b, out=out, isa=isa, activation="relu")
        assert not np.isnan(got).any()
        assert_gemm(got, a, b, activation="relu")

    def test_relu_keeps_nan(self, rng, isa, M, N, K):
        a, b = operands(rng, M, N, K)
        a[1, K - 1] = np.nan  # in the last K block: row 1 is NaN
        got = _core.gemm(a, b, activation="relu", isa=isa)
        assert np.isnan(got[1]).all()
        assert not np.isnan(np.delete(got, 1, axis=0)).any()
        assert_gemm(got, a, b, activation="relu")

    def test_in_place_update(self, rng, isa, M, N, K):
        a, b = operands(rng, M, N, K)
        c0 = randn(rng, M, N)
        out = c0.copy()
        got = _core.gemm(a, b, out=out, beta=1.0, isa=isa)  # c defaults to out: out += a @ b
        assert got is out
        assert_gemm(out, a, b, c0, beta=1.0)

    def test_c_is_out(self, rng, isa, M, N, K):
        a, b = operands(rng, M, N, K)
        c0 = randn(rng, M, N)
        out = c0.copy()
        assert _core.gemm(a, b, out, out=out, alpha=-1.0, beta=0.25, isa=isa) is out
        assert_gemm(out, a, b, c0, alpha=-1.0, beta=0.25)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("M,N", [(5, 7), (1, 40)])
class TestKZero:
    """K == 0: out = act(beta*c + bias), a and b are never read."""

    def test_zeros(self, isa, M, N):
        got = _core.gemm(np.zeros((M, 0), np.float32), np.zeros((0, N), np.float32), isa=isa)
        np.testing.assert_array_equal(got, np.zeros((M, N), np.float32))  # exact: no terms

    def test_overwrites_out(self, isa, M, N):
        out = np.full((M, N), np.nan, np.float32)
        _core.gemm(np.zeros((M, 0), np.float32), np.zeros((0, N), np.float32), out=out, isa=isa)
        np.testing.assert_array_equal(out, np.zeros((M, N), np.float32))

    def test_beta_c_bias_relu(self, rng, isa, M, N):
        a, b = np.zeros((M, 0), np.float32), np.zeros((0, N), np.float32)
        c, bias = randn(rng, M, N), randn(rng, N)
        got = _core.gemm(a, b, c, beta=-2.0, bias=bias, activation="relu", isa=isa)
        assert_gemm(got, a, b, c, beta=-2.0, bias=bias, activation="relu")

    def test_transposed(self, rng, isa, M, N):
        a, b = np.zeros((0, M), np.float32), np.zeros((N, 0), np.float32)
        c = randn(rng, M, N)
        got = _core.gemm(a, b, c, trans_a=True, trans_b=True, beta=1.0, isa=isa)
        assert_gemm(got, a, b, c, trans_a=True, trans_b=True, beta=1.0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("M,N,K", [(0, 5, 3), (5, 0, 3), (0, 0, 0)])
def test_empty_output(rng, isa, M, N, K):
    a, b = operands(rng, M, N, K)
    got = _core.gemm(a, b, isa=isa)
    assert got.shape == (M, N) and got.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# out=


@pytest.mark.parametrize("isa", ISAS)
def test_out_is_written_and_returned(rng, isa):
    a, b = operands(rng, 37, 33, 300)
    out = np.full((37, 33), 7.0, np.float32)
    got = _core.gemm(a, b, out=out, isa=isa)
    assert got is out
    assert_gemm(out, a, b)


def test_out_through_ops(rng):
    a, b = operands(rng, 9, 18, 20)
    out = np.empty((9, 18), np.float32)
    assert ops.gemm(a, b, out=out) is out
    assert_gemm(out, a, b)


@pytest.mark.usefixtures("one_thread")
def test_out_batched(rng):
    a, b = operands(rng, 6, 10, 12, batch_a=(3,), batch_b=(3,))
    out = np.empty((3, 6, 10), np.float32)
    assert _core.gemm(a, b, out=out) is out
    assert_gemm(out, a, b)


# ---------------------------------------------------------------------------------------------
# Batched and broadcast batch dimensions (as numpy.matmul).

BATCHES = [  # (batch_a, batch_b)
    ((3,), (3,)),
    ((), (5,)),
    ((5,), ()),
    ((1,), (5,)),
    ((5,), (1,)),
    ((2, 1, 3), (1, 4, 3)),
    ((4, 3), (3,)),
]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("batch_a,batch_b", BATCHES)
@pytest.mark.parametrize("isa", ISAS)
def test_batched(rng, isa, batch_a, batch_b):
    mr, nr, kc, mc, nc = tile(isa)
    check(rng, isa, mr + 1, nr + 1, kc + 1, batch_a=batch_a, batch_b=batch_b)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("batch_a,batch_b", BATCHES)
def test_batched_transposed_bias_relu(rng, batch_a, batch_b):
    check(rng, None, 7, 9, 11, True, True, batch_a=batch_a, batch_b=batch_b, with_bias=True, activation="relu")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    "batch_a,batch_b,c_shape",
    [
        ((5,), (5,), (4, 6)),  # c (M, N) broadcast over the batch
        ((5,), (5,), (1, 4, 6)),
        ((5,), (5,), (5, 4, 6)),
        ((2, 1), (1, 3), (3, 4, 6)),  # c broadcast over the first batch dim only
        ((2, 1), (1, 3), (2, 3, 4, 6)),
    ],
)
def test_batched_c_broadcast(rng, batch_a, batch_b, c_shape):
    check(rng, None, 4, 6, 300, batch_a=batch_a, batch_b=batch_b, c_shape=c_shape, alpha=0.5, beta=-1.0)


@pytest.mark.usefixtures("one_thread")
def test_batched_in_place(rng):
    a, b = operands(rng, 4, 6, 9, batch_a=(3,), batch_b=(3,))
    c0 = randn(rng, 3, 4, 6)
    out = c0.copy()
    _core.gemm(a, b, out=out, beta=1.0)
    assert_gemm(out, a, b, c0, beta=1.0)


# ---------------------------------------------------------------------------------------------
# Views: a transposed view of a C-contiguous input becomes a flag, other strided inputs are
# copied; fastnn.ops.gemm and _core.gemm must both get them right.

FRONTS = [pytest.param(ops.gemm, id="ops"), pytest.param(_core.gemm, id="core")]


def check_view(gemm, a, b, c=None, **kw):
    got = gemm(a, b, c, **kw)
    assert_gemm(got, a, b, c, **kw)


@pytest.mark.parametrize("gemm", FRONTS)
def test_transposed_views(rng, gemm):
    base_a, base_b = randn(rng, 40, 37), randn(rng, 33, 40)  # stored (K, M) and (N, K)
    check_view(gemm, base_a.T, base_b.T)
    check_view(gemm, base_a.T, base_b.T, alpha=2.0, bias=randn(rng, 33), activation="relu")
    check_view(gemm, base_a, base_b, trans_a=True, trans_b=True)
    check_view(gemm, base_a.T.T, base_b.T.T, trans_a=True, trans_b=True)


@pytest.mark.parametrize("gemm", FRONTS)
def test_transposed_view_with_trans_flag(rng, gemm):
    a, b = randn(rng, 37, 40), randn(rng, 40, 33)  # a.T with trans_a=True is a again
    check_view(gemm, a.T, b, trans_a=True)
    check_view(gemm, a, b.T, trans_b=True)
    check_view(gemm, a.T, b.T, trans_a=True, trans_b=True)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("gemm", FRONTS)
def test_batched_transposed_views(rng, gemm):
    a, b = randn(rng, 3, 20, 7), randn(rng, 3, 9, 20)  # stored (B, K, M) and (B, N, K)
    check_view(gemm, np.swapaxes(a, -1, -2), np.swapaxes(b, -1, -2))
    check_view(gemm, np.swapaxes(a, -1, -2)[::2], b[1:], trans_b=True)  # batch axis strided


@pytest.mark.parametrize("gemm", FRONTS)
def test_strided_slices(rng, gemm):
    big_a, big_b = randn(rng, 80, 90), randn(rng, 70, 60)
    check_view(gemm, big_a[::2, 1:41], big_b[3:43, ::3])  # rows strided, columns strided
    check_view(gemm, big_a[5:42, 7:47], big_b[:40, 10:43])  # sub-blocks (row stride != width)
    check_view(gemm, big_a[::-2, :40], big_b[:40, ::-1])  # negative strides
    check_view(gemm, big_a[::2, 1:41].T, big_b[3:43, ::3].T, trans_a=True, trans_b=True)


@pytest.mark.parametrize("gemm", FRONTS)
def test_strided_inputs_are_not_modified(rng, gemm):
    big_a, big_b = randn(rng, 80, 90), randn(rng, 70, 60)
    a0, b0 = big_a.copy(), big_b.copy()
    gemm(big_a[::2, 1:41], big_b[3:43, ::3].T.T.T, trans_b=True)
    assert np.array_equal(big_a, a0) and np.array_equal(big_b, b0)


def test_c_transposed_view(rng):
    a, b = randn(rng, 6, 8), randn(rng, 8, 5)
    c = randn(rng, 5, 6).T  # c is an input: either read correctly or refused with a clear error
    try:
        got = ops.gemm(a, b, c, beta=1.0)
    except ValueError as e:
        assert "gemm" in str(e) and "expected c" in str(e)
    else:
        assert_gemm(got, a, b, c, beta=1.0)


@pytest.mark.parametrize(
    "make_dtype",
    [
        pytest.param(lambda: pickle.loads(pickle.dumps(np.dtype(np.float32))), id="unpickled"),
        pytest.param(lambda: np.dtype(np.float32).newbyteorder("="), id="newbyteorder"),
    ],
)
def test_float32_dtype_equal_but_not_identical(rng, make_dtype):
    # A float32 array whose dtype object is not numpy's float32 singleton, as after pickling
    # (multiprocessing, DataLoader workers): still float32, so it must be accepted everywhere.
    dt = make_dtype()
    assert dt == np.float32
    a, b, c, bias = (randn(rng, *s).astype(dt) for s in [(5, 7), (7, 6), (5, 6), (6,)])
    out = np.empty((5, 6), dt)
    got = _core.gemm(a, b, c, out=out, beta=0.5, bias=bias)
    assert got is out
    assert_gemm(out, a, b, c, beta=0.5, bias=bias)


def test_pickled_operands(rng):
    a, b = operands(rng, 9, 10, 11)
    a2, b2 = pickle.loads(pickle.dumps((a, b)))
    assert_gemm(ops.gemm(a2, b2), a, b)


# ---------------------------------------------------------------------------------------------
# Few rows (M <= 128, AVX2): A stored (M, K) is read in place and a row-major B (N <= 512) is
# copied by the first row tile as it computes. Edges of both, with a row stride wider than K.


def _few_rows(isa):
    mr, nr, kc, mc, nc = tile(isa)
    shapes = [(M, 3 * nr + 5, kc + 3) for M in (1, mr - 1, mr, mr + 1, 2 * mr + 1, 64, 127, 128, 129)]
    return shapes + [(mr + 1, N, 9) for N in (1, nr - 1, nr, nr + 1, 511, 512, 513)]


@pytest.mark.parametrize("isa,M,N,K", cases(_few_rows))
@pytest.mark.parametrize("trans_b", [False, True])
def test_few_rows_strided_a(rng, isa, M, N, K, trans_b):
    big = randn(rng, M, K + 5)
    a = big[:, 2 : K + 2]  # lda = K + 5
    b = randn(rng, *((N, K) if trans_b else (K, N)))
    c, bias = randn(rng, M, N), randn(rng, N)
    kw = dict(trans_b=trans_b, alpha=0.5, beta=-1.0, bias=bias, activation="relu")
    assert_gemm(_core.gemm(a, b, c, isa=isa, **kw), a, b, c, **kw)
    assert np.array_equal(big[:, 2 : K + 2], a)


@pytest.mark.parametrize("isa,M,N,K", cases(lambda isa: [(64, 128, 3136), (7, 40, 300), (128, 512, 700)]))
def test_layouts_give_identical_results(rng, isa, M, N, K):
    """A read in place or packed, B copied by the first tile or packed: the same FMAs in the
    same order, so the same bits whichever layout (and so whichever path) the operands take."""
    a, b = randn(rng, M, K), randn(rng, K, N)
    base = _core.gemm(a, b, isa=isa)
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    assert np.array_equal(_core.gemm(at, b, trans_a=True, isa=isa), base)
    assert np.array_equal(_core.gemm(a, bt, trans_b=True, isa=isa), base)
    assert np.array_equal(_core.gemm(at, bt, trans_a=True, trans_b=True, isa=isa), base)
    assert_gemm(base, a, b)


# ---------------------------------------------------------------------------------------------
# Thread invariance: 1 and 2 threads give bit-identical results (fixed K blocking).


def _invariance_shapes(isa):
    mr, nr, kc, mc, nc = tile(isa)
    # (2*mr + 1, 2*nr + 3, ...): one row block with B packed a micro-panel at a time (AVX2, B
    # stored (N, K)) and a column tail, split over threads by column panels.
    return [
        (300, 700, 500),
        (64, 128, 3136),
        (mc + 1, 2 * nr + 1, 2 * kc + 1),
        (2 * mr + 1, 400, kc + 3),
        (2 * mr + 1, 2 * nr + 3, kc + 3),
    ]


@pytest.mark.parametrize("isa,M,N,K", cases(_invariance_shapes))
@pytest.mark.parametrize("trans", [False, True])
def test_thread_invariance(rng, isa, M, N, K, trans):
    a, b = operands(rng, M, N, K, trans, trans)
    c, bias = randn(rng, M, N), randn(rng, N)
    kw = dict(trans_a=trans, trans_b=trans, alpha=0.5, beta=-1.0, bias=bias, activation="relu", isa=isa)
    with num_threads(1):
        one = _core.gemm(a, b, c, **kw)
    for n in (2, 3):  # 3: the tile list splits unevenly
        with num_threads(n):
            assert np.array_equal(_core.gemm(a, b, c, **kw), one), f"{n} threads"
    assert_gemm(one, a, b, c, **{k: v for k, v in kw.items() if k != "isa"})


@pytest.mark.parametrize("isa", ISAS)
def test_thread_invariance_batched_large(rng, isa):
    a, b = operands(rng, 200, 150, 300, batch_a=(3,), batch_b=(3,))  # items big enough to split
    with num_threads(1):
        one = _core.gemm(a, b, isa=isa)
    with num_threads(2):
        two = _core.gemm(a, b, isa=isa)
    assert np.array_equal(one, two)
    assert_gemm(one, a, b)


# Batched products of small items take a one-thread-per-item path. With two threads, it runs
# in a child process under a deadline, since a hang there cannot be interrupted in-process.
BATCHED_SMALL = [  # (batch_a, batch_b, M, N, K); every item is far below 2 MFLOP
    ((2,), (2,), 5, 9, 20),
    ((3,), (3,), 5, 9, 20),
    ((5,), (), 37, 17, 33),
    ((1,), (5,), 6, 16, 7),
    ((2, 1, 3), (1, 4, 3), 7, 5, 300),
    ((4,), (4,), 400, 3, 8),
]
BATCHED_SMALL_DEADLINE_S = 120  # generous for a loaded machine: the child takes ~1 s


class _Results(dict):
    def __repr__(self):  # keep the arrays out of failure reports
        return f"<{len(self)} two-thread batched results>"


@pytest.fixture(scope="module")
def two_thread_batched(tmp_path_factory):
    """Runs every (isa, BATCHED_SMALL case) at 2 threads in one child process, one after another.

    Returns {(isa, i): (a, b, result or None, diagnostic)}; a child still running at the
    deadline is killed and every case it had not finished is reported as hung.
    """
    d = tmp_path_factory.mktemp("batched_small")
    cases = {}
    for isa in ISAS:
        for i, (ba, bb, M, N, K) in enumerate(BATCHED_SMALL):
            a, b = operands(np.random.default_rng(i), M, N, K, batch_a=ba, batch_b=bb)
            np.savez(d / f"{isa}-{i}-in.npz", a=a, b=b)
            cases[(isa, i)] = (a, b, d / f"{isa}-{i}-out.npy")
    code = f"""
        import numpy as np, fastnn
        fastnn.set_num_threads(2)
        for isa, i in {sorted(cases)!r}:
            x = np.load(f"{d}/{{isa}}-{{i}}-in.npz")
            np.save(f"{d}/{{isa}}-{{i}}-out.npy", fastnn._core.gemm(x["a"], x["b"], isa=isa))
        """
    p = start_python(code, env={"FASTNN_NUM_THREADS": "2"})
    try:
        _, err = p.communicate(timeout=BATCHED_SMALL_DEADLINE_S)
        why = "" if p.returncode == 0 else f"child exited with {p.returncode}:\n{err}"
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        why = f"hung: no result after {BATCHED_SMALL_DEADLINE_S} s"
    results = _Results()
    for key, (a, b, dst) in cases.items():
        results[key] = (a, b, np.load(dst), "") if dst.exists() else (a, b, None, why or "no result")
    return results


@pytest.mark.parametrize(
    "i", range(len(BATCHED_SMALL)), ids=[f"{ba}x{bb}-M{M}-N{N}-K{K}" for ba, bb, M, N, K in BATCHED_SMALL]
)
@pytest.mark.parametrize("isa", ISAS)
def test_thread_invariance_batched_small(two_thread_batched, isa, i):
    a, b, two, why = two_thread_batched[(isa, i)]
    assert two is not None, f"gemm(a {a.shape}, b {b.shape}, isa={isa!r}) at 2 threads: {why}"
    with num_threads(1):
        one = _core.gemm(a, b, isa=isa)
    assert np.array_equal(one, two)
    assert_gemm(one, a, b)


# ---------------------------------------------------------------------------------------------
# Bad input: a TypeError or ValueError naming gemm, what was expected and what was given.


def _f32(*shape):
    return np.zeros(shape, np.float32)


def _read_only(x):
    x.setflags(write=False)
    return x


_BUF = _f32(64)  # b and out as overlapping windows of one buffer

BAD = [  # (id, call, exception, words the message must contain)
    ("a float64", lambda: _core.gemm(np.zeros((4, 5)), _f32(5, 6)), TypeError, ["expected a to be float32", "float64"]),
    (
        "b int32",
        lambda: _core.gemm(_f32(4, 5), np.zeros((5, 6), np.int32)),
        TypeError,
        ["expected b to be float32", "int32"],
    ),
    ("a list", lambda: _core.gemm([[1.0, 2.0]], _f32(2, 2)), TypeError, ["expected a to be a numpy.ndarray", "list"]),
    ("a 0-d", lambda: _core.gemm(_f32(), _f32(1, 1)), ValueError, ["a to have at least 2 dimensions", "()"]),
    ("a 1-d", lambda: _core.gemm(_f32(3), _f32(3, 2)), ValueError, ["a to have at least 2 dimensions", "(3,)"]),
    ("b 1-d", lambda: _core.gemm(_f32(2, 3), _f32(3)), ValueError, ["b to have at least 2 dimensions", "(3,)"]),
    ("K mismatch", lambda: _core.gemm(_f32(4, 5), _f32(6, 3)), ValueError, ["agree on K", "(4, 5)", "(6, 3)"]),
    (
        "K mismatch trans",
        lambda: _core.gemm(_f32(4, 5), _f32(6, 3), trans_a=True),
        ValueError,
        ["agree on K", "(5, 4)", "(6, 3)"],
    ),
    (
        "batch",
        lambda: _core.gemm(_f32(2, 4, 5), _f32(3, 5, 6)),
        ValueError,
        ["broadcastable", "(2, 4, 5)", "(3, 5, 6)"],
    ),
    (
        "out shape",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), out=_f32(6, 4)),
        ValueError,
        ["out of shape (4, 6)", "(6, 4)"],
    ),
    (
        "out batch shape",
        lambda: _core.gemm(_f32(2, 4, 5), _f32(5, 6), out=_f32(4, 6)),
        ValueError,
        ["out of shape (2, 4, 6)", "(4, 6)"],
    ),
    (
        "out float64",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), out=np.zeros((4, 6))),
        TypeError,
        ["expected out to be float32", "float64"],
    ),
    (
        "out strided",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), out=_f32(6, 4).T),
        ValueError,
        ["out to be C-contiguous", "(4, 6)"],
    ),
    (
        "out strided via ops",
        lambda: ops.gemm(_f32(4, 5), _f32(5, 6), out=_f32(6, 4).T),
        ValueError,
        ["out to be C-contiguous"],
    ),
    (
        "out read-only",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), out=_read_only(_f32(4, 6))),
        ValueError,
        ["out to be writeable", "read-only"],
    ),
    (
        "out is a",
        lambda: (lambda a: _core.gemm(a, _f32(4, 4), out=a))(_f32(4, 4)),
        ValueError,
        ["out not to share memory with a"],
    ),
    (
        "out is a.T",
        lambda: (lambda a: _core.gemm(a.T, _f32(4, 4), out=a))(_f32(4, 4)),
        ValueError,
        ["out not to share memory with a"],
    ),  # the view is read in place, so it aliases out
    (
        "out overlaps b",
        lambda: _core.gemm(_f32(4, 4), _BUF[:16].reshape(4, 4), out=_BUF[8:24].reshape(4, 4)),
        ValueError,
        ["out not to share memory with b"],
    ),
    (
        "out overlaps c",
        lambda: _core.gemm(_f32(4, 4), _f32(4, 4), _BUF[32:48].reshape(4, 4), out=_BUF[36:52].reshape(4, 4), beta=1.0),
        ValueError,
        ["out not to share memory with c"],
    ),
    (
        "out overlaps bias",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), bias=_BUF[40:46], out=_BUF[20:44].reshape(4, 6)),
        ValueError,
        ["out not to share memory with bias"],
    ),
    (
        "c shape",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), _f32(6, 4), beta=1.0),
        ValueError,
        ["c of shape (4, 6)", "(6, 4)"],
    ),
    (
        "c batch larger",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), _f32(3, 4, 6), beta=1.0),
        ValueError,
        ["c of shape (4, 6)", "(3, 4, 6)"],
    ),
    (
        "c float64",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), np.zeros((4, 6)), beta=1.0),
        TypeError,
        ["expected c to be float32", "float64"],
    ),
    (
        "bias shape",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), bias=_f32(4)),
        ValueError,
        ["bias of shape (6,)", "(4,)"],
    ),
    (
        "bias 2-d",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), bias=_f32(1, 6)),
        ValueError,
        ["bias of shape (6,)", "(1, 6)"],
    ),
    (
        "bias float64",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), bias=np.zeros(6)),
        TypeError,
        ["expected bias to be float32", "float64"],
    ),
    ("activation tanh", lambda: _core.gemm(_f32(4, 5), _f32(5, 6), activation="tanh"), ValueError, ["relu", "'tanh'"]),
    ("activation via ops", lambda: ops.gemm(_f32(4, 5), _f32(5, 6), activation="gelu"), ValueError, ["relu", "'gelu'"]),
    ("isa sse9", lambda: _core.gemm(_f32(4, 5), _f32(5, 6), isa="sse9"), ValueError, ["isa", "avx2", "'sse9'"]),
    ("isa int", lambda: _core.gemm(_f32(4, 5), _f32(5, 6), isa=5), (TypeError, ValueError), ["isa"]),
    (
        "activation int",
        lambda: _core.gemm(_f32(4, 5), _f32(5, 6), activation=5),
        (TypeError, ValueError),
        ["activation"],
    ),
    ("beta without c", lambda: _core.gemm(_f32(4, 5), _f32(5, 6), beta=0.5), ValueError, ["beta=0.5", "needs c"]),
    ("tile isa", lambda: _core.gemm_tile("sse9"), ValueError, ["'sse9'"]),
]


@pytest.mark.parametrize("call,exc,words", [pytest.param(*x[1:], id=x[0]) for x in BAD])
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:  # any other exception propagates: the test fails with it
        call()
    msg = str(info.value)
    assert "gemm" in msg, msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize(
    "isa",
    [i for i in ("avx2", "avx512") if i not in ISAS]
    or [pytest.param("avx512", marks=pytest.mark.skip("every ISA runs here"))],
)
def test_unsupported_isa(isa):
    with pytest.raises(ValueError, match=f"gemm.*'{isa}'.*not supported"):
        _core.gemm(_f32(4, 5), _f32(5, 6), isa=isa)


def _zeros_or_skip(*shape):
    """np.zeros of a huge shape: calloc reserves address space only; skip where even that fails."""
    try:
        return np.zeros(shape, np.float32)
    except MemoryError:
        pytest.skip(f"cannot reserve {np.prod(shape) * 4 / 2**30:.0f} GiB of address space")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: (_zeros_or_skip(2**16, 2**15 + 1), _f32(2**15 + 1, 1), None), id="M*K"),
        pytest.param(lambda: (_f32(1, 2**16), _zeros_or_skip(2**16, 2**15 + 1), None), id="K*N"),
        pytest.param(lambda: (_f32(2**16, 1), _f32(1, 2**15 + 1), _zeros_or_skip(2**16, 2**15 + 1)), id="M*N"),
        pytest.param(lambda: (_f32(0, 2**31), _f32(2**31, 0), None), id="K"),  # 0 elements, K=2^31
    ],
)
def test_over_32_bit_sizes(make):
    a, b, out = make()
    with pytest.raises(ValueError) as info:
        _core.gemm(a, b, out=out)
    msg = str(info.value)
    assert "gemm" in msg and "2^31" in msg, msg


# ---------------------------------------------------------------------------------------------
# Against torch, when it is installed.


def test_vs_torch_linear_relu(rng):
    torch = pytest.importorskip("torch")
    x, w, bias = randn(rng, 64, 3136), randn(rng, 128, 3136), randn(rng, 128)  # w is (OC, C)
    got = ops.gemm(x, w, trans_b=True, bias=bias, activation="relu")
    want = torch.relu(torch.addmm(torch.from_numpy(bias), torch.from_numpy(x), torch.from_numpy(w).T)).numpy()
    # Both are float32 within gemm_bound of the exact result, so within twice it of each other.
    bound = gemm_bound(x, w, trans_b=True, bias=bias)
    assert (np.abs(got - want) <= 2 * bound).all(), np.abs(got - want).max()
    assert_gemm(got, x, w, trans_b=True, bias=bias, activation="relu")


def test_vs_torch_addmm_alpha_beta(rng):
    torch = pytest.importorskip("torch")
    a, b, c = randn(rng, 37, 300), randn(rng, 300, 45), randn(rng, 37, 45)
    got = ops.gemm(a, b, c, alpha=2.0, beta=-0.5)
    want = torch.addmm(torch.from_numpy(c), torch.from_numpy(a), torch.from_numpy(b), beta=-0.5, alpha=2.0).numpy()
    bound = gemm_bound(a, b, c, alpha=2.0, beta=-0.5)  # as above: twice the float32 bound
    assert (np.abs(got - want) <= 2 * bound).all(), np.abs(got - want).max()


@pytest.mark.usefixtures("one_thread")
def test_vs_torch_matmul_broadcast(rng):
    torch = pytest.importorskip("torch")
    a, b = randn(rng, 2, 1, 3, 7, 20), randn(rng, 4, 3, 20, 9)
    got = ops.gemm(a, b)
    want = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert got.shape == want.shape
    assert (np.abs(got - want) <= 2 * gemm_bound(a, b)).all(), np.abs(got - want).max()


# ---------------------------------------------------------------------------------------------
# Property: any small shape, transposes, alpha, beta, bias, relu, on every ISA.


@settings(max_examples=60, deadline=None)
@given(
    M=st.integers(0, 20),
    N=st.integers(0, 40),
    K=st.one_of(st.integers(0, 20), st.sampled_from([255, 256, 257, 513])),
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    alpha=st.sampled_from([1.0, -1.0, 0.5, 0.0, 3.0]),
    beta=st.sampled_from([0.0, 1.0, -2.5]),
    with_bias=st.booleans(),
    relu=st.booleans(),
    isa=st.sampled_from(ISAS),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_vs_reference(M, N, K, trans_a, trans_b, alpha, beta, with_bias, relu, isa, seed):
    check(
        np.random.default_rng(seed),
        isa,
        M,
        N,
        K,
        trans_a,
        trans_b,
        c_shape=(M, N) if beta else None,
        alpha=alpha,
        beta=beta,
        with_bias=with_bias,
        activation="relu" if relu else None,
    )


# ---------------------------------------------------------------------------------------------
# Every backend (conftest.backend: the CPU at each ISA, the emulated device in each fiber order,
# a GPU when present), against the float64 reference and the CPU's default path.

_core_default = _AtIsa("default")  # the CPU's portable path, to compare every backend with

GEMM_SHAPES = [(1, 1, 1), (5, 130, 3), (64, 64, 16), (65, 63, 17), (37, 71, 45), (3, 2, 0)]


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=str)
def test_gemm_every_backend(rng, backend, shape, ta, tb):
    P = backend.put
    M, N, K = shape
    a = randn(rng, *((K, M) if ta else (M, K)))
    b = randn(rng, *((N, K) if tb else (K, N)))
    c, bias = randn(rng, M, N), randn(rng, N)
    for kw in ({}, {"c": c, "alpha": 0.5, "beta": -2.0, "bias": bias}):
        dkw = {k: P(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        got = backend.get(ops.gemm(P(a), P(b), trans_a=ta, trans_b=tb, **dkw))
        want = ref.gemm(a, b, trans_a=ta, trans_b=tb, **kw)
        mag = ref.gemm(
            np.abs(a),
            np.abs(b),
            trans_a=ta,
            trans_b=tb,
            c=None if "c" not in kw else np.abs(c),
            alpha=abs(kw.get("alpha", 1.0)),
            beta=abs(kw.get("beta", 0.0)),
            bias=None if "bias" not in kw else np.abs(bias),
        )
        assert got.shape == (M, N) and not np.isnan(got).any()
        np.testing.assert_array_less(np.abs(got - want), 2 * (K + 2) * EPS32 * mag + 1e-30)
        cpu = _core_default.gemm(
            a, b, kw.get("c"), None, ta, tb, kw.get("alpha", 1.0), kw.get("beta", 0.0), kw.get("bias")
        )
        np.testing.assert_allclose(got, cpu, rtol=0, atol=float(2 * (K + 2) * EPS32 * mag.max() + 1e-30))


def test_gemm_relu_every_backend(rng, backend):
    a, b = randn(rng, 33, 20), randn(rng, 20, 65)
    got = backend.get(ops.gemm(backend.put(a), backend.put(b), activation="relu"))
    assert (got >= 0).all() and (got == 0).any()
    np.testing.assert_allclose(got, np.maximum(a.astype(np.float64) @ b, 0), atol=1e-4)


def test_device_gemm_reads_transposed_views_in_place_and_copies_other_strides(rng, emulated_gpu, monkeypatch):
    """As on the CPU: a.T of a C-contiguous array is read with the transpose flag flipped (no
    copy), any other strided operand is copied first; the results are the CPU's."""
    cp = emulated_gpu
    a, b = randn(rng, 20, 33), randn(rng, 65, 20)
    copies = []
    real = cp.ascontiguousarray
    monkeypatch.setattr(cp, "ascontiguousarray", lambda x: copies.append(x.shape) or real(x), raising=False)
    da, db = cp.asarray(a), cp.asarray(b)
    got = ops.gemm(da.T, db.T, trans_b=False).get()
    assert copies == []
    want = ops.gemm(a.T, b.T)
    np.testing.assert_allclose(got, want, rtol=0, atol=float(44 * EPS32 * (np.abs(a.T) @ np.abs(b.T)).max()))
    got = ops.gemm(da[:, ::3], cp.asarray(randn(rng, 11, 4))).get()
    assert copies == [(20, 11)] and got.shape == (20, 4)


def test_gemm_broadcasts_batches_every_backend(rng, backend):
    P = backend.put
    a, b, c = randn(rng, 3, 1, 5, 7), randn(rng, 4, 7, 6), randn(rng, 4, 5, 6)
    got = backend.get(ops.gemm(P(a), P(b), P(c), beta=1.0))
    want = ref.gemm(a, b, c, beta=1.0)
    assert got.shape == want.shape == (3, 4, 5, 6)
    np.testing.assert_allclose(got, want, rtol=0, atol=float(18 * EPS32 * (np.abs(a) @ np.abs(b) + np.abs(c)).max()))


def test_gemm_rank_10_every_backend(rng, backend):
    """Eight batch dims (ten in all: more than a shape keeps inline, csrc/core/shape.h)."""
    P = backend.put
    a, b = randn(rng, 2, 1, 1, 2, 1, 1, 1, 2, 3, 4), randn(rng, 1, 1, 1, 2, 1, 1, 2, 1, 4, 5)
    got = backend.get(ops.gemm(P(a), P(b)))
    want = ref.gemm(a, b)
    assert got.shape == want.shape == (2, 1, 1, 2, 1, 1, 2, 2, 3, 5)
    np.testing.assert_allclose(got, want, rtol=0, atol=float(8 * EPS32 * (np.abs(a) @ np.abs(b)).max()))
    with pytest.raises(ValueError) as e:
        ops.gemm(P(a), P(randn(rng, 1, 1, 1, 3, 1, 1, 2, 1, 4, 5)))
    assert str(e.value) == (
        "fastnn.ops.gemm: expected broadcastable batch dimensions, got a (2, 1, 1, 2, 1, 1, 1, 2, 3, 4) "
        "and b (1, 1, 1, 3, 1, 1, 2, 1, 4, 5)"
    )


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("shape", [(1, 1, 1), (65, 63, 17), (130, 257, 300)], ids=str)
def test_gemm_matches_the_cpu_every_backend(rng, backend, shape, ta, tb):
    P, G = backend.put, backend.get
    M, N, K = shape
    if backend.name.startswith("emulated") and K > 100:
        pytest.skip("too large for the emulator (test_gemm_every_backend covers its tiles)")
    a = randn(rng, *((K, M) if ta else (M, K)))
    b = randn(rng, *((N, K) if tb else (K, N)))
    bias = randn(rng, N)
    got = ops.gemm(P(a), P(b), trans_a=ta, trans_b=tb, bias=P(bias), activation="relu")
    want = ops.gemm(a, b, trans_a=ta, trans_b=tb, bias=bias, activation="relu")
    np.testing.assert_allclose(G(got), want, rtol=1e-4, atol=1e-4 * np.sqrt(K))


def test_huge_strided_operand_is_refused_before_it_is_copied():
    """A broadcast view of 2^31 + 1 columns (stride 0: no memory) is refused by the size rules
    before gemm makes it contiguous (which would write 8 GB first)."""
    a = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1, 2**31 + 1), strides=(0, 0))
    with pytest.raises(ValueError, match="fastnn.ops.gemm: expected a to have at most 2\\^31-1 elements per matrix"):
        ops.gemm(a, np.empty((2**31 + 1, 0), np.float32))
    b = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**16, 2**16, 1, 1), strides=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="expected the batch of b to have at most 2\\^31-1 matrices"):
        ops.gemm(np.zeros((1, 1), np.float32), b)
