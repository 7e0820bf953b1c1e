"""torch's behaviour where fastnn used to differ silently: mean() of an integer tensor, the
implicit softmax dim, and no NumPy RuntimeWarning from arithmetic on inf, nan and zero."""

import fastnn
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
