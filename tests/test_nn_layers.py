"""fastnn.nn's activations, padding, resampling, 1-D convolution and pooling, distances,
Bilinear, GroupNorm / InstanceNorm and channel dropout against torch.nn built from the same
weights (forward, input and parameter gradients, state_dict keys, reprs, error types; skipped
without torch), and float64 finite differences of the gradients whose math is fastnn's own."""

import warnings

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import numpy as np
import pytest
from fastnn import Tensor
from nn_parity import (
    assert_close,
    away_from,
    compare_params,
    copy_from_torch,
    fd_check,
    raises_like,
    run_both,
    torch_or_skip,
)

# -- activations ------------------------------------------------------------------------------

# (name, constructor arguments, the kinks of the function, input scale)
ACTIVATIONS = [
    ("SiLU", (), (), 4),
    ("Mish", (), (), 4),
    ("Softplus", (), (), 8),
    ("Softplus", (2.0, 5.0), (2.5,), 4),
    ("ELU", (), (0.0,), 3),
    ("ELU", (0.7,), (0.0,), 3),
    ("SELU", (), (0.0,), 3),
    ("CELU", (0.5,), (0.0,), 3),
    ("Hardtanh", (), (-1.0, 1.0), 2),
    ("Hardtanh", (-0.5, 0.8), (-0.5, 0.8), 2),
    ("ReLU6", (), (0.0, 6.0), 5),
    ("Hardsigmoid", (), (-3.0, 3.0), 5),
    ("Hardswish", (), (-3.0, 3.0), 5),
    ("Softsign", (), (), 3),
    ("Tanhshrink", (), (), 3),
    ("LogSigmoid", (), (), 6),
    ("Hardshrink", (), (-0.5, 0.5), 1),
    ("Softshrink", (0.3,), (-0.3, 0.3), 1),
    ("Threshold", (0.1, -2.0), (0.1,), 1),
    ("GLU", (), (), 2),
    ("GLU", (1,), (), 2),
    ("Softmin", (1,), (), 2),
]


def _act_input(rng, kinks, spread):
    x = rng.standard_normal((4, 6, 4)).astype(np.float32) * spread
    x.flat[: len(kinks)] = kinks  # the boundaries themselves, where the gradient's side matters
    x.flat[10] = 0.0
    return x


@pytest.mark.parametrize("name,args,kinks,spread", ACTIVATIONS)
def test_activation_modules_match_torch(rng, name, args, kinks, spread):
    torch = torch_or_skip()
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    x = _act_input(rng, kinks, spread)
    run_both(torch, ours, theirs, [x], rng=rng, what=name)


@pytest.mark.parametrize("name,args,kinks,spread", ACTIVATIONS)
def test_activation_gradients_finite_differences(rng, name, args, kinks, spread):
    m = getattr(nn, name)(*args)
    x = away_from(rng, (3, 4, 2), kinks, spread=spread)
    fd_check(m, [x], rng)


def test_functional_activations_match_torch(rng):
    torch = torch_or_skip()
    x = _act_input(rng, (-3.0, 3.0, 0.0, 6.0, -1.0, 1.0), 4)
    for name, kw in [
        ("silu", {}),
        ("mish", {}),
        ("softplus", {"beta": 0.5, "threshold": 3.0}),
        ("elu", {"alpha": 2.0}),
        ("selu", {}),
        ("celu", {"alpha": 2.0}),
        ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
        ("relu6", {}),
        ("hardsigmoid", {}),
        ("hardswish", {}),
        ("softsign", {}),
        ("tanhshrink", {}),
        ("logsigmoid", {}),
        ("hardshrink", {"lambd": 1.0}),
        ("softshrink", {"lambd": 1.0}),
        ("glu", {"dim": 0}),
        ("softmin", {"dim": 2}),
    ]:
        run_both(
            torch,
            lambda t, n=name, k=kw: getattr(F, n)(t, **k),
            lambda t, n=name, k=kw: getattr(torch.nn.functional, n)(t, **k),
            [x],
            rng=rng,
            what=name,
        )
    run_both(
        torch, lambda t: F.threshold(t, 0.5, 3.0), lambda t: torch.nn.functional.threshold(t, 0.5, 3.0), [x], rng=rng
    )


