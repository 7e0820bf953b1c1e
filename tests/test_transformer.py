"""The Transformer layers (fastnn.nn.attention): LayerNorm, scaled_dot_product_attention through
autograd, MultiheadAttention and TransformerEncoderLayer against torch with copied weights
(outputs and every gradient), the mask conventions, and bad input."""

import fastnn
import numpy as np
import pytest
from fastnn import nn
from fastnn.nn import functional as F

try:
    import torch
except ImportError:  # torch is an optional test peer
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def T(a, grad=True):
    return fastnn.Tensor(np.asarray(a, np.float32), requires_grad=grad)


def tt(a, grad=True):
    return torch.tensor(np.asarray(a, np.float32), requires_grad=grad)


def close(a, b, tol=2e-5):
    a = a.data if isinstance(a, fastnn.Tensor) else a
    b = b.detach().numpy() if hasattr(b, "detach") else b
    scale = max(1.0, float(np.abs(b).max()) if np.size(b) else 1.0)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def copy_params(ours, theirs):
    for (n, p), (n2, p2) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert n == n2, (n, n2)
        assert p.shape == tuple(p2.shape), (n, p.shape, p2.shape)
        p.data[...] = p2.detach().numpy()


def compare_grads(ours, theirs, tol=2e-5):
    for (n, p), (_, p2) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert (p.grad is None) == (p2.grad is None), n
        if p.grad is not None:
            close(p.grad, p2.grad.numpy(), tol)


# -- layer norm ---------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("shape,norm", [((4, 7), (7,)), ((2, 3, 5, 6), (5, 6)), ((1, 33), 33), ((3, 1), (1,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_parity(rng, shape, norm, affine):
    x = rng.standard_normal(shape) * 3 + 1
    ours, theirs = nn.LayerNorm(norm, elementwise_affine=affine), torch.nn.LayerNorm(norm, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(rng.standard_normal(theirs.weight.shape)))
            theirs.bias.copy_(torch.tensor(rng.standard_normal(theirs.bias.shape)))
        copy_params(ours, theirs)
    xa, xb = T(x), tt(x)
    ya, yb = ours(xa), theirs(xb)
    close(ya, yb)
    g = rng.standard_normal(shape)
    (ya * T(g, False)).sum().backward()
    (yb * tt(g, False)).sum().backward()
    close(xa.grad, xb.grad.numpy(), 1e-4)
    compare_grads(ours, theirs, 1e-4)


def test_layer_norm_bad_shape():
    with pytest.raises(ValueError, match="layer_norm"):
        F.layer_norm(T(np.ones((3, 4))), (5,))


# -- scaled dot-product attention ----------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("L,S,E", [(5, 5, 16), (1, 7, 8), (9, 3, 32)])
@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "causal"])
def test_sdpa_parity(rng, L, S, E, mask_kind):
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, L, E), (2, 3, S, E), (2, 3, S, E)))
    mask, causal = None, mask_kind == "causal"
    if mask_kind == "bool":
        mask = rng.random((L, S)) < 0.7
        mask[:, 0] = True  # every query keeps a key (torch's math path gives NaN rows otherwise)
    elif mask_kind == "float":
        mask = rng.standard_normal((2, 1, L, S)).astype(np.float32)
    a = [T(t) for t in (q, k, v)]
    b = [tt(t) for t in (q, k, v)]
    ya = F.scaled_dot_product_attention(*a, attn_mask=mask, is_causal=causal)
    yb = torch.nn.functional.scaled_dot_product_attention(
        *b, attn_mask=None if mask is None else torch.tensor(mask), is_causal=causal
    )
    close(ya, yb)
    g = rng.standard_normal(ya.shape)
    (ya * T(g, False)).sum().backward()
    (yb * tt(g, False)).sum().backward()
    for ta, tb in zip(a, b):
        close(ta.grad, tb.grad.numpy(), 1e-4)


