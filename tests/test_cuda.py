"""fastnn.cuda and the fastnn._cuda module: it imports without a GPU or a driver (static CUDA
runtime), reports itself, and dispatch refuses mixed or malformed arrays before any launch.
With a GPU and CuPy, every CUDA op against the CPU kernels (skipped elsewhere; the kernels
themselves are checked without a GPU by tests/test_cuda_emu.py)."""

import os

import fastnn
import numpy as np
import pytest
from conftest import compute_sanitizer, randn, refusal
from fastnn import cuda, ops

BUILT = cuda.info()["built"]
if os.environ.get("FASTNN_REQUIRE_CUDA") == "1":
    assert BUILT, "FASTNN_REQUIRE_CUDA=1 but fastnn._cuda is not built"


class FakeDeviceArray:
    """Host memory dressed as a CUDA array: dispatch must reject it before any launch."""

    def __init__(self, a, typestr=None, strides=None):
        self.a = a
        self.__cuda_array_interface__ = {
            "shape": a.shape,
            "typestr": typestr or a.dtype.str,
            "strides": strides,
            "data": (a.ctypes.data, False),
            "version": 3,
        }


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_module_reports_itself_without_a_driver():
    import fastnn._cuda as m

    assert m.__version__ == fastnn._core.__version__
    assert m.runtime_version() >= 12000
    assert m.architectures and "native" not in m.architectures
    assert m.device_count() >= 0
    if m.driver_version() == 0:  # no driver: no device, and fastnn runs on the CPU
        assert m.device_count() == 0 and not cuda.is_available()


def test_is_available_means_a_device_is_visible():
    assert cuda.is_available() is (cuda.device_count() > 0)
    assert cuda.info()["built"] == BUILT


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_mixing_numpy_and_cuda_arrays_is_a_type_error(rng):
    a, b = randn(rng, 3, 4), randn(rng, 4, 5)
    with pytest.raises(TypeError, match="fastnn.ops.gemm: expected a to be a CUDA array.*cannot be mixed"):
        ops.gemm(a, FakeDeviceArray(b))
    with pytest.raises(TypeError, match="fastnn.ops.relu_backward: expected x to be a CUDA array"):
        ops.relu_backward(FakeDeviceArray(a), a)


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_malformed_cuda_arrays_are_refused(rng):
    a = randn(rng, 3, 4)
    with pytest.raises(TypeError, match="fastnn.ops.softmax_forward: expected x to be float32, got float64"):
        ops.softmax_forward(FakeDeviceArray(a.astype(np.float64)))
    with pytest.raises(ValueError, match="fastnn.ops.gemm: expected op\\(a\\) \\(M, K\\) and op\\(b\\) \\(K, N\\)"):
        ops.gemm(FakeDeviceArray(a), FakeDeviceArray(randn(rng, 5, 2)))


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_cuda_optimizer_checks_every_tensor_before_launching(rng):
    p, g = FakeDeviceArray(randn(rng, 4)), FakeDeviceArray(randn(rng, 5))
    with pytest.raises(
        ValueError, match="fastnn.ops.sgd_step: expected grads\\[0\\] of params\\[0\\]'s shape \\(4,\\), got \\(5,\\)"
    ):
        ops.sgd_step([p], [g], None, 0.1)
    with pytest.raises(
        ValueError, match="fastnn.ops.adam_step: expected grads to hold 1 arrays \\(one per param\\), got 2"
    ):
        ops.adam_step([p], [g, g], [p], [p], 1)


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_cuda_embedding_wants_int64_indices(rng):
    w = FakeDeviceArray(randn(rng, 5, 3))
    with pytest.raises(TypeError, match="fastnn.ops.embedding_forward: expected indices to be int64, got int32"):
        ops.embedding_forward(w, FakeDeviceArray(np.zeros(4, np.int32)))
    with pytest.raises(
        ValueError, match="layer_norm_forward: expected x whose trailing dimensions are normalized_shape"
    ):
        ops.layer_norm_forward(FakeDeviceArray(randn(rng, 3, 5)), (4,))


