"""Reference conv2d (forward and the three gradients) in float64: a sum over kernel taps, one
einsum per tap and group, each over the output positions whose input position for that tap lies
inside the input (the zero padding is never materialised, so a huge padding or dilation costs
nothing)."""

import numpy as np

from .._conv import conv2d_params


def _span(n_out, k_off, pad, stride, size):
    """(output slice, input slice): the outputs o < n_out whose input o*stride + k_off - pad lies
    in [0, size), and those inputs; None when there are none."""
    o0 = max(0, -((k_off - pad) // stride))  # ceil((pad - k_off) / stride)
    hi = size - 1 + pad - k_off
    if hi < 0:
        return None
    o1 = min(n_out - 1, hi // stride)
    if o1 < o0:
        return None
    i0 = o0 * stride + k_off - pad
    return slice(o0, o1 + 1), slice(i0, i0 + (o1 - o0) * stride + 1, stride)


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

    def tap(kh, kw):
        """(output rows, output cols, input rows, input cols) that kernel tap (kh, kw) pairs, as
        slices; None when the tap sees only padding."""
        r, c = _span(OH, kh * dh, pt, sh, H), _span(OW, kw * dw, pl, sw, W)
        return None if r is None or c is None else (r[0], c[0], r[1], c[1])

    return (OH, OW), tap, C // groups, OC // groups


def _taps(w_shape, groups, Cg, OCg, tap):
    """(input channels, output channels, kh, kw, the tap's slices) for every tap that sees data."""
    for g in range(groups):
        xs, ys = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)
        for kh in range(w_shape[2]):
            for kw in range(w_shape[3]):
                t = tap(kh, kw)
                if t is not None:
                    yield xs, ys, kh, kw, t


def conv2d_forward(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None, out=None):
    """y = act(conv2d(x, w) + bias) in float64; same arguments as fastnn.ops.conv2d_forward."""
    w64, x64 = np.asarray(w, dtype=np.float64), np.asarray(x, dtype=np.float64)
    (OH, OW), tap, Cg, OCg = _setup(x64.shape, w64.shape, stride, padding, dilation, groups)
    y = np.zeros((x64.shape[0], w64.shape[0], OH, OW))
    for xs, ys, kh, kw, (orows, ocols, irows, icols) in _taps(w64.shape, groups, Cg, OCg, tap):
        y[:, ys, orows, ocols] += np.einsum("bchw,oc->bohw", x64[:, xs, irows, icols], w64[ys, :, kh, kw])
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
    _, tap, Cg, OCg = _setup(tuple(input_shape), w64.shape, stride, padding, dilation, groups)
    dx = np.zeros(tuple(input_shape))
    for xs, ys, kh, kw, (orows, ocols, irows, icols) in _taps(w64.shape, groups, Cg, OCg, tap):
        dx[:, xs, irows, icols] += np.einsum("bohw,oc->bchw", dy64[:, ys, orows, ocols], w64[ys, :, kh, kw])
    return dx if out is None else np.copyto(out, dx) or out


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1, out=None):
    """dw of conv2d in float64, summed over the batch; same arguments as the fastnn.ops one."""
    dy64, x64 = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    _, tap, Cg, OCg = _setup(x64.shape, tuple(weight_shape), stride, padding, dilation, groups)
    dw = np.zeros(tuple(weight_shape))
    for xs, ys, kh, kw, (orows, ocols, irows, icols) in _taps(weight_shape, groups, Cg, OCg, tap):
        dw[ys, :, kh, kw] = np.einsum("bohw,bchw->oc", dy64[:, ys, orows, ocols], x64[:, xs, irows, icols])
    return dw if out is None else np.copyto(out, dw) or out


def conv2d_backward_bias(dy, out=None):
    """db of conv2d in float64: dy summed over batch and pixels."""
    db = np.asarray(dy, dtype=np.float64).sum(axis=(0, 2, 3))
    return db if out is None else np.copyto(out, db) or out


# -- the transposed convolution, from its own definition (a scatter of every input pixel through
# the kernel), not from conv2d's references, so the two check each other.


def _ct_setup(x_shape, w_shape, stride, padding, output_padding, dilation, groups):
    """(stride, dilation, padding, the full scatter's shape (B, C_out, FH, FW) large enough for the
    output, the output shape): the scatter covers (H - 1) stride + dilation (K - 1) + 1 rows; the
    output is it cropped by padding at the top, extended by output_padding - padding zero rows
    at the bottom where that is positive."""
    from .._conv import conv_transpose2d_geometry

    st, _, dil, shape, _ = conv_transpose2d_geometry(
        tuple(x_shape), tuple(w_shape), stride, padding, output_padding, dilation, groups, "conv_transpose2d"
    )
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    B, _, H, W = x_shape
    full = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip((H, W), st, dil, w_shape[2:])]
    full = [max(f, p + o) for f, p, o in zip(full, pad, shape[2:])]
    return st, dil, pad, (B, shape[1], *full), shape


