"""conv2d: forward, backward-data, backward-weight and bias on every ISA path against the float64
reference; the reference against float64 finite differences and against torch; thread
invariance; bad input; the same on every backend (the emulated device, a GPU: conftest.backend),
and one set of argument rules for both devices."""

import inspect
import re

import fastnn
import numpy as np
import pytest
from conftest import ISAS, compute_sanitizer, num_threads, randn, refusal, run_python
from fastnn import _core, cuda, ops, ref
from fastnn._conv import conv2d_params
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray

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
# Whole-image kernels (one output pixel, no padding): one gemm over the batch, images as rows
# (16 or more output channels), or as columns with the outputs transposed back (fewer outputs
# than images; one output: no transpose). Small images in blocks of several images side by
# side, each through a zero-padded copy: 49 pixels in blocks of 10, 10 and 3 images; grouped;
# stride 1 where backward_data cannot run as a forward (one input channel per group); a 2x2
# kernel at 15x15; a padding too large to copy.
WHOLE_IMAGE = [
    (5, 6, 7, 7, 20, 7, 7, 1, 0, 1, 1),
    (5, 6, 3, 4, 3, 3, 4, 2, 0, 1, 1),
    (3, 5, 4, 4, 1, 4, 4, 1, 0, 1, 1),
]
IMAGE_BLOCKS = [
    (23, 8, 14, 14, 12, 4, 4, 2, 1, 1, 1),
    (7, 6, 9, 9, 4, 3, 3, 2, 1, 1, 2),
    (5, 1, 6, 6, 8, 3, 3, 1, 0, 1, 1),
    (4, 3, 15, 15, 5, 2, 2, 2, 0, 1, 1),
    (2, 1, 1, 1, 2, 3, 3, 100, 400, 1, 1),  # a padded copy past 512K floats: bounds-checked im2col
]
CASES += FEW_TAPS + AVX2_DIRECT + WINOGRAD + WHOLE_IMAGE + IMAGE_BLOCKS


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
        *WHOLE_IMAGE,
        IMAGE_BLOCKS[0],
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
    "case",
    [CASES[0], CASES[1], CASES[4], CASES[10]] + DIRECT + FEW_TAPS + AVX2_DIRECT + WINOGRAD + WHOLE_IMAGE + IMAGE_BLOCKS,
    ids=str,
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
    ("w list", lambda: ops.conv2d_forward(_x(), [[1.0]]), TypeError, "expected w to be"),
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
        "expected dy of shape",
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
    assert msg.startswith(f"fastnn.ops.{_op_called(call)}: ") and needle in msg, msg


def _op_called(call):
    """The fastnn.ops.conv2d_* entry a table's call makes (each makes one): its refusals name it."""
    src = inspect.getsource(call)
    found = set(re.findall(r"ops\.(conv2d_\w+)\(", src))
    if not found:  # a call of a helper of this file that makes it
        found = {_op_called(globals()[h]) for h in re.findall(r"\b(_\w+)\(\)", src)}
    (op,) = found
    return op


# ---------------------------------------------------------------------------------------------
# Every backend: the CPU at each ISA, the emulated device in each fiber order, a GPU when there
# is one (conftest.backend), through the entries that take fastnn._core's arguments, so any
# asymmetric padding runs. Padding is (top, bottom, left, right); the references see the input
# padded explicitly (np.pad) and no padding. Bounds: float32 sums of K products, 2 (K + 2)
# eps32 times the same sum of magnitudes; each result is also within twice that of the CPU's.