# One table of bad calls for both devices (the ops' meta functions are the rules of each): each
# call(A, x) with A wrapping arrays for a device and x a (3, 4) float32 array.
SAME_WORDS = {
    "gemm_inner": lambda A, x: ops.gemm(A(x), A(x)),
    "gemm_1d": lambda A, x: ops.gemm(A(x[0]), A(x)),
    "gemm_float64": lambda A, x: ops.gemm(A(x.astype(np.float64)), A(x.T.copy())),
    "gemm_batch": lambda A, x: ops.gemm(A(np.stack([x, x])), A(np.stack([x.T, x.T, x.T]))),
    "gemm_bias": lambda A, x: ops.gemm(A(x), A(x.T.copy()), bias=A(x[0])),
    "gemm_activation": lambda A, x: ops.gemm(A(x), A(x.T.copy()), activation="tanh"),
    "gemm_beta_without_c": lambda A, x: ops.gemm(A(x), A(x.T.copy()), beta=1.0),
    "gemm_c_shape": lambda A, x: ops.gemm(A(x), A(x.T.copy()), A(x), beta=1.0),
    "gemm_out_shape": lambda A, x: ops.gemm(A(x), A(x.T.copy()), out=A(x)),
    "act_float64": lambda A, x: ops.tanh_forward(A(x.astype(np.float64))),
    "act_shapes": lambda A, x: ops.sigmoid_backward(A(x), A(x[:2])),
    "act_slope": lambda A, x: ops.leaky_relu_forward(A(x), "0.1"),
    "act_approximate": lambda A, x: ops.gelu_forward(A(x), "erf"),
    "act_out_shape": lambda A, x: ops.relu_forward(A(x), out=A(x[:2])),
    "softmax_dim": lambda A, x: ops.softmax_forward(A(x), 2),
    "softmax_0d": lambda A, x: ops.log_softmax_forward(A(np.array(1.0, np.float32))),
    "softmax_shapes": lambda A, x: ops.softmax_backward(A(x), A(x.T.copy())),
    "ln_trailing": lambda A, x: ops.layer_norm_forward(A(x), (3,)),
    "ln_empty_shape": lambda A, x: ops.layer_norm_forward(A(x), ()),
    "ln_shape_type": lambda A, x: ops.layer_norm_forward(A(x), "4"),
    "ln_weight": lambda A, x: ops.layer_norm_forward(A(x), 4, A(x[0, :3])),
    "ln_eps": lambda A, x: ops.layer_norm_forward(A(x), 4, eps=-1.0),
    "ln_mean_rows": lambda A, x: ops.layer_norm_backward(A(x), A(x), A(x[:2, :1]), A(x[:2, :1])),
    "ln_dy_shape": lambda A, x: ops.layer_norm_backward(A(x[:2]), A(x), A(x[:, :1]), A(x[:, :1])),
    "emb_weight_1d": lambda A, x: ops.embedding_forward(A(x[0]), A(np.zeros(2, np.int64))),
    "emb_index_range": lambda A, x: ops.embedding_forward(A(x), A(np.array([0, 2, 3, 1], np.int64))),
    "emb_index_negative": lambda A, x: ops.embedding_backward(A(x), A(np.array([0, -1, 1], np.int64)), 5),
    "emb_padding": lambda A, x: ops.embedding_forward(A(x), A(np.zeros(2, np.int64)), padding_idx=3),
    "emb_padding_type": lambda A, x: ops.embedding_forward(A(x), A(np.zeros(2, np.int64)), padding_idx=1.0),
    "emb_dy_shape": lambda A, x: ops.embedding_backward(A(x), A(np.zeros(2, np.int64)), 5),
    "emb_num_embeddings": lambda A, x: ops.embedding_backward(A(x), A(np.zeros(3, np.int64)), -1),
    "softmax_out_aliases_y": lambda A, x: (lambda y: ops.softmax_backward(A(x.copy()), y, out=y))(A(x)),
    "sgd_lengths": lambda A, x: ops.sgd_step([A(x)], [A(x.copy()), A(x.copy())], None, 0.1),
    "sgd_shapes": lambda A, x: ops.sgd_step([A(x)], [A(x[:2].copy())], None, 0.1),
    "sgd_grad_float64": lambda A, x: ops.sgd_step([A(x)], [A(x.astype(np.float64))], None, 0.1),
    "sgd_param_strided": lambda A, x: ops.sgd_step([A(x.T)], [A(x.T.copy())], None, 0.1),
    "sgd_param_read_only": lambda A, x: ops.sgd_step([A(_read_only(x))], [A(x.copy())], None, 0.1),
    "sgd_no_buffers": lambda A, x: ops.sgd_step([A(x)], [A(x.copy())], None, 0.1, momentum=0.9),
    "sgd_buffers_length": lambda A, x: ops.sgd_step([A(x)], [A(x.copy())], [], 0.1, momentum=0.9),
    "sgd_nesterov": lambda A, x: ops.sgd_step(
        [A(x)], [A(x.copy())], [A(x.copy())], 0.1, momentum=0.9, dampening=0.5, nesterov=True
    ),
    "sgd_buffer_overlaps_param": lambda A, x: ops.sgd_step(
        [A(x.reshape(-1)[:6])], [A(x.reshape(-1)[:6].copy())], [A(x.reshape(-1)[3:9])], 0.1, momentum=0.9
    ),
    "sgd_params_overlap": lambda A, x: ops.sgd_step(
        [A(x[:2]), A(x[1:])], [A(x[:2].copy()), A(x[1:].copy())], None, 1.0
    ),
    "adam_step_0": lambda A, x: ops.adam_step([A(x)], [A(x.copy())], [A(x.copy())], [A(x.copy())], 0),
    "adam_beta1_nan": lambda A, x: ops.adam_step([A(x)], [A(x.copy())], [A(x.copy())], [A(x.copy())], 1, beta1=np.nan),
    "adam_no_exp_avgs": lambda A, x: ops.adam_step([A(x)], [A(x.copy())], None, [A(x.copy())], 1),
    "adam_amsgrad_without_max": lambda A, x: ops.adam_step(
        [A(x)], [A(x.copy())], [A(x.copy())], [A(x.copy())], 1, amsgrad=True
    ),
    "adam_state_shape": lambda A, x: ops.adam_step([A(x)], [A(x.copy())], [A(x.copy())], [A(x[:1].copy())], 1),
    "adam_state_aliases_grad": lambda A, x: (lambda g: ops.adam_step([A(x)], [g], [g], [A(x.copy())], 1))(A(x.copy())),
    "grad_norm_order": lambda A, x: ops.grad_norm([A(x)], -1.0),
    "grad_norm_strided": lambda A, x: ops.grad_norm([A(x), A(x.T)]),
    "batch_norm_x_3d": lambda A, x: ops.batch_norm2d_forward(A(x.reshape(1, 3, 4)), None, None, None, None, True),
    "batch_norm_weight_shape": lambda A, x: ops.batch_norm2d_forward(
        A(x.reshape(1, 3, 2, 2)), A(x[0].copy()), None, None, None, True
    ),
}


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("name", list(SAME_WORDS))
def test_both_devices_refuse_bad_calls_in_the_samerefusal(rng, name, emulated_gpu):
    x = randn(rng, 3, 4)
    cpu = refusal(SAME_WORDS[name], lambda a: a, x)
    dev = refusal(SAME_WORDS[name], emulated_gpu.ndarray, x)
    assert cpu is not None and cpu[1].startswith("fastnn.ops."), cpu
    assert dev == cpu