def _ct_taps(x_shape, w_shape, groups, st, dil):
    """(input channels, output channels, kh, kw, rows, cols of the full scatter) of every tap."""
    H, W = x_shape[2:]
    Cg, OCg = w_shape[0] // groups, w_shape[1]
    for g in range(groups):
        cs, os_ = slice(g * Cg, (g + 1) * Cg), slice(g * OCg, (g + 1) * OCg)
        for kh in range(w_shape[2]):
            for kw in range(w_shape[3]):
                rows = slice(kh * dil[0], kh * dil[0] + (H - 1) * st[0] + 1, st[0])
                cols = slice(kw * dil[1], kw * dil[1] + (W - 1) * st[1] + 1, st[1])
                yield cs, os_, kh, kw, rows, cols


def conv_transpose2d_forward(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, out=None):
    """y of PyTorch's conv_transpose2d in float64; same arguments as fastnn.ops'."""
    x64, w64 = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    st, dil, pad, full, shape = _ct_setup(x64.shape, w64.shape, stride, padding, output_padding, dilation, groups)
    yf = np.zeros(full)
    for cs, os_, kh, kw, rows, cols in _ct_taps(x64.shape, w64.shape, groups, st, dil):
        yf[:, os_, rows, cols] += np.einsum("bchw,co->bohw", x64[:, cs], w64[cs, :, kh, kw])
    y = yf[:, :, pad[0] : pad[0] + shape[2], pad[1] : pad[1] + shape[3]].copy()
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y if out is None else np.copyto(out, y) or out


def _ct_full_dy(dy, full, pad):
    dyf = np.zeros(full)
    dyf[:, :, pad[0] : pad[0] + dy.shape[2], pad[1] : pad[1] + dy.shape[3]] = dy
    return dyf


def conv_transpose2d_backward_data(
    dy, w, input_shape, stride=1, padding=0, output_padding=0, groups=1, dilation=1, out=None
):
    """dx of conv_transpose2d in float64: each input pixel's gather of dy through the kernel."""
    dy64, w64 = np.asarray(dy, dtype=np.float64), np.asarray(w, dtype=np.float64)
    st, dil, pad, full, _ = _ct_setup(tuple(input_shape), w64.shape, stride, padding, output_padding, dilation, groups)
    dyf = _ct_full_dy(dy64, full, pad)
    dx = np.zeros(tuple(input_shape))
    for cs, os_, kh, kw, rows, cols in _ct_taps(input_shape, w64.shape, groups, st, dil):
        dx[:, cs] += np.einsum("bohw,co->bchw", dyf[:, os_, rows, cols], w64[cs, :, kh, kw])
    return dx if out is None else np.copyto(out, dx) or out


def conv_transpose2d_backward_weight(
    dy, x, weight_shape, stride=1, padding=0, output_padding=0, groups=1, dilation=1, out=None
):
    """dw of conv_transpose2d in float64, summed over the batch."""
    dy64, x64 = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    st, dil, pad, full, _ = _ct_setup(x64.shape, tuple(weight_shape), stride, padding, output_padding, dilation, groups)
    dyf = _ct_full_dy(dy64, full, pad)
    dw = np.zeros(tuple(weight_shape))
    for cs, os_, kh, kw, rows, cols in _ct_taps(x64.shape, weight_shape, groups, st, dil):
        dw[cs, :, kh, kw] = np.einsum("bchw,bohw->co", x64[:, cs], dyf[:, os_, rows, cols])
    return dw if out is None else np.copyto(out, dw) or out


def conv_transpose2d_backward_bias(dy, out=None):
    """db of conv_transpose2d in float64: dy summed over batch and pixels."""
    return conv2d_backward_bias(dy, out)