@pytest.mark.parametrize("shape,num", [((4, 3, 5), 3), ((4, 3), 3), ((2, 3, 4, 5), 1), ((6,), 1)])
def test_prelu_matches_torch(rng, shape, num):
    torch = torch_or_skip()
    ours, theirs = nn.PReLU(num), torch.nn.PReLU(num)
    with torch.no_grad():
        theirs.weight.uniform_(-1, 1)
    copy_from_torch(ours, theirs)
    assert repr(ours) == repr(theirs)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[0] = 0.0
    run_both(torch, ours, theirs, [x], rng=rng, what="prelu")
    compare_params(ours, theirs)
    assert nn.PReLU(2, init=0.1).weight._data.tolist() == pytest.approx([0.1, 0.1])
    fd_check(lambda a, w: F.prelu(a, w), [away_from(rng, shape, (0.0,)), rng.standard_normal(num)], rng)


def test_activation_errors_match_torch():
    torch = torch_or_skip()
    x, xt = Tensor(np.ones((2, 3), np.float32)), torch.ones(2, 3)
    raises_like(lambda: nn.Hardtanh(2.0, 1.0), lambda: torch.nn.Hardtanh(2.0, 1.0))
    raises_like(lambda: F.hardtanh(x, 2.0, 1.0), lambda: torch.nn.functional.hardtanh(xt, 2.0, 1.0))
    raises_like(lambda: F.glu(x, 1), lambda: torch.nn.functional.glu(xt, 1))
    raises_like(lambda: nn.PReLU(4)(x), lambda: torch.nn.PReLU(4)(xt))
    raises_like(lambda: nn.PReLU(3)(x[0]), lambda: torch.nn.PReLU(3)(xt[0]))  # a 1-D input has one channel
    raises_like(lambda: F.softshrink(x, -1.0), lambda: torch.nn.functional.softshrink(xt, -1.0))


def test_activations_keep_float64_and_refuse_integers():
    x = Tensor(np.linspace(-4, 4, 9), dtype=np.float64)
    for f in (F.silu, F.mish, F.softplus, F.elu, F.selu, F.hardswish, F.hardsigmoid, F.tanhshrink, F.logsigmoid):
        assert f(x).dtype == np.float64
    with pytest.raises(TypeError, match="silu: expected a floating-point input"):
        F.silu(Tensor(np.arange(3)))


def test_softmax_without_dim_takes_torchs_implicit_dim():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    for f, g in ((F.softmax, torch.nn.functional.softmax), (F.log_softmax, torch.nn.functional.log_softmax)):
        with pytest.warns(UserWarning, match="Implicit dimension choice"):
            ours = f(Tensor(x))
        with pytest.warns(UserWarning, match="Implicit dimension choice"):
            theirs = g(torch.from_numpy(x))
        assert_close(ours, theirs, 1e-6)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        y = nn.Softmax()(Tensor(x))
    np.testing.assert_allclose(y._data.sum(0), 1, rtol=1e-6)  # dim 0 of a 3-D input, as torch
    y = F.softmax(Tensor(x), -1, dtype=np.float64)
    assert y.dtype == np.float64


# -- padding ------------------------------------------------------------------------------------

PADS = [
    ((2, 3, 5), (1, 2), "constant"),
    ((2, 3, 5), (-1, 2), "constant"),
    ((2, 3, 4, 5), (1, 0, 2, 3), "constant"),
    ((2, 3, 4, 5), (1, 1, 1, 1, 1, 1, 1, 1), "constant"),
    ((2, 3, 4), (0, -2, 1, -1), "constant"),
    ((2, 3, 5), (2, 3), "reflect"),
    ((3, 5), (4, 1), "reflect"),
    ((2, 3, 4, 5), (1, 2, 3, 0), "reflect"),
    ((3, 4, 5), (-1, 2, 2, -1), "reflect"),
    ((1, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2), "reflect"),
    ((2, 3, 5), (4, 7), "replicate"),
    ((2, 3, 4, 5), (1, 2, 3, 0), "replicate"),
    ((2, 3, 4, 5), (-2, 1, 0, 2), "replicate"),
    ((2, 3, 5), (5, 2), "circular"),
    ((2, 3, 4, 5), (1, 2, 3, -1), "circular"),
    ((1, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2), "circular"),
]


@pytest.mark.parametrize("shape,pad,mode", PADS)
def test_pad_matches_torch(rng, shape, pad, mode):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(np.float32)
    kw = {"value": 1.5} if mode == "constant" else {}
    run_both(
        torch,
        lambda t: F.pad(t, pad, mode, **kw),
        lambda t: torch.nn.functional.pad(t, pad, mode, **kw),
        [x],
        rng=rng,
        fwd_rtol=0,  # values are copied
        what=f"pad {mode}",
    )
    fd_check(lambda t: F.pad(t, pad, mode, **kw), [rng.standard_normal(shape)], rng)


