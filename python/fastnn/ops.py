"""Kernels on arrays: numpy float32 in, numpy float32 out, no autograd.

CUDA arrays (anything with __cuda_array_interface__, e.g. CuPy) go to the CUDA kernels of
fastnn.cuda where one exists (gemm, conv2d, the activations, softmax / log_softmax, layer norm,
embedding, pooling, cross-entropy, batch norm, the SGD and Adam updates, grad_norm, the
recurrent layers and cells, scaled dot-product attention), with CuPy outputs; the others (the
word2vec training entries) refuse CUDA arrays with a TypeError."""

import os
import re

import numpy as np

from . import _core
from . import cuda as _cuda
from ._conv import conv2d_params, conv_transpose2d_geometry

# numpy.ndarray, looked up once: the device checks below ask for it for every array of every call.
_ndarray = np.ndarray

__all__ = [
    "gemm",
    "conv2d_forward",
    "conv2d_backward_data",
    "conv2d_backward_weight",
    "conv2d_backward_bias",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward_data",
    "conv_transpose2d_backward_weight",
    "conv_transpose2d_backward_bias",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "gelu_forward",
    "gelu_backward",
    "softmax_forward",
    "softmax_backward",
    "log_softmax_forward",
    "log_softmax_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "sgd_step",
    "adam_step",
    "grad_norm",
    "batch_norm2d_forward",
    "batch_norm2d_backward",
    "embedding_forward",
    "embedding_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "rnn_forward",
    "rnn_backward",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
    "rnn_cell_forward",
    "rnn_cell_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "scaled_dot_product_attention_forward",
    "scaled_dot_product_attention_backward",
    "word2vec_train",
    "word2vec_train_file",
    "word2vec_count_file",
]


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, activation=None, out=None):
    """out = act(alpha * op(a) @ op(b) + beta * c + bias).

    a is (..., M, K) ((..., K, M) if trans_a), b is (..., K, N) ((..., N, K) if trans_b),
    batch dimensions broadcast as in numpy.matmul; c is (..., M, N) with batch dimensions
    that broadcast to the result's (its last two are M and N exactly) and defaults to out
    (in-place BLAS update); bias is (N,); activation is None or "relu". Transposed
    views of C-contiguous inputs are read in place; other strided inputs are copied.
    """
    return _kernels(a, b, c, bias, out).gemm(a, b, c, out, trans_a, trans_b, alpha, beta, bias, activation)


def _gpu(*arrays):
    """True when any argument is a CUDA array (then all must be: the entries check). NumPy arrays
    and None are the common case and cost no attribute lookup."""
    for a in arrays:
        if a is not None and type(a) is not _ndarray and hasattr(a, "__cuda_array_interface__"):
            return True
    return False


def _kernels(*arrays):
    """The module whose entries run on these arrays: fastnn._core, or fastnn.cuda.kernels (the
    same entries and arguments, without isa) when any is a CUDA array."""
    return _cuda.kernels if _gpu(*arrays) else _core


def _listed_kernels(*lists):
    """_kernels of the arrays of the list arguments (lists or tuples; other values hold none):
    one CUDA array anywhere sends the call to the device, which refuses the NumPy ones. Lists of
    NumPy arrays alone, the common case, take one pass over the arrays' types in C."""
    arrays = []
    for lst in lists:
        if isinstance(lst, (list, tuple)):
            arrays += lst
    if list(map(type, arrays)).count(_ndarray) == len(arrays):
        return _core
    return _kernels(*arrays)


# pool2d: x and dy are (N, C, H, W) float32 C-contiguous; semantics, output sizes and errors are
# torch.nn.functional's (max_pool2d / avg_pool2d / adaptive_avg_pool2d(x, 1)). kernel_size,
# stride (None: kernel_size), padding and dilation are an int or a pair. Outputs given as out=
# (and indices=) are checked, never copied.


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, out=None, indices=None):
    """(y (N, C, OH, OW), indices int64 (N, C, OH, OW): flat ih * W + iw of each maximum)."""
    return _kernels(x, out, indices).max_pool2d_forward(
        x, kernel_size, stride, padding, dilation, ceil_mode, out, indices
    )


def max_pool2d_backward(
    dy, x, indices, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, relu=False, out=None
):
    """dx (N, C, H, W): dy (N, C, OH, OW) added at the forward's indices (x gives the shape).

    relu=True: x is the output of a ReLU, and dx is the gradient through it as well (dy reaches
    x[i] only where x[i] > 0, or is NaN), i.e. relu_backward(max_pool2d_backward(...), x) in one
    pass."""
    return _kernels(dy, x, indices, out).max_pool2d_backward(
        dy, x, indices, kernel_size, stride, padding, dilation, ceil_mode, relu, out
    )


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, out=None):
    """y (N, C, OH, OW): window sums over the window size (with or without the padding)."""
    return _kernels(x, out).avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, out)


def avg_pool2d_backward(
    dy, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, out=None
):
    """dx (N, C, H, W): each dy spread evenly over its window (x gives the shape)."""
    return _kernels(dy, x, out).avg_pool2d_backward(
        dy, x, kernel_size, stride, padding, ceil_mode, count_include_pad, out
    )


def global_avg_pool2d_forward(x, *, out=None):
    """y (N, C, 1, 1): the mean of each H x W plane (adaptive_avg_pool2d(x, 1))."""
    return _kernels(x, out).global_avg_pool2d_forward(x, out)


def global_avg_pool2d_backward(dy, x, *, out=None):
    """dx (N, C, H, W) = dy (N, C, 1, 1) / (H W) over each plane."""
    return _kernels(dy, x, out).global_avg_pool2d_backward(dy, x, out)


# Activations: elementwise on float32 C-contiguous arrays of any shape. out= may be the input
# itself (in place). The backward takes dy and what PyTorch saves: x, or the output y for
# sigmoid and tanh.


def relu_forward(x, *, out=None):
    """y = max(x, 0) (NaN stays NaN)."""
    return _kernels(x, out).relu_forward(x, out)


def relu_backward(dy, x, *, out=None):
    """dx = dy where x > 0, else 0."""
    return _kernels(dy, x, out).relu_backward(dy, x, out)


