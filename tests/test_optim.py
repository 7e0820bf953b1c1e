"""The fused optimizer kernels (ops.sgd_step / adam_step) and grad_norm: every ISA path against the
float64 reference and torch.optim over 5 steps, thread and ISA invariance, bad input. The
optimizer classes' parity with torch is tests/test_optim_layer.py."""

import functools
import math

import fastnn
import numpy as np
import pytest
from conftest import ISAS, num_threads, randn
from fastnn import _core, ops, ref
from fastnn.ref.rounding import U32
from test_cuda import _cupy

# Tile edges of the 4/8/16-float vector loops (1, 15, 16, 17), primes, an empty param, a large one;
# BIG adds one that makes the list long enough (> 2 * 2^15 elements) to be split over threads.
SHAPES = [(1,), (15,), (16,), (17,), (3, 5, 7), (0,), (13, 1), (20011,)]
BIG = SHAPES + [(70001,)]
STEPS = 5


def _torch():
    return pytest.importorskip("torch")


def _data(seed, steps=STEPS, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    return p0, grads


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.01, maximize=True),
    dict(lr=0.2, weight_decay=0.1, maximize=True),
    dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.02),
]
ADAM_CASES = [
    dict(),
    dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.05),
    dict(
        lr=0.01,
        beta1=0.8,
        beta2=0.9,
        eps=1e-6,
        maximize=True,
        amsgrad=True,
        decoupled_weight_decay=True,
        weight_decay=0.1,
    ),
    dict(lr=0.02, beta1=0.3, beta2=0.99, weight_decay=0.01, maximize=True),
]  # beta1 < 0.5: lerp's other form


def run_sgd(isa, kw, seed=0):
    """5 steps of ops.sgd_step (float32) and of ref.sgd_step on float64 state; returns the float32
    params, the float64 ones, and per element the sum over steps of the magnitudes of the operands
    of the update (|p| before and after, lr * (|g| + wd |p| + |buf| before and after)), which
    bounds the effect of each step's roundings."""
    p0, grads = _data(seed)
    mom = kw.get("momentum", 0.0)
    p, r = [a.copy() for a in p0], [a.astype(np.float64) for a in p0]
    buf, rbuf = [np.zeros_like(a) for a in p0], [np.zeros(a.shape) for a in p0]
    scale = [np.zeros(a.shape) for a in p0]
    for step, g in enumerate(grads):
        old, oldb = [a.copy() for a in r], [a.copy() for a in rbuf]
        _core.sgd_step(p, g, buf if mom else None, first_step=step == 0, isa=isa, **kw)
        ref.sgd_step(r, g, rbuf if mom else None, first_step=step == 0, **kw)
        for i in range(len(p)):
            scale[i] += (
                np.abs(old[i])
                + np.abs(r[i])
                + kw["lr"]
                * (np.abs(g[i]) + kw.get("weight_decay", 0.0) * np.abs(old[i]) + np.abs(oldb[i]) + np.abs(rbuf[i]))
            )
    return p, r, scale


def run_adam(isa, kw, seed=1):
    """As run_sgd for Adam; the operand magnitudes of a step are |p| before and after and lr times
    a bound on |m_hat| / (sqrt(v_hat) + eps) (4: |m_hat| / sqrt(v_hat) <= (1 - b1) / sqrt(1 - b2)
    per step's gradient share, a few for these betas)."""
    p0, grads = _data(seed)
    ams = kw.get("amsgrad", False)
    p, r = [a.copy() for a in p0], [a.astype(np.float64) for a in p0]
    st = [[np.zeros_like(a) for a in p0] for _ in range(3)]
    rst = [[np.zeros(a.shape) for a in p0] for _ in range(3)]
    scale = [np.zeros(a.shape) for a in p0]
    lr = kw.get("lr", 1e-3)
    for step, g in enumerate(grads, 1):
        old = [a.copy() for a in r]
        _core.adam_step(p, g, st[0], st[1], step, max_exp_avg_sqs=st[2] if ams else None, isa=isa, **kw)
        ref.adam_step(r, g, rst[0], rst[1], step, max_exp_avg_sqs=rst[2] if ams else None, **kw)
        for i in range(len(p)):
            scale[i] += np.abs(old[i]) + np.abs(r[i]) + 4 * lr
    return p, r, scale


