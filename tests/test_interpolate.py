"""F.interpolate's interpolating modes ("linear", "bilinear", "trilinear", with align_corners
False and True, and "area"), nn.Upsample / nn.UpsamplingBilinear2d and the deprecated
F.upsample* aliases: outputs and input gradients against torch (skipped without it) for
output sizes and fractional scale factors up and down, float32 and float64; float64 finite
differences and hand-worked values that need no torch; the errors torch raises."""

import warnings

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import numpy as np
import pytest
from fastnn import Tensor
from nn_parity import assert_close, fd_check, raises_like

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

# float32: torch's arithmetic reproduced up to the order of the last roundings; float64: the
# same within a few ulps
RTOL = {np.float32: 1e-6, np.float64: 1e-12}
GRAD_RTOL = {np.float32: 1e-5, np.float64: 1e-12}  # float32 gradients: sums in another order

LINEAR = [("linear", (2, 3, 7)), ("bilinear", (2, 3, 5, 6)), ("trilinear", (1, 2, 4, 3, 5))]

# size / scale_factor arguments (a scalar applies to every spatial axis)
RESIZES = [
    {"scale_factor": 2},
    {"scale_factor": 1.7},
    {"scale_factor": 3.3},
    {"scale_factor": 0.6},
    {"scale_factor": 0.45},
    {"scale_factor": 1.7, "recompute_scale_factor": True},
    {"scale_factor": 0.6, "recompute_scale_factor": True},
    {"scale_factor": 1.1},  # keeps the size of an axis: copied, as torch does
    {"size": 13},
    {"size": 3},
    {"size": 1},  # n -> 1
    {"size": 2},
]


def _torch_pair(x, requires_grad=True):
    dt = x.dtype
    return Tensor(x.copy(), dtype=dt, requires_grad=requires_grad), torch.from_numpy(x.copy()).requires_grad_(
        requires_grad
    )


def _compare(rng, x, ours, theirs, what):
    """ours(Tensor) and theirs(torch tensor) on x: outputs within RTOL, dtype kept, then the
    gradients of sum(out * w) within GRAD_RTOL."""
    dt = x.dtype.type
    a, t = _torch_pair(x)
    y, yt = ours(a), theirs(t)
    assert y.dtype == x.dtype, (what, y.dtype)
    assert_close(y, yt, RTOL[dt], what + " forward")
    w = rng.standard_normal(tuple(yt.shape)).astype(dt)
    (y * Tensor(w, dtype=dt)).sum().backward()
    (yt * torch.from_numpy(w)).sum().backward()
    assert_close(a.grad, t.grad, GRAD_RTOL[dt], what + " grad")


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kw", RESIZES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("mode,shape", LINEAR, ids=[m for m, _ in LINEAR])
def test_linear_modes_match_torch(rng, mode, shape, kw, align_corners, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    _compare(
        rng,
        x,
        lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kw),
        lambda t: torch.nn.functional.interpolate(t, mode=mode, align_corners=align_corners, **kw),
        f"{mode} {kw} align_corners={align_corners}",
    )


# per-axis sizes and factors, up along one axis and down along another; 1 -> n
PER_AXIS = [
    ("bilinear", (2, 2, 4, 9), {"scale_factor": (1.7, 0.6)}),
    ("bilinear", (2, 2, 4, 9), {"size": (7, 4)}),
    ("bilinear", (1, 3, 1, 1), {"size": (5, 4)}),
    ("bilinear", (1, 2, 1, 6), {"scale_factor": 2.5}),
    ("bilinear", (3, 2, 16, 16), {"size": (5, 37)}),
    ("linear", (2, 2, 1), {"size": 6}),
    ("linear", (1, 1, 40), {"scale_factor": 0.31}),
    ("trilinear", (1, 2, 3, 4, 5), {"scale_factor": (2, 0.5, 1.3)}),
    ("trilinear", (1, 1, 2, 5, 3), {"size": (1, 7, 3)}),
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode,shape,kw", PER_AXIS)
def test_per_axis_resizes_match_torch(rng, mode, shape, kw, align_corners, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    _compare(
        rng,
        x,
        lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kw),
        lambda t: torch.nn.functional.interpolate(t, mode=mode, align_corners=align_corners, **kw),
        f"{mode} {shape} {kw}",
    )


def _torch_fuses_multiply_add():
    """torch's vectorised CPU builds (every capability but x86's baseline) compile the source
    index (o + 0.5) * r - 0.5 as one fused multiply-add, which fastnn reproduces."""
    get = getattr(getattr(torch, "backends", None) and torch.backends.cpu, "get_cpu_capability", None)
    return get is not None and get() != "DEFAULT"


@needs_torch
@pytest.mark.skipif(torch is None or not _torch_fuses_multiply_add(), reason="torch's baseline CPU kernels")
@pytest.mark.parametrize("align_corners", [False, True])
def test_float32_weights_are_torchs_bits(align_corners):
    """Each input a unit vector: the outputs are the float32 weights themselves, bit for bit."""
    for n, kw in [
        (7, {"scale_factor": 3.3}),
        (7, {"scale_factor": 1.7}),
        (9, {"scale_factor": 0.6}),
        (6, {"scale_factor": 2.1}),
        (11, {"scale_factor": 5.7}),
        (5, {"size": 13}),
        (13, {"size": 5}),
        (3, {"size": 31}),
    ]:
        eye = np.eye(n, dtype=np.float32)[None]
        y = F.interpolate(Tensor(eye), mode="linear", align_corners=align_corners, **kw)
        yt = torch.nn.functional.interpolate(torch.from_numpy(eye), mode="linear", align_corners=align_corners, **kw)
        np.testing.assert_array_equal(y.numpy(), yt.numpy(), err_msg=f"{n} {kw}")


@needs_torch
def test_float16_matches_torch(rng):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float16)
    y = F.interpolate(Tensor(x, dtype=np.float16), scale_factor=1.7, mode="bilinear")
    yt = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=1.7, mode="bilinear")
    assert y.dtype == np.float16
    assert_close(y, yt, 1e-3, "float16")  # one half-precision rounding of each axis' result


