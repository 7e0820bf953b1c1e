"""conv2d: forward, backward-data, backward-weight and bias on every ISA path against the float64
reference; the reference against float64 finite differences and against torch; thread
invariance; bad input."""

import fastnn
import numpy as np
import pytest
from conftest import ISAS, num_threads, randn, run_python
from fastnn import _core, ops, ref
from fastnn._conv import conv2d_params
from fastnn.ref.rounding import EPS32

# (B, C, H, W, OC, KH, KW, stride, padding, dilation, groups): odd sizes, every option, the
# pointwise shortcut (1x1, stride 1, no padding), depthwise, 1x1 images, batch 0 and 1.
CASES = [
    (2, 3, 9, 7, 4, 3, 3, 1, 1, 1, 1),
    (3, 4, 10, 11, 6, 3, 2, 2, (1, 0), 1, 2),
    (2, 6, 8, 8, 6, 3, 3, 1, "same", 2, 6),  # depthwise, dilated, symmetric 'same'
    (2, 3, 7, 6, 5, 2, 4, 1, "same", 1, 1),  # even kernel: the odd pad pixel bottom/right
    (1, 5, 7, 7, 8, 1, 1, 1, 0, 1, 1),  # pointwise shortcut
    (2, 4, 5, 6, 6, 1, 1, 1, 0, 1, 2),  # pointwise, grouped
    (2, 3, 6, 5, 4, 2, 3, (2, 1), "valid", (1, 2), 1),
    (2, 2, 1, 1, 3, 1, 1, 1, 0, 1, 1),  # 1x1 image
    (1, 2, 1, 1, 3, 3, 3, 1, 1, 1, 1),  # 1x1 image, 3x3 kernel reaching only padding
    (0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1),  # empty batch
    (3, 17, 13, 15, 33, 3, 3, 1, 1, 1, 1),  # channels off every SIMD width and tile
    (2, 3, 32, 32, 16, 5, 5, 2, 2, 1, 1),  # first-layer style: few input channels
    # >= 16 channels per group: the direct AVX-512 forward, and backward_data as a forward
    (2, 32, 9, 10, 32, 3, 2, 1, "same", (2, 1), 2),  # grouped, dilated, asymmetric 'same'
    (2, 16, 6, 7, 20, 3, 3, 1, 3, 1, 1),  # padding past dilation*(k-1): no transpose
    (1, 16, 5, 31, 48, 1, 3, 1, (0, 1), 1, 1),  # 31 = 3 tiles of 11 pixels, 48 = 32 + 16
    (2, 3, 10, 9, 32, 3, 3, 1, 1, 1, 1),  # first layer: 9 kernel rows = 3 tiles of 3
    # the two direct AVX-512 forwards: pixels in lanes (rows of 16, pieces of rows, flat runs
    # whose vectors cross rows) and channels in lanes (7x7 and 14x14 leave pixel lanes idle)
    (1, 8, 16, 16, 13, 3, 3, 1, 1, 1, 1),  # whole rows of 16; panels of 6 + 7
    (2, 4, 11, 37, 9, 3, 3, (2, 1), 1, 1, 1),  # strided rows: 3 vectors a row, tail of 5
    (2, 8, 5, 4, 10, 3, 3, 1, 1, 1, 1),  # flat: one vector spans three rows
    (2, 16, 7, 7, 20, 3, 3, 1, 1, 1, 1),  # channels in lanes, 20 = 16 + 4
    (1, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1),  # channels in lanes, 14 pixels a tile
    # backward_weight's 64-channel panels (OC per group a multiple of 64): 15 kernel rows in
    # tiles of 2 + a last tile of 1; grouped and dilated with padding past the kernel's reach
    (2, 5, 7, 9, 64, 3, 3, 1, 1, 1, 1),
    (2, 4, 5, 17, 128, 3, 3, 1, 2, 2, 2),
]
# The few-taps AVX-512 forwards. Rows (3x3 over one input channel, unit stride and row
# dilation): output rows of 28 (two vectors overlapping), 16, 33 (three, the last overlapping)
# and 11 (masked); passes of 1 and 2 channels; column dilation; depthwise. Vectors (<= 4 taps):
# 1x1 with padding (not the pointwise shortcut) in passes of 5, and 2x2 on rows of 8 (flat).
FEW_TAPS = [
    (2, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1),
    (3, 1, 9, 13, 5, 3, 3, 1, 0, 1, 1),
    (2, 1, 10, 20, 3, 3, 3, 1, 1, (1, 2), 1),
    (2, 4, 6, 33, 4, 3, 3, 1, 1, 1, 4),
    (1, 1, 13, 20, 4, 3, 3, 1, 1, 1, 1),
    (2, 3, 7, 19, 10, 1, 1, 1, 1, 1, 1),
    (2, 1, 9, 9, 7, 2, 2, 1, 0, 1, 1),
]
# The nine before FEW_TAPS: the direct AVX-512 paths (see DIRECT below).
DIRECT = CASES[-9:]
# The AVX2 direct kernels (csrc/cpu/avx2/conv2d.cpp) beyond what the cases above reach: the
# forward's flat layout (output vectors across row ends) in 3 chunks of input channels, its
# rows layout in 2 chunks, tiles of 5 vectors x 2 channels, 9 images over backward_weight's 8
# chunks, and the shapes that fall back to column blocks (a backward_weight past 128K floats;
# strided rows narrower than 4).
AVX2_DIRECT = [
    (2, 48, 9, 12, 10, 3, 3, 1, 1, 1, 1),
    (2, 40, 6, 16, 8, 3, 3, 1, 1, 1, 1),
    (3, 3, 9, 20, 2, 3, 3, 1, 1, 1, 1),
    (9, 4, 5, 9, 16, 3, 3, 1, 1, 1, 1),
    (1, 64, 4, 5, 256, 3, 3, 1, 1, 1, 1),
    (2, 5, 6, 3, 6, 3, 3, 2, 1, 1, 1),
]
# Winograd F(2x2, 3x3) (3x3, stride 1, one group, >= 16 channels each way; AVX2 and AVX-512):
# the smallest output it takes (4x4), odd outputs (half tiles in the last row and column),
# rows of exactly 8 tiles (one vector) and of 17 (a last vector of 1, whose store spills onto
# the next row), no padding, padding 2, and 50 images of 4 tiles (blocks of whole images and a
# short last block).
WINOGRAD = [
    (3, 16, 4, 4, 16, 3, 3, 1, 1, 1, 1),
    (5, 17, 9, 11, 19, 3, 3, 1, 1, 1, 1),
    (2, 16, 16, 16, 32, 3, 3, 1, 1, 1, 1),
    (2, 16, 18, 34, 16, 3, 3, 1, 1, 1, 1),
    (2, 20, 7, 6, 24, 3, 3, 1, 0, 1, 1),
    (2, 16, 6, 9, 16, 3, 3, 1, (2, 0), 1, 1),
    (50, 16, 4, 4, 16, 3, 3, 1, 1, 1, 1),
]
CASES += FEW_TAPS + AVX2_DIRECT + WINOGRAD


