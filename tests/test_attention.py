"""Fused scaled dot-product attention: every ISA path against the float64 reference (lengths
around the 64-query / 64-key tiles, L != S both ways, odd head dims, every mask kind, causal),
the reference backward against finite differences, torch parity, thread invariance, bad input."""

import numpy as np
import pytest
from conftest import ISAS, num_threads, randn
from fastnn import _core, ops, ref
from fastnn.ref.attention import _probs
from fastnn.ref.rounding import EPS32

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
