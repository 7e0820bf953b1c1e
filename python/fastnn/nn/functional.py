"""fastnn.nn.functional: torch.nn.functional's names over fastnn's kernels, with autograd.

Each function computes its forward with a fastnn.ops kernel and records a backward that calls
the matching backward kernel. Two fusions happen without the caller asking: a ReLU computed just
before a max pooling gets its gradient from the pooling backward's pass (max_pool2d_backward with
relu=True), and a linear or convolution layer takes its bias in the kernel's epilogue.
float64 tensors take the same path through fastnn.ref.f64 (the NumPy float64 references with
fastnn.ops' signatures) instead of fastnn.ops; results and gradients keep the inputs' dtype.

On a CUDA device the same calls run (fastnn.ops sends CUDA arrays to the CUDA kernels); the
little array math here uses the array's namespace (NumPy or CuPy). Dropout masks come from
fastnn's host generator and are copied to the device, so a seeded run drops the same elements
on either device.
"""

import math
import warnings

import numpy as np

from .. import _device as _dev
from .. import _dtypes, _quiet, ops
from .. import random as _random
from .._conv import conv_transpose2d_geometry
from .._device import xp as _xp
from ..sparse import RowSparse
from ..tensor import _HOST, Tensor, _kernels, _unbroadcast
from ._unsupported import TORCH_NN_FUNCTIONAL as _TORCH_NN_FUNCTIONAL
from ._unsupported import missing as _missing

__all__ = [
    "conv2d",
    "linear",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "gelu",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy_with_logits",
    "dropout",
    "batch_norm",
    "embedding",
    "flatten",
    "rnn",
    "lstm",
    "gru",
    "rnn_cell",
    "lstm_cell",
    "gru_cell",
    "layer_norm",
    "scaled_dot_product_attention",
    "conv1d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool1d",
    "avg_pool1d",
    "adaptive_avg_pool1d",
    "silu",
    "mish",
    "softplus",
    "elu",
    "selu",
    "celu",
    "hardtanh",
    "relu6",
    "hardsigmoid",
    "hardswish",
    "softsign",
    "tanhshrink",
    "logsigmoid",
    "hardshrink",
    "softshrink",
    "threshold",
    "glu",
    "softmin",
    "prelu",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "kl_div",
    "pad",
    "interpolate",
    "upsample",
    "upsample_nearest",
    "upsample_bilinear",
    "normalize",
    "cosine_similarity",
    "pairwise_distance",
    "triplet_margin_loss",
    "pixel_shuffle",
    "pixel_unshuffle",
    "one_hot",
    "group_norm",
    "instance_norm",
    "bilinear",
]


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _same(*tensors):
    """torch's RuntimeError unless the tensors (None skipped) are on one device."""
    arrays = [t._data for t in tensors if t is not None]
    if not all(isinstance(a, _HOST) for a in arrays):
        _dev.check_same_device(*arrays)


def _array(v, like=None):
    """The array of a tensor, a CUDA array as it is, anything else as a NumPy array."""
    if isinstance(v, Tensor):
        return v._data
    if not isinstance(v, np.ndarray) and hasattr(v, "__cuda_array_interface__"):
        return v
    return np.asarray(v)


def _same_float(op, X, **named):
    """torch's RuntimeError when float32 / float64 input X meets named arrays or tensors (None:
    absent) of the other of the two dtypes."""
    if X.dtype not in (np.float32, np.float64):
        return
    for name, v in named.items():
        d = None if v is None else v.dtype
        if d is not None and d != X.dtype and d in (np.float32, np.float64):
            raise RuntimeError(f"fastnn.nn.functional.{op}: expected {name} to be {X.dtype}, got {d}")


def _grad_scale(g, n):
    """The gradient g of a reduced loss over n: a Python float on the CPU (as before), a 0-d
    array of g's dtype on a device (float64 division rounded once, as the host's float does)."""
    if isinstance(g, _HOST):
        return float(g) / n
    return (g.astype(np.float64) / n).astype(g.dtype)