def leaky_relu_forward(x, negative_slope=0.01, *, out=None):
    """y = x if x > 0 else negative_slope * x."""
    return _kernels(x, out).leaky_relu_forward(x, negative_slope, out)


def leaky_relu_backward(dy, x, negative_slope=0.01, *, out=None):
    """dx = dy if x > 0 else negative_slope * dy."""
    return _kernels(dy, x, out).leaky_relu_backward(dy, x, negative_slope, out)


def sigmoid_forward(x, *, out=None):
    """y = 1 / (1 + exp(-x))."""
    return _kernels(x, out).sigmoid_forward(x, out)


def sigmoid_backward(dy, y, *, out=None):
    """dx = dy * y * (1 - y), from the forward's output y."""
    return _kernels(dy, y, out).sigmoid_backward(dy, y, out)


def tanh_forward(x, *, out=None):
    """y = tanh(x)."""
    return _kernels(x, out).tanh_forward(x, out)


def tanh_backward(dy, y, *, out=None):
    """dx = dy * (1 - y^2), from the forward's output y."""
    return _kernels(dy, y, out).tanh_backward(dy, y, out)


def gelu_forward(x, approximate="none", *, out=None):
    """y = x * Phi(x) (approximate="none", erf) or its tanh approximation ("tanh")."""
    return _kernels(x, out).gelu_forward(x, approximate, out)


def gelu_backward(dy, x, approximate="none", *, out=None):
    """dx = dy * d gelu(x) / dx."""
    return _kernels(dy, x, out).gelu_backward(dy, x, approximate, out)


def _int(op, name, v):
    """v, an int option the entries take as int64: an int or a NumPy integer. Anything else is
    the op's TypeError: pybind11 would take True for 1, and a NumPy float by int(), truncated
    (np.float32(1.7) for 1); torch (and csrc/bind/py_args.h's int options) refuse both."""
    if type(v) is int or (isinstance(v, (int, np.integer)) and type(v) is not bool):
        return v
    raise TypeError(f"fastnn.ops.{op}: expected {name} to be an int, got {type(v).__name__}")


def conv2d_forward(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None, out=None):
    """y = act(conv2d(x, w) + bias), PyTorch's Conv2d: x (B, C, H, W), w (OC, C/groups, KH, KW),
    bias (OC,); padding is an int, a pair, 'same' or 'valid'; activation None or "relu"."""
    groups = _int("conv2d_forward", "groups", groups)
    st, pad, dil = conv2d_params(_kernel_hw(w), stride, padding, dilation, "conv2d_forward")
    return _kernels(x, w, bias, out).conv2d_forward(x, w, bias, st, pad, dil, groups, activation, out)


def _kernel_hw(w):
    """(KH, KW) of a 4-D weight, for padding='same'; (1, 1) for anything else, which the entries
    refuse in their words (a weight of another rank is not a kernel)."""
    shape = getattr(w, "shape", ())
    return tuple(shape[2:]) if len(shape) == 4 else (1, 1)


def _conv_shape(op, name, v):
    """input_shape / weight_shape as a tuple of 4 ints (the entries' words for what is not)."""
    try:
        t = tuple(v)
    except TypeError:  # None, an int
        raise TypeError(
            f"fastnn.ops.{op}: expected {name} to be a sequence of 4 ints, got {type(v).__name__}"
        ) from None
    if not all(isinstance(i, (int, np.integer)) and type(i) is not bool for i in t):
        raise TypeError(f"fastnn.ops.{op}: expected {name} to be a sequence of 4 ints, got {v!r}")
    if len(t) != 4:
        raise ValueError(f"fastnn.ops.{op}: expected a 4-D {name}, got {_shape(t)}")
    return t


def conv2d_backward_data(dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1, out=None):
    """dx (input_shape) from dy (B, OC, OH, OW) and w (OC, C/groups, KH, KW)."""
    groups = _int("conv2d_backward_data", "groups", groups)
    input_shape = _conv_shape("conv2d_backward_data", "input_shape", input_shape)
    st, pad, dil = conv2d_params(_kernel_hw(w), stride, padding, dilation, "conv2d_backward_data")
    return _kernels(dy, w, out).conv2d_backward_data(dy, w, input_shape, st, pad, dil, groups, out)


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1, out=None):
    """dw (weight_shape) from dy (B, OC, OH, OW) and x (B, C, H, W), summed over the batch."""
    groups = _int("conv2d_backward_weight", "groups", groups)
    weight_shape = _conv_shape("conv2d_backward_weight", "weight_shape", weight_shape)
    st, pad, dil = conv2d_params(weight_shape[2:], stride, padding, dilation, "conv2d_backward_weight")
    return _kernels(dy, x, out).conv2d_backward_weight(dy, x, weight_shape, st, pad, dil, groups, out)


def conv2d_backward_bias(dy, out=None):
    """db (OC,): dy (B, OC, OH, OW) summed over batch and pixels."""
    return _kernels(dy, out).conv2d_backward_bias(dy, out)


# conv_transpose2d: PyTorch's ConvTranspose2d (its positional order: groups before dilation) on
# conv2d's kernels, its adjoint: the forward is conv2d's backward-data, the input gradient
# conv2d's forward of dy and the weight gradient conv2d's backward-weight with the roles of
# input and output swapped. x (B, C_in, H, W), w (C_in, C_out / groups, KH, KW), bias (C_out,),
# y (B, C_out, OH, OW) with OH = (H - 1) stride - 2 padding + dilation (KH - 1) + output_padding
# + 1 (likewise OW); stride, padding, output_padding, dilation an int or a pair; output_padding
# smaller than stride or dilation. Errors name the conv_transpose2d entry; an array's dtype or
# layout is refused by the conv2d entry underneath, in its words.


def _ct_geometry(op, x_shape, w_shape, stride, padding, output_padding, groups, dilation):
    groups = _int(op, "groups", groups)
    return (groups,) + conv_transpose2d_geometry(
        tuple(x_shape), w_shape, stride, padding, output_padding, dilation, groups, op
    )


