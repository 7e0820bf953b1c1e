"""Fused scaled dot-product attention: every ISA path against the float64 reference (lengths
around the 64-query / 64-key tiles, L != S both ways, odd head dims, every mask kind, causal),
the reference backward against finite differences, torch parity, thread invariance, bad input.

Also, folded here from the device test files: the cuda attention (from test_cuda_attention.py); on the emulated device (from test_cuda_emu_attention.py)."""

import numpy as np
import pytest
from conftest import ISAS, compute_sanitizer, num_threads, randn, refusal
from fastnn import _core, cuda, ops, ref
from fastnn.ref.attention import _probs
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray

FWD, BWD = _core.scaled_dot_product_attention_forward, _core.scaled_dot_product_attention_backward


def _qkv(rng, B, NH, L, S, D, DV):
    return randn(rng, B, NH, L, D), randn(rng, B, NH, S, D), randn(rng, B, NH, S, DV)


def _check(isa, q, k, v, mask=None, causal=False, scale=None, rng=None):
    """Forward and backward of one ISA against the reference, with error bounds built from the
    magnitudes of the terms each result sums (float64, from the reference's probabilities)."""
    out, lse = FWD(q, k, v, mask, causal, scale, isa=isa)
    dout = randn(rng, *out.shape)
    dq, dk, dv = BWD(dout, q, k, v, out, lse, mask, causal, scale, isa=isa)
    ro, rl = ref.scaled_dot_product_attention_forward(q, k, v, mask, causal, scale)
    rdq, rdk, rdv = ref.scaled_dot_product_attention_backward(dout, q, k, v, ro, rl, mask, causal, scale)
    p, _, sc = _probs(q, k, mask, causal, scale)
    D, DV = q.shape[-1], v.shape[-1]
    f = lambda a: np.abs(a.astype(np.float64))
    T = lambda a: np.swapaxes(a, -1, -2)
    # a score is a float32 dot of D terms: |error| <= D eps scale sum_d |q_d k_d|; a probability
    # moves by about twice that (its own score and the log-sum-exp); sums of S or L terms and the
    # D- or DV-term dots of the backward add their own roundings
    s_err = D * EPS32 * abs(sc) * (f(q) @ T(f(k))).max(initial=0)
    t = 4 * s_err + (D + DV + 64) * EPS32
    assert np.array_equal(np.isneginf(lse), np.isneginf(rl))
    fin = np.isfinite(rl)
    np.testing.assert_array_less(np.abs(lse[fin] - rl[fin]), 2 * s_err + 8 * EPS32 * (np.abs(rl[fin]) + 1))
    np.testing.assert_array_less(np.abs(out - ro), t * (p @ f(v)) + 1e-30)
    np.testing.assert_array_less(np.abs(dv - rdv), t * (T(p) @ f(dout)) + 1e-30)
    a = p * (f(dout) @ T(f(v)) + np.abs((dout.astype(np.float64) * ro).sum(-1, keepdims=True)))
    np.testing.assert_array_less(np.abs(dq - rdq), t * abs(sc) * (a @ f(k)) + 1e-30)
    np.testing.assert_array_less(np.abs(dk - rdk), t * abs(sc) * (T(a) @ f(q)) + 1e-30)
    return out, lse, (dq, dk, dv)