def test_pad_keeps_integer_dtype():
    x = Tensor(np.arange(6).reshape(2, 3))
    y = F.pad(x, (1, 1), value=-1)
    assert y.dtype == np.int64 and y._data.tolist() == [[-1, 0, 1, 2, -1], [-1, 3, 4, 5, -1]]
    assert F.pad(x.unsqueeze(0), (2, 0), "reflect")._data.tolist() == [[[2, 1, 0, 1, 2], [5, 4, 3, 4, 5]]]


def test_pad_errors_match_torch():
    torch = torch_or_skip()
    a = np.zeros((1, 1, 3, 3), np.float32)
    x, xt = Tensor(a), torch.from_numpy(a)
    for args in [
        ((3, 3), "reflect"),
        ((4, 2), "circular"),
        ((1, 1, 1, 1, 1, 1), "reflect"),
        ((1, 1, 1), "constant"),
        ((1, 1) * 5, "constant"),
        ((1, 1), "foo"),
    ]:
        raises_like(lambda a=args: F.pad(x, *a), lambda a=args: torch.nn.functional.pad(xt, *a))
    raises_like(
        lambda: F.pad(x[0, 0], (1, 1, 1, 1), "reflect"),
        lambda: torch.nn.functional.pad(xt[0, 0], (1, 1, 1, 1), "reflect"),
    )
    raises_like(lambda: F.pad(x, (1, 1), "reflect", 2.0), lambda: torch.nn.functional.pad(xt, (1, 1), "reflect", 2.0))
    raises_like(lambda: F.pad(x, (-4, 0)), lambda: torch.nn.functional.pad(xt, (-4, 0)))
    assert F.pad(x[0], (1, 1), "reflect", 0.0).shape == (1, 3, 5)  # value 0 is allowed, as in torch


@pytest.mark.parametrize(
    "name,args,shape",
    [
        ("ZeroPad1d", (2,), (2, 3, 4)),
        ("ZeroPad2d", ((1, 2, 0, 3),), (2, 3, 4, 5)),
        ("ZeroPad3d", (1,), (1, 2, 3, 4, 5)),
        ("ConstantPad1d", ((1, 3), 2.5), (3, 4)),
        ("ConstantPad2d", (1, -1.0), (2, 3, 4, 5)),
        ("ConstantPad3d", ((1, 0, 0, 1, 2, 0), 0.5), (1, 2, 3, 4, 5)),
        ("ReflectionPad1d", (2,), (2, 3, 4)),
        ("ReflectionPad2d", ((1, 2, 0, 3),), (2, 3, 4, 5)),
        ("ReflectionPad3d", (1,), (1, 2, 3, 4, 5)),
        ("ReplicationPad1d", ((3, 1),), (3, 4)),
        ("ReplicationPad2d", (2,), (2, 3, 4, 5)),
        ("ReplicationPad3d", (1,), (2, 3, 4, 5)),
        ("CircularPad1d", (2,), (2, 3, 4)),
        ("CircularPad2d", ((1, 2, 0, 3),), (2, 3, 4, 5)),
        ("CircularPad3d", (1,), (1, 2, 3, 4, 5)),
    ],
)
def test_padding_layers_match_torch(rng, name, args, shape):
    torch = torch_or_skip()
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    run_both(torch, ours, theirs, [rng.standard_normal(shape).astype(np.float32)], rng=rng, fwd_rtol=0, what=name)


# -- resampling, unflatten ------------------------------------------------------------------------

INTERP = [
    ((2, 3, 5), {"scale_factor": 2}),
    ((2, 3, 5), {"scale_factor": 2.5}),
    ((2, 3, 7), {"size": 3}),
    ((2, 3, 7), {"scale_factor": 0.6}),
    ((2, 2, 3, 4), {"scale_factor": 2}),
    ((2, 2, 3, 4), {"scale_factor": (1.5, 0.75)}),
    ((2, 2, 3, 4), {"size": (5, 7)}),
    ((2, 2, 6, 9), {"size": (4, 4)}),
    ((2, 2, 3, 4), {"scale_factor": 1.7, "recompute_scale_factor": True}),
    ((1, 2, 2, 3, 4), {"scale_factor": (2, 1, 3)}),
    ((1, 2, 3, 3, 5), {"size": (4, 2, 7)}),
]


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("shape,kw", INTERP)
def test_interpolate_nearest_matches_torch(rng, shape, kw, mode):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(np.float32)
    run_both(
        torch,
        lambda t: F.interpolate(t, mode=mode, **kw),
        lambda t: torch.nn.functional.interpolate(t, mode=mode, **kw),
        [x],
        rng=rng,
        fwd_rtol=0,
        what="interpolate",
    )
    fd_check(lambda t: F.interpolate(t, mode=mode, **kw), [rng.standard_normal(shape)], rng)


