"""nn.Embedding(sparse=True): the row-sparse gradient, its accumulation, zeroing and clipping,
and the optimizers that take it (SGD, SparseAdam) against the dense-gradient update and torch."""

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
import numpy as np
import pytest
from fastnn import Tensor
from fastnn.sparse import RowSparse

V, D = 50, 6
BATCHES = [np.array([[3, 7, 3], [49, 0, 7]]), np.array([[1, 1, 1], [2, 3, 4]]), np.array([[0, 10, 20], [3, 3, 9]])]


def pair(padding_idx=None, seed=0):
    """A dense and a sparse embedding with the same weights."""
    fastnn.manual_seed(seed)
    dense = nn.Embedding(V, D, padding_idx=padding_idx)
    sparse = nn.Embedding(V, D, padding_idx=padding_idx, sparse=True)
    sparse.weight._data[...] = dense.weight._data
    return dense, sparse


def loss_of(emb, idx, seed):
    g = np.random.default_rng(seed).standard_normal(idx.shape + (D,)).astype(np.float32)
    return (emb(Tensor(idx)) * Tensor(g)).sum()


@pytest.mark.parametrize("padding_idx", [None, 3])
def test_sparse_gradient_equals_dense(padding_idx):
    dense, sparse = pair(padding_idx)
    loss_of(dense, BATCHES[0], 1).backward()
    loss_of(sparse, BATCHES[0], 1).backward()
    g = sparse.weight.grad
    assert isinstance(g, RowSparse) and g.shape == (V, D)
    assert len(g.indices) == (6 if padding_idx is None else 4)  # one row per position, padding left out
    np.testing.assert_allclose(g.to_dense(), dense.weight.grad._data, rtol=1e-6, atol=1e-7)
    c = g.coalesce()
    assert c.is_coalesced() and list(c.indices) == sorted(set(BATCHES[0].ravel()) - {padding_idx})
    np.testing.assert_allclose(c.to_dense(), dense.weight.grad._data, rtol=1e-6, atol=1e-7)


def test_accumulation_and_zero_grad():
    dense, sparse = pair()
    for i, b in enumerate(BATCHES[:2]):  # two backward passes without zero_grad add up
        loss_of(dense, b, i).backward()
        loss_of(sparse, b, i).backward()
    assert isinstance(sparse.weight.grad, RowSparse) and len(sparse.weight.grad.indices) == 12
    np.testing.assert_allclose(sparse.weight.grad.to_dense(), dense.weight.grad._data, rtol=1e-6, atol=1e-6)
    opt = optim.SGD(sparse.parameters(), lr=0.1)
    opt.zero_grad(set_to_none=False)  # torch: an empty sparse gradient
    assert isinstance(sparse.weight.grad, RowSparse) and len(sparse.weight.grad.indices) == 0
    sparse.zero_grad()
    assert sparse.weight.grad is None


def test_sparse_plus_dense_gradient_is_dense():
    """A weight used sparsely and densely (tied) gets the dense sum."""
    _, sparse = pair()
    w = sparse.weight
    (sparse(Tensor(np.array([1, 2, 2]))).sum() + (w * 2.0).sum()).backward()
    expect = np.full((V, D), 2.0, np.float32)
    expect[1] += 1
    expect[2] += 2
    assert isinstance(w.grad, Tensor)
    np.testing.assert_allclose(w.grad._data, expect)


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_clipping_sparse_equals_dense(clip):
    dense, sparse = pair()
    for e in (dense, sparse):
        loss_of(e, BATCHES[1], 0).backward()  # row 1 three times: duplicates must be summed first
        if clip == "norm":
            n = nn.utils.clip_grad_norm_(e.parameters(), 0.5)
        else:
            nn.utils.clip_grad_value_(e.parameters(), 0.3)
    if clip == "norm":
        assert n.item() > 0.5
    g = sparse.weight.grad
    assert isinstance(g, RowSparse) and g.is_coalesced()
    np.testing.assert_allclose(g.to_dense(), dense.weight.grad._data, rtol=1e-6, atol=1e-7)


def _train(emb, opt, steps=3):
    for i in range(steps):
        opt.zero_grad()
        loss_of(emb, BATCHES[i % 3], i).backward()
        opt.step()
    return emb.weight._data


