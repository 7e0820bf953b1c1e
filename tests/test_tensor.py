"""fastnn.Tensor: autograd of each op against float64 finite differences, broadcasting, modes."""

import fastnn
import numpy as np
import pytest
from fastnn import Tensor


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f(x) (float64 x) with respect to every element of x."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f(x)
        x[i] = old - eps
        fm = f(x)
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def check(fn, *shapes, seed=0, positive=False, kernels=False):
    """fn(*tensors) -> tensor; d sum(fn * w) / d inputs by autograd (float32 tensors) against
    central differences of the same expression on float64 tensors (NumPy arithmetic). kernels:
    fn calls float32-only kernels, so the differences are taken in float32 with a larger step."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    if positive:
        xs = [np.abs(x) + 0.5 for x in xs]
    ts = [Tensor(x.astype(np.float32), requires_grad=True) for x in xs]
    out = fn(*ts)
    w = rng.standard_normal(out.shape).astype(np.float32)
    (out * Tensor(w)).sum().backward()
    for k, x in enumerate(xs):
        dt = np.float32 if kernels else np.float64

        def f(v, k=k, dt=dt):
            args = [Tensor(v if j == k else xs[j], dtype=dt) for j in range(len(xs))]
            return float((fn(*args)._data.astype(np.float64) * w).sum())

        num = numeric_grad(f, x.copy(), eps=1e-2 if kernels else 1e-6)
        # float32 autograd against float64 differences: a few float32 ulps of the values
        # involved; float32 differences with step 1e-2: truncation error O(step^2) ~ 1e-4 relative
        tol = 2e-2 if kernels else 2e-3
        np.testing.assert_allclose(ts[k].grad._data, num, rtol=tol, atol=tol)


def test_arithmetic_with_broadcasting():
    check(lambda a, b: a + b, (3, 4), (4,))
    check(lambda a, b: a - b, (2, 3, 4), (3, 1))
    check(lambda a, b: a * b, (3, 4), (1, 4))
    check(lambda a, b: a / b, (3, 4), (3, 4), positive=True)
    check(lambda a: -a * 2.0 + 1.0 - a / 3.0, (5,))
    check(lambda a: 3.0 / a, (4,), positive=True)
    check(lambda a: a**3, (2, 3))
    check(lambda a, b: a**b, (2, 3), (3,), positive=True)
    check(lambda a: (-a) ** fastnn.tensor(2.0, dtype=a.dtype), (4,))  # negative base, integer power


def test_matmul_and_shapes():
    check(lambda a, b: a @ b, (3, 5), (5, 4))
    check(lambda a, b: a @ b, (2, 3, 5), (5, 4))
    check(lambda a: a.t() @ a, (4, 3))
    check(lambda a: a.reshape(6, 2).T.flatten(), (3, 4))
    check(lambda a: a.permute(2, 0, 1).unsqueeze(1).squeeze(1), (2, 3, 4))


def test_reductions_and_indexing():
    check(lambda a: a.sum(), (3, 4))
    check(lambda a: a.sum(dim=1, keepdim=True) * a, (3, 4))
    check(lambda a: a.mean(dim=(0, 2)), (2, 3, 4))
    check(lambda a: a.max(dim=1)[0], (4, 5))
    check(lambda a: a[1:, ::2], (4, 5))
    check(lambda a: a[np.array([0, 2, 2])], (4, 3))  # repeated rows: gradients add
    check(lambda a, b: fastnn.cat([a, b], dim=1), (2, 3), (2, 2))
    check(lambda a, b: fastnn.stack([a, b]), (2, 3), (2, 3))


def test_elementwise_functions():
    check(lambda a: a.exp(), (3, 4))
    check(lambda a: a.log(), (3, 4), positive=True)
    check(lambda a: a.sqrt(), (3, 4), positive=True)
    check(lambda a: a.sigmoid() + a.tanh(), (3, 4), kernels=True)
    check(lambda a: a.relu(), (3, 4), seed=3, kernels=True)
    check(lambda a: a.softmax(1) * a.log_softmax(0), (3, 4))


def test_gradients_accumulate_and_graph_is_freed():
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    (a * 2).sum().backward()
    (a * 3).sum().backward()
    np.testing.assert_array_equal(a.grad._data, [5, 5, 5])
    y = (a * a).sum()
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()  # the graph was freed
    z = (a * a).sum()
    z.backward(retain_graph=True)
    z.backward()


def test_shared_gradient_arrays_are_not_aliased():
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    b = Tensor(np.ones(3, np.float32), requires_grad=True)
    (a + b).sum().backward()
    a.grad._data *= 10
    np.testing.assert_array_equal(b.grad._data, [1, 1, 1])


def test_no_grad_detach_and_errors():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    with fastnn.no_grad():
        b = a * 2
    assert not b.requires_grad and b.grad_fn is None
    assert not a.detach().requires_grad
    with pytest.raises(RuntimeError, match="numpy"):
        a.numpy()
    with pytest.raises(RuntimeError, match="scalar"):
        (a * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2, np.float32)).sum().backward()

    @fastnn.no_grad()
    def f(x):
        return x * 3

    assert not f(a).requires_grad


def test_dtype_conversion_keeps_the_graph():
    a = Tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    b = a.to(fastnn.float64) * 2
    assert b.dtype == np.float64
    b.sum().backward()
    np.testing.assert_array_equal(a.grad._data, [2, 2, 2])
    assert a.grad.dtype == np.float32
    assert not a.to(fastnn.int64).requires_grad


def test_float64_leaves_get_float64_gradients():
    x = fastnn.tensor([1.0, 2.0], dtype=fastnn.float64, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.dtype == np.float64


def test_construction_and_conversion():
    fastnn.manual_seed(1)
    r1 = fastnn.randn(2, 3).numpy().copy()
    fastnn.manual_seed(1)
    np.testing.assert_array_equal(fastnn.randn(2, 3).numpy(), r1)
    t = fastnn.tensor([[1, 2], [3, 4]])
    assert t.dtype == np.int64 and t.shape == (2, 2) and t.sum().item() == 10
    assert fastnn.tensor([1.5]).dtype == np.float32
    assert fastnn.zeros(2, 3).shape == (2, 3) and fastnn.ones((4,)).sum().item() == 4
    assert (fastnn.arange(5) == fastnn.tensor([0, 1, 2, 3, 4])).sum().item() == 5
    assert float(fastnn.tensor(2.5)) == 2.5