def _ct_array(op, name, a):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"fastnn.ops.{op}: expected {name} to be an array, got {type(a).__name__}")
    return a


def _ct_call(op, entry, names, fn, *args):
    """fn(*args), conv2d's entry `entry` doing a conv_transpose2d one: its refusals are re-raised
    in the words of op, its argument names mapped to op's (names: conv2d's -> op's)."""
    try:
        return fn(*args)
    except (TypeError, ValueError, MemoryError) as e:
        msg = str(e)
        if entry not in msg:
            raise
        msg = re.sub(rf"\b{entry}\b", op, msg)
        if names:
            msg = re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: names[m.group(1)], msg)
        raise type(e)(msg) from None


def _ct_output(op, xp, shape):
    """A zeroed output of shape for the rows past the adjoint's, with the outputs' rules."""
    n = int(np.prod(shape, dtype=object))
    if shape[2] * shape[3] > 2**31 - 1:
        raise ValueError(
            f"fastnn.ops.{op}: expected an output plane of at most 2^31 - 1 elements, got shape {_shape(shape)}"
        )
    need, mem = 4 * n, _physical_memory()
    if mem and need > mem:
        raise ValueError(
            f"fastnn.ops.{op}: expected an output that fits in memory, got shape {_shape(shape)} "
            f"({need} bytes; this machine has {mem})"
        )
    try:
        return xp.zeros(shape, dtype=np.float32)
    except MemoryError:
        raise MemoryError(
            f"fastnn.ops.{op}: cannot allocate {need} bytes for an output of shape {_shape(shape)}"
        ) from None


def _ct_zeros(op, dy, out, shape, inputs):
    """A gradient of zeros (out, checked, or a new array)."""
    if out is None:
        return _ct_output(op, _xp(dy), shape)
    _check_out(op, _ct_array(op, "out", out), shape, inputs)
    out[...] = 0
    return out


def _ct_covered(op, dy, shape, covered):
    """dy (the output's gradient) checked against the output shape, cut to the rows and columns the
    adjoint covers (the rest, past the full scatter, has no input behind it)."""
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"fastnn.ops.{op}: expected dy of shape {_shape(shape)}, got {_shape(dy.shape)}")
    if tuple(covered) == tuple(shape[2:]):
        return dy
    return _xp(dy).ascontiguousarray(dy[:, :, : covered[0], : covered[1]])


def conv_transpose2d_forward(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, out=None):
    """y = conv_transpose2d(x, w) + bias (see above)."""
    op = "conv_transpose2d_forward"
    _ct_array(op, "x", x)
    _ct_array(op, "w", w)
    groups, st, pads, dil, shape, covered = _ct_geometry(
        op, x.shape, w.shape, stride, padding, output_padding, groups, dilation
    )
    K = _kernels(x, w, bias, out)
    if bias is not None:
        _ct_array(op, "bias", bias)
        if str(bias.dtype) != "float32" or tuple(bias.shape) != (shape[1],):
            raise ValueError(
                f"fastnn.ops.{op}: expected bias float32 of shape {_shape(shape[1:2])}, got {bias.dtype} "
                f"of shape {_shape(bias.shape)}"
            )
    names = {"dy": "x", "w": "w", "out": "out"}
    if out is not None and bias is not None:  # the kernel sees no bias: its aliasing checked here
        _check_out(op, _ct_array(op, "out", out), shape, (("bias", bias),))
    if min(covered) == 0:  # the output lies past the full scatter: zeros (and the bias)
        if out is not None:
            _check_out(op, _ct_array(op, "out", out), shape, (("x", x), ("w", w)))
            y = out
            y[...] = 0
        else:
            y = _ct_output(op, _xp(x), shape)
    elif tuple(covered) == tuple(shape[2:]):
        y = _ct_call(op, "conv2d_backward_data", names, K.conv2d_backward_data, x, w, shape, st, pads, dil, groups, out)
    else:
        if out is not None:
            _check_out(op, _ct_array(op, "out", out), shape, (("x", x), ("w", w), ("bias", bias)))
        part = _ct_call(
            op,
            "conv2d_backward_data",
            names,
            K.conv2d_backward_data,
            x,
            w,
            shape[:2] + tuple(covered),
            st,
            pads,
            dil,
            groups,
            None,
        )
        if out is not None:
            y = out
            y[...] = 0
        else:
            y = _ct_output(op, _xp(x), shape)
        y[:, :, : covered[0], : covered[1]] = part
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward_data(
    dy, w, input_shape, stride=1, padding=0, output_padding=0, groups=1, dilation=1, out=None
):
    """dx (input_shape) from dy (B, C_out, OH, OW) and w (C_in, C_out / groups, KH, KW)."""
    op = "conv_transpose2d_backward_data"
    _ct_array(op, "dy", dy)
    _ct_array(op, "w", w)
    input_shape = _conv_shape(op, "input_shape", input_shape)
    groups, st, pads, dil, shape, covered = _ct_geometry(
        op, input_shape, w.shape, stride, padding, output_padding, groups, dilation
    )
    dyc = _ct_covered(op, dy, shape, covered)
    if min(covered) == 0:  # no output pixel depends on the input
        return _ct_zeros(op, dy, out, input_shape, (("dy", dy), ("w", w)))
    fn = _kernels(dy, w, out).conv2d_forward
    return _ct_call(op, "conv2d_forward", {"x": "dy"}, fn, dyc, w, None, st, pads, dil, groups, None, out)


def conv_transpose2d_backward_weight(
    dy, x, weight_shape, stride=1, padding=0, output_padding=0, groups=1, dilation=1, out=None
):
    """dw (weight_shape: (C_in, C_out / groups, KH, KW)) from dy and x, summed over the batch."""
    op = "conv_transpose2d_backward_weight"
    _ct_array(op, "dy", dy)
    _ct_array(op, "x", x)
    weight_shape = _conv_shape(op, "weight_shape", weight_shape)
    _, st, pads, dil, shape, covered = _ct_geometry(
        op, x.shape, weight_shape, stride, padding, output_padding, groups, dilation
    )
    dyc = _ct_covered(op, dy, shape, covered)
    if min(covered) == 0:  # no output pixel depends on the weight
        return _ct_zeros(op, dy, out, weight_shape, (("dy", dy), ("x", x)))
    fn = _kernels(dy, x, out).conv2d_backward_weight
    names = {"dy": "x", "x": "dy"}
    return _ct_call(op, "conv2d_backward_weight", names, fn, x, dyc, weight_shape, st, pads, dil, groups, out)


