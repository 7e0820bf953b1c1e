"""fastnn's factories (full, full_like, empty_like, rand_like, randn_like, randint_like,
new_*, eye, linspace, logspace), dtype conversions and random sampling (multinomial, bernoulli)
against torch where it is installed."""

import math

import fastnn
import numpy as np
import pytest


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def _same(ours, theirs, exact=True):
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
    assert tuple(ours.shape) == tuple(theirs.shape)
    if exact:
        np.testing.assert_array_equal(_np(ours), _np(theirs))
    else:
        tol = 1e-6 if ours.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(_np(ours), _np(theirs), rtol=tol, atol=tol)


# -- factories --------------------------------------------------------------------------------------
FACTORIES = [
    ("full_like", lambda m, a: m.full_like(a, 2.5)),
    ("full_like-int", lambda m, a: m.full_like(a.long(), 2.7)),
    ("full_like-dtype", lambda m, a: m.full_like(a, 3, dtype=m.int32)),
    ("empty_like", lambda m, a: m.empty_like(a).shape),
    ("empty_like-dtype", lambda m, a: m.empty_like(a, dtype=m.float64).dtype),
    ("new_zeros", lambda m, a: a.double().new_zeros(2, 3)),
    ("new_zeros-tuple", lambda m, a: a.new_zeros((2, 3), dtype=m.int64)),
    ("new_ones", lambda m, a: a.new_ones(4)),
    ("new_full", lambda m, a: a.long().new_full((2,), 2.5)),
    ("new_empty", lambda m, a: a.new_empty(2, 1).shape),
    ("new_tensor", lambda m, a: a.double().new_tensor([1, 2])),
    ("new_tensor-dtype", lambda m, a: a.new_tensor([[1.5]], dtype=m.int64)),
    ("full-float", lambda m, a: m.full((2, 3), 1.5)),
    ("full-int", lambda m, a: m.full((2,), 3)),
    ("full-bool", lambda m, a: m.full((2,), True)),
    ("full-dtype", lambda m, a: m.full((2,), 3, dtype=m.float64)),
    ("eye", lambda m, a: m.eye(3)),
    ("eye-rect", lambda m, a: m.eye(2, 4)),
    ("eye-int", lambda m, a: m.eye(3, dtype=m.int64)),
    ("eye-0", lambda m, a: m.eye(0)),
    ("linspace", lambda m, a: m.linspace(0, 1, 5)),
    ("linspace-odd", lambda m, a: m.linspace(-3.3, 7.1, 101)),
    ("linspace-many", lambda m, a: m.linspace(0.1, 1000.7, 1000)),
    ("linspace-f64", lambda m, a: m.linspace(-1, 1, 7, dtype=m.float64)),
    ("linspace-int", lambda m, a: m.linspace(0, 10, 4, dtype=m.int64)),
    ("linspace-1", lambda m, a: m.linspace(2, 5, 1)),
    ("linspace-0", lambda m, a: m.linspace(2, 5, 0)),
    ("linspace-down", lambda m, a: m.linspace(5, -5, 6)),
    ("logspace", lambda m, a: m.logspace(0, 2, 3)),
    ("logspace-base2", lambda m, a: m.logspace(-1, 4, 11, base=2)),
    ("logspace-int", lambda m, a: m.logspace(0, 3, 4, dtype=m.int64)),
    ("is_tensor", lambda m, a: (m.is_tensor(a), m.is_tensor(1.0), m.is_tensor(np.ones(2)))),
    (
        "is_floating_point",
        lambda m, a: (m.is_floating_point(a), m.is_floating_point(a.long()), a.half().is_floating_point()),
    ),
    ("numel", lambda m, a: (m.numel(a), a.numel(), m.numel(a[:0]))),
]


@pytest.mark.parametrize("case", FACTORIES, ids=[c[0] for c in FACTORIES])
def test_factories_match_torch(case, torch):
    _, fn = case
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ours, theirs = fn(fastnn, fastnn.tensor(a)), fn(torch, torch.tensor(a))
    if isinstance(theirs, torch.Tensor):
        exact = theirs.dtype not in (torch.float32, torch.float64) or "linspace" not in case[0]
        _same(ours, theirs, exact=exact)
    elif isinstance(theirs, (tuple, torch.Size)) and not isinstance(theirs, torch.Size):
        assert tuple(ours) == tuple(theirs)
    elif isinstance(theirs, torch.Size):
        assert tuple(ours) == tuple(theirs)
    elif isinstance(theirs, torch.dtype):
        assert str(np.dtype(ours)) == str(theirs).removeprefix("torch.")
    else:
        assert ours == theirs


def test_random_factories():
    a = fastnn.zeros(50, 40, dtype=fastnn.float64)
    fastnn.manual_seed(3)
    r = fastnn.rand_like(a)
    assert r.dtype == np.float64 and r.shape == (50, 40) and 0 <= r.min().item() and r.max().item() < 1
    n = fastnn.randn_like(a, dtype=fastnn.float32)
    assert n.dtype == np.float32 and abs(n.mean().item()) < 0.1 and abs(n.std().item() - 1) < 0.1
    i = fastnn.randint_like(a, 5)
    assert i.dtype == np.float64 and set(np.unique(i.numpy())) == {0.0, 1.0, 2.0, 3.0, 4.0}
    j = fastnn.randint_like(a.long(), -2, 2)
    assert j.dtype == np.int64 and set(np.unique(j.numpy())) == {-2, -1, 0, 1}
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(fastnn.rand_like(a).numpy(), r.numpy())
    assert fastnn.rand_like(a, requires_grad=True).requires_grad
    with pytest.raises(NotImplementedError):
        fastnn.rand_like(a.long())
    with pytest.raises(RuntimeError):
        fastnn.randint_like(a, 3, 3)


