"""fastnn.nn's activations, padding, resampling, 1-D convolution and pooling, distances,
Bilinear, GroupNorm / InstanceNorm and channel dropout against torch.nn built from the same
weights (forward, input and parameter gradients, state_dict keys, reprs, error types; skipped
without torch), and float64 finite differences of the gradients whose math is fastnn's own."""

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
    assert nn.PReLU(2, init=0.1).weight.data.tolist() == pytest.approx([0.1, 0.1])
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
    np.testing.assert_allclose(y.data.sum(0), 1, rtol=1e-6)  # dim 0 of a 3-D input, as torch
    y = F.softmax(Tensor(x), -1, dtype=np.float64)
    assert y.dtype == np.float64