def conv_transpose2d_backward_bias(dy, out=None):
    """db (C_out,): dy (B, C_out, OH, OW) summed over batch and pixels."""
    fn = _kernels(dy, out).conv2d_backward_bias
    return _ct_call("conv_transpose2d_backward_bias", "conv2d_backward_bias", {}, fn, dy, out)


# softmax / log_softmax: x float32 of any rank, along dim; backward from dy and the forward's y.
# cross_entropy: PyTorch's CrossEntropyLoss on logits (N, C) or (N, C, d1, ...) with int64 class
# indices target (N,) or (N, d1, ...): one fused pass per row (max, log-sum-exp, loss terms);
# weight, ignore_index, label_smoothing and reduction as in torch ("mean" divides by the summed
# weights of the targets that are not ignored; all ignored gives nan, as torch).


def softmax_forward(x, dim=-1, *, out=None):
    """y = exp(x - max) / sum exp(x - max) along dim."""
    return _kernels(x, out).softmax_forward(x, _int("softmax_forward", "dim", dim), out)


def log_softmax_forward(x, dim=-1, *, out=None):
    """y = x - max - log sum exp(x - max) along dim."""
    return _kernels(x, out).log_softmax_forward(x, _int("log_softmax_forward", "dim", dim), out)


def softmax_backward(dy, y, dim=-1, *, out=None):
    """dx = y * (dy - sum(dy * y, dim))."""
    return _kernels(dy, y, out).softmax_backward(dy, y, _int("softmax_backward", "dim", dim), out)


def log_softmax_backward(dy, y, dim=-1, *, out=None):
    """dx = dy - exp(y) * sum(dy, dim)."""
    return _kernels(dy, y, out).log_softmax_backward(dy, y, _int("log_softmax_backward", "dim", dim), out)


_REDUCTIONS = ("none", "mean", "sum")


