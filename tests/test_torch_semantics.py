"""torch's behaviour where fastnn used to differ silently: mean() of an integer tensor, the
implicit softmax dim, and no NumPy RuntimeWarning from arithmetic on inf, nan and zero."""

import warnings

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import numpy as np
import pytest

MEAN_MSG = "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: "


# -- mean() of an integer or bool tensor ---------------------------------------------------------
@pytest.mark.parametrize(
    "dtype, name",
    [
        (fastnn.int64, "Long"),
        (fastnn.int32, "Int"),
        (fastnn.int16, "Short"),
        (fastnn.int8, "Char"),
        (fastnn.uint8, "Byte"),
        (fastnn.bool, "Bool"),
    ],
)
def test_integer_mean_raises_as_torch(dtype, name):
    x = fastnn.tensor([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    for call in (lambda: x.mean(), lambda: x.mean(1), lambda: fastnn.mean(x), lambda: fastnn.mean(x, dim=0)):
        with pytest.raises(RuntimeError, match=MEAN_MSG.replace("(", r"\(").replace(")", r"\)") + name):
            call()
    # dtype= casts first, as torch
    assert x.mean(dtype=fastnn.float32).item() == pytest.approx(4 / 6)
    assert fastnn.mean(x, 1, dtype=fastnn.float64).tolist() == pytest.approx([2 / 3, 2 / 3])


def test_integer_var_and_std_raise_as_torch():
    x = fastnn.arange(6)
    for call in (x.var, x.std, lambda: fastnn.var(x), lambda: fastnn.std(x, 0)):
        with pytest.raises(RuntimeError, match="std and var only support floating point and complex dtypes"):
            call()


def test_integer_mean_matches_torch():
    torch = pytest.importorskip("torch")
    for lib in (torch, fastnn):
        x = lib.arange(6)
        with pytest.raises(RuntimeError) as e:
            x.mean()
        assert str(e.value) == MEAN_MSG + "Long"
        assert x.sum(dtype=lib.float32).item() == 15.0


# -- softmax without dim ------------------------------------------------------------------------
IMPLICIT = r"Implicit dimension choice for {} has been deprecated"


def _implicit(ndim):
    return 0 if ndim in (0, 1, 3) else 1


@pytest.mark.parametrize("ndim", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_functional_softmax_without_dim_uses_torchs_rule(name, ndim):
    x = fastnn.randn(*[2, 3, 4, 5][:ndim])
    with pytest.warns(UserWarning, match=IMPLICIT.format(name)) as rec:
        y = getattr(F, name)(x)
    assert rec[0].filename == __file__  # the warning points at the caller, as torch's
    np.testing.assert_allclose(y.numpy(), getattr(F, name)(x, _implicit(ndim)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("cls, name", [("Softmax", "softmax"), ("LogSoftmax", "log_softmax"), ("Softmin", "softmin")])
def test_softmax_modules_without_dim(cls, name):
    x = fastnn.randn(2, 3, 4)
    with pytest.warns(UserWarning, match=IMPLICIT.format(name)) as rec:
        y = getattr(nn, cls)()(x)
    assert rec[0].filename == __file__
    np.testing.assert_allclose(y.numpy(), getattr(F, name)(x, 0).numpy(), rtol=1e-6)


def test_tensor_softmax_needs_dim_as_torch():
    x = fastnn.randn(2, 3)
    for call in (x.softmax, x.log_softmax, lambda: fastnn.softmax(x), lambda: fastnn.log_softmax(x)):
        with pytest.raises(TypeError):
            call()
    y = x.softmax(1, dtype=fastnn.float64)
    assert y.dtype == np.float64 and np.allclose(y.numpy().sum(1), 1)
    assert F.softmin(x, 1, dtype=fastnn.float64).dtype == np.float64


def test_implicit_softmax_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    for name in ("softmax", "log_softmax", "softmin"):
        with pytest.warns(UserWarning):
            ours = getattr(F, name)(fastnn.tensor(a))
        with pytest.warns(UserWarning):
            theirs = getattr(torch.nn.functional, name)(torch.tensor(a))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


# -- no NumPy RuntimeWarning on inf, nan and division by zero --------------------------------------
def _grad_of(f, values):
    t = fastnn.tensor(values, requires_grad=True)
    f(t).sum().backward()
    return t.grad


SPECIALS = [0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan")]
QUIET_CALLS = {
    "log(0)": lambda z, big: fastnn.log(z),
    "1/0": lambda z, big: 1 / z,
    "0/0": lambda z, big: z / z,
    "inf-inf": lambda z, big: z - z,
    "sqrt(-1)": lambda z, big: fastnn.sqrt(z),
    "exp(1000)": lambda z, big: fastnn.exp(big),
    "pow overflow": lambda z, big: big**40,
    "mul overflow": lambda z, big: big * big,
    "number overflow": lambda z, big: big * 1e300,
    "rsqrt": lambda z, big: z.rsqrt(),
    "log2 log10 log1p": lambda z, big: (z.log2(), z.log10(), (z - 2).log1p()),
    "acos atanh": lambda z, big: ((z * 2).acos(), z.atanh()),
    "sinh cosh expm1 exp2": lambda z, big: (big.sinh(), big.cosh(), big.expm1(), big.exp2()),
    "div_ mul_": lambda z, big: (z.clone().div_(0), big.clone().mul_(1e300)),
    "fmod remainder": lambda z, big: (z.fmod(0), z.remainder(0)),
    "floor_divide": lambda z, big: (
        z.floor_divide(0),
        z.div(0, rounding_mode="floor"),
        z.div(0, rounding_mode="trunc"),
    ),
    "sum mean prod cumprod": lambda z, big: ((big * 1e35).sum(), (big * 1e35).mean(), big.prod(), big.cumprod(0)),
    "var std norm logsumexp": lambda z, big: (z.var(), z.std(), (big * 1e35).norm(), z.logsumexp(0)),
    "matmul": lambda z, big: (big * 1e35) @ big,
    "casts": lambda z, big: (z.long(), big.half(), (big * 1e35).to(fastnn.float16)),
    "float16": lambda z, big: (big.half() * 100, big.half().exp()),
    "float64": lambda z, big: (z.double() / 0, z.double().log()),
    "lerp addcdiv atan2": lambda z, big: (z.lerp(z, 0.5), z.addcdiv(z, z * 0), z.atan2(z)),
    "softmax": lambda z, big: (z.softmax(0), z.log_softmax(0)),
    "functional": lambda z, big: (
        F.mse_loss(big * 1e35, -big * 1e35),
        F.normalize(fastnn.zeros(2, 2)),
        F.cosine_similarity(fastnn.zeros(2, 3), fastnn.zeros(2, 3)),
        F.cross_entropy(fastnn.tensor([[float("inf"), 0.0]]), fastnn.tensor([1])),
    ),
    "backward": lambda z, big: (
        _grad_of(fastnn.log, [0.0, 1.0]),
        _grad_of(fastnn.sqrt, [0.0, 1.0]),
        _grad_of(lambda t: 1 / t, [0.0, 1.0]),
        _grad_of(lambda t: t**0.5, [0.0, 1.0]),
        _grad_of(lambda t: t * float("inf"), [0.0, 1.0]),
        _grad_of(lambda t: t.norm(), [0.0, 0.0]),
    ),
}


@pytest.mark.parametrize("name", list(QUIET_CALLS))
def test_no_numpy_warning_on_inf_nan_and_zero(name):
    z, big = fastnn.tensor(SPECIALS), fastnn.tensor([1000.0, 1e30, -1e30])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QUIET_CALLS[name](z, big)


def test_numpy_outside_fastnn_still_warns():
    fastnn.log(fastnn.zeros(1))  # fastnn's ops leave NumPy's error state as it was
    with pytest.warns(RuntimeWarning):
        np.log(np.zeros(1))
    with np.errstate(divide="raise"):
        fastnn.log(fastnn.zeros(1))
        with pytest.raises(FloatingPointError):
            np.log(np.zeros(1))
