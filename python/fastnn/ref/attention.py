"""Reference scaled dot-product attention in float64 (fastnn.ops' names and signatures): the naive
math softmax(q k^T scale + mask) v with torch's mask meaning (bool True = take part, float added,
is_causal: query i sees keys j <= i). A query whose keys are all masked gets out = 0 and
lse = -inf, and zero gradients. The backward recomputes everything from q, k, v (out and lse are
accepted for the signature, not used)."""

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _probs(q, k, attn_mask, is_causal, scale):
    q, k = _f64(q), _f64(k)
    if is_causal and attn_mask is not None:
        raise ValueError("fastnn.ref.scaled_dot_product_attention: attn_mask and is_causal cannot be combined")
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    s = q @ np.swapaxes(k, -1, -2) * scale
    L, S = s.shape[-2:]
    if is_causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    if attn_mask is not None:
        m = np.asarray(attn_mask)
        s = np.where(m, s, -np.inf) if m.dtype == bool else s + _f64(m)
    mx = s.max(axis=-1, keepdims=True, initial=-np.inf)
    shift = np.where(mx == -np.inf, 0.0, mx)
    e = np.exp(s - shift)
    tot = e.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), 0.0)
        lse = np.where(tot > 0, shift + np.log(np.where(tot > 0, tot, 1.0)), -np.inf)[..., 0]
    return p, lse, scale


def scaled_dot_product_attention_forward(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """(out (..., L, DV), lse (..., L)) in float64."""
    p, lse, _ = _probs(q, k, attn_mask, is_causal, scale)
    return p @ _f64(v), lse


def scaled_dot_product_attention_backward(dout, q, k, v, out, lse, attn_mask=None, is_causal=False, scale=None):
    """(dq, dk, dv) in float64."""
    p, _, scale = _probs(q, k, attn_mask, is_causal, scale)
    g, q, k, v = _f64(dout), _f64(q), _f64(k), _f64(v)
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv
