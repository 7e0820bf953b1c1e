"""fastnn.nn.functional: torch.nn.functional's names over fastnn's kernels, with autograd.

Each function computes its forward with a fastnn.ops kernel and records a backward that calls
the matching backward kernel. Two fusions happen without the caller asking: a ReLU computed just
before a max pooling gets its gradient from the pooling backward's pass (max_pool2d_backward with
relu=True), and a linear or convolution layer takes its bias in the kernel's epilogue.

On a CUDA device the same calls run (fastnn.ops sends CUDA arrays to the CUDA kernels); the
little array math here uses the array's namespace (NumPy or CuPy). Dropout masks come from
fastnn's host generator and are copied to the device, so a seeded run drops the same elements
on either device.
"""

import math
import warnings

import numpy as np

from .. import _device as _dev
from .. import ops
from .. import random as _random
from .._device import xp as _xp
from ..sparse import RowSparse
from ..tensor import _HOST, Tensor, _f32, _unbroadcast

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
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "kl_div",
]


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _same(*tensors):
    """torch's RuntimeError unless the tensors (None skipped) are on one device."""
    arrays = [t.data for t in tensors if t is not None]
    if not all(isinstance(a, _HOST) for a in arrays):
        _dev.check_same_device(*arrays)


def _array(v, like=None):
    """The array of a tensor, a CUDA array as it is, anything else as a NumPy array."""
    if isinstance(v, Tensor):
        return v.data
    if not isinstance(v, np.ndarray) and hasattr(v, "__cuda_array_interface__"):
        return v
    return np.asarray(v)


def _grad_scale(g, n):
    """The gradient g of a reduced loss over n: a Python float on the CPU (as before), a 0-d
    float32 on a device (float64 division rounded once, as the host's float does)."""
    if isinstance(g, _HOST):
        return float(g) / n
    return (g.astype(np.float64) / n).astype(np.float32)


# -- layers -----------------------------------------------------------------------------------


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w = _t(input), _t(weight)
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    X, Wt = _f32(x, "input", "conv2d"), _f32(w, "weight", "conv2d")
    y = ops.conv2d_forward(X, Wt, None if b is None else b.data, stride, padding, dilation, groups)
    parents = (x, w) if b is None else (x, w, b)

    def backward(g):
        dx = ops.conv2d_backward_data(g, Wt, X.shape, stride, padding, dilation, groups) if x.requires_grad else None
        dw = ops.conv2d_backward_weight(g, X, Wt.shape, stride, padding, dilation, groups) if w.requires_grad else None
        if b is None:
            return dx, dw
        return dx, dw, ops.conv2d_backward_bias(g) if b.requires_grad else None

    return Tensor._result(y, parents, backward, "conv2d")


def linear(input, weight, bias=None):
    x, w = _t(input), _t(weight)
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    X, Wt = _f32(x, "input", "linear"), _f32(w, "weight", "linear")
    lead = X.shape[:-1]
    X2 = X.reshape(-1, X.shape[-1])
    y = ops.gemm(X2, Wt, trans_b=True, bias=None if b is None else b.data).reshape(lead + (Wt.shape[0],))
    parents = (x, w) if b is None else (x, w, b)
    host = isinstance(X, _HOST)

    def backward(g):
        g2 = g.reshape(-1, g.shape[-1])
        if not host:
            g2 = _xp(g2).ascontiguousarray(g2)  # the CUDA gemm reads C-contiguous arrays only
        dx = ops.gemm(g2, Wt).reshape(X.shape) if x.requires_grad else None
        dw = ops.gemm(g2, X2, trans_a=True) if w.requires_grad else None
        if b is None:
            return dx, dw
        return dx, dw, g2.sum(axis=0, dtype=np.float32) if b.requires_grad else None

    return Tensor._result(y, parents, backward, "linear")


def flatten(input, start_dim=0, end_dim=-1):
    return _t(input).flatten(start_dim, end_dim)


# -- activations ------------------------------------------------------------------------------


def relu(input, inplace=False):
    return _t(input).relu()


def leaky_relu(input, negative_slope=0.01, inplace=False):
    x = _t(input)
    X = _f32(x, "input", "leaky_relu")
    y = ops.leaky_relu_forward(X, negative_slope)
    return Tensor._result(y, (x,), lambda g: (ops.leaky_relu_backward(g, X, negative_slope),), "leaky_relu")


def sigmoid(input):
    return _t(input).sigmoid()


def tanh(input):
    return _t(input).tanh()


def gelu(input, approximate="none"):
    x = _t(input)
    X = _f32(x, "input", "gelu")
    y = ops.gelu_forward(X, approximate)
    return Tensor._result(y, (x,), lambda g: (ops.gelu_backward(g, X, approximate),), "gelu")


# -- pooling ----------------------------------------------------------------------------------


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x = _t(input)
    X = _f32(x, "input", "max_pool2d")
    y, idx = ops.max_pool2d_forward(X, kernel_size, stride, padding, dilation, ceil_mode)
    node = x._node
    if node is not None and node.name == "relu":
        # x = relu(z): the pooling backward takes the gradient on to z in its own pass; the
        # ReLU's node then gets a gradient only from x's other consumers, if any
        z = node.parents[0]
        out = Tensor._result(
            y,
            (z,),
            lambda g: (
                ops.max_pool2d_backward(g, X, idx, kernel_size, stride, padding, dilation, ceil_mode, relu=True),
            ),
            "max_pool2d",
        )
    else:
        out = Tensor._result(
            y,
            (x,),
            lambda g: (ops.max_pool2d_backward(g, X, idx, kernel_size, stride, padding, dilation, ceil_mode),),
            "max_pool2d",
        )
    return (out, Tensor(idx)) if return_indices else out


def avg_pool2d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    if divisor_override is not None:
        raise NotImplementedError("fastnn.nn.functional.avg_pool2d: divisor_override is not supported")
    x = _t(input)
    X = _f32(x, "input", "avg_pool2d")
    y = ops.avg_pool2d_forward(X, kernel_size, stride, padding, ceil_mode, count_include_pad)
    return Tensor._result(
        y,
        (x,),
        lambda g: (ops.avg_pool2d_backward(g, X, kernel_size, stride, padding, ceil_mode, count_include_pad),),
        "avg_pool2d",
    )


