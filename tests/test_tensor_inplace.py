"""fastnn's in-place tensor ops against torch: results, gradients through in-place ops on
non-leaves, torch's errors on leaves that require grad and for casts, graphs that used a value
before an in-place op changed it, and the random fills (uniform_, normal_, bernoulli_)."""

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


# -- in-place ---------------------------------------------------------------------------------------
# (id, op(m, y, *others) applied in place to y, inputs: (values, dtype, requires_grad); y is the
# first input, made a non-leaf (y = x * 1) when it requires grad)
INPLACE = [
    ("add_", lambda m, y, b: y.add_(b), ((3, 4), "float32", True), ((4,), "float32", True)),
    ("add_-alpha", lambda m, y, b: y.add_(b, alpha=-2), ((3, 4), "float32", True), ((3, 4), "float32", True)),
    ("add_-scalar", lambda m, y: y.add_(2.5), ((3, 4), "float32", True)),
    ("sub_-alpha", lambda m, y, b: y.sub_(b, alpha=0.5), ((3, 4), "float32", True), ((1, 4), "float32", True)),
    ("mul_", lambda m, y, b: y.mul_(b), ((3, 4), "float32", True), ((4,), "float32", True)),
    ("mul_-f64", lambda m, y, b: y.mul_(b), ((3, 4), "float32", True), ((4,), "float64", True)),
    ("div_", lambda m, y, b: y.div_(b), ((3, 4), "float32", True), ((4,), "away", True)),
    (
        "div_-floor-int",
        lambda m, y, b: y.div_(b, rounding_mode="floor"),
        ((3, 4), "int64", False),
        ((4,), "int64", False),
    ),
    ("iadd", lambda m, y, b: y.__iadd__(b), ((3, 4), "float32", True), ((4,), "float32", True)),
    ("isub", lambda m, y, b: y.__isub__(b), ((3, 4), "float32", True), ((4,), "float32", True)),
    ("imul", lambda m, y, b: y.__imul__(b), ((3, 4), "float32", True), ((4,), "float32", True)),
    ("itruediv", lambda m, y, b: y.__itruediv__(b), ((3, 4), "float32", True), ((4,), "away", True)),
    ("ifloordiv-int", lambda m, y: y.__ifloordiv__(2), ((3, 4), "int64", False)),
    ("imod", lambda m, y: y.__imod__(1.5), ((3, 4), "float32", True)),
    ("ipow", lambda m, y: y.__ipow__(2), ((3, 4), "float32", True)),
    ("iand", lambda m, y, b: y.__iand__(b), ((3, 4), "bool", False), ((4,), "bool", False)),
    ("ior", lambda m, y, b: y.__ior__(b), ((3, 4), "bool", False), ((3, 4), "bool", False)),
    ("ixor-int", lambda m, y, b: y.__ixor__(b), ((3, 4), "int64", False), ((4,), "int64", False)),
    ("clamp_", lambda m, y: y.clamp_(-0.5, 0.5), ((3, 4), "float32", True)),
    ("clamp_-min", lambda m, y: y.clamp_(min=0.1), ((3, 4), "float32", True)),
    ("fill_", lambda m, y: y.fill_(2.5), ((3, 4), "float32", True)),
    ("fill_-tensor", lambda m, y, v: y.fill_(v), ((3, 4), "float32", True), ((), "float32", True)),
    ("fill_-int", lambda m, y: y.fill_(7), ((3, 4), "int64", False)),
    ("zero_", lambda m, y: y.zero_(), ((3, 4), "float32", True)),
    ("copy_", lambda m, y, b: y.copy_(b), ((3, 4), "float32", True), ((4,), "float32", True)),
    ("copy_-f64", lambda m, y, b: y.copy_(b), ((3, 4), "float32", True), ((3, 4), "float64", True)),
    ("copy_-int", lambda m, y, b: y.copy_(b), ((3, 4), "float32", False), ((3, 4), "int64", False)),
    ("masked_fill_", lambda m, y, c: y.masked_fill_(c, -1.0), ((3, 4), "float32", True), ((4,), "bool", False)),
    (
        "masked_fill_-tensor",
        lambda m, y, c, v: y.masked_fill_(c, v),
        ((3, 4), "float32", True),
        ((3, 4), "bool", False),
        ((), "float32", True),
    ),
    (
        "scatter_",
        lambda m, y, s: y.scatter_(1, m.tensor([[0, 2], [1, 3], [3, 0]]), s),
        ((3, 4), "float32", True),
        ((3, 2), "float32", True),
    ),
    ("scatter_-value", lambda m, y: y.scatter_(0, m.tensor([[2, 0, 1, 1]]), 9.0), ((3, 4), "float32", True)),
    (
        "scatter_add_",
        lambda m, y, s: y.scatter_add_(1, m.tensor([[0, 0], [1, 3], [3, 3]]), s),
        ((3, 4), "float32", True),
        ((3, 2), "float32", True),
    ),
    ("index_fill_", lambda m, y: y.index_fill_(1, m.tensor([0, 2]), 5.0), ((3, 4), "float32", True)),
    ("exp_", lambda m, y: y.exp_(), ((3, 4), "float32", True)),
    ("log_", lambda m, y: y.log_(), ((3, 4), "pos", True)),
    ("sqrt_", lambda m, y: y.sqrt_(), ((3, 4), "pos", True)),
    ("abs_", lambda m, y: y.abs_(), ((3, 4), "float32", True)),
    ("neg_", lambda m, y: y.neg_(), ((3, 4), "float32", True)),
    ("pow_", lambda m, y: y.pow_(3), ((3, 4), "float32", True)),
    ("pow_-tensor", lambda m, y, b: y.pow_(b), ((3, 4), "pos", True), ((4,), "float32", True)),
    ("sin_", lambda m, y: y.sin_(), ((3, 4), "float32", True)),
    ("sigmoid_", lambda m, y: y.sigmoid_(), ((3, 4), "float32", True)),
    ("relu_", lambda m, y: y.relu_(), ((3, 4), "float32", True)),
    ("lerp_", lambda m, y, b: y.lerp_(b, 0.25), ((3, 4), "float32", True), ((4,), "float32", True)),
    (
        "addcmul_",
        lambda m, y, b, c: y.addcmul_(b, c, value=2),
        ((3, 4), "float32", True),
        ((4,), "float32", True),
        ((3, 1), "float32", True),
    ),
    ("chain", lambda m, y, b: y.mul_(b).add_(1).clamp_(max=1.2).sqrt_(), ((3, 4), "pos", True), ((4,), "pos", True)),
]


