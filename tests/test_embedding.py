"""embedding_forward / backward against the float64 reference and torch (F.embedding with
autograd), finite differences of the reference backward, thread invariance, bad input."""

import numpy as np
import pytest
from conftest import num_threads, randn
from fastnn import ops, ref
from fastnn.ref.rounding import EPS32, U32

# (V, D, indices shape): D around vector widths (1, 15, 16, 17), one row, repeated indices
# (V small against T), 0-d / empty / 3-d index arrays, and a case large enough for threads.
CASES = [
    (1, 1, (3,)),
    (10, 15, (4, 5)),
    (7, 16, (31,)),
    (5, 17, (2, 3, 4)),
    (100, 3, ()),
    (13, 8, (0,)),
    (0, 4, (0, 2)),
    (3, 64, (1000,)),
    (50000, 33, (4099,)),
    (300, 257, (64, 20)),
]


def _case(rng, v, d, shape):
    w = rng.standard_normal((v, d)).astype(np.float32)
    idx = rng.integers(0, max(v, 1), shape) if v else np.zeros(shape, np.int64)
    dy = rng.standard_normal(tuple(shape) + (d,)).astype(np.float32)
    return w, idx, dy


@pytest.mark.parametrize("v,d,shape,padding_idx", [c + (p,) for c in CASES for p in (None, 0, -1) if c[0] or p is None])
def test_against_reference(rng, v, d, shape, padding_idx):
    w, idx, dy = _case(rng, v, d, shape)
    y = ops.embedding_forward(w, idx, padding_idx)
    assert y.shape == tuple(shape) + (d,) and y.dtype == np.float32
    np.testing.assert_array_equal(y, ref.embedding_forward(w, idx, padding_idx))  # a copy: exact
    g = ops.embedding_backward(dy, idx, v, padding_idx)
    want = ref.embedding_backward(dy, idx, v, padding_idx)
    assert g.shape == (v, d) and g.dtype == np.float32
    # each row sums its k dy rows in float32: k - 1 roundings of the running sum (relative to the
    # sum of |terms|); rows used once are copies: exact
    babs = np.zeros((v, d))
    np.add.at(babs, idx.reshape(-1), np.abs(dy.astype(np.float64)).reshape(-1, d))
    counts = np.bincount(idx.reshape(-1), minlength=v)[:, None] if v else np.zeros((0, 1))
    np.testing.assert_array_less(np.abs(g - want), U32 * np.maximum(counts - 1, 0) * babs + 1e-300)
    if padding_idx is not None:
        assert (g[padding_idx] == 0).all()


@pytest.mark.parametrize("v,d,shape", [(10, 15, (4, 5)), (3, 64, (1000,)), (300, 257, (64, 20))])
def test_against_torch(rng, v, d, shape):
    torch = pytest.importorskip("torch")
    w, idx, dy = _case(rng, v, d, shape)
    for padding_idx in (None, 2):
        wt = torch.from_numpy(w.copy()).requires_grad_()
        yt = torch.nn.functional.embedding(torch.from_numpy(idx), wt, padding_idx=padding_idx)
        yt.backward(torch.from_numpy(dy))
        np.testing.assert_array_equal(ops.embedding_forward(w, idx, padding_idx), yt.detach().numpy())
        g = ops.embedding_backward(dy, idx, v, padding_idx)
        # both sum each row's dy rows in float32, possibly in other orders: each within
        # (count - 1) roundings of the sum of |terms| of the exact sum
        babs = np.zeros((v, d))
        np.add.at(babs, idx.reshape(-1), np.abs(dy.astype(np.float64)).reshape(-1, d))
        counts = np.bincount(idx.reshape(-1), minlength=v)[:, None]
        np.testing.assert_array_less(np.abs(g - wt.grad.numpy()), 2 * U32 * np.maximum(counts - 1, 0) * babs + 1e-300)