# -- layers -----------------------------------------------------------------------------------


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if _t(input).ndim == 3:  # unbatched (C, H, W)
        return conv2d(_t(input).unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    x, w = _t(input), _t(weight)
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    K = _kernels("conv2d", ("input", "weight", "bias"), x, w, b)
    X, Wt = x._data, w._data
    y = K.conv2d_forward(X, Wt, None if b is None else b._data, stride, padding, dilation, groups)
    parents = (x, w) if b is None else (x, w, b)

    def backward(g):
        dx = K.conv2d_backward_data(g, Wt, X.shape, stride, padding, dilation, groups) if x.requires_grad else None
        dw = K.conv2d_backward_weight(g, X, Wt.shape, stride, padding, dilation, groups) if w.requires_grad else None
        if b is None:
            return dx, dw
        return dx, dw, K.conv2d_backward_bias(g) if b.requires_grad else None

    return Tensor._result(y, parents, backward, "conv2d")


def linear(input, weight, bias=None):
    x, w = _t(input), _t(weight)
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    K = _kernels("linear", ("input", "weight", "bias"), x, w, b)
    X, Wt = x._data, w._data
    lead = X.shape[:-1]
    X2 = X.reshape(-1, X.shape[-1])
    y = K.gemm(X2, Wt, trans_b=True, bias=None if b is None else b._data).reshape(lead + (Wt.shape[0],))
    parents = (x, w) if b is None else (x, w, b)
    host = isinstance(X, _HOST)

    def backward(g):
        g2 = g.reshape(-1, g.shape[-1])
        if not host:
            g2 = _xp(g2).ascontiguousarray(g2)  # the CUDA gemm reads C-contiguous arrays only
        dx = K.gemm(g2, Wt).reshape(X.shape) if x.requires_grad else None
        dw = K.gemm(g2, X2, trans_a=True) if w.requires_grad else None
        if b is None:
            return dx, dw
        return dx, dw, g2.sum(axis=0, dtype=X.dtype) if b.requires_grad else None

    return Tensor._result(y, parents, backward, "linear")


def flatten(input, start_dim=0, end_dim=-1):
    return _t(input).flatten(start_dim, end_dim)


# -- activations ------------------------------------------------------------------------------


def relu(input, inplace=False):
    return _t(input).relu()


def leaky_relu(input, negative_slope=0.01, inplace=False):
    x = _t(input)
    K, X = _kernels("leaky_relu", ("input",), x), x._data
    y = K.leaky_relu_forward(X, negative_slope)
    return Tensor._result(y, (x,), lambda g: (K.leaky_relu_backward(g, X, negative_slope),), "leaky_relu")


def sigmoid(input):
    return _t(input).sigmoid()


def tanh(input):
    return _t(input).tanh()


def gelu(input, approximate="none"):
    x = _t(input)
    K, X = _kernels("gelu", ("input",), x), x._data
    y = K.gelu_forward(X, approximate)
    return Tensor._result(y, (x,), lambda g: (K.gelu_backward(g, X, approximate),), "gelu")


# -- pooling ----------------------------------------------------------------------------------


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if _t(input).ndim == 3:  # unbatched (C, H, W)
        out = max_pool2d(_t(input).unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        return (out[0].squeeze(0), out[1].squeeze(0)) if return_indices else out.squeeze(0)
    x = _t(input)
    K, X = _kernels("max_pool2d", ("input",), x), x._data
    y, idx = K.max_pool2d_forward(X, kernel_size, stride, padding, dilation, ceil_mode)
    node = x._node
    if node is not None and node.name == "relu":
        # x = relu(z): the pooling backward takes the gradient on to z in its own pass; the
        # ReLU's node then gets a gradient only from x's other consumers, if any
        z = node.parents[0]
        out = Tensor._result(
            y,
            (z,),
            lambda g: (K.max_pool2d_backward(g, X, idx, kernel_size, stride, padding, dilation, ceil_mode, relu=True),),
            "max_pool2d",
        )
    else:
        out = Tensor._result(
            y,
            (x,),
            lambda g: (K.max_pool2d_backward(g, X, idx, kernel_size, stride, padding, dilation, ceil_mode),),
            "max_pool2d",
        )
    return (out, Tensor(idx)) if return_indices else out


def avg_pool2d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    if _t(input).ndim == 3:  # unbatched (C, H, W)
        x = _t(input).unsqueeze(0)
        return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override).squeeze(0)
    if divisor_override is not None:  # the sum of each window's input elements / divisor_override
        y = avg_pool2d(input, kernel_size, stride, padding, ceil_mode, False)
        (kh, kw), (sh, sw), (ph, pw) = (_pair(v) for v in (kernel_size, stride or kernel_size, padding))
        n = [
            np.minimum(np.arange(o) * s - p + k, d) - np.maximum(np.arange(o) * s - p, 0)
            for o, s, p, k, d in (
                (y.shape[-2], sh, ph, kh, _t(input).shape[-2]),
                (y.shape[-1], sw, pw, kw, _t(input).shape[-1]),
            )
        ]
        dt = y._data.dtype
        return y * Tensor(_dev.move(np.outer(*n).astype(dt) / dt.type(divisor_override), y.device))
    x = _t(input)
    K, X = _kernels("avg_pool2d", ("input",), x), x._data
    y = K.avg_pool2d_forward(X, kernel_size, stride, padding, ceil_mode, count_include_pad)
    return Tensor._result(
        y,
        (x,),
        lambda g: (K.avg_pool2d_backward(g, X, kernel_size, stride, padding, ceil_mode, count_include_pad),),
        "avg_pool2d",
    )


def adaptive_avg_pool2d(input, output_size):
    if _t(input).ndim == 3:  # unbatched (C, H, W)
        return adaptive_avg_pool2d(_t(input).unsqueeze(0), output_size).squeeze(0)
    x = _t(input)
    K, X = _kernels("adaptive_avg_pool2d", ("input",), x), x._data
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    H, W = X.shape[-2:]
    oh, ow = H if oh is None else int(oh), W if ow is None else int(ow)  # None keeps that size
    if oh < 0 or ow < 0:
        raise RuntimeError(
            "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received "
            f"{{{oh}, {ow}}}"
        )
    if oh == 0 or ow == 0:  # torch: an empty result
        xp = _xp(X)
        y = xp.zeros(X.shape[:-2] + (oh, ow), X.dtype)
        return Tensor._result(y, (x,), lambda g: (xp.zeros_like(X),), "adaptive_avg_pool2d")
    if (oh, ow) == (1, 1):
        y = K.global_avg_pool2d_forward(X)
        return Tensor._result(y, (x,), lambda g: (K.global_avg_pool2d_backward(g, X),), "adaptive_avg_pool2d")
    if H % oh or W % ow:  # regions of unequal sizes: y = Ah x Aw^T, averaging matrices
        dev = _dev.device_of(X)
        ah, aw = (Tensor(_dev.move(_adaptive_matrix(n, m, X.dtype), dev)) for n, m in ((oh, H), (ow, W)))
        return ah @ x @ aw.transpose(0, 1)
    return avg_pool2d(x, (H // oh, W // ow))


def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(u) for u in v)


def _adaptive_matrix(n_out, n_in, dtype):
    """(n_out, n_in) of dtype: row i averages torch's adaptive region [floor(i n_in / n_out),
    ceil((i + 1) n_in / n_out))."""
    a = np.zeros((n_out, n_in), dtype)
    for i in range(n_out):
        lo, hi = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


# -- softmax and losses -------------------------------------------------------------------------


def _move_dim_last(a, dim):
    return _xp(a).moveaxis(a, dim, -1) if dim not in (-1, a.ndim - 1) else a


def _implicit_dim(name, ndim, stacklevel):
    """torch's dim for softmax-like functions called without one (with its warning, pointing
    stacklevel frames up from the softmax function, as torch's _stacklevel)."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as an argument.",
        stacklevel=_quiet.stacklevel(stacklevel),
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _t(input)
    if dim is None:
        dim = _implicit_dim("softmax", x.ndim, _stacklevel)
    return x.softmax(dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _t(input)
    if dim is None:
        dim = _implicit_dim("log_softmax", x.ndim, _stacklevel)
    return x.log_softmax(dim, dtype=dtype)


def _reduce(loss, reduction, denom, op, dtype):
    """loss ("none"), or its float64 sum (over denom: "mean") rounded to dtype."""
    if reduction == "none":
        return loss
    xp = _xp(loss)
    if reduction == "sum":
        return xp.asarray(loss.sum(dtype=np.float64), dtype)
    if reduction == "mean":
        return xp.asarray(loss.sum(dtype=np.float64) / denom, dtype)
    raise ValueError(f"fastnn.nn.functional.{op}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")


def _class_rows(logits, target, op):
    """(rows (M, C) float32 with classes last, targets (M,) int64, shape of the per-row loss)."""
    L, T = logits._data, _array(target)
    if not (isinstance(L, _HOST) and isinstance(T, _HOST)):
        _dev.check_same_device(L, T)
    if L.ndim < 1:
        raise ValueError(f"fastnn.nn.functional.{op}: expected input of shape (N, C) or (N, C, d1, ...), got {L.shape}")
    if T.dtype.kind not in "iu":
        raise TypeError(f"fastnn.nn.functional.{op}: expected class-index targets of an integer type, got {T.dtype}")
    if L.ndim == 1:
        L, T = L[None], T.reshape(1)
    if T.shape != (L.shape[0],) + L.shape[2:]:
        raise ValueError(
            f"fastnn.nn.functional.{op}: expected target of shape {(L.shape[0],) + L.shape[2:]}, got {T.shape}"
        )
    rows = _move_dim_last(L, 1).reshape(-1, L.shape[1])
    return rows, T.reshape(-1).astype(np.int64), T.shape


def _nll_parts(logp, t, weight, ignore_index, C, op):
    xp = _xp(t)
    keep = t != ignore_index
    tt = xp.where(keep, t, 0)
    if ((tt < 0) | (tt >= C)).any():
        bad = int(t[keep & ((t < 0) | (t >= C))][0])
        raise ValueError(f"fastnn.nn.functional.{op}: expected targets in [0, {C}) or ignore_index, got {bad}")
    if weight is None:
        w = xp.ones(C, np.float64)
    else:
        w = _array(weight)
        _dev.check_same_device(t, w)
        if w.shape != (C,):
            raise ValueError(f"fastnn.nn.functional.{op}: expected weight of shape ({C},), got {w.shape}")
        w = w.astype(np.float64)
    wt = xp.where(keep, w[tt], 0.0)
    return keep, tt, w, wt


def cross_entropy(
    input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean", label_smoothing=0.0
):
    """torch.nn.functional.cross_entropy: class-index targets (the fused kernel for float32
    logits and int64 targets), or class probabilities (a float target of input's shape)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x = _t(input)
    T = _array(target)
    if T.dtype.kind == "f" and T.shape == x.shape:
        _check_reduction(reduction)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(
                f"fastnn.nn.functional.cross_entropy: expected label_smoothing in [0, 1], got {label_smoothing}"
            )
        return _cross_entropy_probs(x, target, weight, reduction, label_smoothing)
    W = (
        None
        if weight is None
        else (weight._data if isinstance(weight, Tensor) else _array(weight).astype(np.float32, copy=False))
    )
    if not (isinstance(x._data, _HOST) and isinstance(T, _HOST) and (W is None or isinstance(W, _HOST))):
        _dev.check_same_device(x._data, T, W)
    dt = x._data.dtype  # the loss's dtype (torch: the input's)
    if isinstance(weight, Tensor) and W.dtype != dt and W.dtype.kind == dt.kind == "f":
        raise RuntimeError(f"fastnn.nn.functional.cross_entropy: expected weight to be {dt}, got {W.dtype}")
    if x._data.dtype == np.float32 and T.dtype == np.int64 and (W is None or W.dtype == np.float32):
        # the fused kernel: one pass per row forward, one backward (softmax recomputed)
        X = x._data
        loss = ops.cross_entropy_forward(X, T, W, ignore_index, label_smoothing, reduction)
        return Tensor._result(
            loss,
            (x,),
            lambda g: (ops.cross_entropy_backward(g, X, T, W, ignore_index, label_smoothing, reduction),),
            "cross_entropy",
        )
    rows, t, tshape = _class_rows(x, target, "cross_entropy")
    xp = _xp(rows)
    M, C = rows.shape
    r = rows.astype(np.float64)
    m = r.max(axis=1, keepdims=True)
    z = r - m
    lse = xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    logp = z - lse
    keep, tt, w, wt = _nll_parts(logp, t, weight, ignore_index, C, "cross_entropy")
    eps = float(label_smoothing)
    nll = -logp[xp.arange(M), tt] * wt
    loss = (1 - eps) * nll
    if eps:
        loss = loss + eps / C * xp.where(keep, -(logp * w).sum(axis=1), 0.0)
    denom = wt.sum()
    out = _reduce(
        loss.astype(dt).reshape(tshape) if reduction == "none" else loss, reduction, denom, "cross_entropy", dt
    )
    p = xp.exp(logp)

    def backward(g):
        g = xp.asarray(g, np.float64)
        gi = g.reshape(-1) if reduction == "none" else _full(xp, M, g, denom if reduction == "mean" else 1.0)
        coef = ((1 - eps) * wt + (eps / C) * w.sum() * keep) * gi
        d = p * coef[:, None]
        d[xp.arange(M), tt] -= (1 - eps) * wt * gi
        if eps:
            d -= (eps / C) * xp.outer(gi * keep, w)
        d = d.astype(dt).reshape(_move_dim_last(x._data, 1).shape)
        if x._data.ndim > 2:
            d = xp.ascontiguousarray(xp.moveaxis(d, -1, 1))
        return (d.reshape(x._data.shape),)

    return Tensor._result(xp.asarray(out, dt), (x,), backward, "cross_entropy")


def _full(xp, n, g, denom):
    """n copies of the 0-d g / denom (float64): np.full on the host; on a device without reading
    g back."""
    if xp is np:
        return np.full(n, float(g) / denom)
    return xp.broadcast_to(g.reshape(()) / denom, (n,))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if _t(input).ndim == 1:  # unbatched (C,), a 0-d target
        out = nll_loss(_t(input).unsqueeze(0), _array(target).reshape(1), weight, None, ignore_index, None, reduction)
        return out.squeeze(0) if reduction == "none" else out
    x = _t(input)
    rows, t, tshape = _class_rows(x, target, "nll_loss")
    xp = _xp(rows)
    M, C = rows.shape
    keep, tt, w, wt = _nll_parts(rows, t, weight, ignore_index, C, "nll_loss")
    loss = -rows[xp.arange(M), tt].astype(np.float64) * wt
    denom = wt.sum()
    dt = rows.dtype  # the loss's dtype (torch: the input's)
    out = _reduce(loss.astype(dt).reshape(tshape) if reduction == "none" else loss, reduction, denom, "nll_loss", dt)

    def backward(g):
        g = xp.asarray(g, np.float64)
        gi = g.reshape(-1) if reduction == "none" else _full(xp, M, g, denom if reduction == "mean" else 1.0)
        d = xp.zeros((M, C), dt)
        d[xp.arange(M), tt] = -(wt * gi)
        d = d.reshape(_move_dim_last(x._data, 1).shape)
        if x._data.ndim > 2:
            d = xp.ascontiguousarray(xp.moveaxis(d, -1, 1))
        return (d.reshape(x._data.shape),)

    return Tensor._result(xp.asarray(out, dt), (x,), backward, "nll_loss")


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is not None:
        return _weighted(mse_loss(input, target, reduction="none"), weight, input, reduction, True)
    x, y = _t(input), _t(target)
    _same(x, y)
    _size_warning(x, y)
    diff = x._data - y._data
    loss = diff * diff
    dt = _dtypes.result_type(x._data, y._data)  # torch's promotion of input and target
    out = _reduce(loss.astype(dt, copy=False), reduction, loss.size, "mse_loss", dt)
    n = loss.size if reduction == "mean" else 1

    def backward(g):
        d = 2 * diff * (g if reduction == "none" else _grad_scale(g, n))
        return (_unbroadcast(d.astype(x.dtype), x.shape), _unbroadcast(-d.astype(_dtypes.float_of(y.dtype)), y.shape))

    return Tensor._result(_xp(loss).asarray(out, dt), (x, y), backward, "mse_loss")


def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target)
    wt = None if weight is None else _t(weight)
    pwt = None if pos_weight is None else _t(pos_weight)
    _same(x, y, wt, pwt)
    xp = _xp(x._data)
    X, Y = x._data.astype(np.float64), y._data.astype(np.float64)
    w = 1.0 if wt is None else wt._data.astype(np.float64)
    pw = 1.0 if pwt is None else pwt._data.astype(np.float64)
    # loss = -w [pw y log s(x) + (1 - y) log(1 - s(x))], with log s(x) = -softplus(-x)
    sp_neg = xp.logaddexp(0, -X)  # -log s(x)
    sp_pos = xp.logaddexp(0, X)  # -log(1 - s(x))
    loss = w * (pw * Y * sp_neg + (1 - Y) * sp_pos)
    dt = x._data.dtype  # the loss's dtype (the input's)
    out = _reduce(
        loss.astype(dt) if reduction == "none" else loss,
        reduction,
        loss.size,
        "binary_cross_entropy_with_logits",
        dt,
    )
    n = loss.size if reduction == "mean" else 1

    def backward(g):
        s = 1 / (1 + xp.exp(-X))
        scale = g if reduction == "none" else (float(g) / n if xp is np else g.astype(np.float64) / n)
        d = w * (pw * Y * (s - 1) + (1 - Y) * s) * scale
        dy = w * (pw * sp_neg - sp_pos) * scale if y.requires_grad else None  # torch's target gradient
        dy = None if dy is None else _unbroadcast(dy, y.shape).astype(y._data.dtype)
        return _unbroadcast(d.astype(dt), x.shape), dy

    return Tensor._result(xp.asarray(out, dt), (x, y), backward, "binary_cross_entropy_with_logits")


# -- regularisation and normalisation -----------------------------------------------------------


def dropout(input, p=0.5, training=True, inplace=False):
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _t(input)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    # drawn on the host (fastnn's generator) and copied: the same mask on every device
    dt = x._data.dtype if x._data.dtype.kind == "f" else np.dtype(np.float32)
    mask = (_random.generator().random(x.shape) >= p).astype(dt) / dt.type(1 - p)
    mask = _dev.move(mask, _dev.device_of(x._data))
    return Tensor._result(x._data * mask, (x,), lambda g: (g * mask,), "dropout")


def _bn_kernel(x, rm, rv, w, b, training, momentum, eps):
    """batch_norm through the NCHW kernels: 2-D (N, C) and 3-D (N, C, L) inputs viewed as 4-D."""
    X = x._data
    X4 = X.reshape(X.shape[:2] + (-1, 1)) if X.ndim != 4 else X
    W = None if w is None else w._data
    y, sm, si = ops.batch_norm2d_forward(X4, W, None if b is None else b._data, rm, rv, training, momentum, eps)
    parents = tuple(t for t in (x, w, b) if t is not None)

    def backward(g):
        dx, dw, db = ops.batch_norm2d_backward(_xp(g).ascontiguousarray(g).reshape(X4.shape), X4, W, sm, si, training)
        grads = [dx.reshape(X.shape)]
        if w is not None:
            grads.append(dw)
        if b is not None:
            grads.append(db)
        return tuple(grads)

    return Tensor._result(y.reshape(X.shape), parents, backward, "batch_norm")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    x = _t(input)
    X = x._data
    w0 = None if weight is None else _t(weight)
    b0 = None if bias is None else _t(bias)
    rm0 = None if running_mean is None else (running_mean._data if isinstance(running_mean, Tensor) else running_mean)
    rv0 = None if running_var is None else (running_var._data if isinstance(running_var, Tensor) else running_var)
    host = isinstance(X, _HOST)
    if not (
        host
        and all(isinstance(a, _HOST) for a in (rm0, rv0) if a is not None)
        and (w0 is None or isinstance(w0._data, _HOST))
        and (b0 is None or isinstance(b0._data, _HOST))
    ):
        _dev.check_same_device(X, None if w0 is None else w0._data, None if b0 is None else b0._data, rm0, rv0)
    _same_float("batch_norm", X, input=X, weight=w0, bias=b0, running_mean=rm0, running_var=rv0)
    array = np.ndarray if host else type(X)  # the running statistics must be arrays the kernel writes
    if (
        X.dtype == np.float32
        and 2 <= X.ndim <= 4
        and all(t is None or t._data.dtype == np.float32 for t in (w0, b0))
        and all(r is None or (isinstance(r, array) and r.dtype == np.float32) for r in (rm0, rv0))
        and (training or rm0 is not None)
    ):
        return _bn_kernel(x, rm0, rv0, w0, b0, training, momentum, eps)
    xp = _xp(X)
    axes = (0,) + tuple(range(2, X.ndim))
    shape = (1, X.shape[1]) + (1,) * (X.ndim - 2)
    n = X.size // X.shape[1]
    rm = None if running_mean is None else (running_mean._data if isinstance(running_mean, Tensor) else running_mean)
    rv = None if running_var is None else (running_var._data if isinstance(running_var, Tensor) else running_var)
    if training:
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {X.shape}")
        X64 = X.astype(np.float64)
        mean = X64.mean(axis=axes)
        var = X64.var(axis=axes)
        if rm is not None:
            rm[...] = (1 - momentum) * rm + momentum * mean
        if rv is not None:
            rv[...] = (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mean, var = xp.asarray(rm, np.float64), xp.asarray(rv, np.float64)
    invstd = 1 / xp.sqrt(var + eps)
    dt = X.dtype if X.dtype.kind == "f" else np.dtype(np.float32)  # the result's dtype (the input's)
    xhat = ((X - mean.reshape(shape)) * invstd.reshape(shape)).astype(dt)
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    y = xhat
    if w is not None:
        y = y * w._data.reshape(shape)
    if b is not None:
        y = y + b._data.reshape(shape)
    parents = tuple(t for t in (x, w, b) if t is not None)

    def backward(g):
        G = g.astype(np.float64)
        gw = (G * xhat).sum(axis=axes)
        gb = G.sum(axis=axes)
        scale = invstd * (1.0 if w is None else w._data.astype(np.float64))
        if training:
            dx = scale.reshape(shape) * (G - gb.reshape(shape) / n - xhat * (gw.reshape(shape) / n))
        else:
            dx = G * scale.reshape(shape)
        grads = [dx.astype(X.dtype)]
        if w is not None:
            grads.append(gw.astype(w._data.dtype))
        if b is not None:
            grads.append(gb.astype(b._data.dtype))
        return tuple(grads)

    return Tensor._result(xp.ascontiguousarray(y, dt), parents, backward, "batch_norm")


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    idx = _array(input)
    w = _t(weight)
    V = w.shape[0]
    if idx.dtype.kind not in "iu":
        raise TypeError(f"fastnn.nn.functional.embedding: expected integer indices, got {idx.dtype}")
    host = isinstance(idx, _HOST) and isinstance(w._data, _HOST)
    if not host:
        _dev.check_same_device(w._data, idx)
        idx = _xp(idx).ascontiguousarray(idx, dtype=np.int64)
    # (on a device the kernels check the range themselves, with one reduction)
    if (host or w._data.dtype != np.float32) and idx.size and (idx.min() < 0 or idx.max() >= V):
        raise ValueError(
            f"fastnn.nn.functional.embedding: expected indices in [0, {V}), got "
            f"{int(idx.min()) if idx.min() < 0 else int(idx.max())}"
        )
    if sparse:
        # the weight's gradient is row-sparse: one row per looked-up position (padding_idx's left out)
        D, pad = w.shape[1], None if padding_idx is None else padding_idx % V
        out = None if w._data.dtype == np.float32 else w._data[idx]

        def backward_sparse(g):
            flat, rows = idx.reshape(-1), _xp(g).ascontiguousarray(g, dtype=w._data.dtype).reshape(-1, D)
            if pad is not None:
                keep = flat != pad
                flat, rows = flat[keep], rows[keep]
            return (RowSparse(flat, rows, w.shape),)

        if w._data.dtype == np.float32:
            out = ops.embedding_forward(w._data, idx, padding_idx)
        return Tensor._result(out, (w,), backward_sparse, "embedding")
    if w._data.dtype == np.float32:
        out = ops.embedding_forward(w._data, idx, padding_idx)
        return Tensor._result(
            out,
            (w,),
            lambda g: (ops.embedding_backward(_xp(g).ascontiguousarray(g), idx, V, padding_idx),),
            "embedding",
        )
    out = w._data[idx]
    xp = _xp(out)

    def backward(g):
        d = xp.zeros_like(w._data)
        _dev.scatter_add(d, idx.reshape(-1), g.reshape(-1, w.shape[1]))
        if padding_idx is not None:
            d[padding_idx] = 0
        return (d,)

    return Tensor._result(out, (w,), backward, "embedding")


# -- recurrent layers (one layer, one direction; nn.RNN/LSTM/GRU stack them) --------------------


class _Parts(tuple):
    """The gradients of a node's several outputs (None: nothing reached that output); adding two
    adds part by part, so an output used twice, or several outputs, reach one backward call."""

    def __add__(self, other):
        return _Parts(a if b is None else b if a is None else a + b for a, b in zip(self, other))


def _multi_output(arrays, parents, backward, name):
    """Tensors for arrays that one op produced together; backward(*grads) is called once with
    each output's gradient (or None) and returns the parents' gradients."""
    packed = Tensor._result(np.empty(0, np.float32), parents, lambda parts: backward(*parts), name)  # holds no data
    if not packed.requires_grad:
        return tuple(Tensor(a) for a in arrays)

    def part(i):
        return lambda g: (_Parts(g if j == i else None for j in range(len(arrays))),)

    return tuple(Tensor._result(a, (packed,), part(i), name) for i, a in enumerate(arrays))


def _rnn_args(op, **named):
    """(kernels, tensors or None, C-contiguous arrays or None), in the order given; the kernels
    are fastnn.ops (float32) or fastnn.ref.f64 (float64), the dtype all tensors share."""
    ts = [None if v is None else _t(v) for v in named.values()]
    K = _kernels(op, tuple(named), *ts)
    arrays = [None if t is None else _xp(t._data).ascontiguousarray(t._data) for t in ts]
    _same(*ts)
    return K, ts, arrays


def _grad_arrays(grads, like):
    return tuple(None if g is None else _xp(g).ascontiguousarray(g, dtype=like.dtype) for g in grads)


def _kept(ts, grads):
    return tuple(g for t, g in zip(ts, grads) if t is not None)


def lstm(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reverse=False):
    """(output (T, B, H), h_n (B, H), c_n (B, H)) of one LSTM layer over input (T, B, I);
    h0/c0 None: zeros; reverse: time runs backwards (output[t] stays aligned with input[t])."""
    K, ts, (X, H0, C0, Wi, Wh, Bi, Bh) = _rnn_args(
        "lstm", input=input, h0=h0, c0=c0, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    y, h, c, ws = K.lstm_forward(X, H0, C0, Wi, Wh, Bi, Bh, reverse)

    def backward(dy, dh, dc):
        dy, dh, dc = _grad_arrays((dy, dh, dc), X)
        return _kept(ts, K.lstm_backward(dy, dh, dc, X, H0, C0, Wi, Wh, y, ws, reverse))

    return _multi_output((y, h, c), tuple(t for t in ts if t is not None), backward, "lstm")


def gru(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reverse=False):
    """(output (T, B, H), h_n (B, H)) of one GRU layer (torch's gate order r, z, n)."""
    K, ts, (X, H0, Wi, Wh, Bi, Bh) = _rnn_args(
        "gru", input=input, h0=h0, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    y, h, ws = K.gru_forward(X, H0, Wi, Wh, Bi, Bh, reverse)

    def backward(dy, dh):
        dy, dh = _grad_arrays((dy, dh), X)
        return _kept(ts, K.gru_backward(dy, dh, X, H0, Wi, Wh, y, ws, reverse))

    return _multi_output((y, h), tuple(t for t in ts if t is not None), backward, "gru")


def rnn(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh", reverse=False):
    """(output (T, B, H), h_n (B, H)) of one Elman RNN layer (nonlinearity "tanh" or "relu")."""
    K, ts, (X, H0, Wi, Wh, Bi, Bh) = _rnn_args(
        "rnn", input=input, h0=h0, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    y, h, ws = K.rnn_forward(X, H0, Wi, Wh, Bi, Bh, nonlinearity, reverse)

    def backward(dy, dh):
        dy, dh = _grad_arrays((dy, dh), X)
        return _kept(ts, K.rnn_backward(dy, dh, X, H0, Wi, Wh, y, ws, nonlinearity, reverse))

    return _multi_output((y, h), tuple(t for t in ts if t is not None), backward, "rnn")


def lstm_cell(input, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """(h', c') (B, H) of one LSTM step on input (B, I); h/c None: zeros."""
    K, ts, (X, Hp, Cp, Wi, Wh, Bi, Bh) = _rnn_args(
        "lstm_cell", input=input, h=h, c=c, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    h1, c1, ws = K.lstm_cell_forward(X, Hp, Cp, Wi, Wh, Bi, Bh)

    def backward(dh, dc):
        dh, dc = _grad_arrays((dh, dc), X)
        return _kept(ts, K.lstm_cell_backward(dh, dc, X, Hp, Cp, Wi, Wh, ws))

    return _multi_output((h1, c1), tuple(t for t in ts if t is not None), backward, "lstm_cell")


def gru_cell(input, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """h' (B, H) of one GRU step on input (B, I); h None: zeros."""
    K, ts, (X, Hp, Wi, Wh, Bi, Bh) = _rnn_args(
        "gru_cell", input=input, h=h, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    h1, ws = K.gru_cell_forward(X, Hp, Wi, Wh, Bi, Bh)

    def backward(dh):
        (dh,) = _grad_arrays((dh,), X)
        return _kept(ts, K.gru_cell_backward(dh, X, Hp, Wi, Wh, ws))

    return _multi_output((h1,), tuple(t for t in ts if t is not None), backward, "gru_cell")[0]


def rnn_cell(input, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """h' (B, H) of one Elman RNN step on input (B, I); h None: zeros."""
    K, ts, (X, Hp, Wi, Wh, Bi, Bh) = _rnn_args(
        "rnn_cell", input=input, h=h, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    h1, ws = K.rnn_cell_forward(X, Hp, Wi, Wh, Bi, Bh, nonlinearity)

    def backward(dh):
        (dh,) = _grad_arrays((dh,), X)
        return _kept(ts, K.rnn_cell_backward(dh, X, Hp, Wi, Wh, ws, nonlinearity))

    return _multi_output((h1,), tuple(t for t in ts if t is not None), backward, "rnn_cell")[0]


# -- attention and layer normalisation (their modules: fastnn.nn.attention) -------------------


def _contiguous(x):
    """x's array (None for None), C-contiguous (the kernels take no strides)."""
    return None if x is None else _xp(x._data).ascontiguousarray(x._data)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm: normalise over the trailing normalized_shape dims."""
    x = _t(input)
    shape = (int(normalized_shape),) if np.ndim(normalized_shape) == 0 else tuple(int(d) for d in normalized_shape)
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    K = _kernels("layer_norm", ("input", "weight", "bias"), x, w, b)
    X = _contiguous(x)
    _same(x, w, b)
    W = _contiguous(w)
    y, mean, rstd = K.layer_norm_forward(X, shape, W, _contiguous(b), eps)
    parents = tuple(t for t in (x, w, b) if t is not None)

    def backward(g):
        G = _xp(g).ascontiguousarray(g, dtype=X.dtype)
        dx, dw, db = K.layer_norm_backward(G, X, mean, rstd, W)
        if b is not None and db is None:  # a bias without a weight: the kernel skips both
            db = G.reshape((-1,) + shape).sum(axis=0, dtype=np.float64).astype(X.dtype)
        grads = [dx]
        if w is not None:
            grads.append(dw)
        if b is not None:
            grads.append(db)
        return tuple(grads)

    return Tensor._result(y, parents, backward, "layer_norm")


def _mask_array(attn_mask, op, dtype=None):
    """attn_mask's array: bool as it is, a float mask in dtype (the queries'; None: float64 as it
    is, other floats as float32)."""
    if attn_mask is None:
        return None
    m = _array(attn_mask)
    xp = _xp(m)
    if m.dtype == np.bool_:
        return xp.ascontiguousarray(m)
    if m.dtype.kind == "f":
        return xp.ascontiguousarray(m, dtype=dtype or (np.float64 if m.dtype == np.float64 else np.float32))
    raise TypeError(f"fastnn.nn.functional.{op}: expected attn_mask to be bool or float, got {m.dtype}")


def _math_attention(q, k, v, mask, is_causal, scale, dropout_p, training=True):
    """softmax(q k^T * scale + mask) (dropout) v through Tensor operations: (out, weights)."""
    L, S = q.shape[-2], k.shape[-2]
    xp = _xp(q._data)
    ft = q._data.dtype.type  # the scores' dtype
    scores = (q @ k.transpose(-2, -1)) * float(scale)
    if is_causal:
        mask = xp.tril(xp.ones((L, S), np.bool_))
    row_keep = None
    if mask is not None:
        add = xp.where(mask, ft(0), ft(-np.inf)) if mask.dtype == np.bool_ else mask
        add = add.astype(ft)
        # A query whose keys are all masked gets zero weights (as from the fused kernel), not
        # the NaN of softmax over -inf: its row of the mask is neutralised, its weights zeroed.
        visible = xp.isfinite(add).any(axis=-1, keepdims=True)
        if not visible.all():
            add = xp.where(visible, add, ft(0))
            row_keep = Tensor(visible.astype(ft))
        scores = scores + Tensor(add)
    weights = scores.softmax(-1)
    if row_keep is not None:
        weights = weights * row_keep
    if dropout_p > 0 and training:
        weights = dropout(weights, dropout_p, True)
    return weights @ v, weights


def scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    """torch.nn.functional.scaled_dot_product_attention on (..., L, E) queries and (..., S, E)
    keys, (..., S, Ev) values: softmax(Q K^T * scale + mask) V, scale = 1/sqrt(E) by default."""
    op = "scaled_dot_product_attention"
    q, k, v = _t(query), _t(key), _t(value)
    if min(q.ndim, k.ndim, v.ndim) >= 2 and not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        # leading (batch) dims broadcast, as torch's
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        q, k, v = (t.expand(*lead, *t.shape[-2:]) for t in (q, k, v))
    if enable_gqa:
        raise NotImplementedError(f"fastnn.nn.functional.{op}: enable_gqa is not supported")
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"fastnn.nn.functional.{op}: expected query, key and value with the same number "
            f"(>= 2) of dims, got {q.shape}, {k.shape}, {v.shape}"
        )
    if is_causal and attn_mask is not None:
        raise ValueError(f"fastnn.nn.functional.{op}: is_causal cannot be combined with an explicit attn_mask")
    K = _kernels(op, ("query", "key", "value"), q, k, v)
    mask = _mask_array(attn_mask, op, q._data.dtype)
    _same(q, k, v)
    if mask is not None and not isinstance(q._data, _HOST):
        _dev.check_same_device(q._data, mask)
    sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if dropout_p > 0:
        return _math_attention(q, k, v, mask, is_causal, sc, dropout_p)[0]
    # The kernel takes (B, NH, L, E): fold leading dims to match (masks broadcast over them).
    lead = q.shape[:-2]
    xp = _xp(q._data)
    if q.ndim == 4:
        Q, Kt, V = (_contiguous(t) for t in (q, k, v))
        M = mask
    else:
        n = math.prod(lead)
        Q, Kt, V = (_contiguous(t).reshape((n, 1) + t.shape[-2:]) for t in (q, k, v))
        M = mask
        if M is not None and M.ndim > 2:
            M = xp.ascontiguousarray(xp.broadcast_to(M, lead + M.shape[-2:]).reshape((n, 1) + M.shape[-2:]))
    out, lse = K.scaled_dot_product_attention_forward(Q, Kt, V, M, is_causal, sc)

    def backward(g):
        G = xp.ascontiguousarray(g, dtype=Q.dtype).reshape(out.shape)
        dq, dk, dv = K.scaled_dot_product_attention_backward(G, Q, Kt, V, out, lse, M, is_causal, sc)
        return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)

    return Tensor._result(out.reshape(lead + out.shape[-2:]), (q, k, v), backward, op)


# -- activations in array math ---------------------------------------------------------------
# The activations below have no kernel: their forward and backward are the input array's own
# math (NumPy or CuPy), in the input's dtype, so a float64 tensor gives float64 results.


def _float_input(input, op):
    x = _t(input)
    if x._data.dtype.kind != "f":
        raise TypeError(f"fastnn.nn.functional.{op}: expected a floating-point input, got {x._data.dtype}")
    return x, x._data, _xp(x._data)


def _elementwise(input, op, fwd, bwd):
    """A Tensor y = fwd(xp, a) of x's array a; backward: g * bwd(xp, a, y)."""
    x, a, xp = _float_input(input, op)
    y = fwd(xp, a)
    return Tensor._result(y, (x,), lambda g: (g * bwd(xp, a, y),), op)


def _sigmoid_of(xp, a):
    """1 / (1 + exp(-a)) without overflow: exp of -|a| only."""
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _softplus_of(xp, z):
    """log(1 + exp(z)) without overflow."""
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def silu(input, inplace=False):
    """x * sigmoid(x)."""

    def bwd(xp, a, y):
        s = _sigmoid_of(xp, a)
        return s * (1 + a * (1 - s))

    return _elementwise(input, "silu", lambda xp, a: a * _sigmoid_of(xp, a), bwd)


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""

    def bwd(xp, a, y):
        t = xp.tanh(_softplus_of(xp, a))
        return t + a * (1 - t * t) * _sigmoid_of(xp, a)

    return _elementwise(input, "mish", lambda xp, a: a * xp.tanh(_softplus_of(xp, a)), bwd)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as torch)."""

    def fwd(xp, a):
        z = a * beta
        return xp.where(z > threshold, a, _softplus_of(xp, z) / beta)

    def bwd(xp, a, y):
        z = a * beta
        return xp.where(z > threshold, 1, _sigmoid_of(xp, z)).astype(a.dtype, copy=False)

    return _elementwise(input, "softplus", fwd, bwd)


def _elu_parts(alpha, scale, inv):
    """scale * (x for x > 0, alpha (exp(x inv) - 1) otherwise): ELU, SELU and CELU."""

    def fwd(xp, a):
        neg = alpha * xp.expm1(xp.minimum(a, 0) * inv)
        return scale * xp.where(a > 0, a, neg)

    def bwd(xp, a, y):
        return scale * xp.where(a > 0, 1, alpha * inv * xp.exp(xp.minimum(a, 0) * inv)).astype(a.dtype, copy=False)

    return fwd, bwd


def elu(input, alpha=1.0, inplace=False):
    return _elementwise(input, "elu", *_elu_parts(alpha, 1.0, 1.0))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    return _elementwise(input, "selu", *_elu_parts(_SELU_ALPHA, _SELU_SCALE, 1.0))


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _elementwise(input, "celu", *_elu_parts(alpha, 1.0, 1.0 / alpha))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val]; the gradient passes strictly inside (as torch)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")

    def fwd(xp, a):
        return xp.clip(a, min_val, max_val).astype(a.dtype, copy=False)

    def bwd(xp, a, y):
        return ((a > min_val) & (a < max_val)).astype(a.dtype)

    return _elementwise(input, "hardtanh", fwd, bwd)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6; gradient 1/6 strictly inside (-3, 3)."""

    def fwd(xp, a):
        return (xp.clip(a + 3, 0, 6) / 6).astype(a.dtype, copy=False)

    def bwd(xp, a, y):
        return (((a > -3) & (a < 3)) / 6).astype(a.dtype)

    return _elementwise(input, "hardsigmoid", fwd, bwd)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6; gradient x/3 + 1/2 strictly inside (-3, 3), 0 below, 1 above."""

    def fwd(xp, a):
        return (a * xp.clip(a + 3, 0, 6) / 6).astype(a.dtype, copy=False)

    def bwd(xp, a, y):
        return xp.where(a <= -3, 0, xp.where(a < 3, a / 3 + 0.5, 1)).astype(a.dtype, copy=False)

    return _elementwise(input, "hardswish", fwd, bwd)


def softsign(input):
    return _elementwise(input, "softsign", lambda xp, a: a / (1 + xp.abs(a)), lambda xp, a, y: 1 / (1 + xp.abs(a)) ** 2)


def tanhshrink(input):
    return _elementwise(input, "tanhshrink", lambda xp, a: a - xp.tanh(a), lambda xp, a, y: xp.tanh(a) ** 2)


def logsigmoid(input):
    """log(sigmoid(x)) = -softplus(-x)."""
    return _elementwise(input, "logsigmoid", lambda xp, a: -_softplus_of(xp, -a), lambda xp, a, y: _sigmoid_of(xp, -a))


def hardshrink(input, lambd=0.5):
    def fwd(xp, a):
        return xp.where(xp.abs(a) > lambd, a, 0).astype(a.dtype, copy=False)

    return _elementwise(input, "hardshrink", fwd, lambda xp, a, y: (xp.abs(a) > lambd).astype(a.dtype))


def softshrink(input, lambd=0.5):
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")

    def fwd(xp, a):
        return xp.where(a > lambd, a - lambd, xp.where(a < -lambd, a + lambd, 0)).astype(a.dtype, copy=False)

    return _elementwise(input, "softshrink", fwd, lambda xp, a, y: (xp.abs(a) > lambd).astype(a.dtype))


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, value elsewhere."""

    def fwd(xp, a):
        return xp.where(a > threshold, a, value).astype(a.dtype, copy=False)

    return _elementwise(input, "threshold", fwd, lambda xp, a, y: (a > threshold).astype(a.dtype))


def glu(input, dim=-1):
    """a * sigmoid(b) for the halves a, b of input along dim."""
    x, X, xp = _float_input(input, "glu")
    if X.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = dim % X.ndim
    if X.shape[d] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {X.shape[d]}")
    a, b = xp.split(X, 2, axis=d)
    s = _sigmoid_of(xp, b)

    def backward(g):
        return (xp.concatenate([g * s, g * a * s * (1 - s)], axis=d),)

    return Tensor._result(a * s, (x,), backward, "glu")


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    x = _t(input)
    if dim is None:
        dim = _implicit_dim("softmin", x.ndim, _stacklevel)
    return softmax(-x, dim, dtype=dtype)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), weight (1,) or one per channel (dim 1)."""
    x, X, xp = _float_input(input, "prelu")
    w = _t(weight)
    _same(x, w)
    W = w._data
    C = X.shape[1] if X.ndim >= 2 else 1  # a 1-D input has no channel dim, as in torch
    if W.size != 1 and W.size != C:
        raise RuntimeError(
            "Mismatch of parameter numbers and input channel size. Found parameter numbers = "
            f"{W.size} and channel size = {C}."
        )
    shape = () if W.size == 1 else (C,) + (1,) * (X.ndim - 2)  # one weight per channel, broadcast over the rest
    Wb = W.reshape(shape)
    pos = X > 0
    y = xp.where(pos, X, Wb * X)

    def backward(g):
        dx = xp.where(pos, g, Wb * g)
        dw = _unbroadcast(xp.where(pos, 0, X * g).astype(X.dtype, copy=False), shape).reshape(W.shape)
        return dx, dw

    return Tensor._result(y, (x, w), backward, "prelu")


# -- channel dropout ------------------------------------------------------------------------------


def _check_p(p):
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _feature_dropout(x, p, mask_shape, op):
    """x times a mask of mask_shape (whole channels kept or zeroed, kept ones scaled by 1/(1-p)),
    drawn from fastnn's host generator and copied to x's device."""
    a = x._data
    if p == 1:
        return x * 0.0
    keep = _random.generator().random(mask_shape) >= p
    mask = _dev.move((keep / (1 - p)).astype(a.dtype), _dev.device_of(a))
    return Tensor._result(a * mask, (x,), lambda g: (g * mask,), op)


def _channel_mask_shape(shape, batched):
    lead = 2 if batched else 1
    return tuple(shape[:lead]) + (1,) * (len(shape) - lead)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Whole channels of (N, C, L) or unbatched (C, L) input zeroed with probability p."""
    _check_p(p)
    x = _t(input)
    if x.ndim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input. Note that dropout1d exists "
            "to provide channel-wise dropout on inputs with 1 spatial dimension, a channel dimension, and an "
            "optional batch dimension (i.e. 2D or 3D inputs)."
        )
    if not training or p == 0:
        return x
    return _feature_dropout(x, p, _channel_mask_shape(x.shape, x.ndim == 3), "dropout1d")


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Whole channels of (N, C, H, W) or unbatched (C, H, W) input zeroed with probability p;
    a 3-D input is taken as (N, C, L) with a warning, as torch does."""
    _check_p(p)
    x = _t(input)
    if x.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated and will result in an "
            "error in a future release. To retain the behavior and silence this warning, please use dropout "
            "instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 spatial "
            "dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
            stacklevel=_quiet.stacklevel(2),
        )
    if x.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior is "
            "desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior will "
            "change in a future release to interpret the input as one without a batch dimension, i.e. shape "
            "(C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using dropout1d "
            "instead.",
            stacklevel=_quiet.stacklevel(2),
        )
    if not training or p == 0:
        return x
    return _feature_dropout(x, p, _channel_mask_shape(x.shape, x.ndim >= 2), "dropout2d")


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Whole channels of (N, C, D, H, W) or unbatched (C, D, H, W) input zeroed with probability p."""
    _check_p(p)
    x = _t(input)
    if x.ndim not in (4, 5):
        warnings.warn(
            f"dropout3d: Received a {x.ndim}-D input to dropout3d, which is deprecated and will result in an "
            "error in a future release. To retain the behavior and silence this warning, please use dropout "
            "instead. Note that dropout3d exists to provide channel-wise dropout on inputs with 3 spatial "
            "dimensions, a channel dimension, and an optional batch dimension (i.e. 4D or 5D inputs).",
            stacklevel=_quiet.stacklevel(2),
        )
    if not training or p == 0:
        return x
    return _feature_dropout(x, p, _channel_mask_shape(x.shape, x.ndim == 5), "dropout3d")


_ALPHA_PRIME = 1.7580993408473766  # SELU's scale * alpha: the value SELU tends to for large negative inputs


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: dropped elements are set to SELU's negative saturation value,
    then an affine map a x + b restores zero mean and unit variance."""
    _check_p(p)
    x = _t(input)
    if not training or p == 0 or x._data.size == 0:
        return x
    a_ = x._data
    if p == 1:
        return x * 0.0
    keep = _dev.move(_random.generator().random(a_.shape) >= p, _dev.device_of(a_))
    a = 1.0 / math.sqrt((_ALPHA_PRIME**2 * p + 1) * (1 - p))
    b = _ALPHA_PRIME * a * p
    xp = _xp(a_)
    scale = xp.where(keep, a, 0).astype(a_.dtype)
    shift = xp.where(keep, b, b - _ALPHA_PRIME * a).astype(a_.dtype)
    return Tensor._result(a_ * scale + shift, (x,), lambda g: (g * scale,), "alpha_dropout")


# -- losses in array math ----------------------------------------------------------------------


def _legacy_reduction(size_average, reduce, reduction):
    """torch's deprecated size_average / reduce turned into a reduction (with torch's warning)."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else "mean" if size_average else "sum"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
        stacklevel=_quiet.stacklevel(3),
    )
    return reduction


def _check_reduction(reduction, allowed=("none", "mean", "sum")):
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduced(loss, reduction, n):
    """loss as it is ("none"), summed, or summed over n ("mean"); float64 accumulation, the
    result in loss's dtype (an empty mean is NaN, as torch's)."""
    if reduction == "none":
        return loss
    xp = _xp(loss)
    total = loss.sum(dtype=np.float64)
    if reduction != "sum":
        total = total / n if n else xp.asarray(float("nan"))
    return xp.asarray(total, dtype=loss.dtype)


def _size_warning(x, y):
    if x.shape != y.shape:
        warnings.warn(
            f"Using a target size ({y.shape}) that is different to the input size ({x.shape}). This will "
            "likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            stacklevel=_quiet.stacklevel(3),
        )


def _difference_loss(input, target, reduction, op, fwd, dfwd):
    """A loss of d = input - target elementwise (broadcast): fwd(xp, d) and its derivative
    dfwd(xp, d), reduced; gradients reach input and target."""
    _check_reduction(reduction)
    x, y = _t(input), _t(target)
    _same(x, y)
    _size_warning(x, y)
    X, Y = x._data, y._data
    xp = _xp(X)
    d = X - Y
    loss = fwd(xp, d)
    n = loss.size

    def backward(g):
        G = g if reduction == "none" else g / max(n, 1) if reduction == "mean" else g
        dd = G * dfwd(xp, d)
        return _unbroadcast(dd, X.shape), _unbroadcast(-dd, Y.shape)

    return Tensor._result(_reduced(loss, reduction, n), (x, y), backward, op)


def _weighted(loss_none, weight, input, reduction, mean_by_weight):
    """torch's weighted regression losses: the unreduced loss times weight (input's shape),
    then summed, or averaged over the weights' sum (mse, l1) or over the elements (huber)."""
    _check_reduction(reduction)
    w = _t(weight)
    if tuple(w.shape) != tuple(_t(input).shape):
        raise ValueError("Weights and input must have the same size.")
    wl = loss_none * w
    if reduction == "none":
        return wl
    if reduction == "sum":
        return wl.sum()
    return wl.sum() / w.sum() if mean_by_weight else wl.mean()


def _sign(xp, d):
    return xp.sign(d)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is not None:
        return _weighted(l1_loss(input, target, reduction="none"), weight, input, reduction, True)
    return _difference_loss(input, target, reduction, "l1_loss", lambda xp, d: xp.abs(d), _sign)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (beta 0: the L1 loss)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)

    def fwd(xp, d):
        a = xp.abs(d)
        return xp.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)

    def dfwd(xp, d):
        return xp.where(xp.abs(d) < beta, d / beta, xp.sign(d))

    return _difference_loss(input, target, reduction, "smooth_l1_loss", fwd, dfwd)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    if weight is not None:
        return _weighted(huber_loss(input, target, "none", delta), weight, input, reduction, False)

    def fwd(xp, d):
        a = xp.abs(d)
        return xp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))

    def dfwd(xp, d):
        return xp.clip(d, -delta, delta)

    return _difference_loss(input, target, reduction, "huber_loss", fwd, dfwd)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) on probabilities x, each log clamped at -100 (as torch)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _t(input), _t(target)
    w = None if weight is None else _t(weight)
    _same(x, y, w)
    if x.shape != y.shape:
        raise ValueError(
            f"Using a target size ({y.shape}) that is different to the input size ({x.shape}) is deprecated. "
            "Please ensure they have the same size."
        )
    X, Y = x._data, y._data
    xp = _xp(X)
    if not bool(((X >= 0) & (X <= 1)).all()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):
        lx, l1x = xp.maximum(xp.log(X), -100), xp.maximum(xp.log1p(-X), -100)
    W = 1 if w is None else xp.broadcast_to(w._data, X.shape)
    loss = -W * (Y * lx + (1 - Y) * l1x)
    n = loss.size

    def backward(g):
        G = g if reduction == "none" else g / max(n, 1) if reduction == "mean" else g
        dx = G * W * (X - Y) / xp.maximum(X * (1 - X), 1e-12)
        with np.errstate(divide="ignore"):  # the target's gradient takes the logs unclamped, as torch's
            dy = G * W * (xp.log1p(-X) - xp.log(X))
        return dx, dy

    # weight is a constant, as torch has no derivative for it
    return Tensor._result(_reduced(loss, reduction, n), (x, y), backward, "binary_cross_entropy")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """target * (log target - input) (input: log-probabilities; log_target: target is too)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, ("none", "mean", "sum", "batchmean"))
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            stacklevel=_quiet.stacklevel(2),
        )
    x, y = _t(input), _t(target)
    _same(x, y)
    X, Y = x._data, y._data
    xp = _xp(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_target:
            e = xp.exp(Y)
            loss = e * (Y - X)
        else:
            ylogy = xp.where(Y == 0, 0, Y * xp.log(xp.where(Y == 0, 1, Y)))  # 0 log 0 = 0
            loss = ylogy - Y * X
    n = loss.size if reduction == "mean" else (X.shape[0] if X.ndim else 1) if reduction == "batchmean" else 1

    def backward(g):
        G = g if reduction == "none" else g / max(n, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if log_target:
                dx, dy = -e, e * (Y - X + 1)
            else:
                dx, dy = -Y, xp.log(Y) + 1 - X
        return _unbroadcast(G * dx, X.shape), _unbroadcast(G * dy, Y.shape)

    how = "mean" if reduction == "batchmean" else reduction  # both divide the sum by n
    return Tensor._result(_reduced(loss, how, n), (x, y), backward, "kl_div")


def _cross_entropy_probs(x, target, weight, reduction, label_smoothing):
    """cross_entropy with class probabilities as targets (target of input's shape, classes on
    dim 1, or dim 0 of an unbatched input): -sum_c w_c t_c log_softmax(x)_c per sample."""
    t = _t(target)
    X, T = x._data, t._data
    _same(x, t)
    xp = _xp(X)
    axis = 1 if X.ndim >= 2 else 0
    C = X.shape[axis]
    wshape = (C,) + (1,) * (X.ndim - 2) if X.ndim >= 2 else (C,)
    W = 1.0 if weight is None else _array(weight).astype(np.float64).reshape(wshape)
    X64 = X.astype(np.float64)
    z = X64 - X64.max(axis=axis, keepdims=True)
    logp = z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
    eps = float(label_smoothing)
    tt = T * (1 - eps) + eps / C if eps else T.astype(np.float64)
    wt = W * tt
    per = -(logp * wt).sum(axis=axis)
    n = per.size
    out = _reduced(per, reduction, n).astype(X.dtype)

    def backward(g):
        G = g.astype(np.float64)
        G = xp.expand_dims(G, axis) if reduction == "none" else G / max(n, 1) if reduction == "mean" else G
        p = xp.exp(logp)
        dx = G * (p * wt.sum(axis=axis, keepdims=True) - wt)
        dt = G * (-(W * logp) * (1 - eps))
        return dx.astype(X.dtype), dt.astype(T.dtype)

    return Tensor._result(out, (x, t), backward, "cross_entropy")


# -- padding and nearest-neighbour resampling (index gathers) --------------------------------------


def _repeat_factor(idx, n):
    """k when idx is 0,..,0, 1,..,1, ... (each of range(n) k times), else 0."""
    if n == 0 or idx.size % n:
        return 0
    k = idx.size // n
    return k if np.array_equal(idx, np.repeat(np.arange(n), k)) else 0


def _take_axes(x, specs, op):
    """x's elements picked along axes, specs [(axis, host int64 indices)] applied in turn; the
    backward adds each output element's gradient to the element it was taken from."""
    a = x._data
    xp = _xp(a)
    dev = _dev.device_of(a)
    steps, out = [], a
    for axis, idx in specs:
        n = out.shape[axis]
        didx = _dev.move(np.ascontiguousarray(idx, np.int64), dev)
        steps.append((axis, n, didx, _repeat_factor(idx, n)))
        out = xp.take(out, didx, axis=axis)

    def backward(g):
        for axis, n, didx, k in reversed(steps):
            if k:  # an integer upsampling: sum each run of k
                g = g.reshape(g.shape[:axis] + (n, k) + g.shape[axis + 1 :]).sum(axis=axis + 1)
            else:
                gm = xp.moveaxis(g, axis, 0)
                d = xp.zeros((n,) + gm.shape[1:], g.dtype)
                _dev.scatter_add(d, didx, gm)
                g = xp.moveaxis(d, 0, axis)
        return (xp.ascontiguousarray(g),)

    return Tensor._result(xp.ascontiguousarray(out), (x,), backward, op)


def _constant_pad(x, pairs, value):
    a = x._data
    xp = _xp(a)
    shape, src, dst = list(a.shape), [slice(None)] * a.ndim, [slice(None)] * a.ndim
    for axis, lo, hi in pairs:
        n = a.shape[axis]
        s0, s1 = max(-lo, 0), n - max(-hi, 0)
        if n + lo + hi < 0 or s1 < s0:
            raise RuntimeError(
                f"fastnn.nn.functional.pad: padding ({lo}, {hi}) crops more than dimension {axis} holds "
                f"(size {n}) of input {list(a.shape)}"
            )
        shape[axis] = n + lo + hi
        src[axis], dst[axis] = slice(s0, s1), slice(max(lo, 0), max(lo, 0) + s1 - s0)
    src, dst = tuple(src), tuple(dst)
    out = xp.full(shape, value, dtype=a.dtype)
    out[dst] = a[src]

    def backward(g):
        d = xp.zeros_like(a)
        d[src] = g[dst]
        return (d,)

    return Tensor._result(out, (x,), backward, "pad")


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: pad = (left, right) of the last dim, then of the one before, ...
    (negative values crop). "constant" pads any number of dims with value; "reflect",
    "replicate" and "circular" pad the last 1, 2 or 3 dims of a 2-3, 3-4 or 4-5 dim input."""
    x = _t(input)
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    k = len(pad) // 2
    if k > x.ndim:
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but got padding "
            f"length {len(pad)} and input of dimension {x.ndim}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    pairs = [(x.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(k)]
    if mode == "constant":
        return _constant_pad(x, pairs, 0 if value is None else value)
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    if not (1 <= k <= 3 and x.ndim in (k + 1, k + 2)):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {x.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
        )
    specs = []
    for axis, lo, hi in pairs:
        n = x.shape[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(
                "Padding size should be less than the corresponding input dimension, but got: padding "
                f"({lo}, {hi}) at dimension {axis} of input {list(x.shape)}"
            )
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if n + lo + hi < 0:
            raise RuntimeError(
                f"fastnn.nn.functional.pad: padding ({lo}, {hi}) crops more than dimension {axis} holds (size {n})"
            )
        i = np.arange(-lo, n + hi)
        if mode == "reflect":  # mirrored about the edge elements, which are not repeated
            i = np.abs(i)
            i = np.where(i > n - 1, 2 * (n - 1) - i, i)
        elif mode == "replicate":
            i = np.clip(i, 0, n - 1)
        else:  # as torch: a negative pad crops first, a positive one wraps within what is left
            c0, c1 = max(-lo, 0), n - max(-hi, 0)
            i = c0 + np.arange(-max(lo, 0), c1 - c0 + max(hi, 0)) % max(c1 - c0, 1)
        specs.append((axis, i))
    return _take_axes(x, specs, "pad")


_INTERPOLATE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


def _nearest_index(n_in, n_out, scale, exact):
    """The source index of each output position (torch's float32 arithmetic): floor(o * s) or
    floor((o + 0.5) * s), at most n_in - 1, with s = 1 / scale_factor or n_in / n_out."""
    s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n_in) / np.float32(n_out)
    o = np.arange(n_out)
    src = ((o + 0.5) * np.float64(s)).astype(np.float32) if exact else o.astype(np.float32) * s
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1)


def _linear_weights(n_in, n_out, scale, align_corners, ft):
    """torch's linear-interpolation sources along one axis, in its arithmetic type ft (float32
    for float16 and float32 input, float64 for float64): output o is x[i0] * l0 + x[i1] * l1.

    The step r is (n_in - 1) / (n_out - 1) with align_corners (0 for one output), else
    1 / scale_factor when one is given, else n_in / n_out; the source o * r with align_corners,
    else (o + 0.5) * r - 0.5 clamped at 0, rounded once as the fused multiply-add torch's
    compiled kernels use (exact in float64 for a float32 r). i0 is its floor (of the float32
    value, as torch takes it in double too) at most n_in - 1, i1 the next index but within the
    axis, l1 the fraction clamped to [0, 1] and l0 = 1 - l1."""
    if align_corners:
        r = ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0)
    elif scale is not None and scale > 0:
        r = ft(1.0 / scale)
    else:
        r = ft(n_in) / ft(n_out)
    o = np.arange(n_out).astype(ft)
    if align_corners:
        src = r * o
    else:
        src = (np.float64(r) * (o.astype(np.float64) + 0.5) - 0.5).astype(ft)
        src = np.where(src < 0, ft(0), src)
    i0 = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), n_in - 1)
    l1 = np.clip(src - i0.astype(ft), ft(0), ft(1)).astype(ft)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, ft(1) - l1, l1


def _adjoint_passes(i0, i1, l0, l1, n):
    """The backward of one axis's interpolation (output j = x[i0[j]] l0[j] + x[i1[j]] l1[j]) as
    passes over the n input slices, without a scatter: pass p gives input slice ks[k] (every
    slice when ks is None) output slice js[k] times ws[k]; the passes together bring each
    input slice every (output, weight) that read it, the i0 terms first, then the i1 terms."""
    m = i0.size
    k = np.concatenate((i0, i1))
    j = np.concatenate((np.arange(m), np.arange(m)))
    w = np.concatenate((l0, l1))
    order = np.argsort(k, kind="stable")
    k, j, w = k[order], j[order], w[order]
    counts = np.bincount(k, minlength=n)
    rank = np.arange(k.size) - (np.cumsum(counts) - counts)[k]
    passes = []
    for p in range(int(counts.max())):
        sel = rank == p
        passes.append((None if sel.sum() == n else k[sel], j[sel], w[sel]))
    return passes


def _interp_linear(x, out_size, scales, align_corners):
    """Linear interpolation of x's spatial axes, one axis at a time from the last (torch's
    separable order); an axis whose size is kept is copied, as torch does. The backward is
    the adjoint: each output's gradient times its two weights added to its two sources."""
    a = x._data
    if a.dtype.kind != "f":
        if a.dtype == np.uint8 and a.ndim == 4:
            raise NotImplementedError(
                "fastnn.nn.functional.interpolate: torch's uint8 bilinear interpolation is not supported; "
                "interpolate a float tensor"
            )
        raise NotImplementedError(
            f"\"compute_indices_weights_linear\" not implemented for '{_dtypes.torch_name(a.dtype)}'"
        )
    xp = _xp(a)
    dev = _dev.device_of(a)
    dtype = a.dtype
    ft = np.float64 if dtype == np.float64 else np.float32
    steps, out = [], a
    for axis in reversed(range(2, a.ndim)):
        n, m = a.shape[axis], out_size[axis - 2]
        if n == m:
            continue
        i0, i1, l0, l1 = _linear_weights(n, m, scales[axis - 2], align_corners, ft)
        # float16 keeps its weights in float16 and computes in float32, as torch
        l0, l1 = l0.astype(dtype).astype(ft), l1.astype(dtype).astype(ft)
        tail = (1,) * (a.ndim - 1 - axis)  # the weights broadcast over the axes after this one
        w0, w1 = (_dev.move(w.reshape((m,) + tail), dev) for w in (l0, l1))
        d0, d1 = (_dev.move(i, dev) for i in (i0, i1))
        out = xp.take(out, d0, axis=axis) * w0 + xp.take(out, d1, axis=axis) * w1
        out = out.astype(dtype, copy=False)
        passes = [
            (None if ks is None else _dev.move(ks, dev), _dev.move(js, dev), _dev.move(ws.reshape((-1,) + tail), dev))
            for ks, js, ws in _adjoint_passes(i0, i1, l0, l1, n)
        ]
        steps.append((axis, n, passes))

    def backward(g):
        for axis, n, passes in reversed(steps):
            d = None
            for ks, js, ws in passes:
                part = xp.take(g, js, axis=axis) * ws
                if ks is None and d is None:
                    d = part
                elif ks is None:
                    d += part
                else:
                    if d is None:
                        d = xp.zeros(part.shape[:axis] + (n,) + part.shape[axis + 1 :], part.dtype)
                    d[(slice(None),) * axis + (ks,)] += part
            g = d
        return (xp.ascontiguousarray(g.astype(dtype, copy=False)),)

    return Tensor._result(xp.ascontiguousarray(out), (x,), backward, "interpolate")


def interpolate(
    input,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    """torch.nn.functional.interpolate on (N, C, L), (N, C, H, W) and (N, C, D, H, W) inputs:
    modes "nearest" and "nearest-exact" (on each of them), "linear" (3-D), "bilinear" (4-D)
    and "trilinear" (5-D) with align_corners False (the default) or True, and "area" for 3-D
    and 4-D inputs (adaptive average pooling to the output size). Not supported (they raise
    NotImplementedError): antialias=True, modes "bicubic" and "lanczos", "area" on a 5-D input,
    and torch's uint8 bilinear image path."""
    x = _t(input)
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | "
                "trilinear"
            )
    elif align_corners is None:
        align_corners = False
    dim = x.ndim - 2
    spatial = list(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got input with spatial "
                    f"dimensions of {spatial} and output size of {size}. Please provide input tensor in (N, C, d1, "
                    "d2, ...,dK) format and output size in (o1, o2, ...,oK) format."
                )
            out_size = [int(s) for s in size]
        else:
            out_size = [int(size)] * dim
        scales = [None] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(
                    "Input and scale_factor must have the same number of spatial dimensions, but got input with "
                    f"spatial dimensions of {spatial} and scale_factor of shape {scale_factor}. Please provide input "
                    "tensor in (N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) format."
                )
            scales = [float(s) for s in scale_factor]
        else:
            scales = [float(scale_factor)] * dim
        out_size = [math.floor(n * s) for n, s in zip(spatial, scales)]
        if recompute_scale_factor or mode == "area":
            scales = [None] * dim
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "lanczos":  # torch's antialiased Lanczos resampling (torch 2.13)
        raise NotImplementedError(
            "fastnn.nn.functional.interpolate: mode='lanczos' of torch.nn.functional.interpolate is not supported"
        )
    if antialias and not (mode in ("bilinear", "bicubic") and x.ndim == 4):
        raise ValueError(
            "Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor as input"
        )
    if not 1 <= dim <= 3 or mode not in _INTERPOLATE_MODES or (mode == "bicubic" and dim != 2):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | area | nearest-exact (got {mode})"
        )
    linear_dim = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode)
    if linear_dim is not None and linear_dim != dim:
        raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs {linear_dim + 2}D input")
    if antialias:
        raise NotImplementedError(
            "fastnn.nn.functional.interpolate: antialias=True of torch.nn.functional.interpolate is not supported"
        )
    if mode == "bicubic" or (mode == "area" and dim == 3):
        what = "mode='bicubic'" if mode == "bicubic" else "mode='area' on a 5-D input (adaptive_avg_pool3d)"
        raise NotImplementedError(
            f"fastnn.nn.functional.interpolate: {what} of torch.nn.functional.interpolate is not supported"
        )
    if mode == "area":  # torch: adaptive average pooling to the output size
        if dim == 1:
            return adaptive_avg_pool1d(x, out_size[0])
        return adaptive_avg_pool2d(x, tuple(out_size))
    if any(m <= 0 for m in out_size) or any(n <= 0 for n in spatial):
        raise RuntimeError(
            f"Input and output sizes should be greater than 0, but got input ({spatial}) and output ({out_size})"
        )
    if linear_dim is not None:
        return _interp_linear(x, out_size, scales, align_corners)
    specs = [
        (2 + i, _nearest_index(n, m, s, mode == "nearest-exact"))
        for i, (n, m, s) in enumerate(zip(spatial, out_size, scales))
    ]
    return _take_axes(x, specs, "interpolate")


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """torch.nn.functional.upsample (deprecated there, with its warning): interpolate."""
    warnings.warn(
        "`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=_quiet.stacklevel(2),
    )
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """torch.nn.functional.upsample_nearest (deprecated there, with its warning):
    interpolate(..., mode="nearest")."""
    warnings.warn(
        "`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=_quiet.stacklevel(2),
    )
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """torch.nn.functional.upsample_bilinear (deprecated there, with its warning):
    interpolate(..., mode="bilinear", align_corners=True)."""
    warnings.warn(
        "`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=_quiet.stacklevel(2),
    )
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# -- norms, distances, one-hot ----------------------------------------------------------------------