@needs_torch
def test_sdpa_three_dims_and_scale(rng):
    q, k, v = rng.standard_normal((4, 6, 8)), rng.standard_normal((4, 5, 8)), rng.standard_normal((4, 5, 3))
    ya = F.scaled_dot_product_attention(T(q), T(k), T(v), scale=0.3)
    yb = torch.nn.functional.scaled_dot_product_attention(tt(q), tt(k), tt(v), scale=0.3)
    assert ya.shape == (4, 6, 3)
    close(ya, yb)


def test_sdpa_errors():
    q = T(np.ones((1, 1, 4, 8)))
    with pytest.raises(ValueError, match="is_causal cannot be combined"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), bool), is_causal=True)
    with pytest.raises(TypeError, match="attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), np.int32))


def test_sdpa_dropout_math_path(rng):
    fastnn.manual_seed(0)
    q = T(rng.standard_normal((1, 2, 6, 4)))
    y0 = F.scaled_dot_product_attention(q, q, q)
    y1 = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    assert y1.shape == y0.shape and not np.allclose(y1.data, y0.data)
    y1.sum().backward()
    assert q.grad is not None and np.isfinite(q.grad).all()


# -- MultiheadAttention ----------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("masks", ["none", "kpm_bool", "attn_float", "both_bool", "causal"])
def test_mha_parity(rng, batch_first, need_weights, masks):
    E, NH, B, L, S = 16, 4, 3, 5, 7
    if masks == "causal":
        S = L
    ours = nn.MultiheadAttention(E, NH, batch_first=batch_first)
    theirs = torch.nn.MultiheadAttention(E, NH, batch_first=batch_first)
    with torch.no_grad():  # non-zero biases, so their gradients are checked too
        theirs.in_proj_bias.copy_(torch.tensor(rng.standard_normal(3 * E)))
        theirs.out_proj.bias.copy_(torch.tensor(rng.standard_normal(E)))
    copy_params(ours, theirs)
    shape_q, shape_k = ((B, L, E), (B, S, E)) if batch_first else ((L, B, E), (S, B, E))
    q, k, v = rng.standard_normal(shape_q), rng.standard_normal(shape_k), rng.standard_normal(shape_k)
    kpm = attn = None
    causal = False
    if masks in ("kpm_bool", "both_bool"):
        kpm = np.zeros((B, S), bool)
        kpm[0, -2:] = True
        kpm[2, 1] = True
    if masks == "attn_float":
        attn = rng.standard_normal((L, S)).astype(np.float32)
    if masks == "both_bool":
        attn = rng.random((B * NH, L, S)) < 0.3
        attn[..., 0] = False  # every query keeps key 0
    if masks == "causal":
        attn = np.triu(np.ones((L, S), bool), 1)
        causal = True
    a, b = [T(t) for t in (q, k, v)], [tt(t) for t in (q, k, v)]
    oa, wa = ours(*a, key_padding_mask=kpm, need_weights=need_weights, attn_mask=attn, is_causal=causal)
    ob, wb = theirs(
        *b,
        key_padding_mask=None if kpm is None else torch.tensor(kpm),
        need_weights=need_weights,
        attn_mask=None if attn is None else torch.tensor(attn),
        is_causal=causal,
    )
    close(oa, ob)
    assert (wa is None) == (wb is None)
    if wa is not None:
        close(wa, wb)
    g = rng.standard_normal(oa.shape)
    (oa * T(g, False)).sum().backward()
    (ob * tt(g, False)).sum().backward()
    for ta, tb in zip(a, b):
        close(ta.grad, tb.grad.numpy(), 1e-4)
    compare_grads(ours, theirs, 1e-4)


@needs_torch
def test_mha_unbatched_and_state_dict(rng):
    ours, theirs = nn.MultiheadAttention(8, 2), torch.nn.MultiheadAttention(8, 2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_params(ours, theirs)
    x = rng.standard_normal((5, 8))
    oa, wa = ours(T(x), T(x), T(x))
    ob, wb = theirs(tt(x), tt(x), tt(x))
    assert oa.shape == (5, 8) and wa.shape == (5, 5)
    close(oa, ob)
    close(wa, wb)


def test_mha_errors():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    x = T(np.ones((2, 3, 8)))
    with pytest.raises(ValueError, match="key_padding_mask of shape"):
        m(x, x, x, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="attn_mask of shape"):
        m(x, x, x, attn_mask=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="need attn_mask"):
        m(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="inputs"):  # kdim=4: a key of 8 features is refused
        nn.MultiheadAttention(8, 2, kdim=4)(x, x, x)


# -- TransformerEncoderLayer ----------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_parity(rng, norm_first, activation):
    E, NH, B, L = 16, 2, 2, 6
    ours = nn.TransformerEncoderLayer(
        E, NH, dim_feedforward=24, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    )
    theirs = torch.nn.TransformerEncoderLayer(
        E, NH, dim_feedforward=24, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    )
    copy_params(ours, theirs)
    x = rng.standard_normal((B, L, E))
    kpm = np.zeros((B, L), bool)
    kpm[1, -1] = True
    causal = np.triu(np.ones((L, L), bool), 1)
    xa, xb = T(x), tt(x)
    ya = ours(xa, src_mask=causal, src_key_padding_mask=kpm)
    yb = theirs(xb, src_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(kpm))
    close(ya, yb, 1e-4)
    g = rng.standard_normal(ya.shape)
    (ya * T(g, False)).sum().backward()
    (yb * tt(g, False)).sum().backward()
    close(xa.grad, xb.grad.numpy(), 2e-4)
    compare_grads(ours, theirs, 2e-4)


def test_encoder_stack_and_dropout_modes(rng):
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.5, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
    assert len(list(enc.parameters())) == 2 * len(list(layer.parameters())) + 2
    x = T(rng.standard_normal((2, 5, 8)))
    enc.eval()
    y0, y1 = enc(x), enc(x)
    assert np.array_equal(y0.data, y1.data)  # eval: deterministic
    enc.train()
    y2 = enc(x)
    assert not np.allclose(y2.data, y0.data)  # training: dropout active
    y2.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


@needs_torch
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # torch's note on its fast path
@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True), (True, False)])
def test_transformer_parity(rng, batch_first, norm_first):
    # the encoder-decoder nn.Transformer with torch's parameter names (a torch state_dict loads),
    # a causal tgt mask from generate_square_subsequent_mask, padding masks on src and memory
    E, NH, B, S, L = 16, 4, 3, 5, 4
    kw = dict(
        d_model=E,
        nhead=NH,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dim_feedforward=24,
        dropout=0.0,
        batch_first=batch_first,
        norm_first=norm_first,
    )
    ours, theirs = nn.Transformer(**kw), torch.nn.Transformer(**kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    src = rng.standard_normal((B, S, E) if batch_first else (S, B, E))
    tgt = rng.standard_normal((B, L, E) if batch_first else (L, B, E))
    mask_a, mask_b = (
        nn.Transformer.generate_square_subsequent_mask(L),
        torch.nn.Transformer.generate_square_subsequent_mask(L),
    )
    np.testing.assert_array_equal(mask_a.numpy(), mask_b.numpy())
    pad = np.zeros((B, S), bool)
    pad[1, 3:] = True
    sa, sb = T(src), tt(src)
    ya = ours(sa, T(tgt), tgt_mask=mask_a, src_key_padding_mask=pad, memory_key_padding_mask=pad, tgt_is_causal=True)
    yb = theirs(
        sb,
        tt(tgt),
        tgt_mask=mask_b,
        src_key_padding_mask=torch.tensor(pad),
        memory_key_padding_mask=torch.tensor(pad),
        tgt_is_causal=True,
    )
    close(ya, yb, 1e-4)
    g = rng.standard_normal(ya.shape)
    (ya * T(g, False)).sum().backward()
    (yb * tt(g, False)).sum().backward()
    close(sa.grad, sb.grad.numpy(), 2e-4)
    compare_grads(ours, theirs, 2e-4)


@needs_torch
def test_decoder_layer_parity_and_init(rng):
    E, NH = 8, 2
    ours = nn.TransformerDecoderLayer(E, NH, dim_feedforward=12, dropout=0.0, activation="gelu", batch_first=True)
    theirs = torch.nn.TransformerDecoderLayer(
        E, NH, dim_feedforward=12, dropout=0.0, activation="gelu", batch_first=True
    )
    copy_params(ours, theirs)
    x, m = rng.standard_normal((2, 3, E)), rng.standard_normal((2, 5, E))
    mm = np.zeros((3, 5), bool)
    mm[0, 4] = True
    xa, xb = T(x), tt(x)
    ya, yb = ours(xa, T(m), memory_mask=mm), theirs(xb, tt(m), memory_mask=torch.tensor(mm))
    close(ya, yb, 1e-4)
    ya.sum().backward()
    yb.sum().backward()
    close(xa.grad, xb.grad.numpy(), 2e-4)
    compare_grads(ours, theirs, 2e-4)
    # torch's Transformer initialises every weight matrix xavier_uniform_: bound sqrt(6 / (fan_in + fan_out))
    t = nn.Transformer(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64)
    w = t.encoder.layers[0].linear1.weight.data
    bound = np.sqrt(6 / (32 + 64))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    with pytest.raises(RuntimeError, match="d_model"):
        t(T(rng.standard_normal((3, 2, 16))), T(rng.standard_normal((3, 2, 16))))


def test_positional_embedding(rng):
    pe = nn.PositionalEmbedding(10, 4)
    x = T(rng.standard_normal((2, 6, 4)))
    y = pe(x)
    np.testing.assert_array_equal(y.data, x.data + pe.weight.data[:6])
    y.sum().backward()
    np.testing.assert_array_equal(pe.weight.grad[:6], np.full((6, 4), 2.0, np.float32))
    assert not np.asarray(pe.weight.grad)[6:].any()
    with pytest.raises(ValueError, match="PositionalEmbedding"):
        pe(T(np.ones((1, 11, 4))))


@needs_torch
def test_layer_norm_functional_bias_without_weight(rng):
    x, b = rng.standard_normal((3, 5)), rng.standard_normal(5)
    xa, ba, xb, bb = T(x), T(b), tt(x), tt(b)
    ya = F.layer_norm(xa, 5, None, ba)
    yb = torch.nn.functional.layer_norm(xb, (5,), None, bb)
    close(ya, yb)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    close(xa.grad, xb.grad.numpy(), 1e-4)
    close(ba.grad, bb.grad.numpy(), 1e-4)


def test_fully_masked_rows_give_zeros_on_every_path(rng):
    # The fused kernel, its dropout (math) path and MultiheadAttention's need_weights path all
    # give zeros (never NaN) for a query whose keys are all masked, and finite gradients.
    q = T(rng.standard_normal((1, 2, 4, 8)))
    mask = np.ones((4, 5), bool)
    mask[2] = False  # query 2 sees no key
    k, v = T(rng.standard_normal((1, 2, 5, 8))), T(rng.standard_normal((1, 2, 5, 8)))
    for p in (0.0, 0.3):
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        assert np.isfinite(y.data).all() and not y.data[:, :, 2].any()
        y.sum().backward()
        assert np.isfinite(q.grad).all() and np.isfinite(k.grad).all()
        q.grad = k.grad = v.grad = None
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    x = T(rng.standard_normal((1, 4, 8)))
    out, w = m(x, x, x, attn_mask=np.array([[False] * 4, [False] * 4, [True] * 4, [False] * 4]))
    assert np.isfinite(out.data).all() and np.isfinite(w.data).all() and not w.data[0, 2].any()
