"""Reference conv2d (forward and the three gradients) in float64: a sum over kernel taps of
strided views of the zero-padded input, one einsum per tap and group."""

import numpy as np

from .._conv import conv2d_params


def _setup(x_shape, w_shape, stride, padding, dilation, groups):
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = conv2d_params(tuple(w_shape)[2:], stride, padding, dilation)
    B, C, H, W = x_shape
    OC, Cg, KH, KW = w_shape
    if C != Cg * groups or OC % groups:
        raise ValueError(
            f"fastnn.ref.conv2d: weight {tuple(w_shape)} does not fit input {tuple(x_shape)} with groups={groups}"
        )
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        raise ValueError("fastnn.ref.conv2d: kernel size can't be greater than the padded input size")

    def tap(kh, kw):  # the padded-input window that kernel tap (kh, kw) sees, as slices
        return (slice(kh * dh, kh * dh + sh * (OH - 1) + 1, sh), slice(kw * dw, kw * dw + sw * (OW - 1) + 1, sw))

    return (pt, pb, pl, pr), (OH, OW), tap, C // groups, OC // groups


def _pad(x, pads):
    pt, pb, pl, pr = pads
    return np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))


def conv2d_forward(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None, out=None):
    """y = act(conv2d(x, w) + bias) in float64; same arguments as fastnn.ops.conv2d_forward."""
    w64 = np.asarray(w, dtype=np.float64)
    pads, (OH, OW), tap, Cg, OCg = _setup(np.shape(x), w64.shape, stride, padding, dilation, groups)
    if np.shape(x)[0] == 0:  # an empty batch: nothing to pad (a huge padding has no array)
        y = np.zeros((0, w64.shape[0], OH, OW))
        return y if out is None else np.copyto(out, y) or out
    xp = _pad(x, pads)
    y = np.zeros((xp.shape[0], w64.shape[0], OH, OW))
    for g in range(groups):
        xs, ys = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)
        for kh in range(w64.shape[2]):
            for kw in range(w64.shape[3]):
                rows, cols = tap(kh, kw)
                y[:, ys] += np.einsum("bchw,oc->bohw", xp[:, xs, rows, cols], w64[ys, :, kh, kw])
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    if activation == "relu":
        y = np.where(y < 0, 0.0, y)
    elif activation not in (None, "none"):
        raise ValueError(f"fastnn.ref.conv2d: expected activation None or 'relu', got {activation!r}")
    return y if out is None else np.copyto(out, y) or out


def conv2d_backward_data(dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1, out=None):
    """dx of conv2d in float64; same arguments as fastnn.ops.conv2d_backward_data."""
    w64, dy64 = np.asarray(w, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    pads, _, tap, Cg, OCg = _setup(tuple(input_shape), w64.shape, stride, padding, dilation, groups)
    B, C, H, W = input_shape
    if B == 0:  # an empty batch: nothing to pad (a huge padding has no array)
        dx = np.zeros(tuple(input_shape))
        return dx if out is None else np.copyto(out, dx) or out
    pt, pb, pl, pr = pads
    dxp = np.zeros((B, C, H + pt + pb, W + pl + pr))
    for g in range(groups):
        xs, ys = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)
        for kh in range(w64.shape[2]):
            for kw in range(w64.shape[3]):
                rows, cols = tap(kh, kw)
                dxp[:, xs, rows, cols] += np.einsum("bohw,oc->bchw", dy64[:, ys], w64[ys, :, kh, kw])
    dx = dxp[:, :, pt : pt + H, pl : pl + W]
    return dx if out is None else np.copyto(out, dx) or out


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1, out=None):
    """dw of conv2d in float64, summed over the batch; same arguments as the fastnn.ops one."""
    dy64 = np.asarray(dy, dtype=np.float64)
    pads, _, tap, Cg, OCg = _setup(np.shape(x), tuple(weight_shape), stride, padding, dilation, groups)
    dw = np.zeros(tuple(weight_shape))
    if np.shape(x)[0] == 0:  # an empty batch: a sum of no terms (a huge padding has no array)
        return dw if out is None else np.copyto(out, dw) or out
    xp = _pad(x, pads)
    for g in range(groups):
        xs, ys = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)
        for kh in range(weight_shape[2]):
            for kw in range(weight_shape[3]):
                rows, cols = tap(kh, kw)
                dw[ys, :, kh, kw] = np.einsum("bohw,bchw->oc", dy64[:, ys], xp[:, xs, rows, cols])
    return dw if out is None else np.copyto(out, dw) or out


def conv2d_backward_bias(dy, out=None):
    """db of conv2d in float64: dy summed over batch and pixels."""
    db = np.asarray(dy, dtype=np.float64).sum(axis=(0, 2, 3))
    return db if out is None else np.copyto(out, db) or out