def torch_steps(kind, kw, seed):
    """The same 5 steps with torch.optim (single-tensor path, its CPU default), from the same data
    (computed once per case, shared by the ISAs)."""
    _torch()
    return _torch_steps(kind, tuple(sorted(kw.items())), seed)


@functools.cache
def _torch_steps(kind, kw, seed):
    import torch

    kw = dict(kw)
    p0, grads = _data(seed)
    tp = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in p0]
    if kind == "sgd":
        opt = torch.optim.SGD(tp, foreach=False, **kw)
    else:
        kw = dict(kw)
        cls = torch.optim.AdamW if kw.pop("decoupled_weight_decay", False) else torch.optim.Adam
        kw["betas"] = (kw.pop("beta1", 0.9), kw.pop("beta2", 0.999))
        opt = cls(tp, foreach=False, **kw)
        if cls is torch.optim.AdamW and "weight_decay" not in kw:
            opt.param_groups[0]["weight_decay"] = 0.0
    for g in grads:
        for t, a in zip(tp, g):
            t.grad = torch.from_numpy(a.copy())
        opt.step()
    return [t.detach().numpy() for t in tp]


def assert_within(actual, desired, scale, c, why):
    for a, d, s in zip(actual, desired, scale):
        err = np.abs(a.astype(np.float64) - d)
        bad = ~(err <= c * U32 * s)
        assert not bad.any(), f"{why}: {bad.sum()} elements off, worst {np.max(err / (U32 * s + 1e-300)):.2f} u*scale"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_against_reference(isa, kw):
    p, r, scale = run_sgd(isa, kw)
    # each step rounds d, buf and p once or twice (<= 0.5 ulp of its operands each); errors carry
    # over the steps at most 1:1, and scale sums the operand magnitudes of all steps
    assert_within(p, r, scale, 2.0, "sgd vs float64 reference")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_against_reference(isa, kw):
    p, r, scale = run_adam(isa, kw)
    # p's update: one rounding of p plus the few roundings (sqrt, divisions, lerp, addcmul) of a
    # step of size <= 4 lr, per step
    assert_within(p, r, scale, 2.0, "adam vs float64 reference")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_against_torch(isa, kw):
    torch = _torch()
    p, r, scale = run_sgd(isa, kw)
    t = torch_steps("sgd", kw, 0)
    if isa != "default" and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        # the same float32 operations with the same fused multiply-adds (csrc/ops/optim.h)
        for a, b in zip(p, t):
            np.testing.assert_array_equal(a, b)
    # both within the reference bound of the exact result
    assert_within(p, [b.astype(np.float64) for b in t], scale, 4.0, "sgd vs torch.optim.SGD")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_against_torch(isa, kw):
    p, r, scale = run_adam(isa, kw)
    t = torch_steps("adam", kw, 1)
    # torch's sqrt of large arrays is not always correctly rounded (<= 0.55 ulp), the rest is the
    # same operations: both within the reference bound of the exact result
    assert_within(p, [b.astype(np.float64) for b in t], scale, 4.0, "adam vs torch.optim.Adam")


