"""Batch norm and grad_norm on CUDA arrays: both devices apply the same meta functions
(csrc/ops/batchnorm_meta.cpp, csrc/ops/optim_meta.cpp), so a table of bad calls is refused alike
in the same words (on the emulated device, and on the CUDA module itself where built, before
any launch: FakeDeviceArray); the dispatch end to end on the emulated device (fake CuPy,
tests/fake_cupy.py); and with a GPU and CuPy, against the CPU ops (skipped elsewhere; the
kernels themselves are checked by tests/test_cuda_emu_norm.py)."""

import math

import numpy as np
import pytest
from conftest import compute_sanitizer, randn
from fastnn import ops
from test_batchnorm import MODES, _case, _copy, check_backward, check_forward
from test_cuda import BUILT, FakeDeviceArray, _cupy


def _arrays(rng):
    return {
        "x": randn(rng, 2, 3, 4, 5),
        "w": randn(rng, 3),
        "b": randn(rng, 3),
        "rm": np.zeros(3, np.float32),
        "rv": np.ones(3, np.float32),
        "sm": np.zeros(3, np.float32),
        "si": np.ones(3, np.float32),
        "dy": randn(rng, 2, 3, 4, 5),
        "read_only": np.zeros(3, np.float32),
    }


def _fwd(A, a, training=True, momentum=0.1, eps=1e-5, **arrays):
    """batch_norm2d_forward on the arrays of a (each wrapped by A), those of `arrays` replaced."""
    args = dict(x=a["x"], weight=a["w"], bias=a["b"], running_mean=a["rm"], running_var=a["rv"], out=None)
    args.update(arrays)
    d = {k: None if v is None else A(v) for k, v in args.items()}
    return ops.batch_norm2d_forward(
        d["x"], d["weight"], d["bias"], d["running_mean"], d["running_var"], training, momentum, eps, out=d["out"]
    )