def test_upsample_module_matches_torch(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for args, kw in [
        ((), {"scale_factor": 2}),
        (((6, 7),), {}),
        ((), {"scale_factor": (2.0, 3.0)}),
        ((5,), {"mode": "nearest-exact"}),
    ]:
        ours, theirs = nn.Upsample(*args, **kw), torch.nn.Upsample(*args, **kw)
        assert repr(ours) == repr(theirs)
        run_both(torch, ours, theirs, [x], rng=rng, fwd_rtol=0, what=repr(ours))
    ours, theirs = nn.UpsamplingNearest2d(scale_factor=3), torch.nn.UpsamplingNearest2d(scale_factor=3)
    assert repr(ours) == repr(theirs)
    run_both(torch, ours, theirs, [x], rng=rng, fwd_rtol=0)


def test_interpolate_errors_match_torch():
    torch = torch_or_skip()
    a = np.zeros((1, 1, 3, 3), np.float32)
    x, xt = Tensor(a), torch.from_numpy(a)
    tF = torch.nn.functional
    for kw in [
        {"scale_factor": 2, "align_corners": True},
        {"size": 5, "scale_factor": 2},
        {},
        {"size": (2, 3, 4)},
        {"scale_factor": (2, 3, 4)},
        {"scale_factor": 2, "mode": "foo"},
        {"scale_factor": 2, "antialias": True},
        {"size": 4, "recompute_scale_factor": True},
    ]:
        raises_like(lambda k=kw: F.interpolate(x, **k), lambda k=kw: tF.interpolate(xt, **k))
    raises_like(lambda: F.interpolate(x[0, 0], scale_factor=2), lambda: tF.interpolate(xt[0, 0], scale_factor=2))
    raises_like(lambda: nn.Upsample(scale_factor=2)(x[0, 0]), lambda: torch.nn.Upsample(scale_factor=2)(xt[0, 0]))
    # what is still missing (the interpolating modes: tests/test_interpolate.py)
    with pytest.raises(NotImplementedError, match="mode='bicubic' of torch.nn.functional.interpolate"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(NotImplementedError, match="interpolate"):
        nn.Upsample(scale_factor=2, mode="bicubic")(x)


def test_unflatten_matches_torch(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((3, 6, 2)).astype(np.float32)
    for dim, sizes in [(1, (2, 3)), (1, [3, -1]), (-1, (1, 2)), (0, (3, 1))]:
        ours, theirs = nn.Unflatten(dim, sizes), torch.nn.Unflatten(dim, sizes)
        assert repr(ours) == repr(theirs)
        run_both(torch, ours, theirs, [x], rng=rng, fwd_rtol=0)
    raises_like(
        lambda: nn.Unflatten(1, (4, -1))(Tensor(x)), lambda: torch.nn.Unflatten(1, (4, -1))(torch.from_numpy(x))
    )
    raises_like(lambda: nn.Unflatten(1, 3), lambda: torch.nn.Unflatten(1, 3))
    raises_like(lambda: nn.Unflatten(1, (2, 1.5)), lambda: torch.nn.Unflatten(1, (2, 1.5)))
    with pytest.raises(NotImplementedError, match="named tensors"):
        nn.Unflatten("features", (("a", 2), ("b", 3)))


# -- one-dimensional convolution and pooling ------------------------------------------------------

CONV1D = [
    ((2, 4, 9), dict(in_channels=4, out_channels=6, kernel_size=3)),
    ((2, 4, 9), dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, bias=False)),
    ((2, 4, 12), dict(in_channels=4, out_channels=6, kernel_size=2, dilation=3, groups=2)),
    ((2, 4, 9), dict(in_channels=4, out_channels=4, kernel_size=4, padding="same")),
    ((2, 4, 9), dict(in_channels=4, out_channels=4, kernel_size=3, padding="valid")),
    ((4, 9), dict(in_channels=4, out_channels=3, kernel_size=3, padding=2)),
    ((2, 4, 9), dict(in_channels=4, out_channels=3, kernel_size=3, padding=2, padding_mode="reflect")),
    ((2, 4, 9), dict(in_channels=4, out_channels=3, kernel_size=3, padding=3, padding_mode="replicate")),
    ((2, 4, 9), dict(in_channels=4, out_channels=3, kernel_size=4, padding="same", padding_mode="circular")),
]


@pytest.mark.parametrize("shape,kw", CONV1D)
def test_conv1d_matches_torch(rng, shape, kw):
    torch = torch_or_skip()
    theirs = torch.nn.Conv1d(**kw)
    fastnn.manual_seed(0)
    ours = nn.Conv1d(**kw)
    assert repr(ours) == repr(theirs)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    copy_from_torch(ours, theirs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
        run_both(
            torch, ours, theirs, [rng.standard_normal(shape).astype(np.float32)], rng=rng, fwd_rtol=2e-6, what="conv1d"
        )
    compare_params(ours, theirs, what="conv1d")


def test_conv1d_initialisation_bounds():
    fastnn.manual_seed(0)
    m = nn.Conv1d(8, 16, 5, groups=2)
    bound = 1 / np.sqrt(4 * 5)  # fan_in = in_channels / groups * kernel_size
    assert np.abs(m.weight._data).max() <= bound and np.abs(m.weight._data).max() > 0.9 * bound
    assert np.abs(m.bias._data).max() <= bound


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes_match_torch(rng, mode):
    torch = torch_or_skip()
    for kw in (dict(padding=2), dict(padding=(1, 2), stride=2), dict(padding="same", dilation=2)):
        theirs = torch.nn.Conv2d(3, 4, 3, padding_mode=mode, **kw)
        ours = nn.Conv2d(3, 4, 3, padding_mode=mode, **kw)
        assert repr(ours) == repr(theirs)
        copy_from_torch(ours, theirs)
        run_both(torch, ours, theirs, [rng.standard_normal((2, 3, 7, 8)).astype(np.float32)], rng=rng, fwd_rtol=2e-6)
        compare_params(ours, theirs)


def test_conv_constructor_errors_match_torch():
    torch = torch_or_skip()
    for cls in ("Conv1d", "Conv2d"):
        for kw in [
            dict(padding_mode="foo"),
            dict(padding="same", stride=2),
            dict(padding="foo"),
            dict(groups=2),
            dict(groups=0),
        ]:
            raises_like(
                lambda c=cls, k=kw: getattr(nn, c)(2, 3, 3, **k), lambda c=cls, k=kw: getattr(torch.nn, c)(2, 3, 3, **k)
            )
    raises_like(
        lambda: nn.Conv1d(2, 3, 3)(Tensor(np.zeros(5, np.float32))), lambda: torch.nn.Conv1d(2, 3, 3)(torch.zeros(5))
    )


POOL1D = [
    ("MaxPool1d", (3,), {}),
    ("MaxPool1d", (3, 2, 1), {}),
    ("MaxPool1d", (2,), {"ceil_mode": True, "dilation": 2}),
    ("AvgPool1d", (3,), {}),
    ("AvgPool1d", (3, 2, 1), {"count_include_pad": False}),
    ("AvgPool1d", (2,), {"ceil_mode": True}),
    ("AdaptiveAvgPool1d", (3,), {}),
    ("AdaptiveAvgPool1d", (1,), {}),
]


@pytest.mark.parametrize("name,args,kw", POOL1D)
@pytest.mark.parametrize("shape", [(2, 3, 9), (3, 9)])
def test_pool1d_matches_torch(rng, name, args, kw, shape):
    torch = torch_or_skip()
    ours, theirs = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    assert repr(ours) == repr(theirs)
    run_both(torch, ours, theirs, [rng.standard_normal(shape).astype(np.float32)], rng=rng, what=name)


def test_max_pool1d_indices_and_errors_match_torch(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 10)).astype(np.float32)
    y, i = nn.MaxPool1d(3, 2, 1, return_indices=True)(Tensor(x))
    yt, it = torch.nn.MaxPool1d(3, 2, 1, return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(y._data, yt.numpy())
    np.testing.assert_array_equal(i._data, it.numpy())
    for name in ("MaxPool1d", "AvgPool1d"):
        raises_like(
            lambda n=name: getattr(nn, n)(2)(Tensor(x[0, 0])),
            lambda n=name: getattr(torch.nn, n)(2)(torch.from_numpy(x[0, 0])),
        )


# -- distances, F.normalize, one_hot -----------------------------------------------------------


@pytest.mark.parametrize(
    "shapes,dim", [(((4, 5), (4, 5)), 1), (((3, 4), (4,)), 1), (((2, 3, 4), (2, 1, 4)), -1), (((5, 3), (5, 3)), 0)]
)
def test_cosine_similarity_matches_torch(rng, shapes, dim):
    torch = torch_or_skip()
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    ours, theirs = nn.CosineSimilarity(dim), torch.nn.CosineSimilarity(dim)
    assert repr(ours) == repr(theirs)
    run_both(torch, ours, theirs, [a, b], rng=rng, what="cosine")
    fd_check(lambda x, y: F.cosine_similarity(x, y, dim), [rng.standard_normal(s) for s in shapes], rng)


def test_cosine_similarity_of_a_zero_vector_matches_torch():
    torch = torch_or_skip()
    a = np.array([[0.0, 0.0], [2.0, 3.0]], np.float32)
    b = np.ones((2, 2), np.float32)
    run_both(torch, F.cosine_similarity, torch.nn.functional.cosine_similarity, [a, b])


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, float("inf"), 0.5])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance_matches_torch(rng, p, keepdim):
    torch = torch_or_skip()
    ours, theirs = nn.PairwiseDistance(p, keepdim=keepdim), torch.nn.PairwiseDistance(p, keepdim=keepdim)
    assert repr(ours) == repr(theirs)
    for sa, sb in (((4, 5), (4, 5)), ((3, 4), (4,)), ((6,), (6,))):
        a, b = rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)
        run_both(torch, ours, theirs, [a, b], rng=rng, what=f"pairwise p={p}")
    fd_check(
        lambda x, y: F.pairwise_distance(x, y, p, keepdim=keepdim),
        [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))],
        rng,
    )


