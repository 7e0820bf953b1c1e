"""fastnn.ops' entries for float64 NumPy arrays: what fastnn.nn.functional and the optimizers call
where fastnn.ops takes float32. They are the references of fastnn.ref (float64 inside, float64
results), with fastnn.ops' names, arguments and results; the recurrent layers and cells adapt
fastnn.ref.rnn (reverse=True runs the sequence flipped; h0/c0 and the output gradients may be
None, meaning zeros; the workspace is the reference's cache)."""

import numpy as np

from . import rnn as _rnn
from .act import (  # noqa: F401 (re-exported: fastnn.ops' names)
    gelu_backward,
    gelu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .attention import scaled_dot_product_attention_backward, scaled_dot_product_attention_forward  # noqa: F401
from .batchnorm import batch_norm2d_backward, batch_norm2d_forward  # noqa: F401
from .conv2d import conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, conv2d_forward  # noqa: F401
from .embedding import embedding_backward, embedding_forward  # noqa: F401
from .gemm import gemm  # noqa: F401
from .layernorm import layer_norm_backward, layer_norm_forward  # noqa: F401
from .optim import adam_step, grad_norm, sgd_step  # noqa: F401
from .pool2d import (  # noqa: F401
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .softmax import (  # noqa: F401
    cross_entropy_backward,
    cross_entropy_forward,
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
)


def _zeros(a, B, H):
    return np.zeros((B, H)) if a is None else a


def _flip(a, reverse):
    return a[::-1] if reverse and a is not None else a


def _dy(dy, y):
    return np.zeros_like(y) if dy is None else dy


# x is (T, B, I), h0/c0 (B, H), w_ih (G*H, I), w_hh (G*H, H), b_ih/b_hh (G*H,) or None.


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """(y (T, B, H), h_n, c_n, ws)."""
    B, H = x.shape[1], w_hh.shape[1]
    y, h, c, ws = _rnn.lstm_forward(_flip(x, reverse), _zeros(h0, B, H), _zeros(c0, B, H), w_ih, w_hh, b_ih, b_hh)
    return _flip(y, reverse), h, c, ws


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, reverse=False):
    """(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)."""
    dx, *rest = _rnn.lstm_backward(_flip(_dy(dy, ws["hs"][1:]), reverse), dh_n, dc_n, ws)
    return (_flip(dx, reverse), *rest)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """(y (T, B, H), h_n, ws)."""
    y, h, ws = _rnn.gru_forward(_flip(x, reverse), _zeros(h0, x.shape[1], w_hh.shape[1]), w_ih, w_hh, b_ih, b_hh)
    return _flip(y, reverse), h, ws


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, reverse=False):
    dx, *rest = _rnn.gru_backward(_flip(_dy(dy, ws["hs"][1:]), reverse), dh_n, ws)
    return (_flip(dx, reverse), *rest)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", reverse=False):
    """(y (T, B, H), h_n, ws)."""
    h0 = _zeros(h0, x.shape[1], w_hh.shape[1])
    y, h, ws = _rnn.rnn_forward(_flip(x, reverse), h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    return _flip(y, reverse), h, ws


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, nonlinearity="tanh", reverse=False):
    dx, *rest = _rnn.rnn_backward(_flip(_dy(dy, ws["hs"][1:]), reverse), dh_n, ws)
    return (_flip(dx, reverse), *rest)


# Single steps: x (B, I), h/c (B, H) or None; the T = 1 case of the layers.


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """(h' (B, H), c' (B, H), ws)."""
    _, h1, c1, ws = lstm_forward(x[None], h, c, w_ih, w_hh, b_ih, b_hh)
    return h1, c1, ws


def lstm_cell_backward(dh, dc, x, h, c, w_ih, w_hh, ws):
    """(dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh)."""
    g = lstm_backward(None, dh, dc, x[None], h, c, w_ih, w_hh, None, ws)
    return (g[0][0],) + tuple(g[1:])


def gru_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    _, h1, ws = gru_forward(x[None], h, w_ih, w_hh, b_ih, b_hh)
    return h1, ws


def gru_cell_backward(dh, x, h, w_ih, w_hh, ws):
    g = gru_backward(None, dh, x[None], h, w_ih, w_hh, None, ws)
    return (g[0][0],) + tuple(g[1:])


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    _, h1, ws = rnn_forward(x[None], h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    return h1, ws


def rnn_cell_backward(dh, x, h, w_ih, w_hh, ws, nonlinearity="tanh"):
    g = rnn_backward(None, dh, x[None], h, w_ih, w_hh, None, ws, nonlinearity)
    return (g[0][0],) + tuple(g[1:])