def _inputs(specs, seed):
    rng = np.random.default_rng(seed)
    out = []
    for shape, kind, grad in specs:
        if kind == "bool":
            a = rng.random(shape) < 0.5
        elif kind == "int64":
            a = rng.integers(1, 9, shape)
        elif kind == "pos":
            a = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif kind == "away":
            a = (rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)).astype(np.float32)
        else:
            a = np.asarray(rng.standard_normal(shape)).astype(kind)
        out.append((np.asarray(a), grad))
    return out


def _run_inplace(m, fn, inputs, make_nonleaf):
    leaves = [
        m.tensor(a, dtype=getattr(m, str(a.dtype)) if m.__name__ == "torch" else a.dtype, requires_grad=g)
        for a, g in inputs
    ]
    y = leaves[0] * 1 if make_nonleaf and leaves[0].requires_grad else leaves[0]
    out = fn(m, y, *leaves[1:])
    assert out is y
    return leaves, y


@pytest.mark.parametrize("case", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_matches_torch(case, torch):
    name, fn, *specs = case
    inputs = _inputs(specs, len(name))
    lt, yt = _run_inplace(torch, fn, inputs, True)
    lo, yo = _run_inplace(fastnn, fn, inputs, True)
    _same(yo, yt, exact=False)
    if not yt.requires_grad:
        assert not yo.requires_grad
        return
    assert yo.requires_grad and not yo.is_leaf
    w = np.random.default_rng(0).standard_normal(tuple(yt.shape))
    (yt * torch.tensor(w, dtype=yt.dtype)).sum().backward()
    (yo * fastnn.tensor(w, dtype=yo.dtype)).sum().backward()
    for o, t in zip(lo, lt):
        if not t.requires_grad:
            continue
        if t.grad is None:
            assert o.grad is None or not o.grad.numpy().any()
            continue
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_without_graph_keeps_the_array(case):
    """Outside the graph the result is written into the tensor's own array (a view sees it)."""
    name, fn, *specs = case
    inputs = [(a, False) for a, _ in _inputs(specs, len(name))]
    leaves = [fastnn.tensor(a, dtype=a.dtype) for a, _ in inputs]
    y = leaves[0]
    view = y.view(-1)
    before = y._data
    expect = fn(fastnn, y.clone(), *leaves[1:])
    assert fn(fastnn, y, *leaves[1:]) is y
    assert y._data is before
    np.testing.assert_array_equal(view.numpy(), expect.numpy().reshape(-1))


LEAF_OPS = [
    lambda m, w: w.add_(1),
    lambda m, w: w.mul_(2),
    lambda m, w: w.zero_(),
    lambda m, w: w.fill_(1.0),
    lambda m, w: w.copy_(m.zeros(3)),
    lambda m, w: w.exp_(),
    lambda m, w: w.masked_fill_(m.ones(3, dtype=m.bool), 0.0),
    lambda m, w: w.clamp_(0, 1),
    lambda m, w: w.uniform_(),
    lambda m, w: w.normal_(),
    lambda m, w: w.bernoulli_(0.5),
    lambda m, w: w.__iadd__(1),
]


def test_inplace_on_a_leaf_that_requires_grad(torch):
    for m in (torch, fastnn):
        w = m.ones(3, requires_grad=True)
        for op in LEAF_OPS:
            with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
                op(m, w)
        with m.no_grad():  # parameter updates
            w.add_(1).mul_(2).clamp_(max=3.0)
            w.uniform_(0, 1)
            w.fill_(2.0)
        assert w.requires_grad and w.is_leaf and w.grad_fn is None
        np.testing.assert_array_equal(_np(w), [2.0, 2.0, 2.0])


CAST_OPS = [
    lambda m, i: i.add_(1.5),
    lambda m, i: i.mul_(m.ones(3)),
    lambda m, i: i.exp_(),
    lambda m, i: i.clamp_(0.5, 2.5),
    lambda m, i: i.__itruediv__(2),
]


def test_inplace_casting_rules(torch):
    for m in (torch, fastnn):
        i = m.ones(3, dtype=m.int64)
        for op in CAST_OPS:
            with pytest.raises(RuntimeError, match="can't be cast"):
                op(m, i)
        with pytest.raises(RuntimeError):  # the result would be larger than the tensor
            m.zeros(3).masked_fill_(m.ones(2, 3, dtype=m.bool), 1.0)
        with pytest.raises(RuntimeError):
            m.zeros(3).add_(m.ones(2, 3))
        with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
            m.ones(2, dtype=m.int64).pow_(-1)
        f = m.ones(3)
        f.mul_(m.full((3,), 2.0, dtype=m.float64))  # a float64 result into float32: allowed
        assert f.dtype == m.float32 and _np(f).tolist() == [2.0, 2.0, 2.0]


def test_inplace_after_use_in_the_graph(torch):
    """A graph that used a tensor's value before an in-place op: torch refuses it when it saved
    that value (fastnn refuses every such graph rather than compute a wrong gradient)."""
    for m in (torch, fastnn):
        x = m.ones(3, requires_grad=True)
        y = x * 2
        z = y * y  # saves y
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            (z + y).sum().backward()
    # a tensor used as a constant before it joined the graph by copy_: no gradient through that use
    x = fastnn.ones(3, requires_grad=True)
    buf = fastnn.zeros(3)
    early = x * buf
    buf.copy_(x * 3)
    (early.sum() + buf.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_inplace_on_a_numpy_scalar_result():
    t = fastnn.tensor(1.0) + 1  # 0-d results of NumPy arithmetic can be NumPy scalars
    t.add_(2).mul_(2)
    assert t.item() == 8.0 and t.dtype == np.float32


def test_random_fills_in_place():
    fastnn.manual_seed(0)
    a = fastnn.empty(1000).uniform_(2, 3)
    assert 2 <= a.min().item() and a.max().item() < 3
    b = fastnn.empty(2000, dtype=fastnn.float64).normal_(1.0, 0.5)
    assert b.dtype == np.float64 and abs(b.mean().item() - 1.0) < 0.05 and abs(b.std().item() - 0.5) < 0.05
    c = fastnn.zeros(4000).bernoulli_(0.25)
    assert set(np.unique(c.numpy())) <= {0.0, 1.0} and abs(c.mean().item() - 0.25) < 0.03
    p = fastnn.tensor([0.0, 1.0, 0.5])
    d = fastnn.zeros(2000, 3).bernoulli_(p)
    assert d[:, 0].sum().item() == 0 and d[:, 1].sum().item() == 2000 and abs(d[:, 2].mean().item() - 0.5) < 0.05
    g = fastnn.Generator().manual_seed(5)
    e1 = fastnn.zeros(5).uniform_(generator=g).numpy().copy()
    g.manual_seed(5)
    np.testing.assert_array_equal(fastnn.zeros(5).uniform_(generator=g).numpy(), e1)
