"""Kernels on arrays: numpy float32 in, numpy float32 out, no autograd."""
from . import _core
from ._conv import conv2d_params

__all__ = ["gemm", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
           "conv2d_backward_bias"]


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
         activation=None, out=None):
    """out = act(alpha * op(a) @ op(b) + beta * c + bias).

    a is (..., M, K) ((..., K, M) if trans_a), b is (..., K, N) ((..., N, K) if trans_b),
    batch dimensions broadcast as in numpy.matmul; c broadcasts to (..., M, N) and defaults
    to out (in-place BLAS update); bias is (N,); activation is None or "relu". Transposed
    views of C-contiguous inputs are read in place; other strided inputs are copied.
    """
    # Positional: pybind11 matches keyword names by building strings on every call.
    return _core.gemm(a, b, c, out, trans_a, trans_b, alpha, beta, bias, activation)


def conv2d_forward(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None,
                   out=None):
    """y = act(conv2d(x, w) + bias), PyTorch's Conv2d: x (B, C, H, W), w (OC, C/groups, KH, KW),
    bias (OC,); padding is an int, a pair, 'same' or 'valid'; activation None or "relu"."""
    st, pad, dil = conv2d_params(getattr(w, "shape", (0, 0, 1, 1))[2:], stride, padding, dilation)
    return _core.conv2d_forward(x, w, bias, st, pad, dil, groups, activation, out)


def conv2d_backward_data(dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1, out=None):
    """dx (input_shape) from dy (B, OC, OH, OW) and w (OC, C/groups, KH, KW)."""
    st, pad, dil = conv2d_params(getattr(w, "shape", (0, 0, 1, 1))[2:], stride, padding, dilation)
    return _core.conv2d_backward_data(dy, w, tuple(input_shape), st, pad, dil, groups, out)


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1,
                           out=None):
    """dw (weight_shape) from dy (B, OC, OH, OW) and x (B, C, H, W), summed over the batch."""
    st, pad, dil = conv2d_params(tuple(weight_shape)[2:], stride, padding, dilation)
    return _core.conv2d_backward_weight(dy, x, tuple(weight_shape), st, pad, dil, groups, out)


def conv2d_backward_bias(dy, out=None):
    """db (OC,): dy (B, OC, OH, OW) summed over batch and pixels."""
    return _core.conv2d_backward_bias(dy, out)