# (B, C, H, W, OC, KH, KW, stride, padding (t, b, l, r), dilation, groups); the implicit GEMMs
# tile 64 x 64 outputs with K in steps of 16.
DEVICE_CASES = {
    "1x1": (2, 5, 7, 9, 6, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "3x3_pad1": (2, 3, 9, 9, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "5x5_same": (1, 4, 10, 7, 3, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 1),
    "3x3_stride2_asym": (2, 4, 11, 8, 6, 3, 3, (2, 2), (1, 2, 0, 1), (1, 1), 1),
    # stride and dilation sharing a factor: input rows of one parity meet no tap at all
    "stride23_dil2": (2, 3, 13, 14, 5, 3, 3, (2, 3), (2, 2, 1, 3), (2, 2), 1),
    "2x2_stride3_gaps": (2, 3, 10, 9, 4, 2, 2, (3, 3), (0, 0, 0, 0), (1, 1), 1),
    "even_kernel_same": (1, 3, 7, 6, 4, 4, 2, (1, 1), (1, 2, 1, 1), (1, 2), 1),
    "groups2": (2, 6, 9, 8, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "depthwise": (2, 7, 9, 10, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 7),
    "depthwise_x2_5x5_stride2": (1, 4, 11, 11, 8, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), 4),
    # tile edges: M = 65, N = 63, K = 17 forward; M = 63, N = 65, K = 18 forward
    "tiles_M65_N63_K17": (1, 17, 9, 7, 65, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "tiles_M63_N65_K18": (1, 2, 13, 5, 63, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    # backward_weight's N = C*KH*KW = 65, backward_data's M = C = 65
    "tiles_Kg65": (1, 13, 6, 6, 3, 5, 1, (1, 1), (2, 2, 0, 0), (1, 1), 1),
    "tiles_C65": (2, 65, 4, 3, 3, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "one_pixel": (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "kernel_fills_padded_input": (1, 2, 3, 3, 2, 5, 5, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "empty_batch": (0, 3, 5, 5, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    # backward_weight splits its B*OH*OW = 504 reduction into 4 chunks (the last one short)
    "split_reduction": (3, 2, 14, 12, 3, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
}


def out_hw(case):
    """(OH, OW) of a case, as torch computes them."""
    B, C, H, W, OC, KH, KW, (SH, SW), (PT, PB, PL, PR), (DH, DW), G = case
    return (H + PT + PB - DH * (KH - 1) - 1) // SH + 1, (W + PL + PR - DW * (KW - 1) - 1) // SW + 1


def padded(x, pad):
    pt, pb, pl, pr = pad
    return np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))


def check_sum(got, want, mag, k, cpu):
    """got within 2 (k + 2) eps32 * mag of the float64 want, and of the CPU's result (both err)."""
    bound = 2 * (k + 2) * EPS32 * np.asarray(mag, np.float64) + 1e-30
    assert got.shape == want.shape == cpu.shape and not np.isnan(got).any()
    np.testing.assert_array_less(np.abs(got - want), bound)
    np.testing.assert_array_less(np.abs(got - cpu), 2 * bound)


@pytest.mark.parametrize("name", list(DEVICE_CASES))
def test_every_backend(rng, backend, name):
    case = DEVICE_CASES[name]
    B, C, H, W, OC, KH, KW, st, pad, dil, G = case
    OH, OW = out_hw(case)
    K, P, get = backend.kernels, backend.put, backend.get
    x, w, bias = randn(rng, B, C, H, W), randn(rng, OC, C // G, KH, KW), randn(rng, OC)
    xp, kw = padded(x, pad), dict(stride=st, dilation=dil, groups=G)
    args = (st, pad, dil, G)

    # The cases take turns: bias and fused ReLU, neither, bias alone.
    bias, relu = [(bias, "relu"), (None, None), (bias, None)][list(DEVICE_CASES).index(name) % 3]
    y = get(K.conv2d_forward(P(x), P(w), None if bias is None else P(bias), *args, relu, None))
    want = ref.conv2d_forward(xp, w, bias, activation=relu, **kw)
    mag = ref.conv2d_forward(np.abs(xp), np.abs(w), None if bias is None else np.abs(bias), **kw)
    check_sum(y, want, mag, C // G * KH * KW, _core.conv2d_forward(x, w, bias, *args, relu, None))

    dy = randn(rng, *y.shape)
    dx = get(K.conv2d_backward_data(P(dy), P(w), x.shape, *args, None))
    pt, pb, pl, pr = pad
    crop = (slice(None), slice(None), slice(pt, pt + H), slice(pl, pl + W))
    want = ref.conv2d_backward_data(dy, w, xp.shape, **kw)[crop]
    mag = ref.conv2d_backward_data(np.abs(dy), np.abs(w), xp.shape, **kw)[crop]
    check_sum(dx, want, mag, OC // G * KH * KW, _core.conv2d_backward_data(dy, w, x.shape, *args, None))

    dw = get(K.conv2d_backward_weight(P(dy), P(x), w.shape, *args, None))
    want = ref.conv2d_backward_weight(dy, xp, w.shape, **kw)
    mag = ref.conv2d_backward_weight(np.abs(dy), np.abs(xp), w.shape, **kw)
    check_sum(dw, want, mag, B * OH * OW, _core.conv2d_backward_weight(dy, x, w.shape, *args, None))

    if OC <= 8 or not backend.device:  # a block per channel on a device: spare the emulator 63 and 65
        db = get(K.conv2d_backward_bias(P(dy), None))
        mag = ref.conv2d_backward_bias(np.abs(dy))
        check_sum(db, ref.conv2d_backward_bias(dy), mag, B * OH * OW, _core.conv2d_backward_bias(dy))


def test_relu_keeps_nan_and_zeroes_negatives(backend):
    """The fused ReLU is torch's on every backend: max(0, NaN) stays NaN."""
    x = np.array([[[[1.0, -2.0, np.nan]]]], np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    y = backend.get(ops.conv2d_forward(backend.put(x), backend.put(w), activation="relu"))
    assert y[0, 0, 0, 0] == 1.0 and y[0, 0, 0, 1] == 0.0 and np.isnan(y[0, 0, 0, 2])


@pytest.mark.parametrize(
    "xs,ws,kw",
    [
        # 'same' padding, dilation, groups; backward_weight's B*OH*OW = 504 reduction splits on a device
        ((3, 4, 14, 12), (6, 2, 3, 3), dict(stride=1, padding="same", dilation=(1, 2), groups=2)),
        ((2, 3, 11, 9), (5, 3, 4, 4), dict(stride=(2, 3), padding=(1, 2))),
        ((0, 3, 11, 9), (5, 3, 4, 4), dict(stride=(2, 3), padding=(1, 2))),  # an empty batch
    ],
    ids=["same_dilated_grouped", "strided", "empty_batch"],
)
def test_ops_on_every_backend(rng, backend, xs, ws, kw):
    """fastnn.ops end to end (bias, fused ReLU, out=) on each backend against the reference."""
    P, get = backend.put, backend.get

    def check(got, want, mag, k):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_less(np.abs(got - want), 2 * (k + 2) * EPS32 * mag + 1e-30)

    x, w, b = randn(rng, *xs), randn(rng, *ws), randn(rng, ws[0])
    y = ops.conv2d_forward(P(x), P(w), P(b), activation="relu", **kw)
    mag = ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), **kw)
    check(get(y), ref.conv2d_forward(x, w, b, activation="relu", **kw), mag, ws[1] * ws[2] * ws[3])
    dy = randn(rng, *y.shape)
    dx = ops.conv2d_backward_data(P(dy), P(w), x.shape, **kw)
    mag = ref.conv2d_backward_data(np.abs(dy), np.abs(w), x.shape, **kw)
    check(get(dx), ref.conv2d_backward_data(dy, w, x.shape, **kw), mag, ws[0] * ws[2] * ws[3])
    out = P(np.full(w.shape, np.nan, np.float32))
    dw = ops.conv2d_backward_weight(P(dy), P(x), w.shape, out=out, **kw)
    assert dw is out
    n = max(1, y.shape[0] * y.shape[2] * y.shape[3])
    mag = ref.conv2d_backward_weight(np.abs(dy), np.abs(x), w.shape, **kw)
    check(get(dw), ref.conv2d_backward_weight(dy, x, w.shape, **kw), mag, n)
    db = ops.conv2d_backward_bias(P(dy))
    check(get(db), ref.conv2d_backward_bias(dy), ref.conv2d_backward_bias(np.abs(dy)), n)


# ---------------------------------------------------------------------------------------------
# The device's own: backward_weight's split reduction and its order independence (emulated).


def workspace(case):
    B, C, H, W, OC, KH, KW, st, pad, dil, G = case
    return fastnn.cuda._module.conv2d_backward_weight_workspace((B, C, H, W), (OC, C // G, KH, KW), st, pad, dil, G)


def test_split_reduction_case_splits(emulated_gpu):
    """The case meant to split backward_weight's reduction does, and the small ones do not."""
    assert workspace(DEVICE_CASES["split_reduction"]) == 4 * 3 * 2 * 9
    assert workspace(DEVICE_CASES["5x5_same"]) == 0


def test_device_results_do_not_depend_on_the_order_or_the_workers(rng, monkeypatch, dev):
    """Every output element is summed by one thread in a fixed order (no atomics): the bits are
    the same in every fiber order and with several workers running blocks at once."""
    case = DEVICE_CASES["split_reduction"]
    B, C, H, W, OC, KH, KW, st, pad, dil, G = case
    x, w, bias = randn(rng, B, C, H, W), randn(rng, OC, C, KH, KW), randn(rng, OC)
    dy = randn(rng, B, OC, *out_hw(case))
    args = (st, pad, dil, G)
    runs = []
    for order_, workers in (("forward", "1"), ("reverse", "1"), ("random", "4")):
        monkeypatch.setenv("FASTNN_EMU_ORDER", order_)
        monkeypatch.setenv("FASTNN_EMU_WORKERS", workers)
        runs.append(
            [
                dev.conv2d_forward(x, w, bias, *args, "relu", None),
                dev.conv2d_backward_data(dy, w, x.shape, *args, None),
                dev.conv2d_backward_weight(dy, x, w.shape, *args, None),
                dev.conv2d_backward_bias(dy, None),
            ]
        )
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# One set of rules for both devices (csrc/ops/conv2d_meta.cpp): the device accepts and refuses
# exactly what the CPU does, in the same words, and agrees on the output sizes (on the emulated
# device, and on the CUDA module itself where built, every check before a launch:
# FakeDeviceArray); with a GPU and CuPy, the kernels against the CPU.


def _outcome(A, xs, ws, st, pad, dil, G):
    """The output shape of conv2d_forward on arrays wrapped by A, or the error's type and text."""
    try:
        x, w = A(np.zeros(xs, np.float32)), A(np.zeros(ws, np.float32))
        return ops.conv2d_forward(x, w, None, st, dil_pad(pad), dil, G).shape
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)


def dil_pad(pad):
    """(top, bottom, left, right) -> the pair fastnn.ops takes when it is symmetric."""
    return (pad[0], pad[2])


def test_geometry_accepts_refuses_and_sizes_alike_on_both_devices(rng, emulated_gpu):
    """Small random convolutions, about a third of them impossible (channels that do not match
    the groups, kernels past the padded input, zero strides or dilations, negative padding):
    the CPU and the (emulated) device give the same output shape or the same error, word for
    word (both apply conv2d's one meta function)."""
    cp = emulated_gpu
    refused = 0
    for _ in range(400):
        G = int(rng.integers(1, 4))
        C = int(rng.integers(1, 5))
        Cw = C // G if C % G == 0 and rng.random() < 0.8 else int(rng.integers(0, 3))
        xs = (int(rng.integers(0, 3)), C, int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        ws = (int(rng.integers(0, 6)), Cw, int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        st = tuple(int(v) for v in rng.integers(0 if rng.random() < 0.05 else 1, 4, 2))
        ph, pw = (int(v) for v in rng.integers(-1 if rng.random() < 0.05 else 0, 3, 2))
        pad = (ph, ph, pw, pw)
        dil = tuple(int(v) for v in rng.integers(0 if rng.random() < 0.05 else 1, 3, 2))
        cpu = _outcome(lambda a: a, xs, ws, st, pad, dil, G)
        dev = _outcome(cp.asarray, xs, ws, st, pad, dil, G)
        assert cpu == dev, (xs, ws, st, pad, dil, G)
        refused += isinstance(cpu[0], str)
    assert 50 < refused < 350


@pytest.mark.parametrize(
    "xs,ws", [((1, 1, 2**16, 2**16), (1, 1, 1, 1)), ((1, 2**14, 1, 2**18), (1, 2**14, 1, 1))], ids=["plane", "Kg_x_OW"]
)
def test_geometry_refuses_the_cpus_32_bit_limits(xs, ws, emulated_gpu):
    """Sizes past 2^31 - 1 per image or weight: both devices refuse them before touching any
    data (input_shape of backward_data is only a tuple)."""
    dy, w = np.zeros((1, 1, 1, 1), np.float32), np.zeros(ws, np.float32)
    args = (xs, (1, 1), (0, 0, 0, 0), (1, 1), 1, None)
    with pytest.raises(ValueError, match="past 2\\^31") as cpu:
        fastnn._core.conv2d_backward_data(dy, w, *args)
    with pytest.raises(ValueError, match="past 2\\^31") as dev:
        cuda.run("conv2d_backward_data", emulated_gpu.asarray(dy), emulated_gpu.asarray(w), *args)
    assert str(cpu.value) == str(dev.value)


# ---- argument checks: the CPU op and the CUDA path refuse the same calls ----


def _arrays(rng):
    return {
        "x": randn(rng, 2, 4, 6, 5),
        "w": randn(rng, 6, 2, 3, 3),
        "b": randn(rng, 6),
        "dy": randn(rng, 2, 6, 4, 3),
        "x1": randn(rng, 1, 3, 3, 3),
        "w5": randn(rng, 1, 3, 5, 5),
        "w_oc5": randn(rng, 5, 2, 3, 3),
        "b7": randn(rng, 7),
        "x3d": randn(rng, 4, 6, 5),
        "dy_bad": randn(rng, 2, 6, 4, 4),
        "y_bad": randn(rng, 2, 6, 4, 4),
    }


# name -> (call(A, arrays), exception): A wraps each array (NumPy itself, or FakeDeviceArray);
# groups=2 throughout unless the case is about groups (x has 4 channels, w 2 per group).
BAD_CALLS = {
    "groups_0": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), groups=0), ValueError),
    "channels_vs_groups": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), groups=1), ValueError),
    "out_channels_vs_groups": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w_oc5"]), groups=2), ValueError),
    "kernel_past_input": (lambda A, a: ops.conv2d_forward(A(a["x1"]), A(a["w5"])), ValueError),
    "dilation_past_input": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), dilation=3, groups=2), ValueError),
    "stride_0": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), stride=0, groups=2), ValueError),
    "dilation_0": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), dilation=(1, 0), groups=2), ValueError),
    "negative_padding": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), padding=-1, groups=2), ValueError),
    "same_strided": (
        lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), stride=2, padding="same", groups=2),
        ValueError,
    ),
    "padding_word": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), padding="full", groups=2), ValueError),
    "bias_shape": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), A(a["b7"]), groups=2), ValueError),
    "activation": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), activation="tanh", groups=2), ValueError),
    "x_3d": (lambda A, a: ops.conv2d_forward(A(a["x3d"]), A(a["w"]), groups=2), ValueError),
    "w_3d": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["x3d"]), groups=2), ValueError),
    "x_float64": (lambda A, a: ops.conv2d_forward(A(a["x"].astype(np.float64)), A(a["w"]), groups=2), TypeError),
    "out_shape": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), groups=2, out=A(a["y_bad"])), ValueError),
    "data_dy_shape": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy_bad"]), A(a["w"]), (2, 4, 6, 5), groups=2),
        ValueError,
    ),
    "data_input_shape_3d": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"]), (4, 6, 5), groups=2),
        ValueError,
    ),
    "data_negative_batch": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"]), (-2, 4, 6, 5), groups=2),
        ValueError,
    ),
    "data_zero_height": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"]), (2, 4, 0, 5), groups=2),
        ValueError,
    ),
    "data_out_shape": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"]), (2, 4, 6, 5), groups=2, out=A(a["x"][:1])),
        ValueError,
    ),
    "weight_dy_shape": (
        lambda A, a: ops.conv2d_backward_weight(A(a["dy_bad"]), A(a["x"]), (6, 2, 3, 3), groups=2),
        ValueError,
    ),
    "weight_shape_3d": (
        lambda A, a: ops.conv2d_backward_weight(A(a["dy"]), A(a["x"]), (6, 2, 3), groups=2),
        ValueError,
    ),
    "weight_groups": (
        lambda A, a: ops.conv2d_backward_weight(A(a["dy"]), A(a["x"]), (6, 2, 3, 3), groups=1),
        ValueError,
    ),
    "weight_out_overlaps_x": (
        lambda A, a: ops.conv2d_backward_weight(
            A(a["dy"]), A(a["x"]), (6, 2, 3, 3), groups=2, out=A(a["x"].reshape(-1)[:108].reshape(6, 2, 3, 3))
        ),
        ValueError,
    ),
    "bias_dy_3d": (lambda A, a: ops.conv2d_backward_bias(A(a["x3d"])), ValueError),
    "bias_out_shape": (lambda A, a: ops.conv2d_backward_bias(A(a["dy"]), out=A(a["b7"])), ValueError),
    # neither an int nor a sequence: was tuple()'s "'NoneType' object is not iterable" (found by
    # the fuzz suite, tests/fuzz)
    "groups_bool": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), groups=True), TypeError),
    "groups_numpy_float": (  # was truncated by int(): np.float32(2.9) for 2 (found by the fuzz suite)
        lambda A, a: ops.conv2d_backward_weight(A(a["dy"]), A(a["x"]), (6, 2, 3, 3), groups=np.float32(2.9)),
        TypeError,
    ),
    # shapes that are not sequences of ints: were tuple()'s TypeError, or "not enough values to
    # unpack" for a short weight_shape with padding='same' (found by the fuzz suite, tests/fuzz)
    "input_shape_none": (lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"]), None, groups=2), TypeError),
    "weight_shape_str": (
        lambda A, a: ops.conv2d_backward_weight(A(a["dy"]), A(a["x"]), "x", padding="same", groups=2),
        TypeError,
    ),
    "w_3d_same": (  # was conv2d_params' "not enough values to unpack" (found by the fuzz suite)
        lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"][0]), padding="same", groups=2),
        ValueError,
    ),
    "w_3d_same_backward_data": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"][0]), (2, 4, 6, 5), padding="same", groups=2),
        ValueError,
    ),
    "weight_shape_short_same": (
        lambda A, a: ops.conv2d_backward_weight(A(a["dy"]), A(a["x"]), (6, 2), padding="same", groups=2),
        ValueError,
    ),
    "stride_none": (lambda A, a: ops.conv2d_forward(A(a["x"]), A(a["w"]), stride=None, groups=2), TypeError),
    "dilation_float": (
        lambda A, a: ops.conv2d_backward_data(A(a["dy"]), A(a["w"]), (2, 4, 6, 5), dilation=1.0, groups=2),
        TypeError,
    ),
    "padding_none": (
        lambda A, a: ops.conv2d_backward_weight(A(a["dy"]), A(a["x"]), (6, 2, 3, 3), padding=None, groups=2),
        TypeError,
    ),
    # the other entries' size rule for channels and planes: an empty dy with 2^31 + 1 channels
    # asked for an 8 GiB output (found by the fuzz suite, tests/fuzz)
    "bias_dy_channels_past_2^31": (
        lambda A, a: ops.conv2d_backward_bias(A(np.empty((0, 2**31 + 1, 0, 1), np.float32))),
        ValueError,
    ),
    "bias_dy_plane_past_2^31": (
        lambda A, a: ops.conv2d_backward_bias(A(np.empty((0, 1, 2**16, 2**16), np.float32))),
        ValueError,
    ),
    "bias_dy_plane_dims_past_2^32": (
        lambda A, a: ops.conv2d_backward_bias(A(np.empty((0, 1, 2**40, 2**20), np.float32))),
        ValueError,
    ),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    with pytest.raises(exc, match=f"^fastnn.ops.{_op_called(call)}: "):
        call(lambda v: v, _arrays(rng))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices: the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _arrays(rng))
    dev = refusal(call, emulated_gpu.ndarray, _arrays(rng))  # no copy: overlaps stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _arrays(rng))
    assert refusal(call, FakeDeviceArray, _arrays(rng)) == cpu


