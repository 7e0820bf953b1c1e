"""References of softmax / log_softmax / cross_entropy (fastnn.ops' names and signatures), float64."""

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _ret(y, out):
    if out is None:
        return y
    out[...] = y
    return out


def softmax_forward(x, dim=-1, *, out=None):
    x = _f64(x)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return _ret(e / e.sum(axis=dim, keepdims=True), out)


def log_softmax_forward(x, dim=-1, *, out=None):
    x = _f64(x)
    z = x - x.max(axis=dim, keepdims=True)
    return _ret(z - np.log(np.exp(z).sum(axis=dim, keepdims=True)), out)


def softmax_backward(dy, y, dim=-1, *, out=None):
    dy, y = _f64(dy), _f64(y)
    return _ret(y * (dy - (dy * y).sum(axis=dim, keepdims=True)), out)


def log_softmax_backward(dy, y, dim=-1, *, out=None):
    dy, y = _f64(dy), _f64(y)
    return _ret(dy - np.exp(y) * dy.sum(axis=dim, keepdims=True), out)


def _rows(logits, target):
    logits, target = _f64(logits), np.asarray(target)
    if logits.ndim == 1:
        return logits[None], target.reshape(1), target.shape
    rows = np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])
    return rows, target.reshape(-1), target.shape


def _terms(rows, t, weight, ignore_index, label_smoothing):
    """Per row: loss (PyTorch's definition, written directly) and the mean's weight."""
    N, C = rows.shape
    logp = log_softmax_forward(rows, 1)
    w = np.broadcast_to(1.0, (C,)) if weight is None else _f64(weight)  # no memory for a huge C
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    if ((tt < 0) | (tt >= C)).any():
        raise ValueError("cross_entropy: target out of range")
    wt = np.where(keep, w[tt], 0.0)
    e = label_smoothing
    # each term only where it is counted: an ignored row, or the smoothing term with e = 0, adds
    # 0 even when its log-probabilities hold -inf (0 * inf would be NaN; torch gives 0)
    with np.errstate(invalid="ignore"):
        loss = np.where(keep, (1 - e) * -logp[np.arange(N), tt] * wt, 0.0)
        if e:
            loss = loss + e / C * np.where(keep, -(logp * w).sum(1), 0.0)
    return loss, wt, logp, w, keep, tt


def cross_entropy_forward(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    rows, t, tshape = _rows(logits, target)
    loss, wt, *_ = _terms(rows, t, weight, ignore_index, label_smoothing)
    if reduction == "none":
        return loss.reshape(tshape)
    if reduction == "sum":
        return np.asarray(loss.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(loss.sum() / wt.sum())


def cross_entropy_backward(
    grad, logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean", *, out=None
):
    rows, t, tshape = _rows(logits, target)
    loss, wt, logp, w, keep, tt = _terms(rows, t, weight, ignore_index, label_smoothing)
    N, C = rows.shape
    g = _f64(grad)
    if reduction == "none":
        gi = g.reshape(-1)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            gi = np.full(N, float(g) / (wt.sum() if reduction == "mean" else 1.0))
    e = label_smoothing
    p = np.exp(logp)
    onehot = np.zeros((N, C))
    onehot[np.arange(N), tt] = 1
    # d loss_i / d x_ic = (1-e) w_t (p_c - [c == t]) + (e / C) sum_k w_k (p_c - [c == k])
    d = (1 - e) * wt[:, None] * (p - onehot) + (e / C) * (w.sum() * p - w[None, :]) * keep[:, None]
    with np.errstate(invalid="ignore"):
        d = np.where(keep[:, None], d * gi[:, None], 0.0)  # ignored rows: 0 even when gi is nan (torch)
    d = np.moveaxis(d.reshape(np.moveaxis(_f64(logits), 1, -1).shape), -1, 1) if np.ndim(logits) > 2 else d
    return _ret(d.reshape(np.shape(logits)), out)
