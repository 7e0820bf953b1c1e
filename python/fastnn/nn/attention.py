"""The Transformer layers: MultiheadAttention, TransformerEncoderLayer / TransformerEncoder,
TransformerDecoderLayer / TransformerDecoder, the encoder-decoder Transformer, LayerNorm and a
learned positional embedding, with torch.nn's names, parameter layout and mask
conventions. Their functional forms, layer_norm and scaled_dot_product_attention, live in
fastnn.nn.functional (and are importable from here as before).

scaled_dot_product_attention runs the fused kernel (fastnn.ops.scaled_dot_product_attention_*:
tiled, online softmax, the backward recomputes the probabilities from the saved logsumexp, so
memory grows linearly with the sequence length), on the CPU and on a CUDA device. Two cases take
the plain math path instead (the L x S probabilities materialised, autograd through Tensor
operations): dropout on the attention weights (dropout_p > 0), and MultiheadAttention with
need_weights=True, which must return those weights.

Mask conventions (as in torch):
- scaled_dot_product_attention: a boolean attn_mask is True where a query MAY attend; a float
  mask is added to the scores.
- MultiheadAttention / Transformer layers: a boolean attn_mask or key_padding_mask is True
  where attention is NOT allowed; float masks are added.
A query row whose keys are all masked out gives zeros on every path, fused or math (torch's
math path gives NaN there). On a CUDA device the masks are device arrays too.
"""

import copy
import math

import numpy as np

from .. import _device as _dev
from .._device import xp as _xp
from ..tensor import _HOST, Tensor, cat
from . import functional as F
from . import init
from .functional import _mask_array, _math_attention, _t, layer_norm, scaled_dot_product_attention
from .modules import Dropout, Linear, Module, ModuleList, Parameter, _factory_dtype

__all__ = [
    "layer_norm",
    "scaled_dot_product_attention",
    "LayerNorm",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerDecoderLayer",
    "TransformerDecoder",
    "Transformer",
    "PositionalEmbedding",
]


# -- modules ----------------------------------------------------------------------------------


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = (
            (int(normalized_shape),) if np.ndim(normalized_shape) == 0 else tuple(int(d) for d in normalized_shape)
        )
        self.eps, self.elementwise_affine = eps, elementwise_affine
        dt = _factory_dtype(dtype)
        self.weight = Parameter(np.ones(self.normalized_shape, dt)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dt)) if elementwise_affine and bias else None
        if device is not None:
            self.to(device)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


def _pad_mask(m, op):
    """A mask with one more key column, allowed (False, or 0 added); None stays None."""
    if m is None:
        return None
    a = _mask_array(m, op)
    return _xp(a).concatenate([a, _xp(a).zeros(a.shape[:-1] + (1,), a.dtype)], -1)