def bound(a_abs, scale_k):
    """Allowed error: float32 sums of scale_k products: about 2*sqrt(k)*eps32 of sum |terms|."""
    return 4 * (np.sqrt(scale_k) + 2) * EPS32 * a_abs + 1e-30


def check(actual, desired, magnitude, k):
    """actual (float32) within the float32 accumulation bound of the float64 desired."""
    assert actual.dtype == np.float32 and actual.shape == desired.shape
    err = np.abs(actual.astype(np.float64) - desired)
    lim = bound(magnitude, k)
    assert (err <= lim).all(), f"max error {err.max():.3g}, where the bound is {lim.flat[err.argmax()]:.3g}"


def run_all(rng, isa, case, activation=None):
    """Every conv2d op on `isa` against the reference, with magnitudes from |x| and |w|."""
    B, C, H, W, OC, KH, KW, st, pad, dil, g = case
    x, w, b = randn(rng, B, C, H, W), randn(rng, OC, C // g, KH, KW), randn(rng, OC)
    sh, pd, dl = conv2d_params((KH, KW), st, pad, dil)
    y = _core.conv2d_forward(x, w, b, sh, pd, dl, g, activation, None, isa)
    k = C // g * KH * KW
    check(
        y,
        ref.conv2d_forward(x, w, b, st, pad, dil, g, activation),
        ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), st, pad, dil, g),
        k,
    )
    dy = randn(rng, *y.shape)
    dx = _core.conv2d_backward_data(dy, w, x.shape, sh, pd, dl, g, None, isa)
    check(
        dx,
        ref.conv2d_backward_data(dy, w, x.shape, st, pad, dil, g),
        ref.conv2d_backward_data(np.abs(dy), np.abs(w), x.shape, st, pad, dil, g),
        OC * KH * KW,
    )
    dw = _core.conv2d_backward_weight(dy, x, w.shape, sh, pd, dl, g, None, isa)
    check(
        dw,
        ref.conv2d_backward_weight(dy, x, w.shape, st, pad, dil, g),
        ref.conv2d_backward_weight(np.abs(dy), np.abs(x), w.shape, st, pad, dil, g),
        max(1, B * y.shape[2] * y.shape[3]),
    )
    db = ops.conv2d_backward_bias(dy)
    check(db, ref.conv2d_backward_bias(dy), ref.conv2d_backward_bias(np.abs(dy)), max(1, B * y.shape[2] * y.shape[3]))
    return y, dx, dw, db


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv2d_against_reference(rng, isa, case):
    run_all(rng, isa, case)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "case",
    [
        (2, 3, 9, 7, 4, 3, 3, 1, 1, 1, 1),
        FEW_TAPS[1],
        FEW_TAPS[5],
        AVX2_DIRECT[0],
        AVX2_DIRECT[1],
        WINOGRAD[1],
        WINOGRAD[3],
    ],
    ids=str,
)
def test_fused_relu(rng, isa, case):
    y = run_all(rng, isa, case, activation="relu")[0]
    assert (y >= 0).all() and (y == 0).any()