# (B, NH, L, S, HD, DV): L = 1, tile edges (64 +- 1, 128 +- 1), L < S, L > S, odd head dims.
# The AVX2 products are 6-row x 16-column register blocks (1-6 rows, 1 or 2 vectors, the last one
# masked): head dims 7, 33 (1 or 1 + 16 k columns: a masked single vector), 45 and 13 (a masked
# second vector), last key blocks of 1, 29 (4 x 6 + 5 rows) and 37 keys; its 8 x 8 transposes
# meet query blocks and head dims that are not multiples of 8.
SHAPES = [
    (2, 3, 1, 1, 16, 16),
    (1, 2, 1, 70, 32, 32),
    (2, 1, 63, 65, 64, 64),
    (1, 2, 65, 129, 80, 80),
    (1, 1, 130, 37, 7, 7),
    (1, 2, 64, 64, 16, 16),
    (1, 1, 100, 127, 64, 24),
    (1, 1, 129, 200, 32, 33),
    (1, 2, 67, 93, 45, 13),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_against_reference(rng, isa, shape, causal):
    q, k, v = _qkv(rng, *shape)
    _check(isa, q * 2, k, v, causal=causal, rng=rng)


def _masks(rng, B, NH, L, S):
    """Every mask kind, as (name, mask) pairs."""
    keep = rng.random((L, S)) < 0.7
    keep[:, 0] = True
    pad = np.ones((B, 1, 1, S), bool)
    pad[0, 0, 0, S // 2 :] = False  # batch 0: the second half of its keys is padding
    full = rng.random((B, NH, L, S)) < 0.6
    full[0, 0, 3] = False  # a query that sees no key
    fl = (rng.standard_normal((L, S)) * 2).astype(np.float32)
    fl[1, :] = -np.inf  # a fully masked row, through a float mask
    fl[2, ::3] = -np.inf
    return [
        ("bool (L, S)", keep),
        ("bool key padding (B, 1, 1, S)", pad),
        ("bool (B, NH, L, S) with an empty row", full),
        ("float (L, S) with -inf", fl),
        ("float (B, 1, L, S)", (rng.standard_normal((B, 1, L, S)) * 3).astype(np.float32)),
        ("float key padding (B, 1, 1, S)", np.where(pad, 0.0, -1e4).astype(np.float32)),
        ("float (S,) broadcast view", np.broadcast_to(rng.standard_normal(S).astype(np.float32), (L, S))),
        ("bool transposed (strided)", np.ascontiguousarray(keep.T).T),
        ("bool (1, NH, L, 1)", rng.random((1, NH, L, 1)) < 0.8),
    ]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "dims", [(2, 2, 70, 131, 32), (1, 3, 129, 64, 32), (2, 1, 5, 9, 32), (1, 2, 75, 100, 13)], ids=str
)
def test_masks_against_reference(rng, isa, dims):
    B, NH, L, S, D = dims
    q, k, v = _qkv(rng, B, NH, L, S, D, D)
    for name, mask in _masks(rng, B, NH, L, S):
        out, lse, grads = _check(isa, q, k, v, mask=mask, rng=rng)
        empty = ~np.isfinite(ref.scaled_dot_product_attention_forward(q, k, v, mask)[1])
        assert np.isneginf(lse[empty]).all() and (out[empty] == 0).all(), name
        assert (grads[0][empty] == 0).all() and np.isfinite(out).all(), name
    assert np.isneginf(FWD(q, k, v, _masks(rng, B, NH, L, S)[2][1], isa=isa)[1][0, 0, 3])


@pytest.mark.parametrize("isa", ISAS)
def test_three_dims_scale_and_empty(rng, isa):
    q, k, v = randn(rng, 3, 70, 16), randn(rng, 3, 90, 16), randn(rng, 3, 90, 8)
    _check(isa, q, k, v, scale=0.3, rng=rng)
    _check(isa, q, k, v, mask=rng.random((3, 70, 90)) < 0.5, rng=rng)
    _check(isa, q, k, v, causal=True, scale=-1.5, rng=rng)
    # no keys: every query is fully masked
    out, lse = FWD(q, k[:, :0], v[:, :0], isa=isa)
    assert out.shape == (3, 70, 8) and (out == 0).all() and np.isneginf(lse).all()
    dq, dk, dv = BWD(np.ones_like(out), q, k[:, :0], v[:, :0], out, lse, isa=isa)
    assert (dq == 0).all() and dk.shape == (3, 0, 16) and dv.shape == (3, 0, 8)
    out, lse = FWD(q[:, :0], k, v, isa=isa)  # no queries
    dq, dk, dv = BWD(out, q[:, :0], k, v, out, lse, isa=isa)
    assert out.shape == (3, 0, 8) and (dk == 0).all() and (dv == 0).all()
    out, lse = FWD(q[:0], k[:0], v[:0], isa=isa)
    assert out.shape == (0, 70, 8)


def test_reference_backward_matches_finite_differences(rng):
    B, NH, L, S, D = 1, 2, 5, 7, 3
    q, k, v = (rng.standard_normal((B, NH, n, D)) for n in (L, S, S))
    masks = [
        dict(),
        dict(is_causal=True),
        dict(attn_mask=rng.random((L, S)) < 0.6),
        dict(attn_mask=rng.standard_normal((B, 1, L, S))),
        dict(scale=0.7),
    ]
    masks[2]["attn_mask"][1] = False  # a fully masked query
    for kw in masks:
        dout = rng.standard_normal((B, NH, L, D))
        out, lse = ref.scaled_dot_product_attention_forward(q, k, v, **kw)
        grads = ref.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, **kw)
        loss = lambda kw=kw, dout=dout: float((ref.scaled_dot_product_attention_forward(q, k, v, **kw)[0] * dout).sum())
        h = 1e-6
        for x, g in zip((q, k, v), grads):
            num = np.zeros_like(x)
            for i in np.ndindex(x.shape):
                x[i] += h
                fp = loss()
                x[i] -= 2 * h
                fm = loss()
                x[i] += h
                num[i] = (fp - fm) / (2 * h)
            np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7, err_msg=str(kw))