def _pnorm(xp, a, p, axis):
    """The order-p norm of a along axis (kept as size 1)."""
    if p == float("inf"):
        return xp.abs(a).max(axis=axis, keepdims=True)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=True).astype(a.dtype)
    if p == 1:
        return xp.abs(a).sum(axis=axis, keepdims=True)
    if p == 2:
        return xp.sqrt((a * a).sum(axis=axis, keepdims=True))
    return (xp.abs(a) ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)


def _pnorm_grad(xp, a, n, p, axis):
    """d norm / d a (n: the norm, kept dims); 0 where the norm is 0; the infinity norm's
    gradient is shared by the elements at the maximum."""
    safe = xp.where(n == 0, 1, n).astype(a.dtype, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        if p == float("inf"):
            hit = xp.abs(a) == n
            d = xp.sign(a) * hit / xp.maximum(hit.sum(axis=axis, keepdims=True), 1)
        elif p == 0:
            d = xp.zeros_like(a)
        elif p == 1:
            d = xp.sign(a)
        elif p == 2:
            d = a / safe
        else:
            d = xp.sign(a) * xp.abs(a) ** (p - 1) / safe ** (p - 1)
    return xp.where(n == 0, 0, d).astype(a.dtype, copy=False)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(norm_p(input, dim), eps)."""
    if out is not None:
        raise NotImplementedError("fastnn.nn.functional.normalize: torch's out= argument is not supported")
    x, X, xp = _float_input(input, "normalize")
    n = _pnorm(xp, X, p, dim)
    c = xp.maximum(n, eps).astype(X.dtype, copy=False)
    y = X / c

    def backward(g):
        # y = x / c(x), c = max(norm, eps): the norm's gradient counts only where it is >= eps
        inner = (g * X).sum(axis=dim, keepdims=True)
        dn = _pnorm_grad(xp, X, n, p, dim) * (n >= eps)
        return (g / c - inner / (c * c) * dn,)

    return Tensor._result(y, (x,), backward, "normalize")


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 x2, dim) / (max(|x1|, eps) max(|x2|, eps)), x1 and x2 broadcast together."""
    a, A, xp = _float_input(x1, "cosine_similarity")
    b, B, _ = _float_input(x2, "cosine_similarity")
    _same(a, b)
    Ab, Bb = xp.broadcast_arrays(A, B)
    n1, n2 = _pnorm(xp, Ab, 2, dim), _pnorm(xp, Bb, 2, dim)
    c1, c2 = xp.maximum(n1, eps), xp.maximum(n2, eps)
    cos = ((Ab / c1) * (Bb / c2)).sum(axis=dim, keepdims=True)

    def backward(g):
        G = xp.expand_dims(g, dim)
        # where a norm is below eps its clamp is a constant: no gradient through the norm
        da = G * (Bb / (c1 * c2) - cos * Ab * (n1 > eps) / (c1 * xp.where(n1 == 0, 1, n1)))
        db = G * (Ab / (c1 * c2) - cos * Bb * (n2 > eps) / (c2 * xp.where(n2 == 0, 1, n2)))
        return _unbroadcast(da, A.shape), _unbroadcast(db, B.shape)

    return Tensor._result(xp.squeeze(cos, axis=dim), (a, b), backward, "cosine_similarity")


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The order-p norm of x1 - x2 + eps over the last dim (x1, x2 broadcast together)."""
    a, A, xp = _float_input(x1, "pairwise_distance")
    b, B, _ = _float_input(x2, "pairwise_distance")
    _same(a, b)
    d = A - B + eps
    n = _pnorm(xp, d, p, -1)

    def backward(g):
        G = g if keepdim else xp.expand_dims(g, -1)
        dd = G * _pnorm_grad(xp, d, n, p, -1)
        return _unbroadcast(dd, A.shape), _unbroadcast(-dd, B.shape)

    return Tensor._result(n if keepdim else xp.squeeze(n, axis=-1), (a, b), backward, "pairwise_distance")


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r): each group of r^2 channels spread over an r x r block."""
    x, r = _t(input), int(upscale_factor)
    if x.dim() < 3:
        raise RuntimeError(
            f"pixel_shuffle expects input to have at least 3 dimensions, but got input with {x.dim()} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if c % (r * r):
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
            f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    n = len(lead)
    y = x.reshape(*lead, c // (r * r), r, r, h, w).permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle."""
    x, r = _t(input), int(downscale_factor)
    if x.dim() < 3:
        raise RuntimeError(
            f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with {x.dim()} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if h % r:
        raise RuntimeError(
            f"pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)={h} is not "
            f"divisible by {r}"
        )
    if w % r:
        raise RuntimeError(
            f"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)={w} is not "
            f"divisible by {r}"
        )
    n = len(lead)
    y = x.reshape(*lead, c, h // r, r, w // r, r).permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)


def triplet_margin_loss(
    anchor,
    positive,
    negative,
    margin=1.0,
    p=2,
    eps=1e-6,
    swap=False,
    size_average=None,
    reduce=None,
    reduction="mean",
):
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise_distance of order p (swap: d(a, n)
    replaced by min(d(a, n), d(p, n))), distances over the last dim of inputs of one number of dims."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    a, pos, neg = _t(anchor), _t(positive), _t(negative)
    dims = (a.dim(), pos.dim(), neg.dim())
    if len(set(dims)) != 1:
        raise RuntimeError(
            "The anchor, positive, and negative tensors are expected to have the same number of dimensions, "
            f"but got: anchor {dims[0]}D, positive {dims[1]}D, and negative {dims[2]}D inputs"
        )
    d_pos = pairwise_distance(a, pos, p, eps)
    d_neg = pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(pos, neg, p, eps))
    loss = (margin + d_pos - d_neg).clamp(min=0)
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def one_hot(tensor, num_classes=-1):
    """int64 (..., num_classes) with a 1 at each value's position (num_classes -1: max + 1)."""
    a = _array(tensor)
    if a.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = _xp(a)
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(a.max()) + 1
    if a.size and int(a.min()) < 0:
        raise RuntimeError("Class values must be non-negative.")
    if a.size and int(a.max()) >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return Tensor((a[..., None] == xp.arange(num_classes)).astype(np.int64))


# -- group and instance normalisation, bilinear ---------------------------------------------------


def _affine_args(x, weight, bias):
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    return w, b


def _normalize_groups(x, G, w, b, eps, op):
    """(x - mean) / sqrt(var + eps) over each (sample, group of channels), then weight and bias
    per channel; statistics and gradients in float64, the result in x's dtype."""
    X = x._data
    xp = _xp(X)
    N, C = X.shape[:2]
    gshape = (N, G, -1)
    Xg = X.reshape(gshape).astype(np.float64)
    mean = Xg.mean(axis=-1, keepdims=True)
    rstd = 1 / xp.sqrt(Xg.var(axis=-1, keepdims=True) + eps)
    xhat = (Xg - mean) * rstd
    xh = xhat.reshape(X.shape)
    cshape = (1, C) + (1,) * (X.ndim - 2)
    axes = (0,) + tuple(range(2, X.ndim))
    y = xh
    if w is not None:
        y = y * w._data.astype(np.float64).reshape(cshape)
    if b is not None:
        y = y + b._data.astype(np.float64).reshape(cshape)

    def backward(g):
        Gd = g.astype(np.float64)
        dxh = Gd if w is None else Gd * w._data.astype(np.float64).reshape(cshape)
        dg = dxh.reshape(gshape)
        dx = rstd * (dg - dg.mean(axis=-1, keepdims=True) - xhat * (dg * xhat).mean(axis=-1, keepdims=True))
        grads = [dx.reshape(X.shape).astype(X.dtype)]
        if w is not None:
            grads.append((Gd * xh).sum(axis=axes).astype(w._data.dtype))
        if b is not None:
            grads.append(Gd.sum(axis=axes).astype(b._data.dtype))
        return tuple(grads)

    parents = tuple(t for t in (x, w, b) if t is not None)
    return Tensor._result(y.astype(X.dtype), parents, backward, op)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample over groups of num_groups channels (and all spatial positions)."""
    x, X, xp = _float_input(input, "group_norm")
    if X.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {X.ndim}")
    if X.shape[1] % num_groups:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input of shape "
            f"{list(X.shape)} and num_groups={num_groups}"
        )
    w, b = _affine_args(x, weight, bias)
    return _normalize_groups(x, num_groups, w, b, eps, "group_norm")


def _normalize_by(x, mean, var, w, b, eps):
    """(x - mean) / sqrt(var + eps) * w + b with given per-channel statistics, in x's dtype."""
    X = x._data
    xp = _xp(X)
    cshape = (1, X.shape[1]) + (1,) * (X.ndim - 2)
    axes = (0,) + tuple(range(2, X.ndim))
    scale = (1 / xp.sqrt(xp.asarray(var, np.float64) + eps)).reshape(cshape)
    xhat = (X - xp.asarray(mean, np.float64).reshape(cshape)) * scale
    W = 1.0 if w is None else w._data.astype(np.float64).reshape(cshape)
    y = xhat * W + (0.0 if b is None else b._data.astype(np.float64).reshape(cshape))

    def backward(g):
        grads = [(g * (scale * W)).astype(X.dtype)]
        if w is not None:
            grads.append((g * xhat).sum(axis=axes).astype(w._data.dtype))
        if b is not None:
            grads.append(g.sum(axis=axes).astype(b._data.dtype))
        return tuple(grads)

    parents = tuple(t for t in (x, w, b) if t is not None)
    return Tensor._result(y.astype(X.dtype), parents, backward, "instance_norm")


def instance_norm(
    input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True, momentum=0.1, eps=1e-5
):
    """Normalise each (sample, channel) over its spatial positions; with use_input_stats=False
    the running statistics are used instead, and with it they are updated (if given) by the
    batch average of the instances' mean and unbiased variance."""
    x, X, xp = _float_input(input, "instance_norm")
    if X.ndim < 3:
        raise ValueError(f"fastnn.nn.functional.instance_norm: expected (N, C, ...) input, got {X.shape}")
    if use_input_stats and math.prod(X.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {X.shape}")
    w, b = _affine_args(x, weight, bias)
    rm, rv = (None if r is None else (r._data if isinstance(r, Tensor) else r) for r in (running_mean, running_var))
    if not use_input_stats:
        if rm is None or rv is None:
            raise ValueError(
                "fastnn.nn.functional.instance_norm: use_input_stats=False needs running_mean and running_var"
            )
        return _normalize_by(x, rm, rv, w, b, eps)
    N, C = X.shape[:2]
    if rm is not None or rv is not None:
        Xi = X.reshape(N, C, -1).astype(np.float64)
        k = Xi.shape[-1]
        if rm is not None:
            rm[...] = (1 - momentum) * rm + momentum * Xi.mean(axis=-1).mean(axis=0)
        if rv is not None:
            rv[...] = (1 - momentum) * rv + momentum * (Xi.var(axis=-1) * k / (k - 1)).mean(axis=0)
    return _normalize_groups(x, C, w, b, eps, "instance_norm")


def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]."""
    a, A, xp = _float_input(input1, "bilinear")
    b2, B, _ = _float_input(input2, "bilinear")
    w = _t(weight)
    bias = None if bias is None else _t(bias)
    _same(a, b2, w, bias)
    W = w._data
    O, I, J = W.shape
    if A.shape[-1] != I:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got {A.shape[-1]} but expected {I}")
    if B.shape[-1] != J:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got {B.shape[-1]} but expected {J}")
    if A.shape[:-1] != B.shape[:-1]:
        raise RuntimeError(
            f"bilinear(): input batch dimensions do not match: got {list(A.shape[:-1])} and {list(B.shape[:-1])}"
        )
    lead = A.shape[:-1]
    A2, B2 = A.reshape(-1, I), B.reshape(-1, J)
    T = xp.matmul(B2, W.reshape(O * I, J).T).reshape(-1, O, I)  # T[n, o, i] = sum_j W[o, i, j] B[n, j]
    y = (T * A2[:, None, :]).sum(axis=-1)
    if bias is not None:
        y = y + bias._data

    def backward(g):
        G = g.reshape(-1, O)
        S = xp.matmul(G, W.reshape(O, I * J)).reshape(-1, I, J)  # S[n, i, j] = sum_o G[n, o] W[o, i, j]
        grads = [
            (G[:, :, None] * T).sum(axis=1).reshape(A.shape),
            (S * A2[:, :, None]).sum(axis=1).reshape(B.shape),
            xp.matmul(G.T, (A2[:, :, None] * B2[:, None, :]).reshape(-1, I * J)).reshape(W.shape),
        ]
        if bias is not None:
            grads.append(G.sum(axis=0))
        return tuple(grads)

    parents = (a, b2, w) if bias is None else (a, b2, w, bias)
    return Tensor._result(y.reshape(lead + (O,)), parents, backward, "bilinear")


# -- one-dimensional convolution and pooling (the 2-D kernels on a unit height) -------------------


def _single(v):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"expected an int or a 1-element sequence, got {v!r}")
        return int(v[0])
    return int(v)


def _to_2d(x, op, message):
    """(N, C, L) or unbatched (C, L) input as (N, C, 1, L), and whether it was unbatched."""
    if x.ndim not in (2, 3):
        raise RuntimeError(message)
    unbatched = x.ndim == 2
    return (x.unsqueeze(0) if unbatched else x).unsqueeze(2), unbatched


def _from_2d(y, unbatched):
    y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w = _t(input), _t(weight)
    x4, unb = _to_2d(
        x, "conv1d", f"Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: {list(x.shape)}"
    )
    pad = padding if isinstance(padding, str) else (0, _single(padding))
    y = conv2d(x4, w.unsqueeze(2), bias, (1, _single(stride)), pad, (1, _single(dilation)), groups)
    return _from_2d(y, unb)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d (torch's argument order: groups before dilation):
    weight (in_channels, out_channels / groups, KH, KW), output size (H - 1) stride - 2 padding +
    dilation (K - 1) + output_padding + 1. It is conv2d's backward-data, and its gradients are
    conv2d's forward (input) and backward-weight with the roles of input and output swapped, on
    the same kernels (float64: their references)."""
    x, w = _t(input), _t(weight)
    if x.ndim == 3:  # unbatched (C, H, W)
        return conv_transpose2d(x.unsqueeze(0), w, bias, stride, padding, output_padding, groups, dilation).squeeze(0)
    if x.ndim != 4 or w.ndim != 4:
        raise RuntimeError(
            f"fastnn.nn.functional.conv_transpose2d: expected 3D (unbatched) or 4D (batched) input and a 4D "
            f"weight, got input of size {list(x.shape)} and weight of size {list(w.shape)}"
        )
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    st, pads, dil, shape, size = conv_transpose2d_geometry(
        x.shape, w.shape, stride, padding, output_padding, dilation, groups, "conv_transpose2d", RuntimeError
    )
    B = x.shape[0]
    extra = (shape[2] - size[0], shape[3] - size[1])
    K = _kernels("conv_transpose2d", ("input", "weight", "bias"), x, w, b)
    X, Wt = x._data, w._data
    xp = _xp(X)
    if min(size) == 0:  # the output lies past the full scatter: no pixel depends on x or w
        y = xp.zeros(shape, dtype=X.dtype)
    else:
        y = K.conv2d_backward_data(X, Wt, (B, w.shape[1] * groups) + size, st, pads, dil, groups)
    if any(extra) and min(size) > 0:
        y = xp.pad(y, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    if b is not None:
        y += b._data.reshape(1, -1, 1, 1)  # y is the kernel's new array
    parents = (x, w) if b is None else (x, w, b)

    def backward(g):
        g = _xp(g).ascontiguousarray(g)
        gs = _xp(g).ascontiguousarray(g[:, :, : size[0], : size[1]]) if any(extra) else g
        if min(size) == 0:
            dx = xp.zeros_like(X) if x.requires_grad else None
            dw = xp.zeros_like(Wt) if w.requires_grad else None
        else:
            dx = K.conv2d_forward(gs, Wt, None, st, pads, dil, groups) if x.requires_grad else None
            dw = K.conv2d_backward_weight(X, gs, Wt.shape, st, pads, dil, groups) if w.requires_grad else None
        if b is None:
            return dx, dw
        return dx, dw, K.conv2d_backward_bias(g) if b.requires_grad else None

    return Tensor._result(y, parents, backward, "conv_transpose2d")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d: conv_transpose2d on a unit height."""
    x, w = _t(input), _t(weight)
    x4, unb = _to_2d(
        x,
        "conv_transpose1d",
        f"Expected 2D (unbatched) or 3D (batched) input to conv_transpose1d, but got input of size: {list(x.shape)}",
    )
    y = conv_transpose2d(
        x4,
        w.unsqueeze(2),
        bias,
        (1, _single(stride)),
        (0, _single(padding)),
        (0, _single(output_padding)),
        groups,
        (1, _single(dilation)),
    )
    return _from_2d(y, unb)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x = _t(input)
    x4, unb = _to_2d(
        x,
        "max_pool1d",
        "max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for input, but "
        f"got:{list(x.shape)}",
    )
    k = _single(kernel_size)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _single(stride)
    out = max_pool2d(x4, (1, k), (1, s), (0, _single(padding)), (1, _single(dilation)), ceil_mode, return_indices)
    if return_indices:
        y, idx = out
        return _from_2d(y, unb), _from_2d(idx, unb)
    return _from_2d(out, unb)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = _t(input)
    x4, unb = _to_2d(
        x,
        "avg_pool1d",
        f"Expected 2 to 3 dimensions, but got {x.ndim}-dimensional tensor for argument #1 'self' (while checking "
        "arguments for avg_pool1d)",
    )
    k = _single(kernel_size)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _single(stride)
    y = avg_pool2d(x4, (1, k), (1, s), (0, _single(padding)), ceil_mode, count_include_pad)
    return _from_2d(y, unb)


def adaptive_avg_pool1d(input, output_size):
    x = _t(input)
    x4, unb = _to_2d(
        x, "adaptive_avg_pool1d", f"adaptive_avg_pool1d(): Expected 2D or 3D tensor, but got {list(x.shape)}"
    )
    return _from_2d(adaptive_avg_pool2d(x4, (1, _single(output_size))), unb)


# NumPy's floating-point warnings off in every function here: torch is silent on inf, nan and
# division by zero (their own warnings still point at their caller: _quiet.stacklevel)
for _name in __all__:
    if callable(globals().get(_name)) and not isinstance(globals()[_name], type):
        globals()[_name] = _quiet.quietly(globals()[_name])
del _name


def __getattr__(name):
    # a torch.nn.functional function fastnn lacks: NotImplementedError naming it (an AttributeError too)
    raise _missing("fastnn.nn.functional", "torch.nn.functional", _TORCH_NN_FUNCTIONAL, name)