def test_large_image_uses_several_column_blocks(rng):
    # 64 input channels x 3x3 over a 96-wide image: each column block holds only a few output
    # rows, so blocks meet inside the image (col2im overlap between blocks in backward_data).
    run_all(rng, None, (1, 64, 40, 96, 8, 3, 3, 1, 1, 1, 1))


# CASES[10], DIRECT and FEW_TAPS take the direct AVX-512 paths, and with AVX2_DIRECT the AVX2
# ones; batches of 1 and 2 against 3 threads take their split over output rows, vectors or
# tiles (13 output rows in 4 + 4 + 5: row ranges that start off the rows kernel's cycle of 3;
# the AVX2 flat layout's vectors then start at each thread's first row).
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "case", [CASES[0], CASES[1], CASES[4], CASES[10]] + DIRECT + FEW_TAPS + AVX2_DIRECT + WINOGRAD, ids=str
)
def test_thread_counts_bit_identical(rng, isa, case):
    results = []
    for n in (1, 2, 3):
        with num_threads(n):
            results.append(run_all(np.random.default_rng(7), isa, case))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3): its own error bound, and FASTNN_CONV_WINOGRAD=0.

_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def winograd_magnitude(x, w, pad):
    """|A^T| (sum_c |G g G^T| . |B^T d B|) |A| per output pixel, with every matrix and value
    replaced by its absolute value: what the float32 rounding of the transforms and of the
    sum over channels scales with (the direct sum's is (|x| conv |w|), a few times smaller)."""
    B, C, H, W = x.shape
    pt, pb, pl, pr = pad
    OH, OW = H + pt + pb - 2, W + pl + pr - 2
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    xp = np.zeros((B, C, 2 * TH + 2, 2 * TW + 2))
    hh, ww = min(H, 2 * TH + 2 - pt), min(W, 2 * TW + 2 - pl)
    xp[:, :, pt : pt + hh, pl : pl + ww] = np.abs(x[:, :, :hh, :ww])
    patches = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    v = np.einsum("ij,bctujk,lk->bctuil", np.abs(_BT), patches, np.abs(_BT))
    u = np.einsum("ij,ocjk,lk->ocil", np.abs(_G), np.abs(w.astype(np.float64)), np.abs(_G))
    m = np.einsum("ocij,bctuij->botuij", u, v)
    y = np.einsum("ij,botujk,lk->botuil", np.abs(_AT), m, np.abs(_AT))
    return y.transpose(0, 1, 2, 4, 3, 5).reshape(B, w.shape[0], 2 * TH, 2 * TW)[:, :, :OH, :OW]