TORCH_CASES = [
    dict(),
    dict(is_causal=True),
    dict(is_causal=True, L=40, S=90),
    dict(is_causal=True, L=90, S=40),
    dict(mask="bool"),
    dict(mask="float"),
    dict(mask="pad"),
    dict(scale=0.25),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
def test_torch_parity(rng, case):
    torch = pytest.importorskip("torch")
    c = dict(case)
    B, NH, L, S, D = 2, 3, c.pop("L", 70), c.pop("S", 70), 40
    q, k, v = _qkv(rng, B, NH, L, S, D, D)
    kind = c.pop("mask", None)
    mask = {
        None: None,
        "bool": rng.random((L, S)) < 0.5,
        "float": randn(rng, B, 1, L, S),
        "pad": np.arange(S)[None, None, None, :] < np.array([S, S // 3])[:, None, None, None],
    }[kind]
    dout = randn(rng, B, NH, L, D)
    ts = [torch.from_numpy(a.copy()).requires_grad_() for a in (q, k, v)]
    tm = None if mask is None else torch.from_numpy(mask)
    y = torch.nn.functional.scaled_dot_product_attention(*ts, attn_mask=tm, **c)
    y.backward(torch.from_numpy(dout))
    out, lse = ops.scaled_dot_product_attention_forward(q, k, v, mask, **c)
    grads = ops.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, mask, **c)
    np.testing.assert_allclose(out, y.detach().numpy(), rtol=1e-4, atol=2e-5)
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-3, atol=5e-5)


@pytest.mark.parametrize("isa", ISAS)
def test_thread_counts_bit_identical(rng, isa):
    q, k, v = _qkv(rng, 2, 3, 150, 170, 21, 21)  # 21: a masked column vector in every product
    dout = randn(rng, 2, 3, 150, 21)
    mask = rng.random((150, 170)) < 0.7
    for mask_, causal in ((mask, False), (None, True)):
        res = []
        for n in (1, 2, 3, 5):
            with num_threads(n):
                out, lse = FWD(q, k, v, mask_, causal, None, isa=isa)
                res.append((out, lse) + BWD(dout, q, k, v, out, lse, mask_, causal, None, isa=isa))
        for other in res[1:]:
            for a, b in zip(res[0], other):
                np.testing.assert_array_equal(a, b)


def test_bad_input(rng):
    q, k, v = _qkv(rng, 1, 2, 5, 6, 8, 8)
    op = "scaled_dot_product_attention_forward"
    with pytest.raises(TypeError, match=op + ".*q to be float32"):
        ops.scaled_dot_product_attention_forward(q.astype(np.float64), k, v)
    with pytest.raises(ValueError, match=op + r".*\(B, NH, L, HD\).*\(5, 8\)"):
        ops.scaled_dot_product_attention_forward(q[0, 0], k[0, 0], v[0, 0])
    with pytest.raises(ValueError, match=op + ".*matching q"):
        ops.scaled_dot_product_attention_forward(q, k[..., :4].copy(), v)
    with pytest.raises(ValueError, match=op + ".*matching q"):
        ops.scaled_dot_product_attention_forward(q, k, v[:, :, :5].copy())
    with pytest.raises(ValueError, match=op + ".*same rank"):
        ops.scaled_dot_product_attention_forward(q, k[0], v)
    with pytest.raises(ValueError, match=op + ".*cannot be combined"):
        ops.scaled_dot_product_attention_forward(q, k, v, np.ones((5, 6), bool), is_causal=True)
    with pytest.raises(ValueError, match=op + r".*broadcastable to \(1, 2, 5, 6\), got shape \(5, 5\)"):
        ops.scaled_dot_product_attention_forward(q, k, v, np.ones((5, 5), bool))
    with pytest.raises(ValueError, match=op + ".*broadcastable"):
        ops.scaled_dot_product_attention_forward(q, k, v, np.ones((1, 1, 1, 5, 6), bool))
    with pytest.raises(TypeError, match=op + ".*bool or float32, got float64"):
        ops.scaled_dot_product_attention_forward(q, k, v, np.zeros((5, 6)))
    with pytest.raises(TypeError, match=op + ".*attn_mask.*list"):
        ops.scaled_dot_product_attention_forward(q, k, v, [[True]])
    with pytest.raises(TypeError, match=op + ".*scale"):
        ops.scaled_dot_product_attention_forward(q, k, v, scale="x")
    with pytest.raises(ValueError, match=op + ".*C-contiguous"):
        ops.scaled_dot_product_attention_forward(np.swapaxes(k, 2, 3)[..., :5, :], k, v)
    out, lse = ops.scaled_dot_product_attention_forward(q, k, v)
    with pytest.raises(ValueError, match="scaled_dot_product_attention_backward.*dout and out of shape"):
        ops.scaled_dot_product_attention_backward(out[:, :1].copy(), q, k, v, out, lse)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention_backward.*lse of shape \(1, 2, 5\)"):
        ops.scaled_dot_product_attention_backward(out, q, k, v, out, lse[..., :4].copy())


# ---------------------------------------------------------------------------------------------
# The CUDA attention (from test_cuda_attention.py)
# Scaled dot-product attention on CUDA arrays: both devices apply attention's one set of meta
# functions (csrc/ops/attention_meta.cpp), so the device refuses exactly what the CPU refuses, in
# the same words, and reads every mask layout through its strides as the CPU does (on the emulated
# device, and on the CUDA module itself where built, every check before a launch:
# FakeDeviceArray); with a GPU and CuPy, the kernels against the float64 reference and the CPU op
# (error bounds shared with tests/test_cuda_emu_attention.py, which checks the same kernels on the
# emulator), bit-identical reruns, and compute-sanitizer.

DEV_FWD, DEV_BWD = "scaled_dot_product_attention_forward", "scaled_dot_product_attention_backward"


def check_attention(rng, run, q, k, v, mask=None, causal=False, scale=None):
    """run(q, k, v, mask, causal, scale, dout) -> (out, lse, dq, dk, dv, delta or None) of the
    CUDA kernels as NumPy arrays, checked against the reference and the CPU op; returns them.

    Bounds from the magnitudes each result sums (float64, from the reference's probabilities):
    a score is an fmaf chain of HD terms (plus a float mask's rounding), so it errs by
    s_err <= (HD + 1) eps |scale| max |q| |k| (+ eps max |mask|), and a probability by about
    twice that relatively (its score and the log-sum-exp); out sums S terms one by one (and the
    row sum S / 32 tile sums of 32-lane trees), dv and dk L terms, dq S terms, dp DV terms:
    t = 4 s_err + (L + S + HD + DV + 16) eps relative to the sum of the terms' magnitudes.
    delta = dout . out enters ds with the forward's error of out. The CPU op errs by as much."""
    L, HD = q.shape[-2:]
    S, DV = k.shape[-2], v.shape[-1]
    sc = 1.0 / np.sqrt(HD) if scale is None else scale
    dout = randn(rng, *(q.shape[:-1] + (DV,)))
    out, lse, dq, dk, dv, delta = run(q, k, v, mask, causal, sc, dout)
    got = {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}
    for name, a in dict(got, delta=delta).items():
        assert a is None or not np.isnan(a).any(), f"{name}: unwritten (NaN) elements"
    ro, rl = ref.scaled_dot_product_attention_forward(q, k, v, mask, causal, sc)
    rdq, rdk, rdv = ref.scaled_dot_product_attention_backward(dout, q, k, v, ro, rl, mask, causal, sc)
    p = _probs(q, k, mask, causal, sc)[0]
    f = lambda a: np.abs(a.astype(np.float64))
    T = lambda a: np.swapaxes(a, -1, -2)
    s_err = (HD + 1) * EPS32 * abs(sc) * (f(q) @ T(f(k))).max(initial=0)
    if mask is not None and mask.dtype != bool:
        s_err += EPS32 * float(np.abs(np.where(np.isfinite(mask), mask, 0)).max(initial=0))
    t = 4 * s_err + (L + S + HD + DV + 16) * EPS32
    pv = p @ f(v)
    a = p * (f(dout) @ T(f(v)) + (f(dout) * pv).sum(-1, keepdims=True))
    bounds = {
        "out": t * pv,
        "dv": t * (T(p) @ f(dout)),
        "dq": t * abs(sc) * (a @ f(k)),
        "dk": t * abs(sc) * (T(a) @ f(q)),
    }
    fin = np.isfinite(rl)
    assert np.array_equal(np.isneginf(lse), np.isneginf(rl)) and np.isfinite(lse[fin]).all()
    bounds["lse"] = 2 * s_err + (S + 8) * EPS32 * (np.abs(rl[fin]) + 1)
    np.testing.assert_array_less(np.abs(lse[fin] - rl[fin]), bounds["lse"])
    if delta is not None:  # the backward's scratch: dout . out summed in double
        np.testing.assert_array_less(
            np.abs(delta - (dout.astype(np.float64) * out).sum(-1).reshape(delta.shape)),
            EPS32 * (f(dout) * f(out)).sum(-1).reshape(delta.shape) + 1e-30,
        )
    for name, want in (("out", ro), ("dq", rdq), ("dk", rdk), ("dv", rdv)):
        np.testing.assert_array_less(np.abs(got[name] - want), bounds[name] + 1e-30, err_msg=name)
    # the CPU op: each errs within its bound of the reference
    with num_threads(1):  # the same bits on any thread count; one keeps OpenMP out of TSan runs
        co, cl = ops.scaled_dot_product_attention_forward(q, k, v, mask, causal, sc)
        cg = ops.scaled_dot_product_attention_backward(dout, q, k, v, co, cl, mask, causal, sc)
    cpu = dict(zip(("dq", "dk", "dv"), cg), out=co, lse=cl)
    assert np.array_equal(np.isneginf(lse), np.isneginf(cl))
    np.testing.assert_array_less(np.abs(lse[fin] - cl[fin]), 2 * bounds["lse"])
    for name in ("out", "dq", "dk", "dv"):
        np.testing.assert_array_less(np.abs(got[name] - cpu[name]), 2 * bounds[name] + 1e-30, err_msg=name)
    # a query that sees no key: out 0, lse -inf, dq 0 (exactly)
    assert (out[~fin] == 0).all() and (dq[~fin] == 0).all()
    return out, lse, (dq, dk, dv)


# ---- argument checks: one set of rules (csrc/ops/attention_meta.cpp) on every device ----


def _arrays(rng):
    return {
        "q": randn(rng, 1, 2, 5, 8),
        "k": randn(rng, 1, 2, 6, 8),
        "v": randn(rng, 1, 2, 6, 4),
        "out": randn(rng, 1, 2, 5, 4),
        "lse": randn(rng, 1, 2, 5),
        "q3": randn(rng, 2, 5, 8),
        "k3": randn(rng, 2, 6, 8),
        "v3": randn(rng, 2, 6, 4),
        "bool56": rng.random((5, 6)) < 0.5,
    }


def _misaligned_mask():
    """A float32 (5, 6) mask whose rows lie 26 bytes apart: no whole number of elements."""
    return np.ndarray((5, 6), np.float32, buffer=np.zeros(160, np.uint8), strides=(26, 4))


def _fwd(A, a, q="q", k="k", v="v", mask=None, **kw):
    m = None if mask is None else A(mask)
    return ops.scaled_dot_product_attention_forward(A(a[q]), A(a[k]), A(a[v]), m, **kw)


def _bwd(A, a, **change):
    args = dict(dout=a["out"], q=a["q"], k=a["k"], v=a["v"], out=a["out"], lse=a["lse"])
    args.update(change)
    return ops.scaled_dot_product_attention_backward(**{n: None if x is None else A(x) for n, x in args.items()})


# name -> (call(A, arrays), exception): A wraps each array (NumPy itself, or a device array over
# the same memory, strides kept); every rule of attention once.
BAD_CALLS = {
    "q_float64": (lambda A, a: _fwd(A, dict(a, q=a["q"].astype(np.float64))), TypeError),
    "q_strided": (lambda A, a: _fwd(A, dict(a, q=np.swapaxes(a["k"], 2, 3)[..., :5, :])), ValueError),
    "q_2d": (lambda A, a: _fwd(A, {n: x[0, 0] for n, x in a.items() if n in ("q", "k", "v")}), ValueError),
    "k_rank": (lambda A, a: _fwd(A, dict(a, k=a["k"][0])), ValueError),
    "k_head_dim": (lambda A, a: _fwd(A, dict(a, k=a["k"][..., :4].copy())), ValueError),
    "v_length": (lambda A, a: _fwd(A, dict(a, v=a["v"][:, :, :5].copy())), ValueError),
    "v_batch": (lambda A, a: _fwd(A, dict(a, v=np.concatenate([a["v"]] * 2))), ValueError),
    "head_dim_0": (lambda A, a: _fwd(A, dict(a, q=a["q"][..., :0].copy(), k=a["k"][..., :0].copy())), ValueError),
    "causal_and_mask": (lambda A, a: _fwd(A, a, mask=a["bool56"], is_causal=True), ValueError),
    "mask_int8": (lambda A, a: _fwd(A, a, mask=np.ones((5, 6), np.int8)), TypeError),
    "mask_float64": (lambda A, a: _fwd(A, a, mask=np.zeros((5, 6))), TypeError),
    "mask_not_broadcastable": (lambda A, a: _fwd(A, a, mask=np.ones((5, 5), bool)), ValueError),
    "mask_5d": (lambda A, a: _fwd(A, a, mask=np.ones((1, 1, 1, 5, 6), bool)), ValueError),
    "mask_misaligned_stride": (lambda A, a: _fwd(A, a, mask=_misaligned_mask()), ValueError),
    "mask_3d_q": (lambda A, a: _fwd(A, a, "q3", "k3", "v3", mask=np.ones((3, 5, 6), bool)), ValueError),
    "scale_str": (lambda A, a: _fwd(A, a, scale="x"), TypeError),
    "scale_inf": (lambda A, a: _fwd(A, a, scale=float("inf")), ValueError),
    "scale_nan": (lambda A, a: _fwd(A, a, scale=float("nan")), ValueError),
    "bwd_dout_shape": (lambda A, a: _bwd(A, a, dout=a["out"][..., :3].copy()), ValueError),
    "bwd_out_shape": (lambda A, a: _bwd(A, a, out=a["out"][:, :1].copy()), ValueError),
    "bwd_lse_shape": (lambda A, a: _bwd(A, a, lse=a["lse"][..., :4].copy()), ValueError),
    "bwd_out_float64": (lambda A, a: _bwd(A, a, out=a["out"].astype(np.float64)), TypeError),
    "bwd_dout_none": (lambda A, a: _bwd(A, a, dout=None), TypeError),
    "bwd_v_rank": (lambda A, a: _bwd(A, a, v=a["v"][0]), ValueError),
}


def _fake(v):
    """FakeDeviceArray over v's memory, with v's strides."""
    return FakeDeviceArray(v, strides=None if v.flags.c_contiguous else v.strides)


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    with pytest.raises(exc, match=r"^fastnn\.ops\.scaled_dot_product_attention_(forward|backward): expected "):
        call(lambda v: v, _arrays(rng))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices: the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _arrays(rng))
    dev = refusal(call, emulated_gpu.ndarray, _arrays(rng))  # no copy: strides stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _arrays(rng))
    assert refusal(call, _fake, _arrays(rng)) == cpu