@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (float("inf"), -1), (3.0, 1)])
def test_normalize_matches_torch(rng, p, dim):
    torch = torch_or_skip()
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    x[0, :, 0] = 0  # a zero vector along dim 1
    run_both(torch, lambda t: F.normalize(t, p, dim), lambda t: torch.nn.functional.normalize(t, p, dim), [x], rng=rng)
    fd_check(lambda t: F.normalize(t, p, dim), [rng.standard_normal((3, 4, 2))], rng)


def test_one_hot_matches_torch():
    torch = torch_or_skip()
    a = np.array([[0, 3], [1, 2]])
    for n in (-1, 6):
        ours, theirs = F.one_hot(Tensor(a), n), torch.nn.functional.one_hot(torch.from_numpy(a), n)
        assert ours.dtype == np.int64 and ours._data.tolist() == theirs.tolist()
    assert F.one_hot(Tensor(np.zeros(0, np.int64)), 3).shape == (0, 3)
    for arr, n in (([0, 3, -1], -1), ([0, 3, 1], 2), ([], -1)):
        v = np.array(arr, np.int64)
        raises_like(
            lambda v=v, n=n: F.one_hot(Tensor(v), n),
            lambda v=v, n=n: torch.nn.functional.one_hot(torch.from_numpy(v), n),
        )
    raises_like(lambda: F.one_hot(Tensor(np.zeros(2, np.float32))), lambda: torch.nn.functional.one_hot(torch.zeros(2)))


