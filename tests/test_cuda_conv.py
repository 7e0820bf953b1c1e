"""conv2d on CUDA arrays: both devices apply conv2d's one meta function (csrc/ops/conv2d_meta.cpp),
so the device accepts and refuses exactly what the CPU does, in the same words, and agrees on
the output sizes (checked on the emulated device, and on the CUDA module itself where built,
every check before a launch: FakeDeviceArray); and with a GPU and CuPy, the kernels against the
CPU (skipped elsewhere; tests/test_cuda_emu_conv.py checks the kernels without a GPU)."""

import fastnn
import numpy as np
import pytest
from conftest import compute_sanitizer, randn
from fastnn import cuda, ops
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray


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
}


def _refusal(call, A, arrays):
    try:
        call(A, arrays)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    return None


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    with pytest.raises(exc, match="fastnn.ops.conv2d: "):
        call(lambda v: v, _arrays(rng))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices: the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = _refusal(call, lambda v: v, _arrays(rng))
    dev = _refusal(call, emulated_gpu.ndarray, _arrays(rng))  # no copy: overlaps stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = _refusal(call, lambda v: v, _arrays(rng))
    assert _refusal(call, FakeDeviceArray, _arrays(rng)) == cpu


def test_device_conv2d_refuses_mixed_strided_and_read_only_arrays(rng, emulated_gpu):
    cp = emulated_gpu
    a = _arrays(rng)
    with pytest.raises(TypeError, match="conv2d: expected weight to be a CUDA array.*cannot be mixed"):
        ops.conv2d_forward(cp.asarray(a["x"]), a["w"], groups=2)
    with pytest.raises(TypeError, match="conv2d: expected input to be a CUDA array"):
        ops.conv2d_backward_weight(cp.asarray(a["dy"]), a["x"], (6, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="conv2d: expected input to be C-contiguous"):
        ops.conv2d_forward(cp.asarray(a["x"]).transpose(0, 1, 3, 2), cp.asarray(a["w"]), groups=2)
    y = np.zeros((2, 6, 4, 3), np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="conv2d: expected out to be writeable, got a read-only array"):
        ops.conv2d_forward(cp.asarray(a["x"]), cp.asarray(a["w"]), groups=2, out=cp.ndarray(y))
    dy = cp.asarray(a["dy"])
    with pytest.raises(ValueError, match="conv2d: expected out not to share memory with grad_output"):
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