def _device_only_refusals(A, a):
    """What only a device refuses: a NumPy array among its arrays, and head dims past the
    kernels' tiles (the CPU op takes any)."""
    fwd, bwd = ops.scaled_dot_product_attention_forward, ops.scaled_dot_product_attention_backward
    q, k, v = A(a["q"]), A(a["k"]), A(a["v"])
    with pytest.raises(TypeError, match=DEV_FWD + ": expected k to be a CUDA array like the other.*cannot be mixed"):
        fwd(q, a["k"], v)
    with pytest.raises(TypeError, match=DEV_FWD + ": expected q to be a CUDA array"):
        fwd(a["q"], a["k"], a["v"], A(a["bool56"]))  # only the mask on the device
    with pytest.raises(TypeError, match=DEV_FWD + ": expected attn_mask to be a CUDA array.*got ndarray"):
        fwd(q, k, v, a["bool56"])
    with pytest.raises(TypeError, match=DEV_BWD + ": expected lse to be a CUDA array"):
        bwd(A(a["out"]), q, k, v, A(a["out"]), a["lse"])
    big = A(np.zeros((1, 2, 6, 129), np.float32))
    with pytest.raises(ValueError, match=DEV_FWD + ": the CUDA kernels take head dims up to 128, got HD 129 and DV 4"):
        fwd(A(np.zeros((1, 2, 5, 129), np.float32)), big, v)
    with pytest.raises(ValueError, match=DEV_FWD + ": the CUDA kernels take head dims up to 128, got HD 8 and DV 200"):
        fwd(q, k, A(np.zeros((1, 2, 6, 200), np.float32)))
    o = A(np.zeros((1, 2, 5, 129), np.float32))
    with pytest.raises(ValueError, match=DEV_BWD + ": the CUDA kernels take head dims up to 128, got HD 8 and DV 129"):
        bwd(o, q, k, big, o, A(a["lse"]))