# -- Bilinear ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead,bias", [((5,), True), ((2, 3), False), ((), True)])
def test_bilinear_matches_torch(rng, lead, bias):
    torch = torch_or_skip()
    theirs = torch.nn.Bilinear(3, 4, 5, bias=bias)
    ours = nn.Bilinear(3, 4, 5, bias=bias)
    assert repr(ours) == repr(theirs)
    copy_from_torch(ours, theirs)
    a, b = rng.standard_normal(lead + (3,)).astype(np.float32), rng.standard_normal(lead + (4,)).astype(np.float32)
    run_both(torch, ours, theirs, [a, b], rng=rng, fwd_rtol=2e-6, what="bilinear")
    compare_params(ours, theirs)
    fastnn.manual_seed(0)
    w = nn.Bilinear(16, 2, 3).weight._data
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.2  # U(-1/sqrt(in1), 1/sqrt(in1))
    args = [
        rng.standard_normal((2, 3)),
        rng.standard_normal((2, 4)),
        rng.standard_normal((5, 3, 4)),
        rng.standard_normal(5),
    ]
    fd_check(F.bilinear, args, rng)
    raises_like(lambda: ours(Tensor(a), Tensor(a)), lambda: theirs(torch.from_numpy(a), torch.from_numpy(a)))


# -- GroupNorm, InstanceNorm ----------------------------------------------------------------------


# (a 2-D input has one element per channel: one group of six keeps the gradient well conditioned)
@pytest.mark.parametrize("shape,groups", [((2, 6, 5, 3), 3), ((3, 6, 4), 3), ((4, 6), 1)])
@pytest.mark.parametrize("kw", [{}, {"affine": False}, {"bias": False}, {"eps": 1e-3}])
def test_group_norm_matches_torch(rng, shape, groups, kw):
    torch = torch_or_skip()
    theirs, ours = torch.nn.GroupNorm(groups, 6, **kw), nn.GroupNorm(groups, 6, **kw)
    assert repr(ours) == repr(theirs)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1, 1)
    copy_from_torch(ours, theirs)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    run_both(torch, ours, theirs, [x], rng=rng, fwd_rtol=2e-6, what="group_norm")
    compare_params(ours, theirs)