# name -> (call(A, arrays), exception): A wraps each array for a device (NumPy itself, fake
# CuPy's ndarray around the same memory, FakeDeviceArray); every call is refused.
BAD_CALLS = {
    "fwd_x_float64": (lambda A, a: _fwd(A, a, x=a["x"].astype(np.float64)), TypeError),
    "fwd_x_3d": (lambda A, a: _fwd(A, a, x=a["x"][0]), ValueError),
    "fwd_x_strided": (lambda A, a: _fwd(A, a, x=a["x"].transpose(0, 1, 3, 2)), ValueError),
    "fwd_weight_shape": (lambda A, a: _fwd(A, a, weight=np.ones(4, np.float32)), ValueError),
    "fwd_bias_float64": (lambda A, a: _fwd(A, a, bias=a["b"].astype(np.float64)), TypeError),
    "fwd_one_running_stat": (lambda A, a: _fwd(A, a, running_var=None), ValueError),
    "fwd_eval_without_stats": (
        lambda A, a: _fwd(A, a, running_mean=None, running_var=None, training=False),
        ValueError,
    ),
    "fwd_one_value": (lambda A, a: _fwd(A, a, x=np.ones((1, 3, 1, 1), np.float32)), ValueError),
    "fwd_eps": (lambda A, a: _fwd(A, a, eps=-1.0), ValueError),
    "fwd_eps_inf": (lambda A, a: _fwd(A, a, eps=float("inf")), ValueError),
    "fwd_momentum": (lambda A, a: _fwd(A, a, momentum=math.nan), ValueError),
    "fwd_running_read_only": (lambda A, a: _fwd(A, a, running_mean=a["read_only"]), ValueError),
    "fwd_running_aliased": (lambda A, a: _fwd(A, a, running_var=a["rm"]), ValueError),
    "fwd_running_overlaps_x": (lambda A, a: _fwd(A, a, running_var=a["x"].reshape(-1)[1:4]), ValueError),
    "fwd_out_aliases_x": (lambda A, a: _fwd(A, a, out=a["x"]), ValueError),
    "fwd_out_overlaps_running_var": (
        lambda A, a: _fwd(A, a, running_var=a["dy"].reshape(-1)[:3], out=a["dy"]),
        ValueError,
    ),
    "fwd_out_shape": (lambda A, a: _fwd(A, a, out=np.zeros((2, 3, 4, 4), np.float32)), ValueError),
    "fwd_out_float64": (lambda A, a: _fwd(A, a, out=np.zeros((2, 3, 4, 5))), TypeError),
    "bwd_shapes": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"][:, :, :3]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"])),
        ValueError,
    ),
    "bwd_dy_3d": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"][0]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"])),
        ValueError,
    ),
    "bwd_no_save_mean": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"]), A(a["x"]), A(a["w"]), None, A(a["si"])),
        ValueError,
    ),
    "bwd_save_invstd_shape": (
        lambda A, a: ops.batch_norm2d_backward(A(a["dy"]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"][:2])),
        ValueError,
    ),
    "bwd_save_mean_float64": (
        lambda A, a: ops.batch_norm2d_backward(
            A(a["dy"]), A(a["x"]), A(a["w"]), A(a["sm"].astype(np.float64)), A(a["si"])
        ),
        TypeError,
    ),
    "bwd_out_aliases_dy": (
        lambda A, a: ops.batch_norm2d_backward(
            A(a["dy"]), A(a["x"]), A(a["w"]), A(a["sm"]), A(a["si"]), out=A(a["dy"])
        ),
        ValueError,
    ),
    "norm_type_0": (lambda A, a: ops.grad_norm([A(a["x"])], 0.0), ValueError),
    "norm_type_nan": (lambda A, a: ops.grad_norm([A(a["x"])], math.nan), ValueError),
    "norm_float64": (lambda A, a: ops.grad_norm([A(a["x"]), A(np.zeros(3))]), TypeError),
    "norm_strided": (lambda A, a: ops.grad_norm([A(a["x"][:, :, :, ::2])]), ValueError),
}


def _read_only(a):
    a["read_only"].flags.writeable = False
    return a


def _refusal(call, A, arrays):
    try:
        call(A, arrays)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    return None


def _fake(a):
    """FakeDeviceArray with a's strides and writeability (host memory: refused before a launch)."""
    f = FakeDeviceArray(a, strides=None if a.flags.c_contiguous else a.strides)
    f.__cuda_array_interface__["data"] = (a.ctypes.data, not a.flags.writeable)
    return f


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    op = "grad_norm" if name.startswith("norm") else "batch_norm2d_" + ("forward" if name[0] == "f" else "backward")
    with pytest.raises(exc, match=f"^fastnn.ops.{op}: "):
        call(lambda v: v, _read_only(_arrays(rng)))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices (batch norm's and grad_norm's meta functions are the rules of
    each): the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = _refusal(call, lambda v: v, _read_only(_arrays(rng)))
    dev = _refusal(call, emulated_gpu.ndarray, _read_only(_arrays(rng)))  # no copy: overlaps stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch or allocation), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = _refusal(call, lambda v: v, _read_only(_arrays(rng)))
    assert _refusal(call, _fake, _read_only(_arrays(rng))) == cpu


def test_device_refuses_mixed_arrays(rng, emulated_gpu):
    cp = emulated_gpu
    a = _arrays(rng)
    x, w = cp.asarray(a["x"]), cp.asarray(a["w"])
    with pytest.raises(TypeError, match="batch_norm2d_forward: expected bias to be a CUDA array.*cannot be mixed"):
        ops.batch_norm2d_forward(x, w, a["b"], None, None, True)
    with pytest.raises(TypeError, match="batch_norm2d_backward: expected save_mean to be a CUDA array"):
        ops.batch_norm2d_backward(x, x, w, a["sm"], cp.asarray(a["si"]))
    with pytest.raises(TypeError, match="grad_norm: expected arrays\\[0\\] to be a CUDA array"):
        ops.grad_norm([a["x"], x])
    assert ops.grad_norm([]) == 0.0  # no array: the CPU op's 0.0


# ---- On the emulated device (fake CuPy): ops -> fastnn.cuda -> the bindings -> the kernels ----


@pytest.mark.parametrize("training,affine,stats", MODES)
def test_emulated_batch_norm_matches_cpu(rng, emulated_gpu, training, affine, stats):
    cp = emulated_gpu
    x, wt, b, rm, rv, dy = _case(rng, (2, 2, 5, 3), affine, stats)
    dev = [None if a is None else cp.asarray(a) for a in (x, wt, b, rm, rv, dy)]
    rm_c, rv_c = _copy(rm), _copy(rv)
    got = ops.batch_norm2d_forward(*dev[:5], training)
    want = ops.batch_norm2d_forward(x, wt, b, rm_c, rv_c, training)
    assert all(isinstance(a, cp.ndarray) for a in got)
    got = tuple(a.get() for a in got)
    run = None if rm is None else (dev[3].get(), rm_c.astype(np.float64), dev[4].get(), rv_c.astype(np.float64))
    check_forward(x, training, got, tuple(a.astype(np.float64) for a in want), wt, run, c=2.0)
    out = cp.asarray(np.full(x.shape, np.nan, np.float32))
    g = ops.batch_norm2d_backward(dev[5], dev[0], dev[1], cp.asarray(got[1]), cp.asarray(got[2]), training, out=out)
    assert g[0] is out and (g[1] is None) == (wt is None)
    g = tuple(None if a is None else a.get() for a in g)
    gc = ops.batch_norm2d_backward(dy, x, wt, got[1], got[2], training)
    check_backward(
        dy, x, wt, got[1], got[2], training, g, tuple(None if a is None else a.astype(np.float64) for a in gc), c=2.0
    )


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_emulated_grad_norm_matches_cpu(rng, emulated_gpu, p):
    cp = emulated_gpu
    arrays = [randn(rng, *s) for s in ((3,), (4097,), (0,), (5, 7))]
    got = ops.grad_norm([cp.asarray(a) for a in arrays], p)
    assert isinstance(got, float)
    # float64 sums of < 5000 terms in a different order: far below 1e-13 relative
    assert got == pytest.approx(ops.grad_norm(arrays, p), rel=1e-13)
    assert ops.grad_norm((cp.asarray(np.zeros(4, np.float32)),), str(p)) == 0.0


# ---- On a GPU (CuPy end to end) ----


@pytest.mark.parametrize("training,affine,stats", MODES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 171, 1), (8, 3, 64, 65)], ids=str)
def test_gpu_batch_norm_matches_cpu(rng, shape, training, affine, stats):
    cp = _cupy()
    x, wt, b, rm, rv, dy = _case(rng, shape, affine, stats)
    dev = [None if a is None else cp.asarray(a) for a in (x, wt, b, rm, rv, dy)]
    rm_c, rv_c = _copy(rm), _copy(rv)
    got = tuple(cp.asnumpy(a) for a in ops.batch_norm2d_forward(*dev[:5], training))
    want = ops.batch_norm2d_forward(x, wt, b, rm_c, rv_c, training)
    run = (
        None
        if rm is None
        else (cp.asnumpy(dev[3]), rm_c.astype(np.float64), cp.asnumpy(dev[4]), rv_c.astype(np.float64))
    )
    check_forward(x, training, got, tuple(a.astype(np.float64) for a in want), wt, run, c=2.0)
    g = ops.batch_norm2d_backward(dev[5], dev[0], dev[1], cp.asarray(got[1]), cp.asarray(got[2]), training)
    g2 = ops.batch_norm2d_backward(dev[5], dev[0], dev[1], cp.asarray(got[1]), cp.asarray(got[2]), training)
    g = tuple(None if a is None else cp.asnumpy(a) for a in g)
    for a, a2 in zip(g, g2):  # deterministic: the same bits on a second run
        if a is not None:
            np.testing.assert_array_equal(a, cp.asnumpy(a2))
    gc = ops.batch_norm2d_backward(dy, x, wt, got[1], got[2], training)
    check_backward(
        dy, x, wt, got[1], got[2], training, g, tuple(None if a is None else a.astype(np.float64) for a in gc), c=2.0
    )


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_gpu_grad_norm_matches_cpu(rng, p):
    cp = _cupy()
    # 5M elements: more than 1024 blocks of 4096, so the capped grid strides further
    arrays = [randn(rng, *s) for s in ((3,), (4097,), (0,), (5, 7), (5_000_001,))]
    dev = [cp.asarray(a) for a in arrays]
    got = ops.grad_norm(dev, p)
    assert isinstance(got, float) and got == ops.grad_norm(dev, p)  # deterministic
    # float64 sums of 5M terms in two different orders: ~1e-12 relative at worst (depth ~ 1e3 adds)
    assert got == pytest.approx(ops.grad_norm(arrays, p), rel=1e-12)


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
x = cp.asarray(r.standard_normal((3, 5, 7, 9), dtype=np.float32))
w, b = cp.ones(5, cp.float32), cp.zeros(5, cp.float32)
rm, rv = cp.zeros(5, cp.float32), cp.ones(5, cp.float32)
for training in (True, False):
    y, sm, si = ops.batch_norm2d_forward(x, w, b, rm, rv, training)
    ops.batch_norm2d_backward(x, x, w, sm, si, training)
    ops.batch_norm2d_backward(x, x, None, sm, si, training)
ops.batch_norm2d_forward(x[:0], None, None, rm, rv, True)
for p in (2.0, 1.0, float("inf"), 3.0):
    ops.grad_norm([x, w, cp.asarray(r.standard_normal(10000, dtype=np.float32))], p)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck"])
def test_compute_sanitizer_is_clean(tool):
    """Batch norm and grad_norm under compute-sanitizer (needs a GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)
