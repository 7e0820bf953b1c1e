"""torch's behaviour where fastnn used to differ silently: mean() of an integer tensor, the
implicit softmax dim, and no NumPy RuntimeWarning from arithmetic on inf, nan and zero."""

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