def test_group_norm_gradients_finite_differences_and_errors(rng):
    fd_check(
        lambda x, w, b: F.group_norm(x, 2, w, b),
        [rng.standard_normal((2, 4, 3)), rng.standard_normal(4), rng.standard_normal(4)],
        rng,
    )
    fd_check(lambda x: F.group_norm(x, 4, eps=0.1), [rng.standard_normal((3, 4, 2, 2))], rng)
    torch = torch_or_skip()
    raises_like(lambda: nn.GroupNorm(3, 4), lambda: torch.nn.GroupNorm(3, 4))
    raises_like(
        lambda: nn.GroupNorm(2, 4)(Tensor(np.zeros((2, 5), np.float32))),
        lambda: torch.nn.GroupNorm(2, 4)(torch.zeros(2, 5)),
    )
    raises_like(
        lambda: nn.GroupNorm(2, 4)(Tensor(np.zeros(4, np.float32))), lambda: torch.nn.GroupNorm(2, 4)(torch.zeros(4))
    )


@pytest.mark.parametrize(
    "cls,shape",
    [
        ("InstanceNorm1d", (3, 4, 6)),
        ("InstanceNorm2d", (2, 4, 3, 5)),
        ("InstanceNorm2d", (4, 3, 5)),
        ("InstanceNorm3d", (2, 4, 2, 3, 2)),
    ],
)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"affine": True},
        {"track_running_stats": True},
        {"affine": True, "track_running_stats": True, "momentum": 0.3},
    ],
)
def test_instance_norm_matches_torch(rng, cls, shape, kw):
    torch = torch_or_skip()
    theirs, ours = getattr(torch.nn, cls)(4, **kw), getattr(nn, cls)(4, **kw)
    assert repr(ours) == repr(theirs)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1, 1)
    copy_from_torch(ours, theirs)
    for mode in ("train", "eval", "train"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        run_both(torch, ours, theirs, [x], rng=rng, fwd_rtol=2e-6, what=f"{cls} {mode}")
        compare_params(ours, theirs)
        for (k, b), (_, bt) in zip(ours.named_buffers(), theirs.named_buffers()):
            assert_close(b, bt, 1e-6, k)
        ours.zero_grad(), theirs.zero_grad()


def test_instance_norm_gradients_and_errors(rng):
    fd_check(
        lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
        [rng.standard_normal((2, 3, 4)), rng.standard_normal(3), rng.standard_normal(3)],
        rng,
    )
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32) * 2
    fd_check(lambda x: F.instance_norm(x, rm, rv, use_input_stats=False), [rng.standard_normal((2, 3, 4))], rng)
    torch = torch_or_skip()
    z = np.zeros((2, 4, 3, 3), np.float32)
    raises_like(
        lambda: nn.InstanceNorm2d(3, affine=True)(Tensor(z)),
        lambda: torch.nn.InstanceNorm2d(3, affine=True)(torch.from_numpy(z)),
    )
    raises_like(
        lambda: nn.InstanceNorm2d(3)(Tensor(z[0, 0])), lambda: torch.nn.InstanceNorm2d(3)(torch.from_numpy(z[0, 0]))
    )
    raises_like(
        lambda: nn.InstanceNorm2d(4)(Tensor(z[:, :, :1, :1])),
        lambda: torch.nn.InstanceNorm2d(4)(torch.from_numpy(z[:, :, :1, :1])),
    )
    with pytest.warns(UserWarning, match="input's size at dim=1 does not match num_features"):
        nn.InstanceNorm2d(3)(Tensor(z))