def _mha_mask(attn_mask, key_padding_mask, B, NH, L, S, op):
    """MultiheadAttention's masks (True = not allowed, floats added) as one SDPA mask (True = keep,
    floats added), broadcastable to (B, NH, L, S) without materialising more than needed."""
    ms = []
    if attn_mask is not None:
        a = _mask_array(attn_mask, op)
        if a.shape == (L, S):
            pass
        elif a.shape == (B * NH, L, S):
            a = a.reshape(B, NH, L, S)
        else:
            raise ValueError(f"fastnn.nn.{op}: expected attn_mask of shape {(L, S)} or {(B * NH, L, S)}, got {a.shape}")
        ms.append(a)
    if key_padding_mask is not None:
        kp = _mask_array(key_padding_mask, op)
        if kp.shape != (B, S):
            raise ValueError(f"fastnn.nn.{op}: expected key_padding_mask of shape {(B, S)}, got {kp.shape}")
        ms.append(kp.reshape(B, 1, 1, S))
    if not ms:
        return None
    if len(ms) > 1 and not all(isinstance(m, _HOST) for m in ms):
        _dev.check_same_device(*ms)
    xp = _xp(ms[0])
    if all(m.dtype == np.bool_ for m in ms):
        keep = ~ms[0]
        for m in ms[1:]:
            keep = keep & ~m
        return xp.ascontiguousarray(keep)
    total = None
    for m in ms:
        add = xp.where(m, np.float32(-np.inf), np.float32(0)) if m.dtype == np.bool_ else m
        total = add if total is None else total + add
    return xp.ascontiguousarray(total, dtype=np.float64 if total.dtype == np.float64 else np.float32)


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention's parameters (in_proj_weight (3E, E), or q/k/v_proj_weight
    (E, E), (E, kdim), (E, vdim) when kdim or vdim differ from E; in_proj_bias (3E,); bias_k and
    bias_v (1, 1, E) with add_bias_kv; out_proj) and forward."""

    def __init__(
        self,
        embed_dim,
        num_heads,
        dropout=0.0,
        bias=True,
        add_bias_kv=False,
        add_zero_attn=False,
        kdim=None,
        vdim=None,
        batch_first=False,
    ):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"fastnn.nn.MultiheadAttention: expected embed_dim divisible by num_heads (both "
                f"> 0), got embed_dim={embed_dim}, num_heads={num_heads}"
            )
        E = embed_dim
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or E, vdim or E
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        self.dropout, self.batch_first, self.add_zero_attn = float(dropout), batch_first, bool(add_zero_attn)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), np.float32))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            for n, d in (("q", E), ("k", self.kdim), ("v", self.vdim)):
                setattr(self, f"{n}_proj_weight", Parameter(np.empty((E, d), np.float32)))
        self.in_proj_bias = Parameter(np.zeros(3 * E, np.float32)) if bias else None
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), np.float32))
            self.bias_v = Parameter(np.empty((1, 1, E), np.float32))
        else:
            self.bias_k = self.bias_v = None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        if bias:
            init.constant_(self.out_proj.bias, 0.0)
        if add_bias_kv:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)
        self.to(_factory_dtype())  # the default dtype (fastnn.set_default_dtype)

    def forward(
        self,
        query,
        key,
        value,
        key_padding_mask=None,
        need_weights=True,
        attn_mask=None,
        average_attn_weights=True,
        is_causal=False,
    ):
        op = "MultiheadAttention"
        q, k, v = _t(query), _t(key), _t(value)
        unbatched = q.ndim == 2
        if unbatched:
            q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = _mask_array(key_padding_mask, op)[None]
        elif not self.batch_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        if q.ndim != 3 or k.ndim != 3 or v.ndim != 3 or q.shape[-1] != self.embed_dim or k.shape[-1] != self.kdim:
            raise ValueError(
                f"fastnn.nn.{op}: expected (batch, seq, {self.embed_dim}) inputs (or 2-D unbatched), "
                f"got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )
        if is_causal and attn_mask is None:
            raise ValueError(f"fastnn.nn.{op}: need attn_mask if specifying the is_causal hint")
        B, L, E = q.shape
        S, NH, HD = k.shape[1], self.num_heads, self.head_dim
        W, b = self.in_proj_weight, self.in_proj_bias

        def proj(t, i):
            w = (
                W[i * E : (i + 1) * E]
                if W is not None
                else (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
            )
            return F.linear(t, w, None if b is None else b[i * E : (i + 1) * E])

        kp, vp = proj(k, 1), proj(v, 2)
        if self.bias_k is not None:  # one more key and value, every query may attend to
            kp, vp = cat([kp, self.bias_k.expand(B, 1, E)], 1), cat([vp, self.bias_v.expand(B, 1, E)], 1)
            attn_mask, key_padding_mask, S = _pad_mask(attn_mask, op), _pad_mask(key_padding_mask, op), S + 1
        qh = proj(q, 0).reshape(B, L, NH, HD).transpose(1, 2)
        kh = kp.reshape(B, S, NH, HD).transpose(1, 2)
        vh = vp.reshape(B, S, NH, HD).transpose(1, 2)
        if self.add_zero_attn:  # and a zero key and value per head
            z = Tensor(_xp(q._data).zeros((B, NH, 1, HD), q._data.dtype))
            kh, vh = cat([kh, z], 2), cat([vh, z], 2)
            attn_mask, key_padding_mask, S = _pad_mask(attn_mask, op), _pad_mask(key_padding_mask, op), S + 1
        drop = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            mask = _mha_mask(attn_mask, key_padding_mask, B, NH, L, S, op)
            out, weights = _math_attention(qh, kh, vh, mask, False, 1.0 / math.sqrt(HD), drop)
            if average_attn_weights:
                weights = weights.mean(1)
            if unbatched:
                weights = weights.squeeze(0)
        elif is_causal and key_padding_mask is None:
            # the hint: attn_mask is the causal mask, so the kernel may skip the masked blocks
            out = scaled_dot_product_attention(qh, kh, vh, None, drop, True)
        else:
            mask = _mha_mask(attn_mask, key_padding_mask, B, NH, L, S, op)
            out = scaled_dot_product_attention(qh, kh, vh, mask, drop)
        out = self.out_proj(out.transpose(1, 2).reshape(B, L, E))
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def _activation(a, layer):
    if callable(a):
        return a
    if a == "relu":
        return F.relu
    if a == "gelu":
        return F.gelu
    raise ValueError(f"fastnn.nn.{layer}: activation should be relu/gelu, not {a!r}")


class _TransformerLayer(Module):
    """What torch's encoder and decoder layers share: the constructor (a decoder, _n_attn 2,
    also attends over the memory), which makes the modules in torch's order (the state_dict's):
    the attentions, the feed-forward block, then a norm and a dropout per residual; and the
    self-attention block."""

    _n_attn = 1

    def __init__(
        self,
        d_model,
        nhead,
        dim_feedforward=2048,
        dropout=0.1,
        activation="relu",
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
        bias=True,
        device=None,
        dtype=None,
    ):
        super().__init__()

        def attention():
            return MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)

        self.self_attn = attention()
        if self._n_attn == 2:
            self.multihead_attn = attention()
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        for i in range(1, self._n_attn + 2):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        for i in range(1, self._n_attn + 2):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(activation, type(self).__name__)
        _place(self, device, dtype)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)


class TransformerEncoderLayer(_TransformerLayer):
    """torch.nn.TransformerEncoderLayer: self-attention and a feed-forward block, each with a
    residual connection, post-norm by default (norm_first=True: pre-norm)."""

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = _t(src)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerEncoder(Module):
    """torch.nn.TransformerEncoder: num_layers deep copies of encoder_layer, then norm if given."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        # enable_nested_tensor and mask_check choose torch's fast paths for padded batches; the
        # results are the same without them
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        # is_causal=None: torch detects a causal mask; with the mask applied as given, a hint only
        x, is_causal = src, bool(is_causal)
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)


