"""Argument normalisation shared by fastnn.ops.conv2d_* and fastnn.ref.conv2d_*."""


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