@needs_torch
def test_an_empty_batch_matches_torch():
    x = np.zeros((0, 2, 3, 4), np.float32)
    a, t = _torch_pair(x)
    y, yt = (
        F.interpolate(a, scale_factor=1.5, mode="bilinear"),
        torch.nn.functional.interpolate(t, scale_factor=1.5, mode="bilinear"),
    )
    assert tuple(y.shape) == tuple(yt.shape) == (0, 2, 4, 6)
    y.sum().backward()
    assert a.grad.shape == (0, 2, 3, 4)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "mode,shape,kw",
    [
        ("linear", (1, 2, 5), {"scale_factor": 1.7}),
        ("linear", (1, 2, 6), {"size": 4}),
        ("bilinear", (1, 1, 3, 4), {"scale_factor": (2.5, 0.6)}),
        ("bilinear", (1, 1, 3, 3), {"size": (4, 1)}),
        ("trilinear", (1, 1, 2, 3, 2), {"scale_factor": 1.5}),
    ],
)
def test_gradient_matches_finite_differences(rng, mode, shape, kw, align_corners):
    fd_check(
        lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kw), [rng.standard_normal(shape)], rng
    )


def test_values_worked_by_hand():
    x = Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32))
    y = F.interpolate(x, scale_factor=2, mode="bilinear")
    row = np.array([1.0, 1.25, 1.75, 2.0])  # sources -0.25 (clamped to 0), 0.25, 0.75, 1.25
    np.testing.assert_array_equal(y.numpy()[0, 0], np.stack([row, row + 0.5, row + 1.5, row + 2.0]))
    y = F.interpolate(x, size=3, mode="bilinear", align_corners=True)  # corners kept, midpoints
    np.testing.assert_array_equal(y.numpy()[0, 0], [[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]])
    y = F.interpolate(Tensor(np.arange(5.0)[None, None]), size=1, mode="linear", align_corners=True)
    np.testing.assert_array_equal(y.numpy(), [[[0.0]]])  # one output: the first element
    y = F.interpolate(Tensor(np.arange(6.0)[None, None]), size=3, mode="linear")
    np.testing.assert_array_equal(y.numpy(), [[[0.5, 2.5, 4.5]]])  # sources 0.5, 2.5, 4.5
    # scale_factor 1.5 given: the step is 1 / 1.5, not 4 / 6
    y = F.interpolate(Tensor(np.array([[[0.0, 3.0, 6.0, 9.0]]])), scale_factor=1.5, mode="linear")
    src = np.maximum((np.arange(6) + 0.5) / 1.5 - 0.5, 0)
    np.testing.assert_allclose(y.numpy()[0, 0], 3 * np.minimum(src, 3), rtol=1e-15)