def test_device_optimizer_steps_refuse_mixed_arrays(rng, emulated_gpu):
    cp = emulated_gpu
    p, g = randn(rng, 4), randn(rng, 4)
    with pytest.raises(TypeError, match="sgd_step: expected grads\\[0\\] to be a CUDA array.*cannot be mixed"):
        ops.sgd_step([cp.asarray(p)], [g], None, 0.1)
    with pytest.raises(TypeError, match="adam_step: expected exp_avgs\\[0\\] to be a CUDA array"):
        ops.adam_step([cp.asarray(p)], [cp.asarray(g)], [p], [cp.asarray(p)], 1)
    with pytest.raises(TypeError, match="adam_step: expected max_exp_avg_sqs to be a list of CUDA arrays, got ndarray"):
        ops.adam_step(
            [cp.asarray(p)],
            [cp.asarray(g)],
            [cp.asarray(p)],
            [cp.asarray(p)],
            1,
            amsgrad=True,
            max_exp_avg_sqs=cp.asarray(p),
        )
    ops.sgd_step([], [], None, 0.1)  # no array: nothing to do, as on the CPU


def test_without_the_module_cuda_arrays_are_a_type_error(rng, monkeypatch):
    monkeypatch.setattr(cuda, "_module", None)
    monkeypatch.setattr(cuda, "_tried", True)
    with pytest.raises(TypeError, match="built without CUDA"):
        ops.tanh_forward(FakeDeviceArray(randn(rng, 4)))


# ---- On a GPU (CuPy end to end) ----


def _cupy():
    if not cuda.is_available():
        pytest.skip("no CUDA device")
    return pytest.importorskip("cupy")


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
a, b = (cp.asarray(r.standard_normal(s, dtype=np.float32)) for s in ((65, 33), (33, 70)))
ops.gemm(a, b, bias=cp.zeros(70, cp.float32), activation="relu")
x = cp.asarray(r.standard_normal((37, 100), dtype=np.float32))
y = ops.softmax_forward(x); ops.softmax_backward(x, y); ops.log_softmax_forward(x, 0)
ops.gelu_backward(x, x); ops.sigmoid_forward(x)
y, mean, rstd = ops.layer_norm_forward(x, (100,), cp.ones(100, cp.float32), cp.zeros(100, cp.float32))
ops.layer_norm_backward(x, x, mean, rstd, cp.ones(100, cp.float32))
idx = cp.asarray(r.integers(0, 20, 64))
ops.embedding_backward(ops.embedding_forward(x[:20], idx), idx, 20, 0)
x4 = x.reshape(1, 37, 10, 10)
y4, i4 = ops.max_pool2d_forward(x4, 3, 2, 1, 1, True)
ops.max_pool2d_backward(y4, x4, i4, 3, 2, 1, 1, True, relu=True)
ops.avg_pool2d_backward(ops.avg_pool2d_forward(x4, 2), x4, 2)
ops.global_avg_pool2d_backward(ops.global_avg_pool2d_forward(x4), x4)
tgt = cp.asarray(r.integers(0, 100, 37))
ops.cross_entropy_backward(ops.cross_entropy_forward(x, tgt, label_smoothing=0.1), x, tgt)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck"])
def test_compute_sanitizer_is_clean(tool):
    """Every CUDA op once under compute-sanitizer (needs a GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)