@pytest.mark.parametrize("isa", [i for i in ISAS if i in ("avx2", "avx512")] or [None])
@pytest.mark.parametrize("case", WINOGRAD, ids=str)
def test_winograd_within_its_bound(rng, isa, case):
    if isa is None:
        pytest.skip("no AVX2 on this CPU: conv2d does not take Winograd's path")
    B, C, H, W, OC, KH, KW, st, pad, dil, g = case
    x, w = randn(rng, B, C, H, W) * 3 + 1, randn(rng, OC, C, 3, 3)  # an offset: the sums cancel
    sh, pd, dl = conv2d_params((KH, KW), st, pad, dil)
    y = _core.conv2d_forward(x, w, None, sh, pd, dl, g, None, None, isa)
    check(y, ref.conv2d_forward(x, w, None, st, pad, dil, g), winograd_magnitude(x, w, pd), C * 9)


@pytest.mark.parametrize("isa", ISAS)
def test_nan_input_reaches_every_output_that_reads_it(rng, isa):
    # Direct sums give NaN where a tap reads the NaN; Winograd also in the rest of its 2x2 tile.
    x, w = randn(rng, 2, 16, 9, 10), randn(rng, 16, 16, 3, 3)
    x[1, 3, 4, 5] = np.nan
    y = _core.conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1, None, None, isa)
    reads = np.zeros(y.shape, bool)
    reads[1, :, 3:6, 4:7] = True
    assert np.isnan(y[reads]).all()
    assert not np.isnan(y[0]).any()


def test_winograd_can_be_turned_off(tmp_path):
    # The same product with and without Winograd (direct kernels) in fresh interpreters: both
    # near the reference, and not the same bits (the switch took effect).
    code = f"""
        import numpy as np
        from fastnn import ops
        r = np.random.default_rng(5)
        x = r.standard_normal((2, 16, 10, 12)).astype(np.float32)
        w = r.standard_normal((24, 16, 3, 3)).astype(np.float32)
        np.save({str(tmp_path)!r} + "/y_" + __import__("os").environ["FASTNN_CONV_WINOGRAD"] + ".npy",
                ops.conv2d_forward(x, w, padding=1))
        from fastnn import _core
        open({str(tmp_path)!r} + "/on_" + __import__("os").environ["FASTNN_CONV_WINOGRAD"], "w").write(
            str(_core.build_info()["conv2d_winograd"]))
        np.save({str(tmp_path)!r} + "/x.npy", x)
        np.save({str(tmp_path)!r} + "/w.npy", w)
    """
    for flag in ("0", "1"):
        run_python(code, env={"FASTNN_CONV_WINOGRAD": flag})
    x, w = np.load(tmp_path / "x.npy"), np.load(tmp_path / "w.npy")
    direct, wino = np.load(tmp_path / "y_0.npy"), np.load(tmp_path / "y_1.npy")
    desired = ref.conv2d_forward(x, w, padding=1)
    check(direct, desired, ref.conv2d_forward(np.abs(x), np.abs(w), padding=1), 16 * 9)
    check(wino, desired, winograd_magnitude(x, w, (1, 1, 1, 1)), 16 * 9)
    assert (tmp_path / "on_0").read_text() == "False"  # what show_config reports
    if fastnn._config.config()["isa_selected"] in ("avx2", "avx512"):
        assert (tmp_path / "on_1").read_text() == "True"
        assert not np.array_equal(direct, wino)


