"""The CUDA conv2d kernels (csrc/cuda/conv2d.cu) run by the emulator, against the CPU op
(fastnn._core, on the same normalised arguments) and the float64 references of fastnn.ref, in
the three fiber orders: forward (bias, fused ReLU), backward data, weight and bias; and
fastnn.ops on CUDA arrays end to end (fastnn.cuda and the fastnn._cuda bindings) on the
emulated device.

Padding is given as (top, bottom, left, right), as fastnn._core takes it, so any asymmetric
padding is tested; the references see the input padded explicitly (np.pad) and no padding.
Bounds are float32 sums of K products: 2 (K + 2) eps32 times the same sum of magnitudes."""

import fastnn
import numpy as np
import pytest
from conftest import num_threads, randn
from fastnn import ops, ref
from test_cuda_emu import EPS32, dev, emu, order  # noqa: F401 (order, dev: fixtures)


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """The CPU op on one thread (its results are the same for every count): under
    ThreadSanitizer the barriers of the uninstrumented OpenMP runtime are unseen, so its
    threads' work would be reported as races."""
    with num_threads(1):
        yield


# (B, C, H, W, OC, KH, KW, stride, padding (t, b, l, r), dilation, groups); the implicit GEMMs
# tile 64 x 64 outputs with K in steps of 16.
CASES = {
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


def check(got, want, mag, k, cpu=None):
    """got within 2 (k + 2) eps32 * mag of the float64 want, and of the CPU's result (both err)."""
    bound = 2 * (k + 2) * EPS32 * np.asarray(mag, np.float64) + 1e-30
    assert got.shape == want.shape and not np.isnan(got).any()
    np.testing.assert_array_less(np.abs(got - want), bound)
    if cpu is not None:
        assert cpu.shape == got.shape
        np.testing.assert_array_less(np.abs(got - cpu), 2 * bound)


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d(rng, order, dev, name):
    case = CASES[name]
    B, C, H, W, OC, KH, KW, st, pad, dil, G = case
    OH, OW = out_hw(case)
    x, w, bias = randn(rng, B, C, H, W), randn(rng, OC, C // G, KH, KW), randn(rng, OC)
    xp, kw = padded(x, pad), dict(stride=st, dilation=dil, groups=G)
    cpu_args = (st, pad, dil, G)

    # The cases take turns: bias and fused ReLU, neither, bias alone.
    bias, relu = [(bias, "relu"), (None, None), (bias, None)][list(CASES).index(name) % 3]
    y = dev.conv2d_forward(x, w, bias, *cpu_args, relu, None)
    want = ref.conv2d_forward(xp, w, bias, activation=relu, **kw)
    mag = ref.conv2d_forward(np.abs(xp), np.abs(w), None if bias is None else np.abs(bias), **kw)
    cpu = fastnn._core.conv2d_forward(x, w, bias, *cpu_args, relu, None)
    check(y, want, mag, C // G * KH * KW, cpu)

    dy = randn(rng, *y.shape)
    dx = dev.conv2d_backward_data(dy, w, x.shape, *cpu_args, None)
    pt, pb, pl, pr = pad
    crop = (slice(None), slice(None), slice(pt, pt + H), slice(pl, pl + W))
    want = ref.conv2d_backward_data(dy, w, xp.shape, **kw)[crop]
    mag = ref.conv2d_backward_data(np.abs(dy), np.abs(w), xp.shape, **kw)[crop]
    cpu = fastnn._core.conv2d_backward_data(dy, w, x.shape, *cpu_args, None)
    check(dx, want, mag, OC // G * KH * KW, cpu)

    dw = dev.conv2d_backward_weight(dy, x, w.shape, *cpu_args, None)
    want = ref.conv2d_backward_weight(dy, xp, w.shape, **kw)
    mag = ref.conv2d_backward_weight(np.abs(dy), np.abs(xp), w.shape, **kw)
    cpu = fastnn._core.conv2d_backward_weight(dy, x, w.shape, *cpu_args, None)
    check(dw, want, mag, B * OH * OW, cpu)

    if OC <= 8:  # a block per channel, the same code for any count: spare the emulator the 63 and 65
        db = dev.conv2d_backward_bias(dy, None)
        check(
            db,
            ref.conv2d_backward_bias(dy),
            ref.conv2d_backward_bias(np.abs(dy)),
            B * OH * OW,
            fastnn._core.conv2d_backward_bias(dy),
        )


def workspace(case):
    B, C, H, W, OC, KH, KW, st, pad, dil, G = case
    return emu.device.conv2d_backward_weight_workspace((B, C, H, W), (OC, C // G, KH, KW), st, pad, dil, G)


def test_split_reduction_case_splits():
    """The case meant to split backward_weight's reduction does, and the small ones do not."""
    assert workspace(CASES["split_reduction"]) == 4 * 3 * 2 * 9
    assert workspace(CASES["5x5_same"]) == 0


def test_relu_keeps_nan_and_zeroes_negatives(order, dev):
    """The fused ReLU is the CPU's: max(0, NaN) stays NaN."""
    x = np.array([[[[1.0, -2.0, np.nan]]]], np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    y = dev.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, "relu", None)
    assert y[0, 0, 0, 0] == 1.0 and y[0, 0, 0, 1] == 0.0 and np.isnan(y[0, 0, 0, 2])
    cpu = fastnn._core.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, "relu", None)
    np.testing.assert_array_equal(y, cpu)


def test_results_do_not_depend_on_the_order_or_the_workers(rng, monkeypatch, dev):
    """Every output element is summed by one thread in a fixed order (no atomics): the bits are
    the same in every fiber order and with several workers running blocks at once."""
    case = CASES["split_reduction"]
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


# ---- fastnn.ops end to end on the emulated device ----


def _close(got, want, mag, k):
    """Both float32 sums of k products (the GPU's and the CPU's): each within (k + 2) eps32 mag
    of the exact value, so within twice that of each other."""
    assert got.shape == want.shape
    np.testing.assert_array_less(np.abs(got - want), 4 * (k + 2) * EPS32 * mag + 1e-30)


def test_ops_run_conv2d_on_the_emulated_device(rng, emulated_gpu):
    cp = emulated_gpu
    x, w, b = randn(rng, 3, 4, 14, 12), randn(rng, 6, 2, 3, 3), randn(rng, 6)
    kw = dict(stride=1, padding="same", dilation=(1, 2), groups=2)
    y = ops.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), activation="relu", **kw)
    assert isinstance(y, cp.ndarray)
    mag = ops.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), **kw)
    _close(y.get(), ops.conv2d_forward(x, w, b, activation="relu", **kw), mag, 18)
    dy = randn(rng, *y.shape)
    dx = ops.conv2d_backward_data(cp.asarray(dy), cp.asarray(w), x.shape, **kw)
    _close(
        dx.get(),
        ops.conv2d_backward_data(dy, w, x.shape, **kw),
        ops.conv2d_backward_data(np.abs(dy), np.abs(w), x.shape, **kw),
        27,
    )
    # B*OH*OW = 504: backward_weight splits the reduction, with a workspace from fastnn.cuda
    out = cp.asarray(np.full(w.shape, np.nan, np.float32))
    dw = ops.conv2d_backward_weight(cp.asarray(dy), cp.asarray(x), w.shape, out=out, **kw)
    assert dw is out
    _close(
        dw.get(),
        ops.conv2d_backward_weight(dy, x, w.shape, **kw),
        ops.conv2d_backward_weight(np.abs(dy), np.abs(x), w.shape, **kw),
        504,
    )
    db = ops.conv2d_backward_bias(cp.asarray(dy))
    _close(db.get(), ops.conv2d_backward_bias(dy), ops.conv2d_backward_bias(np.abs(dy)), 504)


def test_ops_run_strided_conv2d_and_empty_batches_on_the_emulated_device(rng, emulated_gpu):
    cp = emulated_gpu
    x, w = randn(rng, 2, 3, 11, 9), randn(rng, 5, 3, 4, 4)
    kw = dict(stride=(2, 3), padding=(1, 2))
    y = ops.conv2d_forward(cp.asarray(x), cp.asarray(w), **kw)
    _close(y.get(), ops.conv2d_forward(x, w, **kw), ops.conv2d_forward(np.abs(x), np.abs(w), **kw), 48)
    dy = randn(rng, *y.shape)
    dx = ops.conv2d_backward_data(cp.asarray(dy), cp.asarray(w), x.shape, **kw)
    _close(
        dx.get(),
        ops.conv2d_backward_data(dy, w, x.shape, **kw),
        ops.conv2d_backward_data(np.abs(dy), np.abs(w), x.shape, **kw),
        80,
    )
    # an empty batch: empty y and dx, zero gradients of the weight and bias, as on the CPU
    x0, dy0 = np.zeros((0, 3, 11, 9), np.float32), np.zeros((0, 5) + y.shape[2:], np.float32)
    assert ops.conv2d_forward(cp.asarray(x0), cp.asarray(w), **kw).shape == (0,) + y.shape[1:]
    assert ops.conv2d_backward_data(cp.asarray(dy0), cp.asarray(w), x0.shape, **kw).shape == x0.shape
    np.testing.assert_array_equal(
        ops.conv2d_backward_weight(cp.asarray(dy0), cp.asarray(x0), w.shape, **kw).get(), np.zeros(w.shape, np.float32)
    )
    np.testing.assert_array_equal(ops.conv2d_backward_bias(cp.asarray(dy0)).get(), np.zeros(5, np.float32))
