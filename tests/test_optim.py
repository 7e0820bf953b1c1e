"""The fused optimizer kernels (ops.sgd_step / adam_step) against the float64 reference, thread
invariance and bad input; the optimizer classes' parity with torch is tests/test_optim_layer.py."""
import numpy as np
import pytest

from fastnn import ops, ref
from conftest import num_threads

SHAPES = [(1,), (15,), (16,), (17,), (3, 5, 7), (0,), (40000,)]


def _lists(seed, k):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(k)]


def _close(a, b, steps):
    # float32 formulas against float64: a few roundings of |p| (and of lr * |d|) per step
    np.testing.assert_allclose(a, b, rtol=4e-7 * (steps + 1) * 4, atol=1e-7 * (steps + 1))


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
                                dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.01, maximize=True)])
def test_sgd_against_reference(kw):
    p, g, buf = _lists(0, 3)
    pr, br = [a.copy() for a in p], [a.copy() for a in buf]
    for step in range(3):
        first = step == 0
        ops.sgd_step(p, g, buf if kw.get("momentum") else None, first_step=first, **kw)
        ref.sgd_step(pr, g, br if kw.get("momentum") else None, first_step=first, **kw)
    for a, b in zip(p, pr):
        _close(a, b, 3)


@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1, amsgrad=True), dict(decoupled_weight_decay=True, weight_decay=0.05),
                                dict(lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6, maximize=True, amsgrad=True)])
def test_adam_against_reference(kw):
    p, g = _lists(1, 2)
    m, v, vm = [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p]
    pr, mr, vr, vmr = ([a.copy() for a in x] for x in (p, m, v, vm))
    for step in range(1, 4):
        ops.adam_step(p, g, m, v, step, max_exp_avg_sqs=vm if kw.get("amsgrad") else None, **kw)
        ref.adam_step(pr, g, mr, vr, step, max_exp_avg_sqs=vmr if kw.get("amsgrad") else None, **kw)
    for a, b in zip(p + m + v, pr + mr + vr):
        _close(a, b, 3)


def test_thread_counts_bit_identical():
    res = []
    for n in (1, 2, 3):
        p, g, buf = _lists(2, 3)
        m, v = [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p]
        with num_threads(n):
            ops.sgd_step(p, g, buf, 0.1, momentum=0.9, first_step=True)
            ops.adam_step(p, g, m, v, 1)
        res.append(p + buf + m + v)
    for other in res[1:]:
        for a, b in zip(res[0], other):
            np.testing.assert_array_equal(a, b)


def test_bad_input():
    p, g, buf = _lists(3, 3)
    with pytest.raises(ValueError, match="sgd_step.*grads to hold"):
        ops.sgd_step(p, g[:-1], buf, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"sgd_step.*grads\[1\] of params\[1\]'s shape"):
        ops.sgd_step(p, [g[0], g[2]] + g[2:], buf, 0.1)
    with pytest.raises(TypeError, match=r"sgd_step.*params\[0\]"):
        ops.sgd_step([p[0].astype(np.float64)] + p[1:], g, buf, 0.1)
    with pytest.raises(TypeError, match="list"):
        ops.sgd_step(p[0], g[0], buf[0], 0.1)
    ro = p[1].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ops.sgd_step([p[0], ro] + p[2:], g, buf, 0.1)
    with pytest.raises(ValueError, match="share memory"):
        ops.sgd_step(p, p, buf, 0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        ops.sgd_step(p, g, buf, 0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum_buffers"):
        ops.sgd_step(p, g, None, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="step >= 1"):
        ops.adam_step(p, g, buf, [a.copy() for a in buf], 0)
    with pytest.raises(ValueError, match="max_exp_avg_sqs"):
        ops.adam_step(p, g, buf, [a.copy() for a in buf], 1, amsgrad=True)