def adaptive_avg_pool2d(input, output_size):
    x = _t(input)
    X = _f32(x, "input", "adaptive_avg_pool2d")
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    H, W = X.shape[-2:]
    oh, ow = oh or H, ow or W
    if (oh, ow) == (1, 1):
        y = ops.global_avg_pool2d_forward(X)
        return Tensor._result(y, (x,), lambda g: (ops.global_avg_pool2d_backward(g, X),), "adaptive_avg_pool2d")
    if H % oh or W % ow:
        raise NotImplementedError(
            "fastnn.nn.functional.adaptive_avg_pool2d: expected the input size "
            f"to be a multiple of the output size, got {(H, W)} -> {(oh, ow)}"
        )
    return avg_pool2d(x, (H // oh, W // ow))


# -- softmax and losses -------------------------------------------------------------------------


def _move_dim_last(a, dim):
    return _xp(a).moveaxis(a, dim, -1) if dim not in (-1, a.ndim - 1) else a


def _implicit_dim(name, ndim):
    """torch's dim for softmax-like functions called without one (with its warning)."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _t(input)
    if dim is None:
        dim = _implicit_dim("softmax", x.ndim)
    if dtype is not None:
        x = x.to(dtype)
    return x.softmax(dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _t(input)
    if dim is None:
        dim = _implicit_dim("log_softmax", x.ndim)
    if dtype is not None:
        x = x.to(dtype)
    return x.log_softmax(dim)


def _reduce(loss, reduction, denom, op):
    if reduction == "none":
        return loss
    xp = _xp(loss)
    if reduction == "sum":
        return xp.asarray(loss.sum(dtype=np.float64), np.float32)
    if reduction == "mean":
        return xp.asarray(loss.sum(dtype=np.float64) / denom, np.float32)
    raise ValueError(f"fastnn.nn.functional.{op}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")


def _class_rows(logits, target, op):
    """(rows (M, C) float32 with classes last, targets (M,) int64, shape of the per-row loss)."""
    L, T = logits.data, _array(target)
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
        else (weight.data if isinstance(weight, Tensor) else _array(weight).astype(np.float32, copy=False))
    )
    if not (isinstance(x.data, _HOST) and isinstance(T, _HOST) and (W is None or isinstance(W, _HOST))):
        _dev.check_same_device(x.data, T, W)
    if x.data.dtype == np.float32 and T.dtype == np.int64 and (W is None or W.dtype == np.float32):
        # the fused kernel: one pass per row forward, one backward (softmax recomputed)
        X = x.data
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
        loss.astype(np.float32).reshape(tshape) if reduction == "none" else loss, reduction, denom, "cross_entropy"
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
        d = d.astype(np.float32).reshape(_move_dim_last(x.data, 1).shape)
        if x.data.ndim > 2:
            d = xp.ascontiguousarray(xp.moveaxis(d, -1, 1))
        return (d.reshape(x.data.shape),)

    return Tensor._result(xp.asarray(out, np.float32), (x,), backward, "cross_entropy")


def _full(xp, n, g, denom):
    """n copies of the 0-d g / denom (float64): np.full on the host; on a device without reading
    g back."""
    if xp is np:
        return np.full(n, float(g) / denom)
    return xp.broadcast_to(g.reshape(()) / denom, (n,))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x = _t(input)
    rows, t, tshape = _class_rows(x, target, "nll_loss")
    xp = _xp(rows)
    M, C = rows.shape
    keep, tt, w, wt = _nll_parts(rows, t, weight, ignore_index, C, "nll_loss")
    loss = -rows[xp.arange(M), tt].astype(np.float64) * wt
    denom = wt.sum()
    out = _reduce(
        loss.astype(np.float32).reshape(tshape) if reduction == "none" else loss, reduction, denom, "nll_loss"
    )

    def backward(g):
        g = xp.asarray(g, np.float64)
        gi = g.reshape(-1) if reduction == "none" else _full(xp, M, g, denom if reduction == "mean" else 1.0)
        d = xp.zeros((M, C), np.float32)
        d[xp.arange(M), tt] = -(wt * gi)
        d = d.reshape(_move_dim_last(x.data, 1).shape)
        if x.data.ndim > 2:
            d = xp.ascontiguousarray(xp.moveaxis(d, -1, 1))
        return (d.reshape(x.data.shape),)

    return Tensor._result(xp.asarray(out, np.float32), (x,), backward, "nll_loss")


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is not None:
        return _weighted(mse_loss(input, target, reduction="none"), weight, input, reduction, True)
    x, y = _t(input), _t(target)
    _same(x, y)
    _size_warning(x, y)
    diff = x.data - y.data
    loss = diff * diff
    out = _reduce(loss, reduction, loss.size, "mse_loss")
    n = loss.size if reduction == "mean" else 1

    def backward(g):
        d = 2 * diff * (g if reduction == "none" else _grad_scale(g, n))
        return (_unbroadcast(d.astype(np.float32), x.shape), _unbroadcast(-d.astype(np.float32), y.shape))

    return Tensor._result(_xp(loss).asarray(out, np.float32), (x, y), backward, "mse_loss")


def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target)
    wt = None if weight is None else _t(weight)
    pwt = None if pos_weight is None else _t(pos_weight)
    _same(x, y, wt, pwt)
    xp = _xp(x.data)
    X, Y = x.data.astype(np.float64), y.data.astype(np.float64)
    w = 1.0 if wt is None else wt.data.astype(np.float64)
    pw = 1.0 if pwt is None else pwt.data.astype(np.float64)
    # loss = -w [pw y log s(x) + (1 - y) log(1 - s(x))], with log s(x) = -softplus(-x)
    sp_neg = xp.logaddexp(0, -X)  # -log s(x)
    sp_pos = xp.logaddexp(0, X)  # -log(1 - s(x))
    loss = w * (pw * Y * sp_neg + (1 - Y) * sp_pos)
    out = _reduce(
        loss.astype(np.float32) if reduction == "none" else loss,
        reduction,
        loss.size,
        "binary_cross_entropy_with_logits",
    )
    n = loss.size if reduction == "mean" else 1

    def backward(g):
        s = 1 / (1 + xp.exp(-X))
        scale = g if reduction == "none" else (float(g) / n if xp is np else g.astype(np.float64) / n)
        d = w * (pw * Y * (s - 1) + (1 - Y) * s) * scale
        return (_unbroadcast(d.astype(np.float32), x.shape), None)

    return Tensor._result(xp.asarray(out, np.float32), (x, y), backward, "binary_cross_entropy_with_logits")


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
    mask = (_random.generator().random(x.shape) >= p).astype(np.float32) / np.float32(1 - p)
    mask = _dev.move(mask, _dev.device_of(x.data))
    return Tensor._result(x.data * mask, (x,), lambda g: (g * mask,), "dropout")


def _bn_kernel(x, rm, rv, w, b, training, momentum, eps):
    """batch_norm through the NCHW kernels: 2-D (N, C) and 3-D (N, C, L) inputs viewed as 4-D."""
    X = x.data
    X4 = X.reshape(X.shape[:2] + (-1, 1)) if X.ndim != 4 else X
    W = None if w is None else w.data
    y, sm, si = ops.batch_norm2d_forward(X4, W, None if b is None else b.data, rm, rv, training, momentum, eps)
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
    X = x.data
    w0 = None if weight is None else _t(weight)
    b0 = None if bias is None else _t(bias)
    rm0 = None if running_mean is None else (running_mean.data if isinstance(running_mean, Tensor) else running_mean)
    rv0 = None if running_var is None else (running_var.data if isinstance(running_var, Tensor) else running_var)
    host = isinstance(X, _HOST)
    if not (
        host
        and all(isinstance(a, _HOST) for a in (rm0, rv0) if a is not None)
        and (w0 is None or isinstance(w0.data, _HOST))
        and (b0 is None or isinstance(b0.data, _HOST))
    ):
        _dev.check_same_device(X, None if w0 is None else w0.data, None if b0 is None else b0.data, rm0, rv0)
    array = np.ndarray if host else type(X)  # the running statistics must be arrays the kernel writes
    if (
        X.dtype == np.float32
        and 2 <= X.ndim <= 4
        and all(t is None or t.data.dtype == np.float32 for t in (w0, b0))
        and all(r is None or (isinstance(r, array) and r.dtype == np.float32) for r in (rm0, rv0))
        and (training or rm0 is not None)
    ):
        return _bn_kernel(x, rm0, rv0, w0, b0, training, momentum, eps)
    xp = _xp(X)
    axes = (0,) + tuple(range(2, X.ndim))
    shape = (1, X.shape[1]) + (1,) * (X.ndim - 2)
    n = X.size // X.shape[1]
    rm = None if running_mean is None else (running_mean.data if isinstance(running_mean, Tensor) else running_mean)
    rv = None if running_var is None else (running_var.data if isinstance(running_var, Tensor) else running_var)
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
    xhat = ((X - mean.reshape(shape)) * invstd.reshape(shape)).astype(np.float32)
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    y = xhat
    if w is not None:
        y = y * w.data.reshape(shape)
    if b is not None:
        y = y + b.data.reshape(shape)
    parents = tuple(t for t in (x, w, b) if t is not None)

    def backward(g):
        G = g.astype(np.float64)
        gw = (G * xhat).sum(axis=axes)
        gb = G.sum(axis=axes)
        scale = invstd * (1.0 if w is None else w.data.astype(np.float64))
        if training:
            dx = scale.reshape(shape) * (G - gb.reshape(shape) / n - xhat * (gw.reshape(shape) / n))
        else:
            dx = G * scale.reshape(shape)
        grads = [dx.astype(np.float32)]
        if w is not None:
            grads.append(gw.astype(np.float32))
        if b is not None:
            grads.append(gb.astype(np.float32))
        return tuple(grads)

    return Tensor._result(xp.ascontiguousarray(y, np.float32), parents, backward, "batch_norm")


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    idx = _array(input)
    w = _t(weight)
    V = w.shape[0]
    if idx.dtype.kind not in "iu":
        raise TypeError(f"fastnn.nn.functional.embedding: expected integer indices, got {idx.dtype}")
    host = isinstance(idx, _HOST) and isinstance(w.data, _HOST)
    if not host:
        _dev.check_same_device(w.data, idx)
        idx = _xp(idx).ascontiguousarray(idx, dtype=np.int64)
    # (on a device the kernels check the range themselves, with one reduction)
    if (host or w.data.dtype != np.float32) and idx.size and (idx.min() < 0 or idx.max() >= V):
        raise ValueError(
            f"fastnn.nn.functional.embedding: expected indices in [0, {V}), got "
            f"{int(idx.min()) if idx.min() < 0 else int(idx.max())}"
        )
    if sparse:
        # the weight's gradient is row-sparse: one row per looked-up position (padding_idx's left out)
        D, pad = w.shape[1], None if padding_idx is None else padding_idx % V
        out = None if w.data.dtype == np.float32 else w.data[idx]

        def backward_sparse(g):
            flat, rows = idx.reshape(-1), _xp(g).ascontiguousarray(g, dtype=np.float32).reshape(-1, D)
            if pad is not None:
                keep = flat != pad
                flat, rows = flat[keep], rows[keep]
            return (RowSparse(flat, rows, w.shape),)

        if w.data.dtype == np.float32:
            out = ops.embedding_forward(w.data, idx, padding_idx)
        return Tensor._result(out, (w,), backward_sparse, "embedding")
    if w.data.dtype == np.float32:
        out = ops.embedding_forward(w.data, idx, padding_idx)
        return Tensor._result(
            out,
            (w,),
            lambda g: (ops.embedding_backward(_xp(g).ascontiguousarray(g), idx, V, padding_idx),),
            "embedding",
        )
    out = w.data[idx]
    xp = _xp(out)

    def backward(g):
        d = xp.zeros_like(w.data)
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
    """(tensors or None, float32 C-contiguous arrays or None), in the order given."""
    ts, arrays = [], []
    for name, v in named.items():
        t = None if v is None else _t(v)
        ts.append(t)
        arrays.append(None if t is None else _xp(t.data).ascontiguousarray(_f32(t, name, op)))
    _same(*ts)
    return ts, arrays


def _grad_arrays(grads):
    return tuple(None if g is None else _xp(g).ascontiguousarray(g, dtype=np.float32) for g in grads)


def _kept(ts, grads):
    return tuple(g for t, g in zip(ts, grads) if t is not None)


def lstm(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reverse=False):
    """(output (T, B, H), h_n (B, H), c_n (B, H)) of one LSTM layer over input (T, B, I);
    h0/c0 None: zeros; reverse: time runs backwards (output[t] stays aligned with input[t])."""
    ts, (X, H0, C0, Wi, Wh, Bi, Bh) = _rnn_args(
        "lstm", input=input, h0=h0, c0=c0, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    y, h, c, ws = ops.lstm_forward(X, H0, C0, Wi, Wh, Bi, Bh, reverse)

    def backward(dy, dh, dc):
        dy, dh, dc = _grad_arrays((dy, dh, dc))
        return _kept(ts, ops.lstm_backward(dy, dh, dc, X, H0, C0, Wi, Wh, y, ws, reverse))

    return _multi_output((y, h, c), tuple(t for t in ts if t is not None), backward, "lstm")


def gru(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reverse=False):
    """(output (T, B, H), h_n (B, H)) of one GRU layer (torch's gate order r, z, n)."""
    ts, (X, H0, Wi, Wh, Bi, Bh) = _rnn_args(
        "gru", input=input, h0=h0, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    y, h, ws = ops.gru_forward(X, H0, Wi, Wh, Bi, Bh, reverse)

    def backward(dy, dh):
        dy, dh = _grad_arrays((dy, dh))
        return _kept(ts, ops.gru_backward(dy, dh, X, H0, Wi, Wh, y, ws, reverse))

    return _multi_output((y, h), tuple(t for t in ts if t is not None), backward, "gru")


def rnn(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh", reverse=False):
    """(output (T, B, H), h_n (B, H)) of one Elman RNN layer (nonlinearity "tanh" or "relu")."""
    ts, (X, H0, Wi, Wh, Bi, Bh) = _rnn_args(
        "rnn", input=input, h0=h0, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    y, h, ws = ops.rnn_forward(X, H0, Wi, Wh, Bi, Bh, nonlinearity, reverse)

    def backward(dy, dh):
        dy, dh = _grad_arrays((dy, dh))
        return _kept(ts, ops.rnn_backward(dy, dh, X, H0, Wi, Wh, y, ws, nonlinearity, reverse))

    return _multi_output((y, h), tuple(t for t in ts if t is not None), backward, "rnn")


def lstm_cell(input, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """(h', c') (B, H) of one LSTM step on input (B, I); h/c None: zeros."""
    ts, (X, Hp, Cp, Wi, Wh, Bi, Bh) = _rnn_args(
        "lstm_cell", input=input, h=h, c=c, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    h1, c1, ws = ops.lstm_cell_forward(X, Hp, Cp, Wi, Wh, Bi, Bh)

    def backward(dh, dc):
        dh, dc = _grad_arrays((dh, dc))
        return _kept(ts, ops.lstm_cell_backward(dh, dc, X, Hp, Cp, Wi, Wh, ws))

    return _multi_output((h1, c1), tuple(t for t in ts if t is not None), backward, "lstm_cell")


def gru_cell(input, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """h' (B, H) of one GRU step on input (B, I); h None: zeros."""
    ts, (X, Hp, Wi, Wh, Bi, Bh) = _rnn_args(
        "gru_cell", input=input, h=h, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    h1, ws = ops.gru_cell_forward(X, Hp, Wi, Wh, Bi, Bh)

    def backward(dh):
        (dh,) = _grad_arrays((dh,))
        return _kept(ts, ops.gru_cell_backward(dh, X, Hp, Wi, Wh, ws))

    return _multi_output((h1,), tuple(t for t in ts if t is not None), backward, "gru_cell")[0]


def rnn_cell(input, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """h' (B, H) of one Elman RNN step on input (B, I); h None: zeros."""
    ts, (X, Hp, Wi, Wh, Bi, Bh) = _rnn_args(
        "rnn_cell", input=input, h=h, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh
    )
    h1, ws = ops.rnn_cell_forward(X, Hp, Wi, Wh, Bi, Bh, nonlinearity)

    def backward(dh):
        (dh,) = _grad_arrays((dh,))
        return _kept(ts, ops.rnn_cell_backward(dh, X, Hp, Wi, Wh, ws, nonlinearity))

    return _multi_output((h1,), tuple(t for t in ts if t is not None), backward, "rnn_cell")[0]


# -- attention and layer normalisation (their modules: fastnn.nn.attention) -------------------


def _f32c(x, name, op):
    """x's float32 array, C-contiguous (the kernels take no strides)."""
    a = _f32(x, name, op)
    return _xp(a).ascontiguousarray(a)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm: normalise over the trailing normalized_shape dims."""
    x = _t(input)
    shape = (int(normalized_shape),) if np.ndim(normalized_shape) == 0 else tuple(int(d) for d in normalized_shape)
    X = _f32c(x, "input", "layer_norm")
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    _same(x, w, b)
    W = None if w is None else _f32c(w, "weight", "layer_norm")
    y, mean, rstd = ops.layer_norm_forward(X, shape, W, None if b is None else _f32c(b, "bias", "layer_norm"), eps)
    parents = tuple(t for t in (x, w, b) if t is not None)

    def backward(g):
        G = _xp(g).ascontiguousarray(g, dtype=np.float32)
        dx, dw, db = ops.layer_norm_backward(G, X, mean, rstd, W)
        if b is not None and db is None:  # a bias without a weight: the kernel skips both
            db = G.reshape((-1,) + shape).sum(axis=0, dtype=np.float64).astype(np.float32)
        grads = [dx]
        if w is not None:
            grads.append(dw)
        if b is not None:
            grads.append(db)
        return tuple(grads)

    return Tensor._result(y, parents, backward, "layer_norm")


def _mask_array(attn_mask, op):
    if attn_mask is None:
        return None
    m = _array(attn_mask)
    xp = _xp(m)
    if m.dtype == np.bool_:
        return xp.ascontiguousarray(m)
    if m.dtype.kind == "f":
        return xp.ascontiguousarray(m, dtype=np.float32)
    raise TypeError(f"fastnn.nn.functional.{op}: expected attn_mask to be bool or float, got {m.dtype}")


def _math_attention(q, k, v, mask, is_causal, scale, dropout_p, training=True):
    """softmax(q k^T * scale + mask) (dropout) v through Tensor operations: (out, weights)."""
    L, S = q.shape[-2], k.shape[-2]
    xp = _xp(q.data)
    scores = (q @ k.transpose(-2, -1)) * float(scale)
    if is_causal:
        mask = xp.tril(xp.ones((L, S), np.bool_))
    row_keep = None
    if mask is not None:
        add = xp.where(mask, np.float32(0), np.float32(-np.inf)) if mask.dtype == np.bool_ else mask
        add = add.astype(np.float32)
        # A query whose keys are all masked gets zero weights (as from the fused kernel), not
        # the NaN of softmax over -inf: its row of the mask is neutralised, its weights zeroed.
        visible = xp.isfinite(add).any(axis=-1, keepdims=True)
        if not visible.all():
            add = xp.where(visible, add, np.float32(0))
            row_keep = Tensor(visible.astype(np.float32))
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
    if enable_gqa:
        raise NotImplementedError(f"fastnn.nn.functional.{op}: enable_gqa is not supported")
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"fastnn.nn.functional.{op}: expected query, key and value with the same number "
            f"(>= 2) of dims, got {q.shape}, {k.shape}, {v.shape}"
        )
    if is_causal and attn_mask is not None:
        raise ValueError(f"fastnn.nn.functional.{op}: is_causal cannot be combined with an explicit attn_mask")
    mask = _mask_array(attn_mask, op)
    _same(q, k, v)
    if mask is not None and not isinstance(q.data, _HOST):
        _dev.check_same_device(q.data, mask)
    sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if dropout_p > 0:
        return _math_attention(q, k, v, mask, is_causal, sc, dropout_p)[0]
    # The kernel takes (B, NH, L, E): fold leading dims to match (masks broadcast over them).
    lead = q.shape[:-2]
    xp = _xp(q.data)
    if q.ndim == 4:
        Q, K, V = (_f32c(t, n, op) for t, n in ((q, "query"), (k, "key"), (v, "value")))
        M = mask
    else:
        n = math.prod(lead)
        Q, K, V = (
            _f32c(t, nm, op).reshape((n, 1) + t.shape[-2:]) for t, nm in ((q, "query"), (k, "key"), (v, "value"))
        )
        M = mask
        if M is not None and M.ndim > 2:
            M = xp.ascontiguousarray(xp.broadcast_to(M, lead + M.shape[-2:]).reshape((n, 1) + M.shape[-2:]))
    out, lse = ops.scaled_dot_product_attention_forward(Q, K, V, M, is_causal, sc)

    def backward(g):
        G = xp.ascontiguousarray(g, dtype=np.float32).reshape(out.shape)
        dq, dk, dv = ops.scaled_dot_product_attention_backward(G, Q, K, V, out, lse, M, is_causal, sc)
        return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)

    return Tensor._result(out.reshape(lead + out.shape[-2:]), (q, k, v), backward, op)


# -- activations in array math ---------------------------------------------------------------
# The activations below have no kernel: their forward and backward are the input array's own
# math (NumPy or CuPy), in the input's dtype, so a float64 tensor gives float64 results.


def _float_input(input, op):
    x = _t(input)
    if x.data.dtype.kind != "f":
        raise TypeError(f"fastnn.nn.functional.{op}: expected a floating-point input, got {x.data.dtype}")
    return x, x.data, _xp(x.data)


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
        dim = _implicit_dim("softmin", x.ndim)
    return softmax(-x, dim)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), weight (1,) or one per channel (dim 1)."""
    x, X, xp = _float_input(input, "prelu")
    w = _t(weight)
    _same(x, w)
    W = w.data
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
        stacklevel=3,
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
            stacklevel=3,
        )


def _difference_loss(input, target, reduction, op, fwd, dfwd):
    """A loss of d = input - target elementwise (broadcast): fwd(xp, d) and its derivative
    dfwd(xp, d), reduced; gradients reach input and target."""
    _check_reduction(reduction)
    x, y = _t(input), _t(target)
    _same(x, y)
    _size_warning(x, y)
    X, Y = x.data, y.data
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
    X, Y = x.data, y.data
    xp = _xp(X)
    if not bool(((X >= 0) & (X <= 1)).all()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):
        lx, l1x = xp.maximum(xp.log(X), -100), xp.maximum(xp.log1p(-X), -100)
    W = 1 if w is None else xp.broadcast_to(w.data, X.shape)
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
            stacklevel=2,
        )
    x, y = _t(input), _t(target)
    _same(x, y)
    X, Y = x.data, y.data
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
    X, T = x.data, t.data
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
