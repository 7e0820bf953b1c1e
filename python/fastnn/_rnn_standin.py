"""TEMPORARY stand-ins for the recurrent kernels (fastnn.ops lstm/gru/rnn, whole sequence and
cell, forward and backward) with exactly the kernels' API, built on the float64 references in
fastnn.ref.rnn and returning float32. ops.py exposes them only where it has no kernel of the
same name; this file goes away when the C++ kernels land.

x (T, B, I), h0/c0 (B, H) or None (zeros), w_ih (G*H, I), w_hh (G*H, H), biases (G*H,) or None;
y (T, B, H); reverse=True runs time backwards with y[t] aligned with x[t]; ws is the
reference's cache. Both bias gradients are always returned.
"""
import numpy as np

from .ref import rnn as _ref


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _state(h, x, w_hh):
    return np.zeros((x.shape[1], w_hh.shape[1]), np.float64) if h is None else h


def _biases(w_hh, b_ih, b_hh):
    # zeros in place of a missing bias: the reference then returns its (ignored) gradient too
    n = w_hh.shape[0]
    return (np.zeros(n) if b_ih is None else b_ih), (np.zeros(n) if b_hh is None else b_hh)


def _flip(a, reverse):
    return a if a is None or not reverse else a[::-1]


def _grads(out, n_states, reverse):
    dx = _f32(_flip(out[0], reverse))
    return (dx,) + tuple(_f32(a) for a in out[1:1 + n_states]) + tuple(_f32(a) for a in out[1 + n_states:])


def _dy(dy, y):
    return np.zeros(y.shape) if dy is None else dy


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    y, h, c, ws = _ref.lstm_forward(_flip(x, reverse), _state(h0, x, w_hh), _state(c0, x, w_hh), w_ih, w_hh,
                                    *_biases(w_hh, b_ih, b_hh))
    return _f32(_flip(y, reverse)), _f32(h), _f32(c), ws


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, reverse=False):
    out = _ref.lstm_backward(_flip(_dy(dy, y), reverse), dh_n, dc_n, ws)
    return _grads(out, 2, reverse)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    y, h, ws = _ref.gru_forward(_flip(x, reverse), _state(h0, x, w_hh), w_ih, w_hh, *_biases(w_hh, b_ih, b_hh))
    return _f32(_flip(y, reverse)), _f32(h), ws


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, reverse=False):
    return _grads(_ref.gru_backward(_flip(_dy(dy, y), reverse), dh_n, ws), 1, reverse)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", reverse=False):
    y, h, ws = _ref.rnn_forward(_flip(x, reverse), _state(h0, x, w_hh), w_ih, w_hh, *_biases(w_hh, b_ih, b_hh),
                                nonlinearity=nonlinearity)
    return _f32(_flip(y, reverse)), _f32(h), ws


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, nonlinearity="tanh", reverse=False):
    return _grads(_ref.rnn_backward(_flip(_dy(dy, y), reverse), dh_n, ws), 1, reverse)


# Cells: one time step, x (B, I), h/c (B, H).

def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    _, h1, c1, ws = lstm_forward(x[None], h, c, w_ih, w_hh, b_ih, b_hh)
    return h1, c1, ws


def lstm_cell_backward(dh, dc, x, h, c, w_ih, w_hh, ws):
    dx, dh0, dc0, *rest = _ref.lstm_backward(np.zeros((1,) + x.shape[:1] + w_hh.shape[1:]), dh, dc, ws)
    return (_f32(dx[0]), _f32(dh0), _f32(dc0)) + tuple(_f32(a) for a in rest)


def gru_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    _, h1, ws = gru_forward(x[None], h, w_ih, w_hh, b_ih, b_hh)
    return h1, ws


def gru_cell_backward(dh, x, h, w_ih, w_hh, ws):
    dx, dh0, *rest = _ref.gru_backward(np.zeros((1,) + x.shape[:1] + w_hh.shape[1:]), dh, ws)
    return (_f32(dx[0]), _f32(dh0)) + tuple(_f32(a) for a in rest)


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    _, h1, ws = rnn_forward(x[None], h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    return h1, ws


def rnn_cell_backward(dh, x, h, w_ih, w_hh, ws, nonlinearity="tanh"):
    dx, dh0, *rest = _ref.rnn_backward(np.zeros((1,) + x.shape[:1] + w_hh.shape[1:]), dh, ws)
    return (_f32(dx[0]), _f32(dh0)) + tuple(_f32(a) for a in rest)


NAMES = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward", "rnn_backward",
         "lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward",
         "rnn_cell_forward", "rnn_cell_backward"]