def test_fma_units_identical():
    """AVX2 and AVX-512 run the same operations (explicit fma, no contraction): the same bits."""
    fma = [i for i in ISAS if i != "default"]
    if len(fma) < 2:
        pytest.skip("needs both the AVX2 and AVX-512 paths")
    for kw in SGD_CASES:
        a, b = run_sgd(fma[0], kw)[0], run_sgd(fma[1], kw)[0]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for kw in ADAM_CASES:
        a, b = run_adam(fma[0], kw)[0], run_adam(fma[1], kw)[0]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_first_step_and_state():
    """first_step fills the buffers with d; later steps use them; exp_avgs/exp_avg_sqs/max move."""
    p, g = [np.ones(3, np.float32)], [np.array([1, -2, 4], np.float32)]
    buf = [np.full(3, 7, np.float32)]
    ops.sgd_step(p, g, buf, 0.5, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(buf[0], g[0])
    np.testing.assert_array_equal(p[0], 1 - 0.5 * g[0])
    ops.sgd_step(p, g, buf, 0.5, momentum=0.5)
    np.testing.assert_array_equal(buf[0], 1.5 * g[0])
    m, v, vm = [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], [np.full(3, 100, np.float32)]
    p = [np.zeros(3, np.float32)]
    ops.adam_step(p, g, m, v, 1, lr=0.1, amsgrad=True, max_exp_avg_sqs=vm)
    np.testing.assert_allclose(m[0], 0.1 * g[0], rtol=1e-6)
    np.testing.assert_allclose(v[0], 0.001 * g[0] ** 2, rtol=1e-6)
    np.testing.assert_array_equal(vm[0], 100)  # the max of 100 and v
    # step 1 without amsgrad: m_hat / sqrt(v_hat) = sign(g), so p moves by -lr * sign(g)
    p2, m2, v2 = [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], [np.zeros(3, np.float32)]
    ops.adam_step(p2, g, m2, v2, 1, lr=0.1)
    np.testing.assert_allclose(p2[0], -0.1 * np.sign(g[0]), rtol=1e-6)


def test_nan_propagates():
    p, g = [np.zeros(20, np.float32)], [np.zeros(20, np.float32)]
    g[0][3] = np.nan
    m, v, vm = (np.zeros_like(p[0]) for _ in range(3))
    ops.adam_step(p, g, [m], [v], 1, amsgrad=True, max_exp_avg_sqs=[vm])
    assert np.isnan(p[0][3]) and np.isnan(vm[3]) and not np.isnan(np.delete(p[0], 3)).any()


def test_weight_decay_zero_leaves_inf_params():
    """weight_decay == 0 adds no term (0 * inf would be NaN), as torch skips it."""
    p, g = [np.array([np.inf, 1.0], np.float32)], [np.ones(2, np.float32)]
    ops.sgd_step(p, g, None, 0.1)
    assert p[0][0] == np.inf


def test_thread_counts_bit_identical():
    res = []
    for n in (1, 2, 3):
        p0, (g, g2) = _data(2, 2, BIG)
        p, buf = [a.copy() for a in p0], [np.zeros_like(a) for a in p0]
        m, v = [np.zeros_like(a) for a in p0], [np.zeros_like(a) for a in p0]
        with num_threads(n):
            ops.sgd_step(p, g, buf, 0.1, momentum=0.9, first_step=True)
            ops.sgd_step(p, g2, buf, 0.1, momentum=0.9, nesterov=True)
            ops.adam_step(p, g, m, v, 1)
            norms = [ops.grad_norm(g + g2, t) for t in (2.0, 1.0, math.inf, 3.0)]
        res.append((p + buf + m + v, norms))
    for arrays, norms in res[1:]:
        for a, b in zip(res[0][0], arrays):
            np.testing.assert_array_equal(a, b)
        assert norms == res[0][1]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 0.5])
def test_grad_norm_against_reference(isa, norm_type):
    p0, (g,) = _data(3, 1)
    g = [a * 10 for a in g]
    got, want = _core.grad_norm(g, norm_type, isa=isa), ref.grad_norm(g, norm_type)
    # float64 sums of ~70k positive float64-exact terms: relative error ~1e-16 * log-ish growth
    assert got == pytest.approx(want, rel=1e-12)
    assert isinstance(got, float)


def test_grad_norm_isa_independent_and_edges():
    _, (g,) = _data(4, 1)
    for t in (2.0, 1.0, math.inf):
        assert len({_core.grad_norm(g, t, isa=i) for i in ISAS}) == 1
    assert ops.grad_norm([]) == 0.0
    assert ops.grad_norm([np.zeros(0, np.float32), np.zeros((3, 0), np.float32)], math.inf) == 0.0
    assert ops.grad_norm([np.array([3, 4], np.float32)]) == 5.0
    assert ops.grad_norm([np.array([3, -4], np.float32)], 1) == 7.0
    assert ops.grad_norm([np.array([3, -4], np.float32)], "inf") == 4.0
    big = np.full(20000, 3e38, np.float32)  # float32 sums would overflow; float64 does not
    assert ops.grad_norm([big]) == pytest.approx(float(big[0]) * math.sqrt(20000), rel=1e-12)
    for t in (2.0, 1.0, math.inf):
        x = np.ones(100, np.float32)
        x[57] = np.nan
        assert math.isnan(ops.grad_norm([np.ones(3, np.float32), x], t))
        x[57] = np.inf
        assert ops.grad_norm([x], t) == math.inf