def _ce_rows(op, xp, logits, target, reduction, others=(), ignore_index=-100, label_smoothing=0.0):
    """(rows (M, C) C-contiguous, targets (M,), the per-row loss shape) of (N, C, d...) logits,
    as arrays of xp (NumPy, or CuPy for CUDA arrays: then every array given must be one)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"fastnn.ops.{op}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
    # the row entries take an int64 and a float: anything else would be pybind11's TypeError
    # naming the entry (cross_entropy_rows), not this op
    if not isinstance(ignore_index, (int, np.integer)) or type(ignore_index) is bool:
        raise TypeError(f"fastnn.ops.{op}: expected ignore_index to be an int, got {type(ignore_index).__name__}")
    if not -(2**63) <= ignore_index < 2**63:
        raise ValueError(f"fastnn.ops.{op}: expected ignore_index to fit in int64, got {ignore_index}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"fastnn.ops.{op}: expected label_smoothing to be a float, got {type(label_smoothing).__name__}"
        )
    for name, a in (("logits", logits), ("target", target)) + tuple(others):
        if a is None and name not in ("logits", "target"):  # the optional ones
            continue
        if xp is np and not isinstance(a, np.ndarray):
            raise TypeError(f"fastnn.ops.{op}: expected {name} to be a numpy.ndarray, got {type(a).__name__}")
        if xp is not np and not _gpu(a):
            raise TypeError(
                f"fastnn.ops.{op}: expected {name} to be a CUDA array like the other arguments, got "
                f"{type(a).__name__} (NumPy and CUDA arrays cannot be mixed)"
            )
    if logits.ndim == 0:
        raise ValueError(f"fastnn.ops.{op}: expected logits of 1 or more dimensions, got shape ()")
    if logits.ndim == 1:  # one row: a 0-d target
        if target.shape != ():
            raise ValueError(
                f"fastnn.ops.{op}: expected target of shape () for logits of shape {logits.shape}, got {target.shape}"
            )
        return logits.reshape(1, -1), target.reshape(1), target.shape
    if target.shape != (logits.shape[0],) + logits.shape[2:]:
        raise ValueError(
            f"fastnn.ops.{op}: expected target of shape {(logits.shape[0],) + logits.shape[2:]} "
            f"for logits of shape {logits.shape}, got {target.shape}"
        )
    if logits.ndim == 2:
        return logits, target, target.shape
    # (N, C, d...) as rows (N d..., C): copies, under the outputs' memory rules for NumPy
    to_rows = lambda: xp.ascontiguousarray(xp.moveaxis(logits, 1, -1)).reshape(-1, logits.shape[1])
    flat = lambda: xp.ascontiguousarray(target).reshape(-1)
    if xp is np:
        rows = _copied(op, "logits", logits, logits.itemsize, to_rows)
        return rows, _copied(op, "target", target, target.itemsize, flat), target.shape
    return to_rows(), flat(), target.shape


def _byte_range(a):
    """[first, last) bytes of a C-contiguous NumPy or CUDA array."""
    lo = a.__cuda_array_interface__["data"][0] if _gpu(a) else a.__array_interface__["data"][0]
    return lo, lo + a.size * a.itemsize


def _check_out(op, out, shape, inputs):
    """A caller's out for a result written by assignment: the rules (and words) of the kernels'
    outputs (csrc/core/args.h, check_out): float32, C-contiguous, writeable, of shape, sharing no
    memory with an input."""
    if str(out.dtype) != "float32":
        raise TypeError(f"fastnn.ops.{op}: expected out to be float32, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(
            f"fastnn.ops.{op}: expected out to be C-contiguous, got a strided array of shape {_shape(out.shape)}"
        )
    if not getattr(out.flags, "writeable", True):
        raise ValueError(f"fastnn.ops.{op}: expected out to be writeable, got a read-only array")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"fastnn.ops.{op}: expected out of shape {_shape(shape)}, got {_shape(out.shape)}")
    lo, hi = _byte_range(out)
    for name, a in inputs:
        if hasattr(a, "shape") and getattr(a, "size", 0) and out.size:
            alo, ahi = _byte_range(a)
            if lo < ahi and alo < hi:
                raise ValueError(
                    f"fastnn.ops.{op}: expected out not to share memory with {name}, got overlapping arrays"
                )


def _shape(shape):
    """A shape as the C++ messages print it: (2, 3), (4,)."""
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _xp(*arrays):
    """The array namespace of the arrays: NumPy, or CuPy when any is a CUDA array."""
    return _cuda.array_module("cross_entropy") if _gpu(*arrays) else np


def cross_entropy_forward(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """The loss: float32 0-d for 'mean' / 'sum', of target's shape for 'none' (a CuPy array for
    CUDA arrays)."""
    xp = _xp(logits, target, weight)
    rows, t, tshape = _ce_rows(
        "cross_entropy_forward", xp, logits, target, reduction, (("weight", weight),), ignore_index, label_smoothing
    )
    kernels = _core if xp is np else _cuda.kernels
    loss, wt = kernels.cross_entropy_rows(rows, t, weight, ignore_index, label_smoothing)
    if reduction == "none":
        return loss.astype(xp.float32).reshape(tshape)
    total = loss.sum(dtype=xp.float64)
    if reduction == "sum":
        return xp.asarray(total, xp.float32)
    with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, as torch
        return xp.asarray(total / wt.sum(dtype=xp.float64), xp.float32)


def cross_entropy_backward(
    grad, logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean", *, out=None
):
    """dlogits (logits' shape) from grad, the upstream gradient of the loss (0-d, or of target's
    shape for 'none'); one code for both devices over the array namespace."""
    op = "cross_entropy_backward"
    xp = _xp(logits, target, weight, out)
    rows, t, tshape = _ce_rows(
        op, xp, logits, target, reduction, (("weight", weight), ("out", out)), ignore_index, label_smoothing
    )
    kind = getattr(getattr(grad, "dtype", None), "kind", "f" if isinstance(grad, (int, float)) else None)
    if kind != "f" or isinstance(grad, bool):
        got = getattr(grad, "dtype", None) or type(grad).__name__
        raise TypeError(f"fastnn.ops.{op}: expected grad to be a floating-point number or array, got {got}")
    if out is not None and logits.ndim != 2:  # written below by assignment: its rules first
        _check_out(op, out, logits.shape, (("logits", logits), ("target", target), ("weight", weight), ("grad", grad)))
    # the shape first (a huge view is not copied to float64 to be refused): the loss's, as
    # torch's backward wants the gradient of its output
    gshape = tuple(np.shape(grad))
    if reduction == "none" and gshape != tuple(tshape):
        raise ValueError(f"fastnn.ops.{op}: expected grad of shape {tuple(tshape)}, got {gshape}")
    if reduction != "none" and gshape != ():
        raise ValueError(f"fastnn.ops.{op}: expected a scalar grad for reduction {reduction!r}, got shape {gshape}")
    g = xp.asarray(grad, dtype=xp.float64)
    if reduction == "none":
        scale = xp.ascontiguousarray(g.reshape(-1).astype(xp.float32))
    else:
        s = g
        if reduction == "mean":
            # the summed weights of the targets kept: gathered per target (a (C,) array of any size
            # is not copied); clipped: a target outside [0, C) is the kernel's error (its words)
            C = rows.shape[1]
            keep = t != ignore_index
            if weight is None:
                total = keep.sum(dtype=xp.float64)
            elif tuple(weight.shape) == (C,) and weight.dtype == xp.float32 and t.dtype.kind in "iu":
                total = weight[xp.where(keep, xp.clip(t, 0, C - 1), 0)][keep].sum(dtype=xp.float64)
            else:
                total = 1.0  # a weight (or target) the kernel refuses below, in its words
            with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan (or inf), as torch
                s = s / total
        scale = xp.full(rows.shape[0], s, dtype=xp.float32)
    two_d = logits.ndim == 2
    kernels = _core if xp is np else _cuda.kernels
    d = kernels.cross_entropy_backward_rows(
        rows, t, weight, ignore_index, label_smoothing, scale, out if two_d else None
    )
    if two_d:
        return d
    if logits.ndim == 1:
        d = d.reshape(logits.shape)
    else:
        d = xp.moveaxis(d.reshape((logits.shape[0],) + logits.shape[2:] + (logits.shape[1],)), -1, 1)
    if out is not None:
        out[...] = d
        return out
    return xp.ascontiguousarray(d)


# Fused optimizer updates: lists of float32 C-contiguous arrays updated in place by one kernel
# call (GIL released), with torch.optim's formulas and roundings (its single-tensor code path;
# see csrc/ops/optim.h). Every list holds one array of the param's shape per param.


def sgd_step(
    params,
    grads,
    momentum_buffers,
    lr,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    weight_decay=0.0,
    maximize=False,
    first_step=False,
):
    """torch.optim.SGD's update; first_step: the step that fills the momentum buffers (buf = d).

    momentum_buffers may be None when momentum == 0."""
    _listed_kernels(params, grads, momentum_buffers).sgd_step(
        params, grads, momentum_buffers, lr, momentum, dampening, nesterov, weight_decay, maximize, first_step
    )


def adam_step(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    max_exp_avg_sqs=None,
    decoupled_weight_decay=False,
    maximize=False,
):
    """torch.optim.Adam's update (AdamW's with decoupled_weight_decay); step is 1-based (after
    incrementing); max_exp_avg_sqs is required with amsgrad."""
    _listed_kernels(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs).adam_step(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        _int("adam_step", "step", step),
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        amsgrad,
        max_exp_avg_sqs,
        decoupled_weight_decay,
        maximize,
    )


def grad_norm(arrays, norm_type=2.0):
    """The total norm of order norm_type (2.0, 1.0, inf, or another p > 0) over all float32 arrays,
    accumulated in float64 (as a Python float); what clip_grad_norm_ computes. 0.0 for [].
    CUDA arrays: the norm is read back to the host, so the call waits for CuPy's current stream."""
    try:
        p = float(norm_type)  # as clip_grad_norm_: a number, or a string such as "inf"
    except (TypeError, ValueError) as e:
        raise type(e)(
            f"fastnn.ops.grad_norm: expected norm_type to be a number, got {type(norm_type).__name__} {norm_type!r}"
        ) from None
    return _listed_kernels(arrays).grad_norm(arrays, p)