def test_factories_refuse_out():
    with pytest.raises(TypeError):
        fastnn.full_like(fastnn.zeros(2), 1.0, out=fastnn.zeros(2))


# -- dtype conversions ----------------------------------------------------------------------------


def test_default_dtype_and_conversions(torch):
    assert fastnn.get_default_dtype() == fastnn.float32 and torch.get_default_dtype() == torch.float32
    a = np.array([[-1.7, 0.0, 2.5]], np.float32)
    for conv in ["double", "half", "int", "bool", "long", "float", "short", "byte", "char"]:
        ours, theirs = getattr(fastnn.tensor(a), conv)(), getattr(torch.tensor(a), conv)()
        if conv == "byte":  # torch wraps -1.7 to 255; NumPy's float -> uint8 cast is undefined there
            ours, theirs = ours[:, 1:], theirs[:, 1:]
        _same(ours, theirs)
    t, tt = fastnn.tensor(a), torch.tensor(a)
    assert t.type() == tt.type() == "torch.FloatTensor"
    assert t.long().type() == tt.long().type() == "torch.LongTensor"
    _same(t.type(fastnn.int32), tt.type(torch.int32))
    _same(t.type("torch.DoubleTensor"), tt.type("torch.DoubleTensor"))
    _same(t.type_as(fastnn.zeros(1, dtype=fastnn.float64)), tt.type_as(torch.zeros(1, dtype=torch.float64)))
    with pytest.raises(ValueError):
        t.type("torch.NoSuchTensor")
    # float to float conversions stay differentiable
    x = fastnn.tensor(a, requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.numpy().tolist() == [[2.0, 2.0, 2.0]]


# -- sampling ---------------------------------------------------------------------------------------
def test_multinomial():
    fastnn.manual_seed(0)
    w = fastnn.tensor([1.0, 0.0, 3.0])
    s = fastnn.multinomial(w, 4000, replacement=True)
    assert s.dtype == np.int64 and s.shape == (4000,)
    counts = np.bincount(s.numpy(), minlength=3)
    assert counts[1] == 0 and abs(counts[2] / 4000 - 0.75) < 0.03
    rows = fastnn.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 5.0, 1.0]])
    d = rows.multinomial(2)
    assert d.shape == (2, 2)
    for row, picks in zip(rows.numpy(), d.numpy()):
        assert len(set(picks)) == 2 and all(row[p] > 0 for p in picks)  # without replacement
    # weight-0 categories come last, once the others are drawn (as torch)
    assert fastnn.multinomial(fastnn.tensor([0.0, 1.0, 0.0]), 3).numpy().tolist() == [1, 0, 2]
    # without replacement: the first draw follows the weights, the second the rest
    firsts = fastnn.multinomial(fastnn.tensor([[1.0, 2.0, 7.0]] * 4000), 2)
    f = np.bincount(firsts[:, 0].numpy(), minlength=3) / 4000
    np.testing.assert_allclose(f, [0.1, 0.2, 0.7], atol=0.03)
    second_after_2 = firsts[:, 1].numpy()[firsts[:, 0].numpy() == 2]
    np.testing.assert_allclose(
        np.bincount(second_after_2, minlength=3)[:2] / second_after_2.size, [1 / 3, 2 / 3], atol=0.04
    )
    g = fastnn.Generator().manual_seed(7)
    first = fastnn.multinomial(w, 10, True, generator=g).numpy().copy()
    g.manual_seed(7)
    np.testing.assert_array_equal(fastnn.multinomial(w, 10, True, generator=g).numpy(), first)


MULTINOMIAL_ERRORS = [
    ("negative", lambda m: m.multinomial(m.tensor([-1.0, 1.0]), 1)),
    ("zero-sum", lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1)),
    ("too-many", lambda m: m.multinomial(m.tensor([1.0, 1.0]), 3)),
    ("int", lambda m: m.multinomial(m.tensor([1, 1]), 1)),
    ("3-d", lambda m: m.multinomial(m.ones(2, 2, 2), 1)),
    ("nan", lambda m: m.multinomial(m.tensor([math.nan, 1.0]), 1)),
]


@pytest.mark.parametrize("case", MULTINOMIAL_ERRORS, ids=[c[0] for c in MULTINOMIAL_ERRORS])
def test_multinomial_errors(case, torch):
    for m in (torch, fastnn):
        with pytest.raises(RuntimeError):
            case[1](m)


def test_bernoulli(torch):
    fastnn.manual_seed(1)
    p = fastnn.tensor([0.0, 1.0, 0.3] * 1000, requires_grad=True)
    b = fastnn.bernoulli(p)
    assert b.dtype == np.float32 and b.requires_grad
    v = b.detach().numpy().reshape(-1, 3)
    assert (v[:, 0] == 0).all() and (v[:, 1] == 1).all() and abs(v[:, 2].mean() - 0.3) < 0.05
    b.sum().backward()
    assert not p.grad.numpy().any()  # as torch: a zero gradient
    q = fastnn.zeros(3000, dtype=fastnn.float64).bernoulli(0.5)
    assert q.dtype == np.float64 and abs(q.mean().item() - 0.5) < 0.05
    for m in (torch, fastnn):
        with pytest.raises(RuntimeError):
            m.bernoulli(m.tensor([1.5]))
        with pytest.raises(NotImplementedError):
            m.bernoulli(m.ones(2, dtype=m.int64))
