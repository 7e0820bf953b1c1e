"""Argument normalisation shared by fastnn.ops.conv2d_* / conv_transpose2d_*, fastnn.ref and
fastnn.nn.functional."""


def pair(name, v, op="conv2d"):
    """An int or a pair of ints -> (int, int), as torch.nn.functional.conv2d accepts them; errors
    name fastnn.ops.<op>."""
    try:
        t = (v, v) if isinstance(v, int) else tuple(v)
    except TypeError:  # not an int, not a sequence: None, a float
        raise TypeError(
            f"fastnn.ops.{op}: expected {name} to be an int or a pair of ints, got {type(v).__name__}"
        ) from None
    if len(t) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in t):
        raise ValueError(f"fastnn.ops.{op}: expected {name} to be an int or a pair of ints, got {v!r}")
    return t


def conv2d_params(kernel_hw, stride, padding, dilation, op="conv2d"):
    """((SH, SW), (PT, PB, PL, PR), (DH, DW)) from PyTorch-style stride, padding and dilation.

    padding is an int, a pair, 'valid' (no padding), 'same' (stride 1 only; the total
    dilation*(kernel-1) is split with the odd pixel at the bottom / right, as PyTorch does) or
    four ints (top, bottom, left, right).
    """
    st, dil = pair("stride", stride, op), pair("dilation", dilation, op)
    if isinstance(padding, str):
        if padding == "valid":
            return st, (0, 0, 0, 0), dil
        if padding != "same":
            raise ValueError(f"fastnn.ops.{op}: expected padding 'same' or 'valid', got {padding!r}")
        if st != (1, 1):
            raise ValueError(f"fastnn.ops.{op}: padding='same' is not supported for strided convolutions")
        th, tw = (d * (k - 1) for d, k in zip(dil, kernel_hw))
        return st, (th // 2, th - th // 2, tw // 2, tw - tw // 2), dil
    if isinstance(padding, (tuple, list)) and len(padding) == 4:  # (top, bottom, left, right)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in padding):
            raise ValueError(f"fastnn.ops.{op}: expected padding (top, bottom, left, right) of ints, got {padding!r}")
        return st, tuple(padding), dil
    ph, pw = pair("padding", padding, op)
    return st, (ph, ph, pw, pw), dil


def conv_transpose2d_geometry(
    x_shape, w_shape, stride, padding, output_padding, dilation, groups, op, error=ValueError
):
    """The transposed convolution of an input x_shape (B, C_in, H, W) by a weight w_shape (C_in,
    C_out / groups, KH, KW), as conv2d's adjoint: ((SH, SW), (PT, PB, PL, PR), (DH, DW), the
    output shape, the rows and columns of it that the adjoint covers (rows, cols)).

    The output is (H - 1) stride - 2 padding + dilation (K - 1) + output_padding + 1 per axis:
    the full scatter cropped by padding at the top / left and by padding - output_padding at the
    bottom / right, i.e. conv2d's backward-data with the padding (p, p - o, ...). Where o > p, the
    o - p last rows / columns lie past the full scatter and are zeros. Errors raise `error` (torch's
    RuntimeError in nn.functional, ValueError in fastnn.ops) naming fastnn.ops.<op>."""
    st, dil = pair("stride", stride, op), pair("dilation", dilation, op)
    pad, opad = pair("padding", padding, op), pair("output_padding", output_padding, op)
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise error(f"fastnn.ops.{op}: expected a 4-D input and a 4-D weight, got {list(x_shape)} and {list(w_shape)}")
    if min(st) < 1 or min(dil) < 1 or min(pad) < 0 or min(opad) < 0:
        raise error(
            f"fastnn.ops.{op}: expected stride and dilation >= 1, padding and output_padding >= 0, got "
            f"stride={st}, dilation={dil}, padding={pad}, output_padding={opad}"
        )
    if any(not (o < s or o < d) for o, s, d in zip(opad, st, dil)):
        raise error(
            ("" if error is RuntimeError else f"fastnn.ops.{op}: ")  # torch's words in nn.functional
            + "output padding must be smaller than either stride or dilation, but got output_padding_height: "
            f"{opad[0]} output_padding_width: {opad[1]} stride_height: {st[0]} stride_width: {st[1]} "
            f"dilation_height: {dil[0]} dilation_width: {dil[1]}"
        )
    B, C, H, W = x_shape
    if not isinstance(groups, int) or groups < 1 or C != w_shape[0] or C % groups:
        raise error(
            f"fastnn.ops.{op}: expected an input with {w_shape[0]} channels (weight {list(w_shape)}, "
            f"groups={groups}), got input of size {list(x_shape)}"
        )
    k = tuple(w_shape[2:])
    out = tuple((n - 1) * s - 2 * p + d * (kk - 1) + 1 + o for n, s, p, d, kk, o in zip((H, W), st, pad, dil, k, opad))
    if min(out) < 1:
        raise error(
            f"fastnn.ops.{op}: given input of size {list(x_shape)} and weight {list(w_shape)}, the output size "
            f"{list(out)} is too small"
        )
    extra = tuple(max(0, o - p) for o, p in zip(opad, pad))
    pads = (pad[0], max(0, pad[0] - opad[0]), pad[1], max(0, pad[1] - opad[1]))
    covered = (out[0] - extra[0], out[1] - extra[1])
    return st, pads, dil, (B, w_shape[1] * groups) + out, covered