def test_out_argument(rng):
    x, w = randn(rng, 2, 3, 8, 8), randn(rng, 4, 3, 3, 3)
    out = np.full((2, 4, 8, 8), np.nan, np.float32)
    assert ops.conv2d_forward(x, w, padding=1, out=out) is out
    np.testing.assert_allclose(out, ref.conv2d_forward(x, w, padding=1), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The reference's gradients against float64 finite differences of the reference forward.


@pytest.mark.parametrize(
    "case", [(2, 4, 5, 6, 4, 3, 2, (2, 1), (1, 0), (1, 2), 2), (1, 2, 4, 4, 3, 2, 2, 1, "same", 1, 1)], ids=str
)
def test_reference_gradients_match_finite_differences(case):
    B, C, H, W, OC, KH, KW, st, pad, dil, g = case
    r = np.random.default_rng(3)
    x, w = r.standard_normal((B, C, H, W)), r.standard_normal((OC, C // g, KH, KW))
    b = r.standard_normal(OC)
    y = ref.conv2d_forward(x, w, b, st, pad, dil, g)
    dy = r.standard_normal(y.shape)
    loss = lambda x_, w_, b_: float((ref.conv2d_forward(x_, w_, b_, st, pad, dil, g) * dy).sum())
    grads = {
        "x": ref.conv2d_backward_data(dy, w, x.shape, st, pad, dil, g),
        "w": ref.conv2d_backward_weight(dy, x, w.shape, st, pad, dil, g),
        "b": ref.conv2d_backward_bias(dy),
    }
    h = 1e-6  # central differences of a function linear in each argument: error ~ rounding only
    for name, arr in (("x", x), ("w", w), ("b", b)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            orig = arr[i]
            arr[i] = orig + h
            up = loss(x, w, b)
            arr[i] = orig - h
            down = loss(x, w, b)
            arr[i] = orig
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Against PyTorch (skipped without it).


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("case", CASES[:8] + CASES[10:], ids=str)
def test_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    B, C, H, W, OC, KH, KW, st, pad, dil, g = case
    x, w, b = randn(rng, B, C, H, W), randn(rng, OC, C // g, KH, KW), randn(rng, OC)
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, st, pad, dil, g)
    dy = randn(rng, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    # float32 on both sides, different summation orders: a few ulps of the output magnitude
    tol = dict(rtol=2e-4, atol=2e-4 * (1 + np.abs(yt.detach().numpy()).max()))
    np.testing.assert_allclose(ops.conv2d_forward(x, w, b, st, pad, dil, g), yt.detach().numpy(), **tol)
    np.testing.assert_allclose(
        ops.conv2d_backward_data(dy, w, x.shape, st, pad, dil, g), xt.grad.numpy(), rtol=2e-4, atol=2e-3
    )
    np.testing.assert_allclose(
        ops.conv2d_backward_weight(dy, x, w.shape, st, pad, dil, g), wt.grad.numpy(), rtol=2e-4, atol=2e-3
    )
    np.testing.assert_allclose(ops.conv2d_backward_bias(dy), bt.grad.numpy(), rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Bad input: a TypeError or ValueError naming conv2d, never a crash.


def _x():
    return np.zeros((2, 4, 8, 8), np.float32)


def _w():
    return np.zeros((6, 4, 3, 3), np.float32)


BAD = [
    ("x float64", lambda: ops.conv2d_forward(_x().astype(np.float64), _w()), TypeError, "float32"),
    ("w list", lambda: ops.conv2d_forward(_x(), [[1.0]]), TypeError, "weight"),
    ("x 3-D", lambda: ops.conv2d_forward(np.zeros((4, 8, 8), np.float32), _w()), ValueError, "4-D"),
    ("channels", lambda: ops.conv2d_forward(_x(), np.zeros((6, 3, 3, 3), np.float32)), ValueError, "in_channels"),
    (
        "groups",
        lambda: ops.conv2d_forward(_x(), np.zeros((6, 2, 3, 3), np.float32), groups=2 * 2),
        ValueError,
        "groups",
    ),
    (
        "oc groups",
        lambda: ops.conv2d_forward(_x(), np.zeros((5, 2, 3, 3), np.float32), groups=2),
        ValueError,
        "divisible",
    ),
    ("kernel too big", lambda: ops.conv2d_forward(_x(), np.zeros((6, 4, 9, 3), np.float32)), ValueError, "kernel size"),
    ("stride 0", lambda: ops.conv2d_forward(_x(), _w(), stride=0), ValueError, "stride"),
    ("negative pad", lambda: ops.conv2d_forward(_x(), _w(), padding=-1), ValueError, "padding"),
    ("same strided", lambda: ops.conv2d_forward(_x(), _w(), stride=2, padding="same"), ValueError, "same"),
    ("pad word", lambda: ops.conv2d_forward(_x(), _w(), padding="full"), ValueError, "padding"),
    ("bias shape", lambda: ops.conv2d_forward(_x(), _w(), np.zeros(5, np.float32)), ValueError, "bias"),
    ("activation", lambda: ops.conv2d_forward(_x(), _w(), activation="tanh"), ValueError, "activation"),
    ("out shape", lambda: ops.conv2d_forward(_x(), _w(), out=np.zeros((2, 6, 8, 8), np.float32)), ValueError, "out"),
    (
        "out strided",
        lambda: ops.conv2d_forward(_x(), _w(), padding=1, out=np.zeros((2, 6, 8, 16), np.float32)[..., ::2]),
        ValueError,
        "C-contiguous",
    ),
    (
        "out read-only",
        lambda: ops.conv2d_forward(_x(), _w(), padding=1, out=_readonly((2, 6, 8, 8))),
        ValueError,
        "writeable",
    ),
    (
        "x strided",
        lambda: ops.conv2d_forward(np.zeros((2, 4, 8, 16), np.float32)[..., ::2], _w()),
        ValueError,
        "C-contiguous",
    ),
    (
        "dy shape",
        lambda: ops.conv2d_backward_data(np.zeros((2, 6, 5, 5), np.float32), _w(), (2, 4, 8, 8)),
        ValueError,
        "grad_output",
    ),
    ("dw out aliases dy", lambda: _alias_dw(), ValueError, "share memory"),
    (
        "input_shape 3-D",
        lambda: ops.conv2d_backward_data(np.zeros((2, 6, 6, 6), np.float32), _w(), (4, 8, 8)),
        ValueError,
        "4-D",
    ),
    ("bias grad 2-D", lambda: ops.conv2d_backward_bias(np.zeros((2, 6), np.float32)), ValueError, "4-D"),
]


def _readonly(shape):
    a = np.zeros(shape, np.float32)
    a.setflags(write=False)
    return a


def _alias_dw():
    buf = np.zeros(2 * 6 * 6 * 6, np.float32)
    dy = buf.reshape(2, 6, 6, 6)
    return ops.conv2d_backward_weight(dy, _x(), (6, 4, 3, 3), out=buf[: 6 * 4 * 9].reshape(6, 4, 3, 3))


@pytest.mark.parametrize("name,call,exc,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, call, exc, needle):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    assert "conv2d" in msg and needle in msg, msg