def test_grad_norm_against_torch():
    torch = _torch()
    _, (g,) = _data(5, 1, BIG)
    for t in (2.0, 1.0, math.inf):
        # (torch refuses the inf-norm of an empty tensor)
        want = float(torch.nn.utils.get_total_norm([torch.from_numpy(a) for a in g if a.size], t))
        # torch accumulates in float32: over these ~90k terms its relative error was 1.8e-6 (1-norm)
        assert ops.grad_norm(g, t) == pytest.approx(want, rel=1e-5)


def test_list_elements_named_past_one_digit_every_backend(backend):
    """Each element's name, "<list>[i]", for indices of two digits too, on every device."""
    P = backend.put
    ps = [P(np.zeros(2, np.float32)) for _ in range(12)]
    gs = [P(np.zeros(3 if i == 11 else 2, np.float32)) for i in range(12)]
    with pytest.raises(ValueError) as e:
        ops.sgd_step(ps, gs, None, 0.1)
    assert str(e.value) == "fastnn.ops.sgd_step: expected grads[11] of params[11]'s shape (2,), got (3,)"
    gs, ms, vs = [[P(np.zeros(2, np.float32)) for _ in range(12)] for _ in range(3)]
    vmax = [P(np.zeros(2, np.float64 if i == 10 else np.float32)) for i in range(12)]
    with pytest.raises(TypeError) as e:
        ops.adam_step(ps, gs, ms, vs, 1, amsgrad=True, max_exp_avg_sqs=tuple(vmax))
    assert str(e.value) == "fastnn.ops.adam_step: expected max_exp_avg_sqs[10] to be float32, got float64"


def test_bad_input():
    p0, (g,) = _data(6, 1)
    p, buf = [a.copy() for a in p0], [np.zeros_like(a) for a in p0]
    with pytest.raises(ValueError, match="sgd_step.*grads to hold"):
        ops.sgd_step(p, g[:-1], buf, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="sgd_step.*momentum_buffers to hold"):
        ops.sgd_step(p, g, buf[:-1], 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"sgd_step.*grads\[1\] of params\[1\]'s shape"):
        ops.sgd_step(p, [g[0], g[2]] + g[2:], buf, 0.1)
    with pytest.raises(TypeError, match=r"sgd_step.*params\[0\] to be float32, got float64"):
        ops.sgd_step([p[0].astype(np.float64)] + p[1:], g, buf, 0.1)
    with pytest.raises(TypeError, match=r"sgd_step.*grads\[2\] to be a numpy.ndarray"):
        ops.sgd_step(p, g[:2] + [[1.0] * 16] + g[3:], buf, 0.1)
    with pytest.raises(TypeError, match="sgd_step.*list"):
        ops.sgd_step(p[0], g[0], buf[0], 0.1)
    with pytest.raises(ValueError, match=r"sgd_step.*params\[4\] to be C-contiguous"):
        ops.sgd_step(p[:4] + [np.zeros((7, 5, 3), np.float32).transpose(2, 1, 0)] + p[5:], g, buf, 0.1)
    ro = p[1].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"sgd_step.*params\[1\] to be writeable"):
        ops.sgd_step([p[0], ro] + p[2:], g, buf, 0.1)
    rob = buf[2].copy()
    rob.flags.writeable = False
    with pytest.raises(ValueError, match=r"sgd_step.*momentum_buffers\[2\] to be writeable"):
        ops.sgd_step(p, g, buf[:2] + [rob] + buf[3:], 0.1, momentum=0.9)
    gro = [a.copy() for a in g]
    for a in gro:
        a.flags.writeable = False
    ops.sgd_step(p, gro, None, 0.1)  # read-only grads are fine
    with pytest.raises(ValueError, match="sgd_step.*share memory"):
        ops.sgd_step(p, p, buf, 0.1)
    with pytest.raises(
        ValueError, match=r"sgd_step.*momentum_buffers\[0\].*params\[0\]|params\[0\].*momentum_buffers\[0\]"
    ):
        ops.sgd_step(p, g, [p[0]] + buf[1:], 0.1, momentum=0.9)
    # arrays of different params: one buffer holding params[2] and params[7] side by side is fine,
    # overlapping by one float is not
    base = np.zeros(16 + 20011, np.float32)
    ops.sgd_step(p[:2] + [base[:16]] + p[3:7] + [base[16:]], g, None, 0.1)
    with pytest.raises(ValueError, match=r"sgd_step.*params\[7\] not to share memory with params\[2\]"):
        ops.sgd_step(p[:2] + [base[1:17]] + p[3:7] + [base[16:]], g, None, 0.1)
    shared = [a.copy() for a in g]
    shared[3] = g[3]
    ops.sgd_step(p, [g[3] if i == 3 else a for i, a in enumerate(g)], None, 0.1)  # grads may share
    with pytest.raises(ValueError, match="sgd_step.*Nesterov"):
        ops.sgd_step(p, g, buf, 0.1, nesterov=True)
    with pytest.raises(ValueError, match="sgd_step.*Nesterov"):
        ops.sgd_step(p, g, buf, 0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="sgd_step.*momentum_buffers"):
        ops.sgd_step(p, g, None, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="isa"):
        _core.sgd_step(p, g, None, 0.1, isa="sse9")
    m, v = [np.zeros_like(a) for a in p0], [np.zeros_like(a) for a in p0]
    with pytest.raises(ValueError, match="adam_step.*step >= 1"):
        ops.adam_step(p, g, m, v, 0)
    with pytest.raises(ValueError, match="adam_step.*max_exp_avg_sqs"):
        ops.adam_step(p, g, m, v, 1, amsgrad=True)
    with pytest.raises(ValueError, match="adam_step.*exp_avgs and exp_avg_sqs"):
        ops.adam_step(p, g, None, v, 1)
    with pytest.raises(ValueError, match=r"adam_step.*exp_avg_sqs\[0\].*exp_avgs\[0\]|exp_avgs\[0\].*exp_avg_sqs\[0\]"):
        ops.adam_step(p, g, m, [m[0]] + v[1:], 1)
    with pytest.raises(ValueError, match=r"adam_step.*exp_avgs\[4\] of params\[4\]'s shape"):
        ops.adam_step(p, g, m[:4] + [m[4].reshape(-1)] + m[5:], v, 1)
    with pytest.raises(ValueError, match="grad_norm.*norm_type"):
        ops.grad_norm(g, 0.0)
    with pytest.raises(ValueError, match="grad_norm.*norm_type"):
        ops.grad_norm(g, -math.inf)
    with pytest.raises(TypeError, match=r"grad_norm.*arrays\[0\] to be float32"):
        ops.grad_norm([np.ones(3)])
    # norm_type as float() reads it (a number or "inf"); what it cannot read names the op (was
    # float()'s own message; found by the fuzz suite, tests/fuzz)
    assert ops.grad_norm(g, "inf") == ops.grad_norm(g, math.inf)
    with pytest.raises(TypeError, match="^fastnn.ops.adam_step: expected step to be an int, got bool"):
        ops.adam_step(p, g, m, v, True)  # was taken as step 1 (found by the fuzz suite)
    with pytest.raises(ValueError, match="^fastnn.ops.grad_norm: expected norm_type to be a number, got str 'a'"):
        ops.grad_norm(g, "a")
    with pytest.raises(TypeError, match="^fastnn.ops.grad_norm: expected norm_type to be a number, got NoneType"):
        ops.grad_norm(g, None)