# Batch normalisation of NCHW float32 (torch.nn.functional.batch_norm's semantics; see
# csrc/ops/batchnorm.h). weight/bias None: affine off; running_mean/var None: no running
# statistics (training only). Statistics accumulate in float64, per channel.


def batch_norm2d_forward(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5, *, out=None):
    """(y (N, C, H, W), save_mean (C,), save_invstd (C,)); training: batch statistics (running_*
    updated in place with the unbiased variance); else the running ones."""
    return _kernels(x, weight, bias, running_mean, running_var, out).batch_norm2d_forward(
        x, weight, bias, running_mean, running_var, bool(training), float(momentum), float(eps), out
    )


def batch_norm2d_backward(dy, x, weight, save_mean, save_invstd, training=True, *, out=None):
    """(dx, dweight, dbias) from the forward's save_mean/save_invstd; dweight/dbias are None when
    weight is None; training=False: the eval gradient (statistics are constants)."""
    return _kernels(dy, x, weight, save_mean, save_invstd, out).batch_norm2d_backward(
        dy, x, weight, save_mean, save_invstd, bool(training), out
    )


# Embedding: weight (V, D) float32, integer indices of any shape (converted to int64 C-contiguous:
# an input, never an output); an index outside [0, V) is a ValueError.


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 0  # unknown


def _indices(op, indices):
    """Integer indices as int64 C-contiguous (a copy unless they are that already), with the
    outputs' rules for the copy (csrc/bind/alloc.h): more bytes than this machine has is a
    ValueError, an allocation that fails a MemoryError, each naming the op."""
    if not (isinstance(indices, np.ndarray) and indices.dtype.kind in "iu"):
        return indices
    if indices.dtype == np.int64 and indices.flags.c_contiguous:
        return indices
    return _copied(op, "indices", indices, 8, lambda: np.asarray(indices, dtype=np.int64, order="C"), " as int64")


def _copied(op, name, a, itemsize, make, how=""):
    """make(): a NumPy copy of argument a (itemsize bytes an element) that fastnn.ops lays out for
    the entries, with the outputs' rules (csrc/bind/alloc.h): more bytes than this machine has is
    a ValueError, an allocation that fails a MemoryError, each naming the op (a huge view with no
    memory behind it is refused, not copied)."""
    need, mem = a.size * itemsize, _physical_memory()
    if mem and need > mem:
        raise ValueError(
            f"fastnn.ops.{op}: expected {name} that fit in memory{how}, got shape {_shape(a.shape)} "
            f"({need} bytes; this machine has {mem})"
        )
    try:
        return make()
    except MemoryError:
        raise MemoryError(
            f"fastnn.ops.{op}: cannot allocate {need} bytes for {name} of shape {_shape(a.shape)}{how}"
        ) from None


def embedding_forward(weight, indices, padding_idx=None, *, out=None):
    """out of shape indices.shape + (D,): weight[indices] (padding_idx is checked, as torch does)."""
    idx = _indices("embedding_forward", indices)
    return _kernels(weight, indices, out).embedding_forward(weight, idx, padding_idx, out)


def embedding_backward(dy, indices, num_embeddings, padding_idx=None, *, out=None):
    """The dense (num_embeddings, D) gradient of weight: dy's rows summed per index, in order of
    position; the padding_idx row zero."""
    idx = _indices("embedding_backward", indices)
    n = _int("embedding_backward", "num_embeddings", num_embeddings)
    return _kernels(dy, indices, out).embedding_backward(dy, idx, n, padding_idx, out)