def _place(module, device, dtype):
    """A layer built with device= / dtype= (torch's factory arguments) moved there."""
    if dtype is not None:
        module.to(dtype=dtype)
    if device is not None:
        module.to(device)


class TransformerDecoderLayer(_TransformerLayer):
    """torch.nn.TransformerDecoderLayer: self-attention over tgt, attention over the encoder's
    memory and a feed-forward block, each with a residual connection; post-norm by default
    (norm_first=True: pre-norm)."""

    _n_attn = 2

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(
            x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal=False,
        memory_is_causal=False,
    ):
        x, mem = _t(tgt), _t(memory)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), mem, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, mem, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x


class TransformerDecoder(Module):
    """torch.nn.TransformerDecoder: num_layers deep copies of decoder_layer, then norm if given."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal=None,
        memory_is_causal=False,
    ):
        x = tgt
        for layer in self.layers:
            x = layer(
                x,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal),
                memory_is_causal=memory_is_causal,
            )
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """torch.nn.Transformer: an encoder of num_encoder_layers TransformerEncoderLayers and a
    decoder of num_decoder_layers TransformerDecoderLayers, each stack followed by a LayerNorm;
    every weight matrix initialised xavier_uniform_ as torch's. forward(src, tgt) returns the
    decoder's output (tgt's shape); masks as MultiheadAttention's."""

    def __init__(
        self,
        d_model=512,
        nhead=8,
        num_encoder_layers=6,
        num_decoder_layers=6,
        dim_feedforward=2048,
        dropout=0.1,
        activation="relu",
        custom_encoder=None,
        custom_decoder=None,
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
        bias=True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        opts = dict(
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=activation,
            layer_norm_eps=layer_norm_eps,
            batch_first=batch_first,
            norm_first=norm_first,
            bias=bias,
        )
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, **opts)
            self.encoder = TransformerEncoder(
                layer, num_encoder_layers, LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            )
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, **opts)
            self.decoder = TransformerDecoder(
                layer, num_decoder_layers, LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            )
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        _place(self, device, dtype)

    def forward(
        self,
        src,
        tgt,
        src_mask=None,
        tgt_mask=None,
        memory_mask=None,
        src_key_padding_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        src_is_causal=None,
        tgt_is_causal=None,
        memory_is_causal=False,
    ):
        src, tgt = _t(src), _t(tgt)
        batched = src.dim() == 3
        b = 0 if self.batch_first else 1
        if batched and src.shape[b] != tgt.shape[b]:
            raise RuntimeError("fastnn.nn.Transformer: the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("fastnn.nn.Transformer: the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(src_is_causal)
        )
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The (sz, sz) float causal mask: 0 on and below the diagonal, -inf above."""
        from ..tensor import Tensor

        dt = _factory_dtype(dtype)
        m = np.triu(np.full((sz, sz), -np.inf, dt), 1)
        t = Tensor(m)
        return t if device is None else t.to(device)


class PositionalEmbedding(Module):
    """A learned positional embedding: forward(x) = x + weight[:L] for x (..., L, embedding_dim)
    with the positions on the second-to-last axis (batch_first layout), weight (num_positions,
    embedding_dim) initialised N(0, 0.02^2) as in GPT-2."""

    def __init__(self, num_positions, embedding_dim):
        super().__init__()
        self.num_positions, self.embedding_dim = num_positions, embedding_dim
        self.weight = Parameter(np.empty((num_positions, embedding_dim), _factory_dtype()))
        init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x):
        x = _t(x)
        L = x.shape[-2]
        if L > self.num_positions or x.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"fastnn.nn.PositionalEmbedding: expected (..., L <= {self.num_positions}, "
                f"{self.embedding_dim}) input, got {tuple(x.shape)}"
            )
        return x + self.weight[:L]

    def extra_repr(self):
        return f"{self.num_positions}, {self.embedding_dim}"