# ---------------------------------------------------------------------------------------------
# On the emulated device and a GPU (from test_cuda_emu.py, test_cuda_norm.py and
# test_cuda_emu_norm.py): the updates bit for bit against the CPU, grad_norm against the CPU and
# the reference.


# The tensors of one update (one launch each): several 256-thread blocks, none (empty: no
# launch), part of one block.
OPTIM_SIZES = (1000, 0, 37)
EPS53 = 2.0**-53  # float64 unit roundoff


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


# (M, N, K): one element, K below the 16-deep tile, the 64x64 tile exactly and +-1 around it,
# primes, an empty product (K = 0: out = beta c + bias).
SGD_OPTIONS = [
    dict(),
    dict(momentum=0.9, first_step=True),
    dict(momentum=0.9, dampening=0.1, weight_decay=1e-2),
    dict(momentum=0.9, nesterov=True, maximize=True),
]


ADAM_OPTIONS = [
    dict(),
    dict(weight_decay=1e-2),
    dict(weight_decay=1e-2, decoupled=True),
    dict(amsgrad=True, maximize=True),
    dict(beta1=0.3),
]


@pytest.mark.parametrize("kw", SGD_OPTIONS, ids=str)
def test_sgd_step(rng, order, dev, kw):
    """The CUDA update against the AVX-512 one (the same fused multiply-adds): the same bits."""
    if "avx512" not in fastnn._core.build_info()["isa_supported"]:
        pytest.skip("the bit-for-bit peer is the AVX-512 update")
    p, g, buf = ([randn(rng, n) for n in OPTIM_SIZES] for _ in range(3))
    cp, cbuf = [a.copy() for a in p], [a.copy() for a in buf]
    args = dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False, first_step=False)
    args.update(kw)
    dev.sgd_step(p, g, buf if args["momentum"] else None, *args.values())
    fastnn._core.sgd_step(cp, g, cbuf if args["momentum"] else None, *args.values(), isa="avx512")
    for got, want in zip(p + buf, cp + cbuf):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kw", ADAM_OPTIONS, ids=str)