def test_backward_is_the_adjoint():
    """<interpolate(x), g> == <x, grad> for every x: the gradient is the transposed weights."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 4))
    for kw in ({"size": (9, 3)}, {"scale_factor": (0.5, 2.7), "align_corners": True}):
        a = Tensor(x, dtype=np.float64, requires_grad=True)
        y = F.interpolate(a, mode="bilinear", **kw)
        g = rng.standard_normal(y.shape)
        (y * Tensor(g, dtype=np.float64)).sum().backward()
        np.testing.assert_allclose((y.detach().numpy() * g).sum(), (x * a.grad.numpy()).sum(), rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape,kw",
    [
        ((2, 3, 7), {"size": 3}),
        ((2, 3, 7), {"scale_factor": 0.5}),
        ((2, 2, 6, 9), {"size": (4, 4)}),
        ((2, 2, 6, 9), {"scale_factor": (0.7, 0.3)}),
    ],
)
def test_area_matches_torch(rng, shape, kw, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    _compare(
        rng,
        x,
        lambda t: F.interpolate(t, mode="area", **kw),
        lambda t: torch.nn.functional.interpolate(t, mode="area", **kw),
        f"area {kw}",
    )


@needs_torch
def test_area_to_an_empty_size_matches_torch():
    x = np.ones((2, 2, 6, 9), np.float32)
    a = Tensor(x, requires_grad=True)
    y = F.interpolate(a, scale_factor=0.1, mode="area")
    yt = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=0.1, mode="area")
    assert tuple(y.shape) == tuple(yt.shape) == (2, 2, 0, 0)
    y.sum().backward()  # torch's backward refuses the empty gradient; fastnn's is zeros
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros_like(x))


def test_linear_runs_on_cuda_arrays(emulated_gpu, rng):
    """The device path (indices and weights moved to the device, the adjoint by scatter-add)
    gives the CPU's values."""
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for kw in ({"scale_factor": 1.7}, {"size": (2, 9), "align_corners": True}):
        a = Tensor(emulated_gpu.asarray(x), requires_grad=True)
        b = Tensor(x, requires_grad=True)
        y, yb = F.interpolate(a, mode="bilinear", **kw), F.interpolate(b, mode="bilinear", **kw)
        assert y.is_cuda
        np.testing.assert_array_equal(y._data.get(), yb.detach().numpy())
        w = rng.standard_normal(yb.shape).astype(np.float32)
        (y * Tensor(emulated_gpu.asarray(w))).sum().backward()
        (yb * Tensor(w)).sum().backward()
        np.testing.assert_allclose(a.grad._data.get(), b.grad.numpy(), rtol=1e-6, atol=1e-6)


# -- modules and aliases ------------------------------------------------------------------------