def test_summation_order_is_position_order():
    """Repeated rows add their dy rows in order of position, as numpy.add.at in float32."""
    dy = np.array([[1.0], [2.0**-24], [2.0**-24], [-1.0]], np.float32)
    idx = np.zeros(4, np.int64)
    acc = np.zeros((1, 1), np.float32)
    np.add.at(acc, idx, dy)
    np.testing.assert_array_equal(ops.embedding_backward(dy, idx, 1), acc)
    assert ops.embedding_backward(dy, idx, 1)[0, 0] == 0.0  # (1 + e) + e rounds to 1 twice


def test_integer_index_dtypes(rng):
    w = rng.standard_normal((9, 4)).astype(np.float32)
    idx = np.array([[3, 0], [8, 3]])
    want = w[idx]
    for dt in (np.int8, np.int16, np.int32, np.uint8, np.uint32, np.int64):
        np.testing.assert_array_equal(ops.embedding_forward(w, idx.astype(dt)), want)
    np.testing.assert_array_equal(
        ops.embedding_forward(w, np.asfortranarray(np.array([[1, 2], [3, 4]]))), w[[[1, 2], [3, 4]]]
    )


def test_reference_backward_finite_differences(rng):
    w = rng.standard_normal((6, 3))
    idx = np.array([[1, 4, 1], [5, 1, 0]])
    dy = rng.standard_normal((2, 3, 3))
    for pad in (None, 1):
        g = ref.embedding_backward(dy, idx, 6, pad)

        def loss(pad=pad):  # torch's padding_idx: the row gets no gradient (its output is a constant)
            y = ref.embedding_forward(w, idx, pad)
            return float((y * dy * (1 if pad is None else (idx != pad)[..., None])).sum())

        fd = np.zeros_like(w)
        h = 1e-6
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + h
            fp = loss()
            w[i] = old - h
            fm = loss()
            w[i] = old
            fd[i] = (fp - fm) / (2 * h)
        # linear in w: central differences exact up to cancellation (~1e-16 / h)
        np.testing.assert_allclose(g, fd, rtol=1e-8, atol=1e-8)


def test_thread_counts_bit_identical(rng):
    w, idx, dy = _case(rng, 2000, 70, (50, 97))
    res = []
    for n in (1, 2, 3):
        with num_threads(n):
            res.append((ops.embedding_forward(w, idx), ops.embedding_backward(dy, idx, 2000, 5)))
    for a, b in res[1:]:
        np.testing.assert_array_equal(a, res[0][0])
        np.testing.assert_array_equal(b, res[0][1])


def test_out_arguments(rng):
    w, idx, dy = _case(rng, 10, 6, (3, 4))
    out = np.empty((3, 4, 6), np.float32)
    assert ops.embedding_forward(w, idx, out=out) is out
    np.testing.assert_array_equal(out, w[idx])
    gout = np.full((10, 6), 7.0, np.float32)
    assert ops.embedding_backward(dy, idx, 10, out=gout) is gout
    np.testing.assert_array_equal(gout, ops.embedding_backward(dy, idx, 10))