def test_adam_step(rng, order, dev, kw):
    """Against the AVX-512 update: the same bits (it and CUDA both divide and take sqrt IEEE)."""
    if "avx512" not in fastnn._core.build_info()["isa_supported"]:
        pytest.skip("the bit-for-bit peer is the AVX-512 update")
    sizes = (777,) + OPTIM_SIZES[1:]
    p, g = [randn(rng, n) for n in sizes], [randn(rng, n) for n in sizes]
    m, v = [randn(rng, n) * np.float32(0.1) for n in sizes], [np.abs(randn(rng, n)) * np.float32(0.01) for n in sizes]
    vmax = [np.abs(randn(rng, n)) * np.float32(0.01) for n in sizes]
    ams = kw.get("amsgrad", False)
    args = dict(lr=1e-2, beta1=kw.get("beta1", 0.9), beta2=0.999, eps=1e-8, weight_decay=kw.get("weight_decay", 0.0))
    c = [[a.copy() for a in lst] for lst in (p, m, v, vmax)]
    flags = (kw.get("decoupled", False), kw.get("maximize", False))
    dev.adam_step(p, g, m, v, 3, *args.values(), ams, vmax if ams else None, *flags)
    fastnn._core.adam_step(c[0], g, c[1], c[2], 3, *args.values(), ams, c[3] if ams else None, *flags, isa="avx512")
    for got, want in zip(p + m + v + vmax, sum(c, [])):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_emulated_grad_norm_matches_cpu(rng, emulated_gpu, p):
    cp = emulated_gpu
    arrays = [randn(rng, *s) for s in ((3,), (4097,), (0,), (5, 7))]
    got = ops.grad_norm([cp.asarray(a) for a in arrays], p)
    assert isinstance(got, float)
    # float64 sums of < 5000 terms in a different order: far below 1e-13 relative
    assert got == pytest.approx(ops.grad_norm(arrays, p), rel=1e-13)
    assert ops.grad_norm((cp.asarray(np.zeros(4, np.float32)),), str(p)) == 0.0


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_gpu_grad_norm_matches_cpu(rng, p):
    cp = _cupy()
    # 5M elements: more than 1024 blocks of 4096, so the capped grid strides further
    arrays = [randn(rng, *s) for s in ((3,), (4097,), (0,), (5, 7), (5_000_001,))]
    dev = [cp.asarray(a) for a in arrays]
    got = ops.grad_norm(dev, p)
    assert isinstance(got, float) and got == ops.grad_norm(dev, p)  # deterministic
    # float64 sums of 5M terms in two different orders: ~1e-12 relative at worst (depth ~ 1e3 adds)
    assert got == pytest.approx(ops.grad_norm(arrays, p), rel=1e-12)


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


def test_gpu_optimizer_steps_match_cpu(rng):
    cp = _cupy()
    p, g, buf = randn(rng, 100), randn(rng, 100), randn(rng, 100)
    gp, gbuf = cp.asarray(p), cp.asarray(buf)
    ops.sgd_step([p], [g], [buf], 0.1, momentum=0.9, nesterov=True)
    ops.sgd_step([gp], [cp.asarray(g)], [gbuf], 0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(cp.asnumpy(gp), p, rtol=1e-6, atol=1e-7)
    m, v = np.zeros(100, np.float32), np.zeros(100, np.float32)
    gm, gv = cp.asarray(m), cp.asarray(v)
    ops.adam_step([p], [g], [m], [v], 1, weight_decay=0.01, decoupled_weight_decay=True)
    ops.adam_step([gp], [cp.asarray(g)], [gm], [gv], 1, weight_decay=0.01, decoupled_weight_decay=True)
    np.testing.assert_allclose(cp.asnumpy(gp), p, rtol=1e-6, atol=1e-7)