def test_device_conv2d_refuses_mixed_strided_and_read_only_arrays(rng, emulated_gpu):
    cp = emulated_gpu
    a = _arrays(rng)
    with pytest.raises(TypeError, match="conv2d_forward: expected w to be a CUDA array.*cannot be mixed"):
        ops.conv2d_forward(cp.asarray(a["x"]), a["w"], groups=2)
    with pytest.raises(TypeError, match="conv2d_backward_weight: expected x to be a CUDA array"):
        ops.conv2d_backward_weight(cp.asarray(a["dy"]), a["x"], (6, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="conv2d_forward: expected x to be C-contiguous"):
        ops.conv2d_forward(cp.asarray(a["x"]).transpose(0, 1, 3, 2), cp.asarray(a["w"]), groups=2)
    y = np.zeros((2, 6, 4, 3), np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="conv2d_forward: expected out to be writeable, got a read-only array"):
        ops.conv2d_forward(cp.asarray(a["x"]), cp.asarray(a["w"]), groups=2, out=cp.ndarray(y))
    dy = cp.asarray(a["dy"])
    with pytest.raises(ValueError, match="conv2d_backward_bias: expected out not to share memory with dy"):
        ops.conv2d_backward_bias(dy, out=dy.reshape(-1)[5:11])


# ---- On a GPU (CuPy end to end) ----


def _close(got, want, mag, k):
    """Both float32 sums of k products (the GPU's and the CPU's): each within (k + 2) eps32 mag
    of the exact value, so within twice that of each other."""
    assert got.shape == want.shape
    np.testing.assert_array_less(np.abs(got - want), 4 * (k + 2) * EPS32 * mag + 1e-30)


def _cupy():
    if not cuda.is_available():
        pytest.skip("no CUDA device")
    return pytest.importorskip("cupy")


# (B, C, H, W, OC, K, stride, padding, dilation, groups): a ResNet-like 3x3, a strided 5x5, a
# depthwise 3x3, a pointwise with many pixels, a first layer (7x7 / 2, few channels: the split
# backward_weight), and odd sizes.
GPU_CASES = [
    (4, 16, 32, 32, 32, 3, 1, 1, 1, 1),
    (2, 8, 17, 19, 16, 5, 2, 2, 1, 1),
    (2, 32, 14, 14, 32, 3, 1, 1, 1, 32),
    (8, 64, 7, 7, 128, 1, 1, 0, 1, 1),
    (2, 3, 64, 64, 8, 7, 2, 3, 1, 1),
    (3, 10, 13, 11, 20, 3, 1, "same", 2, 2),
]


@pytest.mark.parametrize("case", GPU_CASES, ids=str)
def test_gpu_conv2d_matches_cpu(rng, case):
    cp = _cupy()
    B, C, H, W, OC, K, s, p, d, G = case
    x, w, b = randn(rng, B, C, H, W), randn(rng, OC, C // G, K, K), randn(rng, OC)
    kw = dict(stride=s, padding=p, dilation=d, groups=G)
    y = ops.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), activation="relu", **kw)
    _close(
        cp.asnumpy(y),
        ops.conv2d_forward(x, w, b, activation="relu", **kw),
        ops.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), **kw),
        C // G * K * K,
    )
    dy = randn(rng, *y.shape)
    _close(
        cp.asnumpy(ops.conv2d_backward_data(cp.asarray(dy), cp.asarray(w), x.shape, **kw)),
        ops.conv2d_backward_data(dy, w, x.shape, **kw),
        ops.conv2d_backward_data(np.abs(dy), np.abs(w), x.shape, **kw),
        OC // G * K * K,
    )
    n = B * y.shape[2] * y.shape[3]
    dw = ops.conv2d_backward_weight(cp.asarray(dy), cp.asarray(x), w.shape, **kw)
    _close(
        cp.asnumpy(dw),
        ops.conv2d_backward_weight(dy, x, w.shape, **kw),
        ops.conv2d_backward_weight(np.abs(dy), np.abs(x), w.shape, **kw),
        n,
    )
    again = ops.conv2d_backward_weight(cp.asarray(dy), cp.asarray(x), w.shape, **kw)
    np.testing.assert_array_equal(cp.asnumpy(dw), cp.asnumpy(again))  # no atomics: the same bits
    _close(
        cp.asnumpy(ops.conv2d_backward_bias(cp.asarray(dy))),
        ops.conv2d_backward_bias(dy),
        ops.conv2d_backward_bias(np.abs(dy)),
        n,
    )


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
for (B, C, H, W, OC, K, s, p, G) in [(2, 3, 33, 31, 8, 7, 2, 3, 1), (3, 6, 13, 11, 6, 3, 1, 1, 6),
                                     (2, 8, 9, 10, 70, 1, 1, 0, 2)]:
    x = cp.asarray(r.standard_normal((B, C, H, W), dtype=np.float32))
    w = cp.asarray(r.standard_normal((OC, C // G, K, K), dtype=np.float32))
    y = ops.conv2d_forward(x, w, cp.zeros(OC, cp.float32), s, p, groups=G, activation="relu")
    ops.conv2d_backward_data(y, w, x.shape, s, p, groups=G)
    ops.conv2d_backward_weight(y, x, w.shape, s, p, groups=G)
    ops.conv2d_backward_bias(y)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck"])
def test_compute_sanitizer_is_clean_on_conv2d(tool):
    """The four conv2d ops (the split backward_weight included) under compute-sanitizer (needs a
    GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)


def test_reference_of_an_empty_batch_with_a_huge_padding():
    # padding='same' with a dilation of 2^31 - 1: the kernels answer an empty batch at once, the
    # reference padded a (0, 1, 2^31, 2^31) array NumPy cannot make (found by the fuzz suite)
    x, dy = np.zeros((0, 1, 1, 1), np.float32), np.zeros((0, 1, 1, 1), np.float32)
    w = np.ones((1, 1, 2, 2), np.float32)
    opts = dict(padding="same", dilation=2**31 - 1)
    np.testing.assert_array_equal(
        ops.conv2d_backward_weight(dy, x, w.shape, **opts), ref.conv2d_backward_weight(dy, x, w.shape, **opts)
    )
    np.testing.assert_array_equal(
        ops.conv2d_backward_data(dy, w, x.shape, **opts), ref.conv2d_backward_data(dy, w, x.shape, **opts)
    )
    np.testing.assert_array_equal(ops.conv2d_forward(x, w, **opts), ref.conv2d_forward(x, w, **opts))


def test_sizes_past_32_bits_are_refused_and_empty_planes_cost_nothing():
    """A stride or padding past 2^31-1 is a ValueError before any work; the bias gradient of
    empty planes is zero without a loop over a batch of 2^40 (no memory: a 0-size array)."""
    x, w = np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="conv2d_forward: expected every size, stride, padding and dilation"):
        ops.conv2d_forward(x, w, stride=2**31)
    with pytest.raises(ValueError, match="conv2d_forward: expected every size, stride, padding and dilation"):
        ops.conv2d_forward(x, w, padding=2**40)
    db = ops.conv2d_backward_bias(np.empty((2**40, 3, 0, 5), np.float32))
    np.testing.assert_array_equal(db, np.zeros(3, np.float32))


def test_a_weight_shape_whose_channels_times_groups_overflow_is_refused():
    # in_channels / groups checked by division: (2^62) * 8 groups overflowed int64 (undefined
    # behaviour that the sanitizer build stops on), found by the fuzz table under UBSan
    dy, x = np.zeros((1, 8, 1, 1), np.float32), np.zeros((1, 8, 3, 3), np.float32)
    with pytest.raises(ValueError, match="conv2d_backward_weight: expected weight of shape"):
        ops.conv2d_backward_weight(dy, x, (8, 2**62, 3, 3), groups=8)
