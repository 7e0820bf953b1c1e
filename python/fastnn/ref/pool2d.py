"""Reference pooling (max with indices, average, global average), forward and backward, in
float64 with plain loops over the window: the oracle for tests and the baseline for benchmarks.
Same names and signatures as fastnn.ops; sizes and option checks follow PyTorch."""

import numpy as np


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size, with the ceil-mode rule that the last window starts
    inside the input or the left padding."""
    num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    o = num // s + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    kh, kw = _pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    if min(kh, kw) < 1 or min(sh, sw) < 1 or min(dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"fastnn.ref.{op}: kernel, stride, dilation must be > 0 and padding >= 0")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"fastnn.ref.{op}: pad should be at most half of kernel size")
    x = np.asarray(x)
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(f"fastnn.ref.{op}: expected x (N, C, H, W) with non-zero C, H, W, got {x.shape}")
    H, W = x.shape[2:]
    oh, ow = out_size(H, kh, sh, ph, dh, ceil_mode), out_size(W, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"fastnn.ref.{op}: output size is too small")
    return (kh, kw, sh, sw, ph, pw, dh, dw), (oh, ow)


def _ret(r, out):
    if out is None:
        return r
    out[...] = r
    return out


def _taps(start, k, d, n):
    """The taps start, start + d, ..., start + (k - 1) d that lie in [0, n), found without
    walking the ones outside (a kernel of 2^31 taps over a small input is one window)."""
    first = start if start >= 0 else start + (-start + d - 1) // d * d
    return list(range(first, min(start + (k - 1) * d + 1, n), d))


def _windows(g, H, W, oh, ow):
    """Rows and columns (inside the input) of the window of output (i, j), in (kh, kw) order."""
    kh, kw, sh, sw, ph, pw, dh, dw = g
    for i in range(oh):
        rows = _taps(i * sh - ph, kh, dh, H)
        for j in range(ow):
            yield i, j, rows, _taps(j * sw - pw, kw, dw, W)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, out=None, indices=None):
    """(y, indices): max of each window, and the flat index r * W + c of its first maximum
    (NaN is a maximum, the last NaN wins), as PyTorch."""
    g, (oh, ow) = _geometry("max_pool2d_forward", x, kernel_size, stride, padding, dilation, ceil_mode)
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow))
    idx = np.empty((N, C, oh, ow), np.int64)
    for i, j, rows, cols in _windows(g, H, W, oh, ow):
        flat = np.array([r * W + c for r in rows for c in cols], np.int64)
        if flat.size == 0:  # a dilated window that misses the input: -inf, and PyTorch's index
            kh, kw, sh, sw, ph, pw, dh, dw = g
            h0, w0 = i * sh - ph, j * sw - pw
            h0, w0 = h0 + (-h0 + dh - 1) // dh * dh * (h0 < 0), w0 + (-w0 + dw - 1) // dw * dw * (w0 < 0)
            y[:, :, i, j], idx[:, :, i, j] = -np.inf, h0 * W + w0
            continue
        v = x.reshape(N, C, H * W)[:, :, flat]  # (N, C, window)
        nan = np.isnan(v)
        # first maximum; any NaN: the last NaN
        k = np.where(
            nan.any(-1), v.shape[-1] - 1 - np.argmax(nan[..., ::-1], -1), np.argmax(np.where(nan, -np.inf, v), -1)
        )
        idx[:, :, i, j] = flat[k]
        y[:, :, i, j] = np.take_along_axis(v, k[..., None], -1)[..., 0]
    if indices is not None:
        indices[...] = idx
        idx = indices
    return _ret(y, out), idx


def max_pool2d_backward(
    dy, x, indices, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, relu=False, out=None
):
    """dx: each dy added at its window's index (the forward's); relu: then through a ReLU whose
    output is x (dx zero where x <= 0)."""
    _geometry("max_pool2d_backward", x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C, H, W = np.shape(x)
    dy = np.asarray(dy, dtype=np.float64)
    dy = dy.reshape(N * C, dy.size // max(N * C, 1))
    ind = np.asarray(indices).reshape(dy.shape)
    dx = np.zeros((N * C, H * W))
    for p in range(N * C):
        np.add.at(dx[p], ind[p], dy[p])
    dx = dx.reshape(N, C, H, W)
    if relu:
        dx = np.where(np.asarray(x, dtype=np.float64) <= 0, 0.0, dx)
    return _ret(dx, out)


def _divisors(g, H, W, oh, ow, count_include_pad):
    kh, kw, sh, sw, ph, pw, _, _ = g
    d = np.empty((oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, H + ph), min(ws + kw, W + pw)
            d[i, j] = (
                (he - hs) * (we - ws) if count_include_pad else (min(he, H) - max(hs, 0)) * (min(we, W) - max(ws, 0))
            )
    return d


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, out=None):
    """Window sum / window size (clipped to the padded input, or to the input)."""
    g, (oh, ow) = _geometry("avg_pool2d_forward", x, kernel_size, stride, padding, 1, ceil_mode)
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    d = _divisors(g, H, W, oh, ow, count_include_pad)
    y = np.empty((N, C, oh, ow))
    for i, j, rows, cols in _windows(g, H, W, oh, ow):
        y[:, :, i, j] = x[:, :, rows][:, :, :, cols].sum(axis=(2, 3)) / d[i, j]
    return _ret(y, out)


def avg_pool2d_backward(
    dy, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, out=None
):
    """dx: each dy / window size added over its window."""
    g, (oh, ow) = _geometry("avg_pool2d_backward", x, kernel_size, stride, padding, 1, ceil_mode)
    N, C, H, W = np.shape(x)
    dy = np.asarray(dy, dtype=np.float64)
    d = _divisors(g, H, W, oh, ow, count_include_pad)
    dx = np.zeros((N, C, H, W))
    for i, j, rows, cols in _windows(g, H, W, oh, ow):
        dx[:, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] += (dy[:, :, i, j] / d[i, j])[:, :, None, None]
    return _ret(dx, out)


def global_avg_pool2d_forward(x, *, out=None):
    """(N, C, 1, 1) mean over H, W."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(f"fastnn.ref.global_avg_pool2d_forward: expected x (N, C, H, W), got {x.shape}")
    return _ret(x.mean(axis=(2, 3), keepdims=True), out)


def global_avg_pool2d_backward(dy, x, *, out=None):
    """dx = dy / (H W) broadcast over each plane."""
    N, C, H, W = np.shape(x)
    dy = np.asarray(dy, dtype=np.float64)
    return _ret(np.broadcast_to(dy / (H * W), (N, C, H, W)).copy(), out)