def test_the_device_refuses_what_only_it_refuses(rng, emulated_gpu):
    _device_only_refusals(emulated_gpu.ndarray, _arrays(rng))


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_cuda_refuses_what_only_it_refuses_before_any_launch(rng):
    _device_only_refusals(_fake, _arrays(rng))


# (mask, q's dims): the layouts the meta function reads through their strides: C order, a
# broadcast (B, 1, 1, S), a stride-0 view, a transposed view, a 3-D q's (B, L, S) and (L, 1).
MASK_LAYOUTS = {
    "c_order": (lambda r: r.random((5, 6)) < 0.7, 4),
    "batch_keys": (lambda r: randn(r, 2, 1, 1, 6), 4),
    "stride_0": (lambda r: np.broadcast_to(randn(r, 6), (5, 6)), 4),
    "transposed": (lambda r: np.ascontiguousarray(r.random((6, 5)) < 0.7).T, 4),
    "negative_stride": (lambda r: randn(r, 5, 6)[:, ::-1], 4),
    "q3_full": (lambda r: randn(r, 2, 5, 6), 3),
    "q3_rows": (lambda r: r.random((5, 1)) < 0.7, 3),
}


@pytest.mark.parametrize("name", list(MASK_LAYOUTS))
def test_masks_of_every_layout_read_alike_on_both_devices(rng, name, emulated_gpu):
    """A mask is read in place through its strides (never copied) by both devices: results
    within check_attention's bounds of the reference, the device's and the CPU's alike."""
    make, nd = MASK_LAYOUTS[name]
    mask = make(rng)
    lead = (2, 3) if nd == 4 else (2,)
    q, k, v = randn(rng, *lead, 5, 8), randn(rng, *lead, 6, 8), randn(rng, *lead, 6, 4)
    cp = emulated_gpu

    def run(q, k, v, mask, causal, scale, dout):
        g, gm = [cp.asarray(a) for a in (q, k, v)], cp.ndarray(mask)  # the mask: the same memory, strides
        out, lse = ops.scaled_dot_product_attention_forward(*g, gm, causal, scale)
        grads = ops.scaled_dot_product_attention_backward(cp.asarray(dout), *g, out, lse, gm, causal, scale)
        return tuple(cp.asnumpy(a) for a in (out, lse) + tuple(grads)) + (None,)

    check_attention(rng, run, q, k, v, mask=mask)