@pytest.mark.parametrize(
    "kw",
    [dict(lr=0.1), dict(lr=0.1, maximize=True), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True)],
)
def test_sgd_sparse_equals_dense(kw):
    dense, sparse = pair()
    untouched = sorted(set(range(V)) - set(np.concatenate([b.ravel() for b in BATCHES])))
    before = sparse.weight._data[untouched].copy()
    a = _train(dense, optim.SGD(dense.parameters(), **kw))
    b = _train(sparse, optim.SGD(sparse.parameters(), **kw))
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sparse.weight._data[untouched], before)


def test_sgd_sparse_weight_decay_refused_and_adam_refuses_sparse():
    _, sparse = pair()
    loss_of(sparse, BATCHES[0], 0).backward()
    with pytest.raises(RuntimeError, match="weight_decay is not supported with a sparse gradient"):
        optim.SGD(sparse.parameters(), lr=0.1, weight_decay=0.1).step()
    for Opt in (optim.Adam, optim.AdamW):
        with pytest.raises(RuntimeError, match="does not support sparse gradients"):
            Opt(sparse.parameters()).step()
    dense, _ = pair()
    loss_of(dense, BATCHES[0], 0).backward()
    with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients"):
        optim.SparseAdam(dense.parameters()).step()


def _lazy_adam_reference(w, batches, lr, b1, b2, eps, steps):
    """SparseAdam's definition in float64: Adam on the rows the step's gradient names only."""
    w = w.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for i in range(steps):
        idx = batches[i % 3]
        g = np.random.default_rng(i).standard_normal(idx.shape + (D,))
        dense = np.zeros_like(w)
        np.add.at(dense, idx.ravel(), g.reshape(-1, D).astype(np.float32).astype(np.float64))
        rows = np.unique(idx)
        m[rows] = b1 * m[rows] + (1 - b1) * dense[rows]
        v[rows] = b2 * v[rows] + (1 - b2) * dense[rows] ** 2
        t = i + 1
        w[rows] -= lr * (m[rows] / (1 - b1**t)) / (np.sqrt(v[rows] / (1 - b2**t)) + eps)
    return w


def test_sparse_adam_matches_definition():
    _, sparse = pair()
    w0 = sparse.weight._data.copy()
    got = _train(sparse, optim.SparseAdam(sparse.parameters(), lr=0.01), steps=5)
    want = _lazy_adam_reference(w0, BATCHES, 0.01, 0.9, 0.999, 1e-8, 5)
    # float32 Adam steps of size ~lr: a few ulps of the weights per step
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt", ["SGD", "SGD_momentum", "SparseAdam"])
def test_sparse_optimizers_match_torch(opt):
    torch = pytest.importorskip("torch")
    _, sparse = pair()
    temb = torch.nn.Embedding(V, D, sparse=True)
    with torch.no_grad():
        temb.weight.copy_(torch.from_numpy(sparse.weight._data))
    make = {
        "SGD": lambda O, p: O.SGD(p, lr=0.1),
        "SGD_momentum": lambda O, p: O.SGD(p, lr=0.1, momentum=0.9),
        "SparseAdam": lambda O, p: O.SparseAdam(p, lr=0.01),
    }[opt]
    of, ot = make(optim, sparse.parameters()), make(torch.optim, temb.parameters())
    for i in range(4):
        idx = BATCHES[i % 3]
        g = np.random.default_rng(i).standard_normal(idx.shape + (D,)).astype(np.float32)
        of.zero_grad()
        (sparse(Tensor(idx)) * Tensor(g)).sum().backward()
        of.step()
        ot.zero_grad()
        (temb(torch.from_numpy(idx)) * torch.from_numpy(g)).sum().backward()
        ot.step()
    np.testing.assert_allclose(sparse.weight._data, temb.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_row_sparse_checks():
    g = RowSparse([1, 1], np.ones((2, 3), np.float32), (4, 3))
    with pytest.raises(ValueError, match=r"cannot add gradients of shapes \(4, 3\) and \(5, 3\)"):
        g + RowSparse([0], np.ones((1, 3), np.float32), (5, 3))
    with pytest.raises(ValueError, match=r"dense array of shape \(2, 3\)"):
        g + np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(np.zeros((4, 3), np.float32) + g, g.to_dense())
    np.testing.assert_array_equal(g.coalesce().values, [[2, 2, 2]])