@needs_torch
def test_upsample_modules_match_torch(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for name, args, kw in [
        ("Upsample", (), {"scale_factor": 2, "mode": "bilinear"}),
        ("Upsample", ((6, 7),), {"mode": "bilinear", "align_corners": True}),
        ("Upsample", (), {"scale_factor": (1.5, 0.6), "mode": "bilinear", "recompute_scale_factor": True}),
        ("Upsample", (3,), {"mode": "area"}),
        ("UpsamplingBilinear2d", (), {"scale_factor": 2}),
        ("UpsamplingBilinear2d", ((5, 3),), {}),
        ("UpsamplingNearest2d", (7,), {}),
    ]:
        ours, theirs = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
        assert repr(ours) == repr(theirs)
        assert ours.align_corners == theirs.align_corners
        _compare(rng, x, ours, theirs, repr(ours))
    x3 = rng.standard_normal((2, 3, 6)).astype(np.float64)
    ours, theirs = nn.Upsample(scale_factor=1.5, mode="linear"), torch.nn.Upsample(scale_factor=1.5, mode="linear")
    assert repr(ours) == repr(theirs) == "Upsample(scale_factor=1.5, mode='linear')"
    _compare(rng, x3, ours, theirs, "linear module")


def test_upsampling_bilinear2d_aligns_corners():
    m = nn.UpsamplingBilinear2d(scale_factor=2)
    assert repr(m) == "UpsamplingBilinear2d(scale_factor=2.0, mode='bilinear')"
    assert (m.mode, m.align_corners) == ("bilinear", True)
    y = m(Tensor(np.array([[[[0.0, 3.0]]]], np.float32)))
    np.testing.assert_array_equal(y.numpy()[0, 0], [[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])


@needs_torch
@pytest.mark.parametrize(
    "name,args,kw",
    [
        ("upsample_bilinear", (), {"scale_factor": 2}),
        ("upsample_bilinear", ((3, 7),), {}),
        ("upsample_nearest", (), {"scale_factor": 3}),
        ("upsample", (), {"scale_factor": 1.5, "mode": "bilinear"}),
        ("upsample", ((5, 6),), {"mode": "bilinear", "align_corners": True}),
    ],
)
def test_deprecated_upsample_functions_match_torch(rng, name, args, kw):
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float64)
    with pytest.warns(UserWarning, match=f"`nn.functional.{name}` is deprecated") as ours:
        _compare(
            rng,
            x,
            lambda t: getattr(F, name)(t, *args, **kw),
            lambda t: getattr(torch.nn.functional, name)(t, *args, **kw),
            name,
        )
    assert all(w.filename == __file__ for w in ours)  # pointing at the caller, as torch's


def test_interpolate_does_not_warn(rng):
    x = Tensor(rng.standard_normal((1, 1, 3, 3)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.interpolate(x, scale_factor=2, mode="bilinear")
        F.interpolate(x, scale_factor=0.6, mode="bilinear", align_corners=True)
        nn.Upsample(scale_factor=2, mode="bilinear")(x)


# -- errors -------------------------------------------------------------------------------------


@needs_torch
def test_errors_match_torch():
    tF = torch.nn.functional
    cases = [
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "linear"}),
        ((1, 1, 4, 4, 4), {"scale_factor": 2, "mode": "linear"}),
        ((1, 1, 4), {"scale_factor": 2, "mode": "bilinear"}),
        ((1, 1, 4, 4, 4), {"scale_factor": 2, "mode": "bilinear"}),
        ((1, 1, 4), {"scale_factor": 2, "mode": "trilinear"}),
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "trilinear"}),
        ((1, 1, 4), {"scale_factor": 2, "mode": "bicubic"}),
        ((4, 4), {"scale_factor": 2, "mode": "bilinear"}),
        ((1, 1, 4), {"scale_factor": 2, "mode": "linear", "antialias": True}),
        ((1, 1, 4, 4, 4), {"scale_factor": 2, "mode": "trilinear", "antialias": True}),
        ((1, 1, 4, 4), {"scale_factor": 0.1, "mode": "bilinear"}),
        ((1, 1, 4, 4), {"size": (0, 3), "mode": "bilinear"}),
        ((1, 1, 0, 4), {"size": (2, 3), "mode": "bilinear"}),
        ((1, 1, 4, 4), {"size": (2, 3, 4), "mode": "bilinear"}),
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "area", "align_corners": False}),
        ((1, 1, 4, 4), {"size": 4, "mode": "bilinear", "recompute_scale_factor": True}),
    ]
    for shape, kw in cases:
        a = np.zeros(shape, np.float32)
        raises_like(
            lambda a=a, k=kw: F.interpolate(Tensor(a), **k), lambda a=a, k=kw: tF.interpolate(torch.from_numpy(a), **k)
        )
    for dt in (np.int64, np.int32, np.uint8):
        a = np.zeros((1, 1, 4), dt)
        ours, theirs = raises_like(
            lambda a=a: F.interpolate(Tensor(a), scale_factor=2, mode="linear"),
            lambda a=a: tF.interpolate(torch.from_numpy(a), scale_factor=2, mode="linear"),
        )
        assert str(ours) == str(theirs)
    ours, theirs = raises_like(
        lambda: F.interpolate(Tensor(np.zeros((1, 1, 4), np.float32)), scale_factor=2, mode="bilinear"),
        lambda: tF.interpolate(torch.zeros(1, 1, 4), scale_factor=2, mode="bilinear"),
    )
    assert str(ours) == str(theirs)


@pytest.mark.parametrize(
    "shape,kw,what",
    [
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "bilinear", "antialias": True}, "antialias=True"),
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "bicubic"}, "mode='bicubic'"),
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "bicubic", "antialias": True}, "antialias=True"),
        ((1, 1, 4, 4, 4), {"size": 2, "mode": "area"}, "mode='area' on a 5-D input"),
        ((1, 1, 4, 4), {"size": 2, "mode": "lanczos", "antialias": True}, "mode='lanczos'"),
        ((1, 1, 4, 4), {"scale_factor": 2, "mode": "bilinear"}, "uint8 bilinear"),
    ],
)
def test_what_is_not_supported_says_so(shape, kw, what):
    dtype = np.uint8 if what == "uint8 bilinear" else np.float32
    with pytest.raises(NotImplementedError, match=what):
        F.interpolate(Tensor(np.zeros(shape, dtype)), **kw)


def test_the_new_names_are_there():
    for name in ("upsample", "upsample_bilinear", "upsample_nearest"):
        assert callable(getattr(F, name)) and name in F.__all__
    assert issubclass(nn.UpsamplingBilinear2d, nn.Upsample) and "UpsamplingBilinear2d" in nn.__all__
    assert fastnn.nn.UpsamplingBilinear2d is nn.UpsamplingBilinear2d