# Recurrent layers over a whole sequence (csrc/ops/rnn.h): float32 C-contiguous x (T, B, I), h0/c0
# (B, H) or None (zeros), w_ih (G*H, I), w_hh (G*H, H), b_ih/b_hh (G*H,) or None, with torch's
# layout and gate order (G = 4 LSTM i, f, g, o; 3 GRU r, z, n; 1 RNN). reverse=True runs
# t = T-1 .. 0 (y[t] stays at position t). ws is the forward's opaque workspace for the backward;
# dy, dh_n, dc_n may be None (zeros). Both bias gradients are always returned.


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """(y (T, B, H), h_n (B, H), c_n (B, H), ws)."""
    if _gpu(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return _cuda.run("lstm_forward", x, h0, c0, w_ih, w_hh, b_ih, b_hh, bool(reverse))
    return _core.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, bool(reverse))


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, reverse=False):
    """(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh) through time."""
    if _gpu(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws):
        return _cuda.run("lstm_backward", dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, bool(reverse))
    return _core.lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, bool(reverse))


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """(y (T, B, H), h_n (B, H), ws); torch's GRU (b_hn inside r's product)."""
    if _gpu(x, h0, w_ih, w_hh, b_ih, b_hh):
        return _cuda.run("gru_forward", x, h0, w_ih, w_hh, b_ih, b_hh, bool(reverse))
    return _core.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, bool(reverse))


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, reverse=False):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh); db_hh's n part is b_hn's gradient."""
    if _gpu(dy, dh_n, x, h0, w_ih, w_hh, y, ws):
        return _cuda.run("gru_backward", dy, dh_n, x, h0, w_ih, w_hh, y, ws, bool(reverse))
    return _core.gru_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, bool(reverse))


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", reverse=False):
    """(y (T, B, H), h_n (B, H), ws); nonlinearity "tanh" or "relu"."""
    if _gpu(x, h0, w_ih, w_hh, b_ih, b_hh):
        return _cuda.run("rnn_forward", x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, bool(reverse))
    return _core.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, bool(reverse))


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, nonlinearity="tanh", reverse=False):
    """(dx, dh0, dw_ih, dw_hh, db_ih, db_hh) through time."""
    if _gpu(dy, dh_n, x, h0, w_ih, w_hh, y, ws):
        return _cuda.run("rnn_backward", dy, dh_n, x, h0, w_ih, w_hh, y, ws, nonlinearity, bool(reverse))
    return _core.rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, nonlinearity, bool(reverse))


# Single steps (decoding loops): x (B, I), h/c (B, H) or None; the T = 1 case of the kernels above
# (CUDA arrays: the same entries through fastnn.cuda.run). The RNN cell's ws is its output
# (1, B, H), which its backward reads as y; the RNN's own workspace is empty (None).


def _entry(name, *arrays):
    """fastnn._core.<name>, or its CUDA entry when any of arrays is a CUDA array."""
    if _gpu(*arrays):
        return lambda *args: _cuda.run(name, *args)
    return getattr(_core, name)


# The layer entries' argument names that a cell calls otherwise (the RNN cell's ws is the
# layer's y); the messages name the cell and its arguments.
_CELL_WORDS = {"h0": "h", "c0": "c", "dh_n": "dh", "dc_n": "dc"}


def _in_cell(cell, layer, *arrays):
    """_entry(layer, *arrays), whose TypeError / ValueError names the cell op and its arguments
    instead of the layer's (the entries run the cell as the layer's T = 1)."""
    fn = _entry(layer, *arrays)
    words = dict(_CELL_WORDS, **({"y": "ws"} if cell == "rnn_cell_backward" else {}))
    pattern = re.compile(r"\b(" + "|".join(words) + r")\b")

    def call(*args):
        try:
            return fn(*args)
        except (TypeError, ValueError) as e:
            msg = str(e).replace(f"fastnn.ops.{layer}:", f"fastnn.ops.{cell}:").replace(f"{layer}()", f"{cell}()")
            msg = pattern.sub(lambda m: words[m.group(1)], msg).replace("x.shape[2]", "x.shape[1]")
            raise type(e)(msg) from None

    return call


def _step(op, x):
    """x (B, I) as the layer's (1, B, I). An array of another rank is the cell's ValueError: a
    (T, B, I) x would run T steps, not one; what is not an array is left to the entry's checks."""
    shape = x.__cuda_array_interface__["shape"] if _gpu(x) else getattr(x, "shape", None)
    if shape is not None and len(shape) != 2:
        raise ValueError(f"fastnn.ops.{op}: expected x of 2 dimensions (B, I), got shape {_shape(shape)}")
    if _gpu(x):
        return _cuda.step_view(x)
    return x[None] if isinstance(x, _ndarray) else x


def _unstep(dx):
    return dx.reshape(dx.shape[1:])


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """(h' (B, H), c' (B, H), ws)."""
    fwd = _in_cell("lstm_cell_forward", "lstm_forward", x, h, c, w_ih, w_hh, b_ih, b_hh)
    _, h1, c1, ws = fwd(_step("lstm_cell_forward", x), h, c, w_ih, w_hh, b_ih, b_hh, False)
    return h1, c1, ws


def lstm_cell_backward(dh, dc, x, h, c, w_ih, w_hh, ws):
    """(dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh) from the gradients of h' and c'."""
    bwd = _in_cell("lstm_cell_backward", "lstm_backward", dh, dc, x, h, c, w_ih, w_hh, ws)
    g = bwd(None, dh, dc, _step("lstm_cell_backward", x), h, c, w_ih, w_hh, None, ws, False)
    return (_unstep(g[0]),) + g[1:]


def gru_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """(h' (B, H), ws)."""
    fwd = _in_cell("gru_cell_forward", "gru_forward", x, h, w_ih, w_hh, b_ih, b_hh)
    _, h1, ws = fwd(_step("gru_cell_forward", x), h, w_ih, w_hh, b_ih, b_hh, False)
    return h1, ws


def gru_cell_backward(dh, x, h, w_ih, w_hh, ws):
    """(dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh)."""
    bwd = _in_cell("gru_cell_backward", "gru_backward", dh, x, h, w_ih, w_hh, ws)
    g = bwd(None, dh, _step("gru_cell_backward", x), h, w_ih, w_hh, None, ws, False)
    return (_unstep(g[0]),) + g[1:]


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """(h' (B, H), ws)."""
    fwd = _in_cell("rnn_cell_forward", "rnn_forward", x, h, w_ih, w_hh, b_ih, b_hh)
    y, h1, _ = fwd(_step("rnn_cell_forward", x), h, w_ih, w_hh, b_ih, b_hh, nonlinearity, False)
    return h1, y


def rnn_cell_backward(dh, x, h, w_ih, w_hh, ws, nonlinearity="tanh"):
    """(dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh)."""
    bwd = _in_cell("rnn_cell_backward", "rnn_backward", dh, x, h, w_ih, w_hh, ws)
    g = bwd(None, dh, _step("rnn_cell_backward", x), h, w_ih, w_hh, ws, None, nonlinearity, False)
    return (_unstep(g[0]),) + g[1:]


# Layer norm over the trailing dims (torch.nn.functional.layer_norm's semantics; see
# csrc/ops/layernorm.h): x float32 C-contiguous, normalized_shape an int or a tuple equal to x's
# trailing dims, weight/bias None or float32 of normalized_shape. Statistics are float32 results
# of float64 sums (two passes over each row).