# ---- On a GPU (CuPy end to end) ----


def _cupy():
    if not cuda.is_available():
        pytest.skip("no CUDA device")
    return pytest.importorskip("cupy")


def _gpu_run(cp):
    def run(q, k, v, mask, causal, scale, dout):
        gm = None if mask is None else cp.asarray(mask)
        g = [cp.asarray(a) for a in (q, k, v)]
        out, lse = ops.scaled_dot_product_attention_forward(*g, gm, causal, scale)
        grads = ops.scaled_dot_product_attention_backward(cp.asarray(dout), *g, out, lse, gm, causal, scale)
        return tuple(cp.asnumpy(a) for a in (out, lse) + tuple(grads)) + (None,)

    return run


# (B, NH, L, S, HD, DV, causal): lengths of 1, tiles +-1, L != S both ways with causal, odd
# head dims, the 128 limit, a longer sequence (many key tiles and online-softmax rescales).
GPU_SHAPES = [
    (1, 1, 1, 1, 1, 1, False),
    (2, 3, 33, 31, 40, 33, True),
    (1, 2, 17, 65, 7, 96, True),
    (1, 1, 47, 13, 64, 5, True),
    (2, 2, 32, 32, 128, 128, False),
    (1, 2, 300, 257, 64, 64, True),
    (3, 1, 129, 200, 96, 80, False),
]


@pytest.mark.parametrize("shape", GPU_SHAPES, ids=str)
def test_gpu_attention_matches_reference_and_cpu(rng, shape):
    cp = _cupy()
    *dims, causal = shape
    B, NH, L, S, HD, DV = dims
    q, k, v = randn(rng, B, NH, L, HD), randn(rng, B, NH, S, HD), randn(rng, B, NH, S, DV)
    check_attention(rng, _gpu_run(cp), q, k, v, causal=causal)


def test_gpu_attention_masks(rng):
    cp = _cupy()
    B, NH, L, S = 2, 2, 45, 70
    q, k, v = randn(rng, B, NH, L, 24), randn(rng, B, NH, S, 24), randn(rng, B, NH, S, 40)
    full = rng.random((B, NH, L, S)) < 0.6
    full[0, 0, 3] = False  # a query that sees no key
    fl = (rng.standard_normal((L, S)) * 2).astype(np.float32)
    fl[1] = -np.inf
    pad = np.ones((B, 1, 1, S), bool)
    pad[1, 0, 0, S // 3 :] = False
    for mask in (
        full,
        fl,
        pad,
        np.broadcast_to(rng.standard_normal(S).astype(np.float32), (L, S)),
        np.ascontiguousarray((rng.random((L, S)) < 0.7).T).T,
    ):
        check_attention(rng, _gpu_run(cp), q, k, v, mask=mask)
    # 3-D inputs
    q3, k3, v3 = q[0], k[0], v[0]
    check_attention(rng, _gpu_run(cp), q3, k3, v3, mask=rng.random((NH, L, S)) < 0.5)


def test_gpu_attention_reruns_are_bit_identical(rng):
    cp = _cupy()
    q, k, v = (cp.asarray(randn(rng, 2, 4, 200, 64)) for _ in range(3))
    dout = cp.asarray(randn(rng, 2, 4, 200, 64))
    res = []
    for _ in range(2):
        out, lse = ops.scaled_dot_product_attention_forward(q, k, v, is_causal=True)
        res.append(
            [
                cp.asnumpy(a)
                for a in (out, lse) + ops.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, is_causal=True)
            ]
        )
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
q, k, v = (cp.asarray(r.standard_normal(s, dtype=np.float32)) for s in ((2, 2, 45, 40), (2, 2, 70, 40), (2, 2, 70, 33)))
mask = cp.asarray(r.random((45, 70)) < 0.6)
for kw in (dict(attn_mask=mask), dict(is_causal=True), dict(attn_mask=cp.asarray(r.standard_normal((2, 1, 1, 70), dtype=np.float32)))):
    out, lse = ops.scaled_dot_product_attention_forward(q, k, v, **kw)
    ops.scaled_dot_product_attention_backward(out, q, k, v, out, lse, **kw)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck", "synccheck"])
