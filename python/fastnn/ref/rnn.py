"""References for whole-sequence recurrent layers (the recurrent-kernels issue's groundwork):
tanh/relu RNN, LSTM and GRU over x (T, B, I) with initial states, PyTorch's weight layout,
gate order (LSTM i, f, g, o; GRU r, z, n) and two biases, forward and backward through time,
float64 inside. There are no fastnn.ops kernels for these yet; these define the contract the
kernels will be checked against.

forward(x, h0[, c0], w_ih, w_hh, b_ih, b_hh) -> (y (T, B, H), h_T[, c_T], cache)
backward(dy, dh_T[, dc_T], cache) -> (dx, dh0[, dc0], dw_ih, dw_hh, db_ih, db_hh)
(b_ih / b_hh may be None: no bias; their gradients are then None.)
"""

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _sigmoid(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # no overflow warning for large |v|


def _bias(b, n):
    return np.zeros(n) if b is None else _f64(b)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_forward: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
    x, h, w_ih, w_hh = _f64(x), _f64(h0), _f64(w_ih), _f64(w_hh)
    H = w_hh.shape[0]
    b = _bias(b_ih, H) + _bias(b_hh, H)
    hs = [h]
    for t in range(x.shape[0]):
        a = x[t] @ w_ih.T + h @ w_hh.T + b
        h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
        hs.append(h)
    y = np.stack(hs[1:])
    cache = dict(
        kind="rnn",
        x=x,
        hs=np.stack(hs),
        w_ih=w_ih,
        w_hh=w_hh,
        act=nonlinearity,
        bias=(b_ih is not None, b_hh is not None),
    )
    return y, h, cache


def rnn_backward(dy, dh_n, cache):
    x, hs, w_ih, w_hh = cache["x"], cache["hs"], cache["w_ih"], cache["w_hh"]
    dy = _f64(dy)
    dh = np.zeros_like(hs[0]) if dh_n is None else _f64(dh_n).copy()
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(w_hh.shape[0])
    for t in reversed(range(x.shape[0])):
        dh = dh + dy[t]
        h = hs[t + 1]
        da = dh * (1.0 - h * h) if cache["act"] == "tanh" else dh * (h > 0)
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ hs[t]
        db += da.sum(0)
        dh = da @ w_hh
    bi, bh = cache["bias"]
    return dx, dh, dw_ih, dw_hh, (db.copy() if bi else None), (db.copy() if bh else None)


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
    """i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the 4H pre-activations (that order);
    c_t = f c_{t-1} + i g, h_t = o tanh(c_t)."""
    x, h, c, w_ih, w_hh = _f64(x), _f64(h0), _f64(c0), _f64(w_ih), _f64(w_hh)
    H = w_hh.shape[1]
    b = _bias(b_ih, 4 * H) + _bias(b_hh, 4 * H)
    hs, cs, gates = [h], [c], []
    for t in range(x.shape[0]):
        a = x[t] @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = (
            _sigmoid(a[:, :H]),
            _sigmoid(a[:, H : 2 * H]),
            np.tanh(a[:, 2 * H : 3 * H]),
            _sigmoid(a[:, 3 * H :]),
        )
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        gates.append(np.concatenate([i, f, g, o], axis=1))
    y = np.stack(hs[1:])
    cache = dict(
        kind="lstm",
        x=x,
        hs=np.stack(hs),
        cs=np.stack(cs),
        gates=np.stack(gates),
        w_ih=w_ih,
        w_hh=w_hh,
        bias=(b_ih is not None, b_hh is not None),
    )
    return y, h, c, cache


def lstm_backward(dy, dh_n, dc_n, cache):
    x, hs, cs, gates, w_ih, w_hh = (cache[k] for k in ("x", "hs", "cs", "gates", "w_ih", "w_hh"))
    H = w_hh.shape[1]
    dy = _f64(dy)
    dh = np.zeros_like(hs[0]) if dh_n is None else _f64(dh_n).copy()
    dc = np.zeros_like(cs[0]) if dc_n is None else _f64(dc_n).copy()
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(4 * H)
    for t in reversed(range(x.shape[0])):
        dh = dh + dy[t]
        i, f, g, o = (gates[t][:, k * H : (k + 1) * H] for k in range(4))
        tc = np.tanh(cs[t + 1])
        dc = dc + dh * o * (1.0 - tc * tc)
        da = np.concatenate(
            [dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1
        )
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ hs[t]
        db += da.sum(0)
        dh = da @ w_hh
        dc = dc * f
    bi, bh = cache["bias"]
    return dx, dh, dc, dw_ih, dw_hh, (db.copy() if bi else None), (db.copy() if bh else None)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
    """r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in +
    r (W_hn h + b_hn)), h' = (1 - z) n + z h: PyTorch's GRU (b_hn inside the r product)."""
    x, h, w_ih, w_hh = _f64(x), _f64(h0), _f64(w_ih), _f64(w_hh)
    H = w_hh.shape[1]
    bi, bh = _bias(b_ih, 3 * H), _bias(b_hh, 3 * H)
    hs, saved = [h], []
    for t in range(x.shape[0]):
        gi = x[t] @ w_ih.T + bi
        gh = h @ w_hh.T + bh
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        saved.append((r, z, n, gh[:, 2 * H :]))
        h = (1 - z) * n + z * h
        hs.append(h)
    cache = dict(
        kind="gru", x=x, hs=np.stack(hs), saved=saved, w_ih=w_ih, w_hh=w_hh, bias=(b_ih is not None, b_hh is not None)
    )
    return np.stack(hs[1:]), h, cache


def gru_backward(dy, dh_n, cache):
    x, hs, saved, w_ih, w_hh = (cache[k] for k in ("x", "hs", "saved", "w_ih", "w_hh"))
    H = w_hh.shape[1]
    dy = _f64(dy)
    dh = np.zeros_like(hs[0]) if dh_n is None else _f64(dh_n).copy()
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    dbi, dbh = np.zeros(3 * H), np.zeros(3 * H)
    for t in reversed(range(x.shape[0])):
        dh = dh + dy[t]
        r, z, n, ghn = saved[t]
        hp = hs[t]
        dn = dh * (1 - z)
        dz = dh * (hp - n)
        dan = dn * (1 - n * n)  # d pre-tanh
        dr = dan * ghn
        dar, daz = dr * r * (1 - r), dz * z * (1 - z)
        dgi = np.concatenate([dar, daz, dan], axis=1)
        dgh = np.concatenate([dar, daz, dan * r], axis=1)
        dx[t] = dgi @ w_ih
        dw_ih += dgi.T @ x[t]
        dw_hh += dgh.T @ hp
        dbi += dgi.sum(0)
        dbh += dgh.sum(0)
        dh = dh * z + dgh @ w_hh
    bi, bh = cache["bias"]
    return dx, dh, dw_ih, dw_hh, (dbi if bi else None), (dbh if bh else None)