def layer_norm_forward(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(y like x, mean, rstd): mean and rstd shaped as x with the normalised dims set to 1."""
    return _kernels(x, weight, bias).layer_norm_forward(x, normalized_shape, weight, bias, float(eps))


def layer_norm_backward(dy, x, mean, rstd, weight=None):
    """(dx like x, dweight, dbias) from the forward's mean/rstd; dweight/dbias (normalized_shape)
    are None when weight is None."""
    return _kernels(dy, x, mean, rstd, weight).layer_norm_backward(dy, x, mean, rstd, weight)


# Fused scaled dot-product attention (torch.nn.functional.scaled_dot_product_attention without
# dropout; see csrc/ops/attention.h): q (B, NH, L, HD) or (N, L, HD), k (..., S, HD), v (..., S, DV),
# float32 C-contiguous. attn_mask: None, bool (True = take part) or float32 (added to the
# scores), broadcastable to (..., L, S) and read through its strides (np.broadcast_to views cost
# nothing); is_causal: query i sees keys j <= i (top-left, also when L != S), not with a mask.
# scale None: 1 / sqrt(HD). Extra memory is linear in L and S (tiles with an online softmax).


def scaled_dot_product_attention_forward(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """(out (..., L, DV), lse (..., L)): lse is the log-sum-exp of each query's scaled, masked
    scores, kept for the backward; a query whose keys are all masked gets out = 0, lse = -inf."""
    if _gpu(q, k, v, attn_mask):
        return _cuda.run("scaled_dot_product_attention_forward", q, k, v, attn_mask, bool(is_causal), scale)
    return _core.scaled_dot_product_attention_forward(q, k, v, attn_mask, bool(is_causal), scale)


def scaled_dot_product_attention_backward(dout, q, k, v, out, lse, attn_mask=None, is_causal=False, scale=None):
    """(dq, dk, dv) from dout (..., L, DV) and the forward's out and lse; the probabilities are
    recomputed tile by tile, never stored."""
    if _gpu(dout, q, k, v, out, lse, attn_mask):
        return _cuda.run(
            "scaled_dot_product_attention_backward", dout, q, k, v, out, lse, attn_mask, bool(is_causal), scale
        )
    return _core.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, attn_mask, bool(is_causal), scale)


# word2vec training (csrc/ops/word2vec.h: the semantics, the jobs, the learning-rate schedule, the
# random draws): skip-gram or CBOW with negative sampling and/or hierarchical softmax, gensim's
# update rules, trained in place on float32 weights by threads without locks (Hogwild; with
# num_threads=1 the results repeat bit for bit). CPU only: CUDA arrays are a TypeError.


def _cpu_only(op, *arrays):
    if _gpu(*arrays):
        raise TypeError(f"fastnn.ops.{op}: expected numpy arrays (word2vec trains on the CPU only), got a CUDA array")


def word2vec_train(
    syn0,
    words,
    sentence_ends,
    *,
    syn1neg=None,
    syn1=None,
    sample_int=None,
    cum_table=None,
    points=None,
    codes=None,
    code_lengths=None,
    sg=True,
    negative=5,
    window=5,
    shrink_windows=True,
    cbow_mean=True,
    alpha=0.025,
    min_alpha=0.0001,
    progress=(0.0, 1.0),
    seed=1,
    compute_loss=False,
    num_threads=None,
):
    """Trains word2vec on an in-memory corpus; returns (raw_words, effective_words, loss).

    syn0 (V, D) float32: the input vectors, updated in place; words (N,) int32 in [0, V) and
    sentence_ends (S,) int64 (non-decreasing, last N): sentence s is words[ends[s-1]:ends[s]].
    Negative sampling (negative > 0) needs syn1neg (V, D) float32 and cum_table (V,) uint32 (the
    cumulative sampling weights, non-decreasing, last > 0); hierarchical softmax is on when
    points (V, L) int32, codes (V, L) uint8 and code_lengths (V,) int32 are given and needs syn1
    (R, D) float32, R >= V - 1. sample_int (V,) uint32: word w is kept with probability
    sample_int[w] / 2^32 (0xFFFFFFFF: always); None keeps every word. progress=(p0, p1): the
    fraction of the whole training this call covers (the learning rate falls linearly from alpha
    to min_alpha over the whole). num_threads: None for fastnn.get_num_threads()."""
    _cpu_only(
        "word2vec_train", syn0, words, sentence_ends, syn1neg, syn1, sample_int, cum_table, points, codes, code_lengths
    )
    return _core.word2vec_train(
        syn0,
        words,
        sentence_ends,
        syn1neg=syn1neg,
        syn1=syn1,
        sample_int=sample_int,
        cum_table=cum_table,
        points=points,
        codes=codes,
        code_lengths=code_lengths,
        sg=bool(sg),
        negative=negative,
        window=window,
        shrink_windows=bool(shrink_windows),
        cbow_mean=bool(cbow_mean),
        alpha=alpha,
        min_alpha=min_alpha,
        progress=progress,
        seed=seed,
        compute_loss=bool(compute_loss),
        num_threads=num_threads,
    )


def word2vec_train_file(
    syn0,
    path,
    vocab,
    *,
    syn1neg=None,
    syn1=None,
    sample_int=None,
    cum_table=None,
    points=None,
    codes=None,
    code_lengths=None,
    sg=True,
    negative=5,
    window=5,
    shrink_windows=True,
    cbow_mean=True,
    alpha=0.025,
    min_alpha=0.0001,
    progress=(0.0, 1.0),
    seed=1,
    compute_loss=False,
    num_threads=None,
):
    """word2vec_train on the text file at path, read and tokenised in C++ by the threads: a line
    is a sentence, tokens are split on ASCII whitespace, vocab[i] (a list of V distinct str) is
    row i and other tokens are dropped. The learning rate follows the position in the file in
    bytes. Returns (in-vocabulary tokens, effective_words, loss)."""
    _cpu_only("word2vec_train_file", syn0, syn1neg, syn1, sample_int, cum_table, points, codes, code_lengths)
    return _core.word2vec_train_file(
        syn0,
        path,
        vocab,
        syn1neg=syn1neg,
        syn1=syn1,
        sample_int=sample_int,
        cum_table=cum_table,
        points=points,
        codes=codes,
        code_lengths=code_lengths,
        sg=bool(sg),
        negative=negative,
        window=window,
        shrink_windows=bool(shrink_windows),
        cbow_mean=bool(cbow_mean),
        alpha=alpha,
        min_alpha=min_alpha,
        progress=progress,
        seed=seed,
        compute_loss=bool(compute_loss),
        num_threads=num_threads,
    )


def word2vec_count_file(path, *, num_threads=None):
    """(words, counts, total_tokens, n_sentences) of the text file at path, tokenised as
    word2vec_train_file does: each distinct token once, as str (UTF-8, undecodable bytes kept by
    surrogateescape), in order of first occurrence; counts int64; the tokens in all; the lines."""
    return _core.word2vec_count_file(path, num_threads=num_threads)