def test_gpu_attention_compute_sanitizer_is_clean(tool):
    """The attention kernels under compute-sanitizer (needs a GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)


# ---------------------------------------------------------------------------------------------
# On the emulated device (from test_cuda_emu_attention.py)
# The CUDA scaled dot-product attention (csrc/cuda/attention.cu: online-softmax forward, delta,
# key-tile dk/dv and query-tile dq passes) run by the emulator through fastnn._cuda's own entries
# (the emulated device, called with the CPU entries' arguments), in the three fiber orders, against
# the float64 reference and the CPU op: lengths of 1, the 32-key / 32-query tiles +-1 (16 for the
# dq pass), primes, L != S both ways with and without causal, head dims that are not multiples of
# 32 up to the 128 limit, every mask kind read through its own strides (on the device as on the
# CPU: no copy), fully masked rows, empty inputs; the backward's bits do not depend on the fiber
# order; and the path through fastnn.ops / fastnn.cuda on the emulated device.

FWD_OP, BWD_OP = "scaled_dot_product_attention_forward", "scaled_dot_product_attention_backward"


def _qkv_device(rng, B, NH, L, S, HD, DV):
    return randn(rng, B, NH, L, HD), randn(rng, B, NH, S, HD), randn(rng, B, NH, S, DV)


def _on_device(dev, mask):
    """The mask as a device array over the same memory (its strides kept: a broadcast or
    transposed view stays one), or None."""
    return None if mask is None else dev.cp.ndarray(mask)


def _run(dev):
    """check_attention's run on the emulated device: (out, lse, dq, dk, dv, delta), delta the
    backward's scratch (its last allocation)."""

    def run(q, k, v, mask, causal, scale, dout):
        m = _on_device(dev, mask)
        out, lse = dev.scaled_dot_product_attention_forward(q, k, v, m, causal, scale)
        grads = dev.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, m, causal, scale)
        return (out, lse) + grads + (dev.made[-1],)

    return run


def _check_device(dev, rng, q, k, v, mask=None, causal=False, scale=None):
    """The emulated kernels against the reference and the CPU op (bounds: check_attention)."""
    return check_attention(rng, _run(dev), q, k, v, mask, causal, scale)