def test_bad_input(rng):
    w, idx, dy = _case(rng, 10, 6, (3, 4))
    with pytest.raises(ValueError, match=r"embedding_forward.*indices in \[0, 10\).*got 10"):
        ops.embedding_forward(w, np.array([1, 10]))
    with pytest.raises(ValueError, match=r"embedding_forward.*indices in \[0, 10\).*got -1"):
        ops.embedding_forward(w, np.array([-1, 3]))
    with pytest.raises(ValueError, match=r"embedding_backward.*indices in \[0, 5\).*got 7"):
        ops.embedding_backward(np.zeros((2, 6), np.float32), np.array([1, 7]), 5)
    with pytest.raises(TypeError, match="embedding_forward.*indices to be int64, got float64"):
        ops.embedding_forward(w, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="embedding_forward.*indices to be a numpy.ndarray"):
        ops.embedding_forward(w, [1, 2])
    with pytest.raises(TypeError, match="embedding_forward.*weight to be float32"):
        ops.embedding_forward(w.astype(np.float64), idx)
    with pytest.raises(ValueError, match=r"embedding_forward.*weight of 2 dimensions"):
        ops.embedding_forward(w.reshape(60), idx)
    with pytest.raises(ValueError, match="embedding_forward.*weight to be C-contiguous"):
        ops.embedding_forward(w.T, idx)
    with pytest.raises(ValueError, match=r"embedding_forward.*padding_idx in \[-10, 10\)"):
        ops.embedding_forward(w, idx, 10)
    with pytest.raises(ValueError, match=r"embedding_backward.*padding_idx in \[-10, 10\)"):
        ops.embedding_backward(dy, idx, 10, -11)
    with pytest.raises(ValueError, match=r"embedding_backward.*dy of shape indices.shape \+ \(D,\)"):
        ops.embedding_backward(dy[:2], idx, 10)
    with pytest.raises(ValueError, match=r"embedding_backward.*dy of shape"):
        ops.embedding_backward(dy.reshape(12, 6), idx, 10)
    with pytest.raises(ValueError, match="embedding_backward.*num_embeddings >= 0"):
        ops.embedding_backward(dy[:0, :0], idx[:0, :0], -1)
    with pytest.raises(ValueError, match="embedding_backward.*fit in memory"):
        ops.embedding_backward(dy, idx, 2**62)
    with pytest.raises(ValueError, match=r"embedding_forward.*out of shape \(3, 4, 6\)"):
        ops.embedding_forward(w, idx, out=np.empty((12, 6), np.float32))
    with pytest.raises(ValueError, match="embedding_forward.*out not to share memory with weight"):
        ops.embedding_forward(w, idx[:1, :1], out=w[:1].reshape(1, 1, 6))
    with pytest.raises(ValueError, match="embedding_backward.*out not to share memory with dy"):
        ops.embedding_backward(dy, idx % 2, 2, out=dy[0, :2])
    ro = np.empty((10, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="embedding_backward.*out to be writeable"):
        ops.embedding_backward(dy, idx, 10, out=ro)
    with pytest.raises(ValueError, match="^fastnn.ops.embedding_backward: expected padding_idx to fit in int64"):
        ops.embedding_backward(dy, idx, 10, 2**70)  # was pybind11's RuntimeError (found by the fuzz suite)
    # a bool is not an int (was taken as 1; found by the fuzz suite)
    with pytest.raises(
        TypeError, match="^fastnn.ops.embedding_backward: expected num_embeddings to be an int, got bool"
    ):
        ops.embedding_backward(dy, idx, True)
    with pytest.raises(
        TypeError, match="^fastnn.ops.embedding_forward: expected padding_idx to be None or an int, got bool"
    ):
        ops.embedding_forward(w, idx, True)


@pytest.mark.parametrize("op", ["embedding_forward", "embedding_backward"])
def test_indices_past_memory_name_the_op(op):
    # a stride-0 view of 2^40 int32 indices (no memory behind it) was copied to int64 before any
    # check: numpy's MemoryError, not naming the op (found by the fuzz suite, tests/fuzz)
    idx = np.lib.stride_tricks.as_strided(np.zeros(1, np.int32), shape=(2**40,), strides=(0,))
    args = (
        (np.zeros((3, 0), np.float32), idx) if op == "embedding_forward" else (np.zeros((2**40, 0), np.float32), idx, 3)
    )
    with pytest.raises(ValueError, match=f"^fastnn.ops.{op}: expected indices that fit in memory as int64"):
        getattr(ops, op)(*args)


def test_indices_of_other_integer_types_and_layouts_are_converted(rng):
    w = randn(rng, 5, 3)
    idx = rng.integers(0, 5, (4, 6))
    for view in (idx.astype(np.int32), idx[:, ::2], idx.T, idx.astype(np.uint8)[::-1]):
        np.testing.assert_array_equal(ops.embedding_forward(w, view), w[view])


# ---------------------------------------------------------------------------------------------
# Every backend (conftest.backend: the CPU at each ISA, the emulated device in each fiber order,
# a GPU when present), against the float64 reference and the CPU's default path.


@pytest.mark.parametrize("pad", [-1, 3])
@pytest.mark.parametrize("shape", [(10, 1, 1), (50, 7, 33), (5, 300, 4), (8, 0, 3)], ids=str)
def test_embedding_every_backend(rng, backend, shape, pad):
    v, t, d = shape
    w, dy = randn(rng, v, d), randn(rng, t, d)
    idx = rng.integers(0, v, t).astype(np.int64)
    if t:
        idx[: t // 2] = 3  # repeated rows: many atomic adds into one row
    out = backend.run.embedding_forward(w, idx, None, None)
    np.testing.assert_array_equal(out, w[idx])
    dw = backend.run.embedding_backward(dy, idx, v, None if pad < 0 else pad, None)
    want = ref.embedding_backward(dy, idx, v, None if pad < 0 else pad)
    np.testing.assert_allclose(dw, want, rtol=1e-6, atol=(t + 1) * EPS32 * 4)
    if pad >= 0:
        assert (dw[pad] == 0).all()


def test_embedding_matches_the_cpu_every_backend(rng, backend):
    P, G = backend.put, backend.get
    w, idx = randn(rng, 50, 16), rng.integers(0, 50, (4, 9)).astype(np.int64)
    dy = randn(rng, 4, 9, 16)
    np.testing.assert_array_equal(G(ops.embedding_forward(P(w), P(idx))), ops.embedding_forward(w, idx))
    np.testing.assert_allclose(
        G(ops.embedding_backward(P(dy), P(idx), 50, 3)),
        ops.embedding_backward(dy, idx, 50, 3),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="expected indices in"):
        ops.embedding_forward(P(w), P(idx + 50))


def test_an_output_past_this_machines_memory_is_a_value_error():
    """num_embeddings = 2^40: the (V, D) gradient would need 13 TB; refused before allocating,
    naming the op and the shape (not a MemoryError from the allocator)."""
    with pytest.raises(ValueError, match="embedding_backward: expected an output that fits in memory, got shape"):
        ops.embedding_backward(np.zeros((2, 3), np.float32), np.zeros(2, np.int64), 2**40)


@pytest.mark.parametrize("padding_idx", [None, 7, 4999])
def test_backward_of_a_table_much_larger_than_the_batch(rng, padding_idx):
    # v > 2 t + 1024 takes the sorted path (O(t) working memory; the counting sort's O(v) asked
    # for 32 GiB for a 2^32-row table, found under AddressSanitizer): the same bits as the
    # counting path for the rows it touches, zeros elsewhere, on 1 and 2 threads
    idx = np.array([1, 1, 1, 8, 7, 14, 0, 4999, 8, 1, 3000], np.int64)
    dy = rng.standard_normal((idx.size, 5)).astype(np.float32)
    big = ops.embedding_backward(dy, idx, 5000, padding_idx=padding_idx)
    small_idx = idx  # the rows below 20, a table the counting sort takes
    want = ref.embedding_backward(dy, idx, 5000, padding_idx=padding_idx)
    np.testing.assert_allclose(big, want, rtol=1e-6, atol=1e-6)
    low = idx < 20
    small = ops.embedding_backward(dy[low], small_idx[low], 20, padding_idx=padding_idx if padding_idx == 7 else None)
    np.testing.assert_array_equal(big[:20], small)
    with num_threads(2):
        np.testing.assert_array_equal(ops.embedding_backward(dy, idx, 5000, padding_idx=padding_idx), big)
