"""Helpers for the tests that hold fastnn.nn to torch.nn: modules built from the same weights,
forward and gradients compared, error types compared, and float64 finite differences."""

import numpy as np
import pytest
from fastnn import Tensor

FWD_RTOL = 1e-6  # float32 forward, relative (plus the same fraction of the output's scale)
GRAD_RTOL = 1e-5  # float32 gradients


def torch_or_skip():
    return pytest.importorskip("torch")


def scale(b):
    finite = np.abs(b)[np.isfinite(b)]
    return max(float(finite.max()), 1e-30) if finite.size else 1.0


def assert_close(a, b, rtol, what=""):
    """Elementwise within rtol relative, plus rtol of the reference's largest magnitude (for the
    elements near zero, where a relative bound means nothing)."""
    a = np.asarray(a.data if isinstance(a, Tensor) else a)
    b = np.asarray(b.detach().numpy() if hasattr(b, "detach") else b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale(b), err_msg=what)


def copy_from_torch(ours, theirs):
    """torch's parameters and buffers into ours (load_state_dict), after checking the keys match."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})


def run_both(torch, fn_ours, fn_theirs, arrays, grad=None, rng=None, fwd_rtol=FWD_RTOL, grad_rtol=GRAD_RTOL, what=""):
    """fn(*inputs) on fastnn tensors and torch tensors of the same float arrays; forward within
    fwd_rtol, then the gradients of sum(out * w) (w random) within grad_rtol. grad[i] False:
    input i gets no gradient (e.g. integer targets). Returns (ours, theirs) outputs."""
    rng = rng or np.random.default_rng(0)
    grad = grad or [np.asarray(a).dtype.kind == "f" for a in arrays]
    ts_o = [Tensor(np.array(a), requires_grad=g, dtype=np.asarray(a).dtype) for a, g in zip(arrays, grad)]
    ts_t = [torch.from_numpy(np.array(a)).requires_grad_(g) for a, g in zip(arrays, grad)]
    yo, yt = fn_ours(*ts_o), fn_theirs(*ts_t)
    assert_close(yo, yt, fwd_rtol, what + " forward")
    assert yo.dtype == np.dtype(str(yt.dtype).replace("torch.", "")), (what, yo.dtype, yt.dtype)
    if any(grad) and yt.requires_grad:
        w = rng.standard_normal(tuple(yt.shape)).astype(np.asarray(yo.data).dtype)
        (yo * Tensor(w, dtype=w.dtype)).sum().backward()
        (yt * torch.from_numpy(w)).sum().backward()
        for i, (to, tt) in enumerate(zip(ts_o, ts_t)):
            if grad[i]:
                assert to.grad is not None, (what, i)
                assert_close(to.grad, tt.grad, grad_rtol, f"{what} grad {i}")
    return yo, yt


def compare_params(ours, theirs, rtol=GRAD_RTOL, what=""):
    for (k, p), (k2, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert k == k2
        assert (p.grad is None) == (q.grad is None), (what, k)
        if p.grad is not None:
            assert_close(p.grad, q.grad, rtol, f"{what} {k}.grad")


def raises_like(fn_ours, fn_theirs, *args):
    """Both calls raise, and with the same exception type; returns (ours, theirs)."""
    with pytest.raises(Exception) as theirs:
        fn_theirs(*args)
    with pytest.raises(type(theirs.value)) as ours:
        fn_ours(*args)
    assert type(ours.value) is type(theirs.value) or isinstance(ours.value, type(theirs.value))
    return ours.value, theirs.value


def fd_check(f, arrays, rng, h=1e-6, rtol=1e-6, atol=1e-8, differentiable=None):
    """The float64 gradient of sum(f(*tensors) * w) through fastnn against central differences
    of the same function, for every element of each differentiable input. f must keep float64."""
    differentiable = differentiable or [True] * len(arrays)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def value(arrs, w=None):
        out = f(*[Tensor(a, dtype=np.float64) for a in arrs])
        assert out.dtype == np.float64, out.dtype  # the input's dtype is kept
        return out.data if w is None else float((out.data * w).sum())

    w = rng.standard_normal(np.shape(value(arrays)))
    ts = [Tensor(a.copy(), dtype=np.float64, requires_grad=d) for a, d in zip(arrays, differentiable)]
    out = f(*ts)
    (out * Tensor(w, dtype=np.float64)).sum().backward()
    for k, (t, a) in enumerate(zip(ts, arrays)):
        if not differentiable[k]:
            continue
        num = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            hi, lo = [x.copy() for x in arrays], [x.copy() for x in arrays]
            hi[k][i] += h
            lo[k][i] -= h
            num[i] = (value(hi, w) - value(lo, w)) / (2 * h)
        assert t.grad is not None, k
        np.testing.assert_allclose(t.grad.data, num, rtol=rtol, atol=atol, err_msg=f"input {k}")


def away_from(rng, shape, points, margin=1e-3, spread=3.0):
    """Random float64 values at least margin away from each of points (the kinks of a
    piecewise function), for finite differences."""
    a = rng.standard_normal(shape) * spread
    for p in points:
        near = np.abs(a - p) < margin
        a[near] += 4 * margin
    return a