# (B, NH, L, S, HD, DV): one of everything; tiles +-1 (L 33 crosses a 32-query and two 16-query
# tiles, S 31 one partial key tile); L < S over three key tiles with DV 96 (four lane chunks);
# L > S with HD 64 (two chunks) and primes; exact tiles with B * NH = 4; odd head dims.
DEVICE_SHAPES = [
    (1, 1, 1, 1, 1, 1),
    (1, 2, 33, 31, 40, 33),
    (1, 1, 17, 65, 7, 96),
    (1, 1, 47, 13, 64, 5),
    (2, 2, 32, 32, 32, 32),
    (3, 1, 5, 3, 3, 70),
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", DEVICE_SHAPES, ids=str)
def test_attention_shapes(rng, order, dev, shape, causal):
    q, k, v = _qkv_device(rng, *shape)
    _check_device(dev, rng, q * np.float32(2), k, v, causal=causal)


def test_attention_largest_head_dims_and_scale(rng, order, dev):
    """HD = DV = 128: every kernel's four lane chunks and its largest shared memory."""
    q, k, v = _qkv_device(rng, 1, 1, 5, 34, 128, 128)
    _check_device(dev, rng, q, k, v, scale=-0.3)
    q, k, v = _qkv_device(rng, 1, 1, 18, 9, 128, 1)
    _check_device(dev, rng, q, k, v, causal=True, scale=0.5)


@pytest.mark.parametrize("dims", [(2, 2, 9, 35, 5, 9)], ids=str)
def test_attention_masks(rng, order, dev, dims):
    B, NH, L, S, HD, DV = dims
    q, k, v = _qkv_device(rng, B, NH, L, S, HD, DV)
    for name, mask in _masks(rng, B, NH, L, S):
        out, lse, _ = _check_device(dev, rng, q, k, v, mask=mask)
        if "empty row" in name:
            assert np.isneginf(lse[0, 0, 3]) and (out[0, 0, 3] == 0).all(), name
        if "float (L, S)" in name:
            assert np.isneginf(lse[:, :, 1]).all(), name


def test_attention_empty(rng, order, dev):
    fwd, bwd = dev.scaled_dot_product_attention_forward, dev.scaled_dot_product_attention_backward
    q, k, v = _qkv_device(rng, 2, 1, 5, 4, 3, 2)
    out, lse = fwd(q, k[:, :, :0], v[:, :, :0], None, False, 0.5)  # no keys
    assert (out == 0).all() and np.isneginf(lse).all()
    dq, dk, dv = bwd(np.ones_like(out), q, k[:, :, :0], v[:, :, :0], out, lse, None, False, 0.5)
    assert (dq == 0).all() and dk.shape == (2, 1, 0, 3) and dv.shape == (2, 1, 0, 2)
    out, lse = fwd(q[:, :, :0], k, v, None, False, 0.5)  # no queries
    assert out.shape == (2, 1, 0, 2) and lse.shape == (2, 1, 0)
    dq, dk, dv = bwd(out, q[:, :, :0], k, v, out, lse, None, True, 0.5)
    assert dq.shape == (2, 1, 0, 3) and (dk == 0).all() and (dv == 0).all()
    out, lse = fwd(q[:0], k[:0], v[:0], None, False, 0.5)
    assert out.shape == (0, 1, 5, 2)
    # causal with S > L: keys past the last query get no gradient
    q, k, v = _qkv_device(rng, 1, 1, 3, 40, 4, 4)
    out, lse = fwd(q, k, v, None, True, 0.5)
    dq, dk, dv = bwd(np.ones_like(out), q, k, v, out, lse, None, True, 0.5)
    assert (dk[:, :, 3:] == 0).all() and (dv[:, :, 3:] == 0).all() and (dv[:, :, :3] != 0).all()


def test_attention_head_dim_limit(rng, dev):
    """The device's one rule of its own: head dims up to 128 (the CPU op takes any)."""
    q, k, v = _qkv_device(rng, 1, 1, 2, 2, 129, 4)
    with pytest.raises(ValueError, match=FWD_OP + ": the CUDA kernels take head dims up to 128, got HD 129 and DV 4"):
        dev.scaled_dot_product_attention_forward(q, k, v, None, False, None)
    assert ops.scaled_dot_product_attention_forward(q, k, v)[0].shape == (1, 1, 2, 4)
    q, k, v = _qkv_device(rng, 1, 1, 2, 2, 4, 129)
    out = np.zeros((1, 1, 2, 129), np.float32)
    with pytest.raises(ValueError, match=BWD_OP + ": the CUDA kernels take head dims up to 128, got HD 4 and DV 129"):
        dev.scaled_dot_product_attention_backward(out, q, k, v, out, np.zeros((1, 1, 2), np.float32), None, False, None)


def test_attention_backward_bits_do_not_depend_on_the_fiber_order(rng, monkeypatch, dev):
    q, k, v = _qkv_device(rng, 1, 2, 35, 33, 20, 36)
    mask = _on_device(dev, rng.random((35, 33)) < 0.8)
    dout = randn(rng, 1, 2, 35, 36)
    res = []
    for o in ("forward", "reverse", "random"):
        monkeypatch.setenv("FASTNN_EMU_ORDER", o)
        out, lse = dev.scaled_dot_product_attention_forward(q, k, v, mask, False, 0.25)
        grads = dev.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, mask, False, 0.25)
        res.append((out, lse) + grads + (dev.made[-1],))  # the last: delta, the backward's scratch
    for other in res[1:]:
        for a, b in zip(res[0], other):
            np.testing.assert_array_equal(a, b)


def test_attention_through_fastnn_ops_on_the_emulated_device(rng, order, emulated_gpu):
    """fastnn.ops -> fastnn.cuda (checks, the strides of a broadcast or transposed CuPy mask,
    3-D inputs) -> the bindings, against the CPU op."""
    cp = emulated_gpu
    q, k, v = (randn(rng, 3, n, d) for n, d in ((21, 10), (34, 10), (34, 6)))
    row, keep = rng.random((1, 34)) < 0.7, rng.random((34, 21)) < 0.7
    fl = randn(rng, 3, 1, 34)
    dout = randn(rng, 3, 21, 6)
    masks = [
        lambda xp: xp.broadcast_to(xp.asarray(row), (21, 34)),  # a stride-0 view
        lambda xp: xp.asarray(keep).T,  # a transposed view
        lambda xp: xp.asarray(fl),
    ]
    cases = [dict(attn_mask=m) for m in masks] + [dict(is_causal=True, scale=0.4)]
    for kw in cases:
        ckw = dict(kw, attn_mask=kw["attn_mask"](np)) if "attn_mask" in kw else kw
        gkw = dict(kw, attn_mask=kw["attn_mask"](cp)) if "attn_mask" in kw else kw
        gq, gk, gv = cp.asarray(q), cp.asarray(k), cp.asarray(v)
        out, lse = ops.scaled_dot_product_attention_forward(gq, gk, gv, **gkw)
        grads = ops.scaled_dot_product_attention_backward(cp.asarray(dout), gq, gk, gv, out, lse, **gkw)
        with num_threads(1):  # the same bits on any thread count; one keeps OpenMP out of TSan runs
            co, cl = ops.scaled_dot_product_attention_forward(q, k, v, **ckw)
            cgrads = ops.scaled_dot_product_attention_backward(dout, q, k, v, co, cl, **ckw)
        # both within _check_device's bounds of the reference (these magnitudes are O(1)-O(10))
        tol = 2 * 4 * (10 + 1) * EPS32 * 64 + (21 + 34 + 10 + 6 + 16) * EPS32 * 64
        for g, c in zip((out, lse) + tuple(grads), (co, cl) + tuple(cgrads)):
            assert g.shape == c.shape
            np.testing.assert_allclose(cp.asnumpy(g), c, rtol=tol, atol=tol)