# -- channel dropout ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shape,batched",
    [
        ("Dropout1d", (50, 40, 3), True),
        ("Dropout1d", (400, 3), False),
        ("Dropout2d", (50, 40, 2, 2), True),
        ("Dropout2d", (400, 2, 2), True),
        ("Dropout3d", (50, 40, 2, 1, 2), True),
        ("Dropout3d", (400, 2, 1, 2), False),
    ],
)
def test_channel_dropout_drops_whole_channels(name, shape, batched):
    torch = torch_or_skip()
    ours, theirs = getattr(nn, name)(0.3), getattr(torch.nn, name)(0.3)
    assert repr(ours) == repr(theirs)
    fastnn.manual_seed(0)
    x = Tensor(np.ones(shape, np.float32), requires_grad=True)
    with warnings.catch_warnings(record=True) as w_ours:
        warnings.simplefilter("always")
        y = ours(x)
    with warnings.catch_warnings(record=True) as w_theirs:
        warnings.simplefilter("always")
        theirs(torch.ones(shape))
    assert [str(w.message)[:40] for w in w_ours] == [str(w.message)[:40] for w in w_theirs]
    lead = 2 if batched else 1
    per_channel = y._data.reshape(shape[:lead] + (-1,))
    assert (per_channel == per_channel[..., :1]).all()  # a channel is kept or dropped whole
    kept = per_channel[..., 0] != 0
    assert abs(kept.mean() - 0.7) < 0.05 and np.allclose(per_channel[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad._data, y._data)
    ours.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the input-shape warnings come in eval mode too, as torch's
        assert ours(x) is x


def test_channel_dropout_errors_and_dtype():
    torch = torch_or_skip()
    for name in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"):
        raises_like(lambda n=name: getattr(nn, n)(1.5), lambda n=name: getattr(torch.nn, n)(1.5))
    raises_like(
        lambda: F.dropout1d(Tensor(np.ones((2, 3, 4, 5), np.float32))),
        lambda: torch.nn.functional.dropout1d(torch.ones(2, 3, 4, 5)),
    )
    y = F.dropout2d(Tensor(np.ones((3, 4, 2, 2)), dtype=np.float64), 0.5)
    assert y.dtype == np.float64
    assert not F.dropout1d(Tensor(np.ones((2, 3, 4), np.float32)), 1.0)._data.any()


def test_alpha_dropout_keeps_mean_and_variance():
    torch = torch_or_skip()
    ours, theirs = nn.AlphaDropout(0.2), torch.nn.AlphaDropout(0.2)
    assert repr(ours) == repr(theirs)
    fastnn.manual_seed(0)
    z = np.random.default_rng(0).standard_normal((400, 500)).astype(np.float32)
    x = Tensor(z, requires_grad=True)
    y = ours(x)
    yt = theirs(torch.from_numpy(z))
    for out in (y._data, yt.numpy()):
        assert abs(out.mean()) < 0.01 and abs(out.std() - 1) < 0.01
    y.sum().backward()
    dropped = x.grad._data == 0
    assert abs(dropped.mean() - 0.2) < 0.01
    assert np.allclose(x.grad._data[~dropped], x.grad._data.max())  # kept: a x + b, one a
    assert np.allclose(y._data[dropped], y._data[dropped][0])  # dropped: one value, as in torch
    values, counts = np.unique(yt.numpy(), return_counts=True)
    assert np.isclose(values[counts.argmax()], y._data[dropped][0], rtol=1e-6)  # torch's dropped value
    ours.eval()
    assert ours(x) is x
    assert F.alpha_dropout(x, 0.5) is x  # training=False by default, as torch's


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,r", [((2, 8, 3, 5), 2), ((9, 2, 2), 3), ((2, 1, 4, 4, 3), 2), ((1, 1, 2, 2), 1)])
def test_pixel_shuffle_and_unshuffle_match_torch(rng, shape, r, dtype):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(dtype)
    ours, theirs = nn.PixelShuffle(r), torch.nn.PixelShuffle(r)
    assert repr(ours) == repr(theirs)
    y, _ = run_both(torch, ours, theirs, [x], rng=rng, what="PixelShuffle")
    ours, theirs = nn.PixelUnshuffle(r), torch.nn.PixelUnshuffle(r)
    assert repr(ours) == repr(theirs)
    back, _ = run_both(torch, ours, theirs, [y.detach().numpy()], rng=rng, what="PixelUnshuffle")
    np.testing.assert_array_equal(back.detach().numpy(), x)


@pytest.mark.parametrize(
    "fn,shape,r",
    [
        ("pixel_shuffle", (2, 3), 1),
        ("pixel_shuffle", (1, 6, 2, 2), 2),
        ("pixel_unshuffle", (1, 1, 3, 4), 2),
        ("pixel_unshuffle", (1, 1, 4, 3), 2),
        ("pixel_unshuffle", (4,), 1),
    ],
)
def test_pixel_shuffle_errors_match_torch(fn, shape, r):
    torch = torch_or_skip()
    x = np.zeros(shape, np.float32)
    ours, theirs = raises_like(
        lambda: getattr(F, fn)(Tensor(x), r), lambda: getattr(torch.nn.functional, fn)(torch.from_numpy(x), r)
    )
    assert str(ours) == str(theirs)
