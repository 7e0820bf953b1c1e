"""The tensor functions and methods of fastnn._tensor_api against torch, from one table.

Every case is a function of the module (fastnn, or torch) and input tensors, so the same code
runs on both, as `import fastnn as torch` promises. For each case:
  - torch parity (skipped without torch): results equal, exactly for exact ops and within rtol
    1e-6 (float32) / 1e-12 (float64) otherwise, with the same dtype and shape; the gradients of
    sum(output * w) with respect to the inputs within 1e-5 (float32) / 1e-10 (float64);
  - finite differences (no torch needed): the same gradients, from fastnn with float64 inputs,
    against central differences of fastnn's own float64 forward;
  - on a CUDA device (the emulated one; skipped without it): the CPU's results and gradients.
Bad dims and shapes raise the exception type torch raises (the ERRORS table, also checked
against torch).
"""

import math
import zlib

import fastnn
import numpy as np
import pytest
from fastnn import _compat


# -- inputs ---------------------------------------------------------------------------------------
class Spec:
    """An input: shape, dtype name, value kind and whether it requires grad."""

    def __init__(self, shape, dtype, kind, grad, value=None):
        self.shape, self.dtype, self.kind, self.grad, self.value = tuple(shape), dtype, kind, grad, value

    def array(self, rng):
        if self.value is not None:
            return np.array(self.value, dtype=self.dtype)
        s, k = self.shape, self.kind
        if self.dtype == "bool":
            return rng.random(s) < 0.5
        if self.dtype in ("int64", "int32", "int16", "int8", "uint8"):
            lo, hi = k
            v = rng.integers(lo, hi, size=s)
            if lo < 0 < hi and hi - lo > 2:  # divisors: no zeros
                v[v == 0] = 1
            return v.astype(self.dtype)
        if k == "normal":
            v = np.array(rng.standard_normal(s))
        elif k == "pos":
            v = rng.uniform(0.5, 2.0, s)
        elif k == "unit":
            v = rng.uniform(-0.9, 0.9, s)
        elif k == "gt1":
            v = rng.uniform(1.2, 3.0, s)
        elif k == "away":  # away from zero, both signs
            v = rng.uniform(0.5, 2.0, s) * rng.choice([-1.0, 1.0], s)
        elif k == "prob":
            v = rng.uniform(0.05, 0.95, s)
        elif k == "big":
            v = rng.standard_normal(s) * 4
        elif k == "zeros":
            v = np.array(rng.standard_normal(s))
            v.reshape(-1)[::3] = 0.0
        elif k == "ties":
            v = rng.integers(0, 3, s).astype(np.float64)
        elif k == "nonfinite":
            v = np.array(rng.standard_normal(s))
            special = [np.nan, np.inf, -np.inf]
            for i in range(min(v.size, 3)):
                v.reshape(-1)[i * 2 % max(v.size, 1)] = special[i]
        else:
            raise ValueError(k)
        return np.asarray(v).astype(self.dtype)


def F(*shape, kind="normal", dt="float32", grad=True):
    return Spec(shape, dt, kind, grad)


def D(*shape, kind="normal", grad=True):
    return Spec(shape, "float64", kind, grad)


def Z(*shape, lo=-6, hi=7, dt="int64"):
    """Integers in [lo, hi) (no zeros when the range has both signs: they divide)."""
    return Spec(shape, dt, (lo, hi), False)


def B(*shape):
    return Spec(shape, "bool", None, False)


def V(value, dt="int64"):
    """Fixed values (indices; float ones require grad)."""
    return Spec(np.shape(value), dt, None, dt.startswith("float"), value)


class Case:
    def __init__(self, id, fn, *inputs, exact=False, grad=True, fd=True):
        self.id, self.fn, self.inputs, self.exact, self.grad, self.fd = id, fn, inputs, exact, grad, fd

    def __repr__(self):
        return self.id


CASES = []
ERRORS = []


def case(*args, **kwargs):
    CASES.append(Case(*args, **kwargs))


def error(id, exc, fn):
    """fn(module) raises exc, in fastnn and in torch."""
    ERRORS.append((id, exc, fn))


# -- tensor.py's core: torch's type promotion, dims, named max/min ---------------------------------
case("div-int-int", lambda m, a, b: a / b, Z(3, 4), Z(4), fd=False)
case("div-int-intscalar", lambda m, a: a / 4, Z(3, 4), fd=False)
case("rdiv-int", lambda m, a: 3 / a, Z(3, 4), fd=False)
case("int-times-float", lambda m, a: a * 2.5, Z(3, 4), exact=True, fd=False)
case("bool-plus-int", lambda m, a: a + 2, B(5), exact=True, fd=False)
case("int32-plus-int64-0d", lambda m, a, b: a + b, Z(3, dt="int32"), Z(), exact=True, fd=False)
case("uint8-plus-int8", lambda m, a, b: a + b, Z(3, lo=0, hi=9, dt="uint8"), Z(3, dt="int8"), exact=True, fd=False)
case("int-plus-f64-0d", lambda m, a, b: a + b, Z(3), D(), fd=False)
case("clamp", lambda m, a: a.clamp(-0.5, 0.5), F(3, 4), exact=True)
case("clamp-fn-min", lambda m, a: m.clamp(a, min=0.1), D(3, 4), exact=True)
case("clamp-int-float", lambda m, a: m.clamp(a, 0.5, 2.5), Z(3, 4), exact=True, fd=False)
case("clamp-int-int", lambda m, a: a.clamp(-2, 2), Z(3, 4), exact=True, fd=False)
case(
    "eq-0d-f64",
    lambda m, a: a == m.tensor(0.1, dtype=m.float64),
    Spec((3,), "float32", None, False, [0.1, 0.2, 0.1]),
    exact=True,
    fd=False,
)
for _name in ["max", "min"]:
    case(f"{_name}-all", lambda m, a, n=_name: getattr(m, n)(a), F(3, 4), exact=True)
    case(f"{_name}-dim", lambda m, a, n=_name: getattr(m, n)(a, 1), F(3, 4), exact=True)
    case(f"{_name}-dim-kw", lambda m, a, n=_name: getattr(m, n)(a, dim=-1, keepdim=True), F(3, 4), exact=True)
    case(f"{_name}-ties-all", lambda m, a, n=_name: getattr(a, n)(), F(3, 4, kind="ties"), exact=True, fd=False)
    case(f"{_name}-int", lambda m, a, n=_name: getattr(a, n)(0), Z(3, 4, lo=-50, hi=50), exact=True, fd=False)
    case(f"{_name}-0d", lambda m, a, n=_name: getattr(a, n)(0), F(), exact=True)
    case(f"{_name}-empty-rows", lambda m, a, n=_name: getattr(a, n)(1), F(0, 3), exact=True)
for _name in ["argmax", "argmin"]:
    case(f"{_name}-keep", lambda m, a, n=_name: getattr(a, n)(keepdim=True), F(3, 4), exact=True, fd=False)
    case(f"{_name}-dim", lambda m, a, n=_name: getattr(m, n)(a, -1), F(3, 4), exact=True, fd=False)
    case(f"{_name}-0d", lambda m, a, n=_name: getattr(a, n)(0), F(), exact=True, fd=False)
case("sum-dim-empty-tuple", lambda m, a: a.sum(()), F(3, 4))
case("mean-neg-dims", lambda m, a: a.mean((-1, 0)), F(2, 3, 4))
case("sum-0d-dim", lambda m, a: a.sum(0), F())

error("sum-dim", IndexError, lambda m: m.ones(2, 3).sum(5))
error("mean-dim", IndexError, lambda m: m.ones(2, 3).mean(-3))
error("sum-dims-twice", RuntimeError, lambda m: m.ones(2, 3).sum((0, 0)))
error("max-dim", IndexError, lambda m: m.ones(2, 3).max(2))
error("max-empty", RuntimeError, lambda m: m.ones(0).max())
error("max-empty-dim", IndexError, lambda m: m.ones(0, 3).max(0))
error("argmax-dim", IndexError, lambda m: m.ones(2, 3).argmax(4))
error("add-shapes", RuntimeError, lambda m: m.ones(2, 3) + m.ones(4))
error("mul-shapes", RuntimeError, lambda m: m.ones(2, 3) * m.ones(2, 1, 2))
error("eq-shapes", RuntimeError, lambda m: m.ones(2, 3) == m.ones(4))
error("reshape", RuntimeError, lambda m: m.ones(2, 3).reshape(4, 2))
error("view", RuntimeError, lambda m: m.ones(2, 3).view(5, -1))
error("expand", RuntimeError, lambda m: m.ones(3, 2).expand(2, 2))
error("expand-fewer", RuntimeError, lambda m: m.ones(3, 2).expand(2))
error("transpose-dim", IndexError, lambda m: m.ones(3, 2).transpose(0, 2))
error("unsqueeze-dim", IndexError, lambda m: m.ones(3, 2).unsqueeze(3))


# -- elementwise ----------------------------------------------------------------------------------
UNARY = {
    "sin": "normal",
    "cos": "normal",
    "tan": "unit",
    "asin": "unit",
    "acos": "unit",
    "atan": "normal",
    "sinh": "normal",
    "cosh": "normal",
    "asinh": "normal",
    "acosh": "gt1",
    "atanh": "unit",
    "exp2": "normal",
    "expm1": "normal",
    "log1p": "pos",
    "log2": "pos",
    "log10": "pos",
    "rsqrt": "pos",
    "reciprocal": "away",
    "erf": "normal",
    "neg": "normal",
    "negative": "normal",
    "square": "normal",
    "frac": "big",
    "logit": "prob",
    "nan_to_num": "nonfinite",
}
ROUNDING = ["sign", "floor", "ceil", "round", "trunc"]
EXACT = {"neg", "negative", "square", "frac", "nan_to_num", "sign", "floor", "ceil", "round", "trunc"}

for _name, _kind in list(UNARY.items()) + [(n, "big") for n in ROUNDING]:
    _fd = _kind not in ("nonfinite",)
    for _shape in [(3, 4), (), (0, 3)]:
        case(
            f"{_name}-fn-{_shape}",
            lambda m, a, n=_name: getattr(m, n)(a),
            F(*_shape, kind=_kind),
            exact=_name in EXACT,
            fd=_fd,
        )
    case(
        f"{_name}-method-f64", lambda m, a, n=_name: getattr(a, n)(), D(2, 3, kind=_kind), exact=_name in EXACT, fd=_fd
    )
for _name in ["sin", "exp2", "rsqrt", "erf", "reciprocal", "log2", "sign", "floor", "round", "square", "logit", "atan"]:
    # integer and bool inputs: float32 results for float functions, as torch; integers stay integers
    case(f"{_name}-int64", lambda m, a, n=_name: getattr(m, n)(a), Z(2, 3, lo=1, hi=5), exact=_name in EXACT, fd=False)
case("sin-bool", lambda m, a: m.sin(a), B(4), fd=False)
case("square-bool", lambda m, a: m.square(a), B(4), exact=True, fd=False)
case("sign-bool", lambda m, a: m.sign(a), B(4), exact=True, fd=False)
case("round-decimals", lambda m, a: m.round(a * 100, decimals=1), F(3, 4, kind="big"), exact=True)
case("round-decimals-neg", lambda m, a: a.mul(1000).round(decimals=-2), D(3, 4, kind="big"), exact=True)
case("logit-eps", lambda m, a: m.logit(a, eps=0.2), F(3, 4, kind="prob"))
case("logit-eps-f64", lambda m, a: a.logit(0.3), D(8, kind="prob"))
case(
    "nan_to_num-args",
    lambda m, a: m.nan_to_num(a, nan=1.5, posinf=9.0, neginf=-9.0),
    F(3, 4, kind="nonfinite"),
    exact=True,
    fd=False,
)
case("nan_to_num-int", lambda m, a: m.nan_to_num(a), Z(3), exact=True, fd=False)

# binary, with broadcasting, 0-d and empty operands
BIN_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (3,)), ((0, 3), (3,))]
BINARY = {
    "atan2": ("normal", "away", False),
    "maximum": ("normal", "normal", True),
    "minimum": ("normal", "normal", True),
    "fmod": ("big", "away", False),
    "remainder": ("big", "away", False),
    "add": ("normal", "normal", False),
    "sub": ("normal", "normal", False),
    "subtract": ("normal", "normal", False),
    "mul": ("normal", "normal", False),
    "multiply": ("normal", "normal", False),
    "div": ("normal", "away", False),
    "divide": ("normal", "away", False),
    "true_divide": ("normal", "away", False),
    "pow": ("pos", "normal", False),
}
for _name, (_ka, _kb, _exact) in BINARY.items():
    for _sa, _sb in BIN_SHAPES:
        case(
            f"{_name}-{_sa}-{_sb}",
            lambda m, a, b, n=_name: getattr(m, n)(a, b),
            F(*_sa, kind=_ka),
            F(*_sb, kind=_kb),
            exact=_exact,
        )
    case(
        f"{_name}-method-f64",
        lambda m, a, b, n=_name: getattr(a, n)(b),
        D(2, 3, kind=_ka),
        D(3, kind=_kb),
        exact=_exact,
    )
    case(
        f"{_name}-f32-f64",
        lambda m, a, b, n=_name: getattr(m, n)(a, b),
        F(2, 3, kind=_ka),
        D(3, kind=_kb),
        exact=_exact,
    )
    case(
        f"{_name}-f32-0d-f64",
        lambda m, a, b, n=_name: getattr(m, n)(a, b),
        F(2, 3, kind=_ka),
        D(kind=_kb),
        exact=_exact,
    )
for _name in ["fmod", "remainder", "add", "sub", "mul", "maximum", "minimum"]:
    case(
        f"{_name}-int64", lambda m, a, b, n=_name: getattr(m, n)(a, b), Z(3, 4), Z(4, lo=-3, hi=4), exact=True, fd=False
    )
    case(
        f"{_name}-int-float",
        lambda m, a, b, n=_name: getattr(m, n)(a, b),
        Z(3, 4),
        F(4, kind="away", grad=False),
        fd=False,
    )
for _name in ["add", "sub", "mul", "div", "fmod", "remainder", "pow"]:
    case(f"{_name}-scalar", lambda m, a, n=_name: getattr(m, n)(a, 1.5), F(3, 4, kind="pos"))
    case(f"{_name}-int-scalar", lambda m, a, n=_name: getattr(m, n)(a, 3), Z(3, 4, lo=1, hi=6), exact=True, fd=False)
case("int-pow-float", lambda m, a: a**0.5, Z(3, lo=1, hi=9), fd=False)
case("int-pow-int", lambda m, a: a**2, Z(3), exact=True, fd=False)
case("rpow-int", lambda m, a: 2**a, Z(3, lo=0, hi=9), exact=True, fd=False)
case("rpow-float", lambda m, a: 2.0**a, F(3, 4))
case("pow-fn-number-base", lambda m, a: m.pow(1.7, a), F(3, 4))
case(
    "pow-zero-base", lambda m, a, b: m.pow(a, b), V([0.0] * 4, "float32"), V([0.0, 0.5, 1.0, 2.0], "float32"), fd=False
)
case("pow-zero-exponent", lambda m, a: a ** (a * 0), F(5, kind="normal"), fd=False)
case("add-alpha", lambda m, a, b: m.add(a, b, alpha=2.5), F(3, 4), F(4))
case("sub-alpha", lambda m, a, b: a.sub(b, alpha=-3), F(3, 4), F(1, 4))
case("add-alpha-int", lambda m, a, b: m.add(a, b, alpha=3), Z(3, 4), Z(4), exact=True, fd=False)
case("add-alpha-scalar", lambda m, a: m.add(a, 2, alpha=0.5), F(3))
case("mod-op", lambda m, a, b: a % b, F(3, 4, kind="big"), F(4, kind="away"))
case("mod-op-scalar", lambda m, a: a % 1.5, F(3, 4, kind="big"))
case("rmod", lambda m, a: 5.0 % a, F(3, 4, kind="away"), grad=False)  # torch: no derivative
case("mod-int-neg", lambda m, a: a % -4, Z(3, 4), exact=True, fd=False)
for _mode in ["trunc", "floor"]:
    case(
        f"div-{_mode}",
        lambda m, a, b, r=_mode: m.div(a, b, rounding_mode=r),
        F(3, 4, kind="big"),
        F(4, kind="away"),
        exact=True,
    )
    case(f"div-{_mode}-int", lambda m, a, b, r=_mode: a.div(b, rounding_mode=r), Z(3, 4), Z(4), exact=True, fd=False)
    case(
        f"div-{_mode}-f64",
        lambda m, a, b, r=_mode: a.div(b, rounding_mode=r),
        D(3, 4, kind="big"),
        D(4, kind="away"),
        exact=True,
    )
case(
    "floor_divide",
    lambda m, a, b: m.floor_divide(a, b),
    F(3, 4, kind="big", grad=False),
    F(4, kind="away", grad=False),
    exact=True,
    fd=False,
)
case("floordiv-op-int", lambda m, a, b: a // b, Z(3, 4), Z(4), exact=True, fd=False)
case("floordiv-op-scalar", lambda m, a: a // 2, Z(3, 4), exact=True, fd=False)
case("rfloordiv", lambda m, a: 7 // a, Z(3, 4), exact=True, fd=False)
case("maximum-ties", lambda m, a, b: m.maximum(a, b), F(3, 4, kind="ties"), F(4, kind="ties"), exact=True, fd=False)
case("minimum-ties", lambda m, a, b: a.minimum(b), F(3, 4, kind="ties"), F(3, 4, kind="ties"), exact=True, fd=False)
case("maximum-nan", lambda m, a, b: m.maximum(a, b), F(3, 4, kind="nonfinite"), F(4), exact=True, fd=False)
case("max-binary", lambda m, a, b: m.max(a, b), F(3, 4), F(4), exact=True)
case("min-binary-method", lambda m, a, b: a.min(b), F(3, 4), F(4), exact=True)
case("atan2-zero", lambda m, a: m.atan2(a * 0, a * 0), F(3), fd=False)
case("atan2-int", lambda m, a, b: m.atan2(a, b), Z(3, 4), Z(4), fd=False)
for _wk in ["scalar", "tensor"]:
    for _sa, _sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (2, 3))]:
        if _wk == "scalar":
            case(f"lerp-{_sa}-{_sb}", lambda m, a, b: m.lerp(a, b, 0.3), F(*_sa), F(*_sb))
            case(f"lerp-big-{_sa}-{_sb}", lambda m, a, b: a.lerp(b, 0.8), F(*_sa), F(*_sb))
        else:
            case(f"lerp-w-{_sa}-{_sb}", lambda m, a, b, w: m.lerp(a, b, w), F(*_sa), F(*_sb), F(*_sb, kind="prob"))
case("lerp-f64", lambda m, a, b, w: a.lerp(b, w), D(2, 3), D(2, 3), D(3, kind="prob"))
for _name in ["addcmul", "addcdiv"]:
    case(f"{_name}", lambda m, a, b, c, n=_name: getattr(m, n)(a, b, c), F(3, 4), F(4), F(3, 1, kind="away"))
    case(
        f"{_name}-value",
        lambda m, a, b, c, n=_name: getattr(a, n)(b, c, value=-0.5),
        F(3, 4),
        F(3, 4),
        F(3, 4, kind="away"),
    )
    case(
        f"{_name}-f64", lambda m, a, b, c, n=_name: getattr(m, n)(a, b, c, value=2), D(2, 3), D(3), D(2, 3, kind="away")
    )
case("addcmul-mixed", lambda m, a, b, c: m.addcmul(a, b, c), D(2, 3), F(3), F(2, 3))
case("addcmul-int", lambda m, a, b, c: m.addcmul(a, b, c, value=2), Z(2, 3), Z(3), Z(2, 3), exact=True, fd=False)

error("maximum-shapes", RuntimeError, lambda m: m.maximum(m.ones(2, 3), m.ones(2)))
error("atan2-shapes", RuntimeError, lambda m: m.atan2(m.ones(2, 3), m.ones(2)))
error("logical-shapes", RuntimeError, lambda m: m.logical_and(m.ones(2, 3), m.ones(2)))
error("lerp-shapes", RuntimeError, lambda m: m.lerp(m.ones(2, 3), m.ones(2), 0.5))
error("lerp-dtypes", RuntimeError, lambda m: m.lerp(m.ones(2), m.ones(2, dtype=m.float64), 0.5))
error("maximum-number", TypeError, lambda m: m.maximum(m.ones(2), 1))
error("div-mode", RuntimeError, lambda m: m.div(m.ones(2), 2, rounding_mode="round"))
error("int-div-zero", RuntimeError, lambda m: m.tensor([1, 2]) // m.tensor([1, 0]))
error("int-fmod-zero", RuntimeError, lambda m: m.fmod(m.tensor([1, 2]), 0))
error("int-remainder-zero", RuntimeError, lambda m: m.tensor([1, 2]) % 0)
error("int-neg-pow", RuntimeError, lambda m: m.tensor([1, 2]) ** -1)
error("int-alpha-float", RuntimeError, lambda m: m.add(m.tensor([1]), m.tensor([1]), alpha=0.5))
error("neg-bool", RuntimeError, lambda m: -m.ones(2, dtype=m.bool))
error("invert-float", TypeError, lambda m: ~m.ones(2))
error("and-float", (NotImplementedError, RuntimeError), lambda m: m.ones(2) & m.ones(2))
error("frac-int", (NotImplementedError, RuntimeError), lambda m: m.frac(m.ones(2, dtype=m.int64)))
error("addcdiv-int", RuntimeError, lambda m: m.addcdiv(m.ones(2), m.tensor([1]), m.tensor([1])))
error("isclose-dtypes", RuntimeError, lambda m: m.isclose(m.ones(2), m.ones(2, dtype=m.float64)))


# -- comparisons and logic ------------------------------------------------------------------------
for _name in ["eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal"]:
    case(
        f"{_name}",
        lambda m, a, b, n=_name: getattr(m, n)(a, b),
        F(3, 4, kind="ties"),
        F(4, kind="ties"),
        exact=True,
        fd=False,
    )
    case(f"{_name}-scalar", lambda m, a, n=_name: getattr(a, n)(1), F(3, 4, kind="ties"), exact=True, fd=False)
    case(
        f"{_name}-int-float",
        lambda m, a, b, n=_name: getattr(m, n)(a, b),
        Z(3, 4, lo=0, hi=3),
        F(4, kind="ties"),
        exact=True,
        fd=False,
    )
    case(
        f"{_name}-int-halfscalar",
        lambda m, a, n=_name: getattr(m, n)(a, 1.5),
        Z(3, 4, lo=0, hi=3),
        exact=True,
        fd=False,
    )
for _name in ["isnan", "isinf", "isfinite"]:
    case(f"{_name}", lambda m, a, n=_name: getattr(m, n)(a), F(3, 4, kind="nonfinite"), exact=True, fd=False)
    case(f"{_name}-int", lambda m, a, n=_name: getattr(a, n)(), Z(3), exact=True, fd=False)
for _name in ["logical_and", "logical_or", "logical_xor"]:
    case(f"{_name}", lambda m, a, b, n=_name: getattr(m, n)(a, b), B(3, 4), B(4), exact=True, fd=False)
    case(
        f"{_name}-float",
        lambda m, a, b, n=_name: getattr(a, n)(b),
        F(3, 4, kind="zeros"),
        Z(4, lo=0, hi=2),
        exact=True,
        fd=False,
    )
case("logical_not", lambda m, a: m.logical_not(a), F(3, 4, kind="zeros"), exact=True, fd=False)
for _op, _f in [("and", lambda a, b: a & b), ("or", lambda a, b: a | b), ("xor", lambda a, b: a ^ b)]:
    case(f"{_op}-bool", lambda m, a, b, f=_f: f(a, b), B(3, 4), B(4), exact=True, fd=False)
    case(f"{_op}-int", lambda m, a, b, f=_f: f(a, b), Z(3, 4, lo=0, hi=16), Z(4, lo=0, hi=16), exact=True, fd=False)
    case(f"{_op}-bool-int", lambda m, a, b, f=_f: f(a, b), B(3, 4), Z(4, lo=0, hi=4), exact=True, fd=False)
    case(f"{_op}-rscalar", lambda m, a, f=_f: f(True, a), B(5), exact=True, fd=False)
case("invert-bool", lambda m, a: ~a, B(3, 4), exact=True, fd=False)
case("invert-int", lambda m, a: ~a, Z(3, 4), exact=True, fd=False)
case("bitwise_not", lambda m, a: m.bitwise_not(a), Z(5), exact=True, fd=False)
case("equal-same", lambda m, a: m.equal(a, a * 1), F(3, 4), exact=True, fd=False)
case("equal-dtypes", lambda m, a: m.equal(a, a.to(m.float64)), F(3, 4), exact=True, fd=False)
case("equal-differ", lambda m, a: a.equal(a + 1), F(3, 4), exact=True, fd=False)
case("equal-shapes", lambda m, a: m.equal(a, a[:2]), F(3, 4), exact=True, fd=False)
case("isclose", lambda m, a, b: m.isclose(a, a + b * 1e-5), F(3, 4), F(4), exact=True, fd=False)
case("isclose-tol", lambda m, a, b: a.isclose(a + b * 1e-3, rtol=1e-2, atol=1e-4), F(3, 4), F(4), exact=True, fd=False)
case("isclose-nan", lambda m, a: m.isclose(a, a, equal_nan=True), F(3, 4, kind="nonfinite"), exact=True, fd=False)
case("isclose-nan-no", lambda m, a: m.isclose(a, a), F(3, 4, kind="nonfinite"), exact=True, fd=False)
case("isclose-int", lambda m, a, b: m.isclose(a, b), Z(3, 4, lo=0, hi=3), Z(4, lo=0, hi=3), exact=True, fd=False)
case("allclose", lambda m, a: m.allclose(a, a + 1e-7), F(3, 4), exact=True, fd=False)
case("allclose-no", lambda m, a: a.allclose(a + 1e-2), F(3, 4), exact=True, fd=False)

# -- reductions -----------------------------------------------------------------------------------
for _args, _kw, _id in [
    ((), {}, "all"),
    ((1,), {}, "dim"),
    ((-1, True), {}, "neg-keep"),
    ((0,), {"keepdim": True}, "keep-kw"),
]:
    case(f"prod-{_id}", lambda m, a, x=_args, k=_kw: m.prod(a, *x, **k), F(3, 4))
    case(f"prod-zeros-{_id}", lambda m, a, x=_args, k=_kw: a.prod(*x, **k), D(3, 4, kind="zeros"))
    case(f"cumsum-{_id}", lambda m, a, x=_args: m.cumsum(a, (x or (0,))[0]), F(3, 4))
    case(f"cumprod-{_id}", lambda m, a, x=_args: a.cumprod((x or (0,))[0]), F(3, 4))
    case(f"cumprod-zeros-{_id}", lambda m, a, x=_args: m.cumprod(a, (x or (1,))[0]), D(3, 4, kind="zeros"))
case("prod-int", lambda m, a: m.prod(a), Z(3, 4, lo=1, hi=3), exact=True, fd=False)
case("prod-bool-dim", lambda m, a: a.prod(1), B(3, 4), exact=True, fd=False)
case("prod-dtype", lambda m, a: a.prod(dtype=m.float64), Z(3, lo=1, hi=4), exact=True, fd=False)
case("prod-0d", lambda m, a: a.prod(0), F())
case("prod-empty", lambda m, a: a.prod(1), F(0, 3))
case("cumsum-int32", lambda m, a: a.cumsum(0), Z(3, 4, dt="int32"), exact=True, fd=False)
case("cumsum-bool", lambda m, a: m.cumsum(a, -1), B(3, 4), exact=True, fd=False)
case("cumsum-dtype", lambda m, a: a.cumsum(1, dtype=m.float64), Z(3, 4), exact=True, fd=False)
case("cumsum-0d", lambda m, a: a.cumsum(-1), F())
case("cumsum-empty", lambda m, a: a.cumsum(0), F(0, 3))
case("cumprod-two-zeros", lambda m, a: a.cumprod(0), Spec((5,), "float64", None, True, [2.0, 0.0, 3.0, 0.0, 4.0]))
for _name in ["var", "std"]:
    for _args, _kw, _id in [
        ((), {}, "all"),
        ((1,), {}, "dim"),
        (((0, 1),), {}, "dims"),
        ((-1,), {"keepdim": True}, "keep"),
        ((), {"unbiased": False}, "biased"),
        ((1, True, True), {}, "positional"),
        ((0,), {"correction": 0}, "corr0"),
        ((1,), {"correction": 2}, "corr2"),
        ((False,), {}, "bool-positional"),
        ((), {"dim": 1, "unbiased": False, "keepdim": True}, "kw"),
    ]:
        case(f"{_name}-{_id}", lambda m, a, x=_args, k=_kw, n=_name: getattr(m, n)(a, *x, **k), F(3, 5))
    case(f"{_name}-f64", lambda m, a, n=_name: getattr(a, n)(0), D(4, 3))
    case(f"{_name}-0d-dim", lambda m, a, n=_name: getattr(a, n)(0, unbiased=False), F())
for _name in ["amax", "amin"]:
    for _args, _id in [((), "all"), ((1,), "dim"), (((0, -1),), "dims"), ((-1, True), "keep"), (([],), "empty-list")]:
        case(f"{_name}-{_id}", lambda m, a, x=_args, n=_name: getattr(m, n)(a, *x), F(3, 4), exact=True)
    case(f"{_name}-ties", lambda m, a, n=_name: getattr(a, n)(1), F(3, 4, kind="ties"), exact=True, fd=False)
    case(f"{_name}-ties-all", lambda m, a, n=_name: getattr(a, n)(), F(3, 4, kind="ties"), exact=True, fd=False)
    case(f"{_name}-int", lambda m, a, n=_name: getattr(a, n)(0), Z(3, 4), exact=True, fd=False)
    case(f"{_name}-0d", lambda m, a, n=_name: getattr(a, n)(0), F(), exact=True)
    case(f"{_name}-empty", lambda m, a, n=_name: getattr(a, n)(1), F(0, 3), exact=True)
for _p in ["fro", 1, 2, 3, 0.5, math.inf, -math.inf, 0]:
    case(f"norm-{_p}", lambda m, a, p=_p: m.norm(a, p), F(3, 4, kind="away"), exact=_p in (math.inf, -math.inf, 0))
    case(
        f"norm-{_p}-dim",
        lambda m, a, p=_p: a.norm(p, dim=1),
        F(3, 4, kind="away"),
        exact=_p in (math.inf, -math.inf, 0),
    )
    case(
        f"norm-{_p}-keep",
        lambda m, a, p=_p: a.norm(p, (0, 1), True),
        D(3, 4, kind="away"),
        exact=_p in (math.inf, -math.inf, 0),
    )
case("norm-zeros", lambda m, a: a.norm(), F(4, kind="zeros"), fd=False)
case("norm-all-zero", lambda m, a: (a * 0).norm(), F(4), fd=False)
case("norm-0.5-zeros", lambda m, a: a.norm(0.5), F(4, kind="zeros"), fd=False)
case("norm-inf-ties", lambda m, a: a.norm(math.inf), Spec((3,), "float32", None, True, [-3.0, 3.0, 1.0]), fd=False)
case("norm-default", lambda m, a: a.norm(), F(3, 4))
for _args, _id in [((1,), "dim"), ((-1, True), "keep"), (((0, 1),), "dims"), ((0,), "dim0")]:
    case(f"logsumexp-{_id}", lambda m, a, x=_args: m.logsumexp(a, *x), F(3, 4, kind="big"))
case("logsumexp-int", lambda m, a: a.logsumexp(1), Z(3, 4), fd=False)
case("logsumexp-f64", lambda m, a: a.logsumexp(0), D(3, 4))
case(
    "logsumexp-inf",
    lambda m, a: a.logsumexp(0),
    Spec((3,), "float32", None, False, [-np.inf, -np.inf, -np.inf]),
    fd=False,
)
case("logsumexp-empty", lambda m, a: a.logsumexp(0), F(0, 3), fd=False)
for _name in ["all", "any"]:
    case(f"{_name}", lambda m, a, n=_name: getattr(m, n)(a), B(3, 4), exact=True, fd=False)
    case(f"{_name}-dim", lambda m, a, n=_name: getattr(a, n)(1), F(3, 4, kind="zeros"), exact=True, fd=False)
    case(f"{_name}-keep", lambda m, a, n=_name: getattr(a, n)(-1, True), Z(3, 4, lo=0, hi=2), exact=True, fd=False)
    case(f"{_name}-uint8", lambda m, a, n=_name: getattr(a, n)(), Z(3, 4, lo=0, hi=2, dt="uint8"), exact=True, fd=False)
    case(f"{_name}-dims", lambda m, a, n=_name: getattr(a, n)((0, 1)), B(3, 4), exact=True, fd=False)
for _args, _id in [((), "all"), ((1,), "dim"), (((0, 1),), "dims"), ((-2,), "neg")]:
    case(
        f"count_nonzero-{_id}",
        lambda m, a, x=_args: m.count_nonzero(a, *x),
        F(3, 4, kind="zeros"),
        exact=True,
        fd=False,
    )
for _args, _kw, _id in [
    ((), {}, "default"),
    ((0,), {}, "dim0"),
    ((), {"descending": True}, "desc"),
    ((-2, True), {}, "pos"),
]:
    case(f"sort-{_id}", lambda m, a, x=_args, k=_kw: m.sort(a, *x, **k), F(3, 4), exact=True)
    case(f"argsort-{_id}", lambda m, a, x=_args, k=_kw: m.argsort(a, *x, **k), F(3, 4), exact=True, fd=False)
case("sort-stable", lambda m, a: a.sort(stable=True, dim=1), F(3, 6, kind="ties"), exact=True, fd=False)
case("sort-stable-desc", lambda m, a: a.sort(stable=True, descending=True), F(3, 6, kind="ties"), exact=True, fd=False)
case(
    "argsort-stable",
    lambda m, a: m.argsort(a, stable=True, descending=True),
    F(3, 6, kind="ties"),
    exact=True,
    fd=False,
)
case("sort-nan", lambda m, a: a.sort(descending=True), F(6, kind="nonfinite", grad=False), exact=True, fd=False)
case("sort-int", lambda m, a: a.sort(), Z(8, lo=-100, hi=100), exact=True, fd=False)
case("sort-0d", lambda m, a: a.sort(), F(), exact=True)
for _args, _kw, _id in [
    ((2,), {}, "k2"),
    ((1, 0), {}, "dim0"),
    ((3,), {"largest": False}, "smallest"),
    ((0,), {}, "k0"),
]:
    case(f"topk-{_id}", lambda m, a, x=_args, k=_kw: m.topk(a, *x, **k), F(3, 4), exact=True)
case("median-all", lambda m, a: m.median(a), F(3, 4), exact=True)
case("median-odd", lambda m, a: a.median(), F(5), exact=True)
case("median-dim", lambda m, a: a.median(1), F(3, 5), exact=True)
case("median-dim-even-keep", lambda m, a: m.median(a, -1, keepdim=True), F(3, 4), exact=True)
case("median-ties", lambda m, a: a.median(), F(3, 4, kind="ties"), exact=True, fd=False)
case("median-nan", lambda m, a: a.median(), F(3, 4, kind="nonfinite", grad=False), exact=True, fd=False)
case("median-nan-dim", lambda m, a: a.median(1), F(3, 4, kind="nonfinite", grad=False), exact=True, fd=False)
case("median-int", lambda m, a: a.median(0), Z(5, 3, lo=-100, hi=100), exact=True, fd=False)

error("cumsum-dim", IndexError, lambda m: m.ones(2, 3).cumsum(2))
error("prod-dim", IndexError, lambda m: m.ones(2, 3).prod(-3))
error("amax-dim", IndexError, lambda m: m.ones(2, 3).amax(2))
error("sort-dim", IndexError, lambda m: m.ones(2, 3).sort(2))
error("topk-k", RuntimeError, lambda m: m.ones(2, 3).topk(4))
error("median-dim", IndexError, lambda m: m.ones(2, 3).median(3))
error("var-int", RuntimeError, lambda m: m.ones(3, dtype=m.int64).var())
error("norm-int", RuntimeError, lambda m: m.ones(3, dtype=m.int64).norm())
error("logsumexp-dim", IndexError, lambda m: m.ones(2, 3).logsumexp(2))
error("var-dof-both", TypeError, lambda m: m.ones(3).var(0, unbiased=True, correction=0))


# -- shape and indexing ---------------------------------------------------------------------------
case("split-int", lambda m, a: m.split(a, 2), F(5, 3), exact=True)
case("split-list-neg", lambda m, a: a.split([1, 0, 2], dim=-1), F(4, 3), exact=True)
case("split-big", lambda m, a: a.split(9, 1), F(2, 3), exact=True)
case("split-empty", lambda m, a: a.split(2), F(0, 3), exact=True)
case("chunk", lambda m, a: m.chunk(a, 3, 1), F(2, 7), exact=True)
case("chunk-fewer", lambda m, a: a.chunk(3, 1), F(3, 4), exact=True)
case("chunk-neg", lambda m, a: a.chunk(2, -1), F(3, 5), exact=True)
case("narrow", lambda m, a: m.narrow(a, 1, 1, 2), F(3, 4), exact=True)
case("narrow-neg", lambda m, a: a.narrow(-1, -3, 2), F(3, 4), exact=True)
case("narrow-empty", lambda m, a: a.narrow(0, 3, 0), F(3, 4), exact=True)
case("unbind", lambda m, a: m.unbind(a), F(3, 4), exact=True)
case("unbind-neg", lambda m, a: a.unbind(-1), F(3, 4), exact=True)
case("gather", lambda m, a, i: m.gather(a, 1, i), F(3, 4), V([[0, 3, 3], [1, 1, 2], [2, 0, 0]]), exact=True)
case("gather-smaller", lambda m, a, i: a.gather(0, i), F(3, 4), V([[2, 0], [2, 1]]), exact=True)
case("gather-int32", lambda m, a, i: a.gather(-1, i), F(3, 4), V([[1], [2], [0]], "int32"), exact=True)
case("gather-0d", lambda m, a, i: a.gather(0, i), F(), V(0), exact=True)
case("scatter-src", lambda m, a, i, s: m.scatter(a, 1, i, s), F(3, 4), V([[3, 0], [1, 2], [0, 3]]), F(3, 2), exact=True)
case(
    "scatter-src-larger",
    lambda m, a, i, s: a.scatter(1, i, s),
    F(3, 4),
    V([[3], [1], [0]]),
    F(3, 3, grad=False),
    exact=True,
)
case("scatter-value", lambda m, a, i: a.scatter(0, i, 2.5), F(3, 4), V([[2, 0, 1, 1]]), exact=True)
case("scatter-int", lambda m, a, i: a.scatter(1, i, 7), Z(3, 4), V([[0], [1], [3]]), exact=True, fd=False)
case(
    "scatter_add", lambda m, a, i, s: m.scatter_add(a, 1, i, s), F(3, 4), V([[3, 3, 0], [1, 2, 1], [0, 0, 0]]), F(3, 3)
)
case("scatter_add-neg", lambda m, a, i, s: a.scatter_add(-2, i, s), F(3, 4), V([[2, 0, 2, 1]]), F(1, 4))
case("index_select", lambda m, a, i: m.index_select(a, 0, i), F(4, 3), V([3, 0, 3]), exact=True)
case("index_select-neg", lambda m, a, i: a.index_select(-1, i), F(4, 3), V([2, 2, 1, 0]), exact=True)
case("index_select-0d-index", lambda m, a, i: a.index_select(0, i), F(4, 3), V(2), exact=True)
case("index_select-empty", lambda m, a, i: a.index_select(1, i), F(4, 3), V(np.zeros(0, np.int64)), exact=True)
case("index_fill", lambda m, a, i: m.index_fill(a, 1, i, -1.0), F(3, 4), V([0, 2]), exact=True)
case("index_fill-tensor", lambda m, a, i, v: a.index_fill(0, i, v), F(3, 4), V([1]), F(), exact=True)
case("masked_fill", lambda m, a, c: m.masked_fill(a, c, -2.0), F(3, 4), B(3, 4), exact=True)
case("masked_fill-bcast-mask", lambda m, a, c: a.masked_fill(c, float("-inf")), F(3, 4), B(4), exact=True, fd=False)
case("masked_fill-bcast-self", lambda m, a, c: a.masked_fill(c, 1.0), F(4), B(3, 4), exact=True)
case("masked_fill-tensor", lambda m, a, c, v: a.masked_fill(c, v), F(3, 4), B(3, 4), F(), exact=True)
case("masked_fill-int", lambda m, a, c: a.masked_fill(c, 2.7), Z(3, 4), B(3, 4), exact=True, fd=False)
case("masked_fill-f64-value", lambda m, a, c, v: a.masked_fill(c, v), F(3, 4), B(4), D(grad=False), exact=True)
case("masked_select", lambda m, a, c: m.masked_select(a, c), F(3, 4), B(3, 4), exact=True)
case("masked_select-bcast", lambda m, a, c: a.masked_select(c), F(4), B(3, 4), exact=True)
case("where", lambda m, c, a, b: m.where(c, a, b), B(3, 4), F(3, 4), F(4), exact=True)
case("where-scalar", lambda m, c, a: m.where(c, a, 0.0), B(3, 4), F(3, 4), exact=True)
case("where-scalar-first", lambda m, c, a: m.where(c, -1, a), B(3, 4), F(4), exact=True)
case("where-scalars", lambda m, c: m.where(c, 1.0, 0), B(3, 4), exact=True, fd=False)
case("where-int-float", lambda m, c, a: m.where(c, a, 0.5), B(3, 4), Z(3, 4), exact=True, fd=False)
case("where-0d-f64", lambda m, c, a, b: m.where(c, a, b), B(3, 4), F(3, 4), D(grad=False), exact=True)
case("where-mixed", lambda m, c, a, b: m.where(c, a, b), B(3, 4), F(3, 4), D(4), exact=True)
case("where-method", lambda m, c, a, b: a.where(c, b), B(3, 4), F(3, 4), F(1, 4), exact=True)
case("where-one-arg", lambda m, c: m.where(c), B(3, 4), exact=True, fd=False)
case("nonzero", lambda m, a: m.nonzero(a), F(3, 4, kind="zeros"), exact=True, fd=False)
case("nonzero-tuple", lambda m, a: a.nonzero(as_tuple=True), F(3, 4, kind="zeros"), exact=True, fd=False)
for _name in ["tril", "triu"]:
    for _k in [0, 1, -1]:
        case(f"{_name}-{_k}", lambda m, a, n=_name, k=_k: getattr(m, n)(a, k), F(3, 4), exact=True)
    case(f"{_name}-3d", lambda m, a, n=_name: getattr(a, n)(diagonal=-1), F(2, 3, 3), exact=True)
case("flip", lambda m, a: m.flip(a, [0, 1]), F(3, 4), exact=True)
case("flip-varargs", lambda m, a: a.flip(-1, 0), F(2, 3, 4), exact=True)
case("flip-tuple", lambda m, a: a.flip((1,)), F(3, 4), exact=True)
case("flip-0d", lambda m, a: a.flip(0), F(), exact=True)
case("roll", lambda m, a: m.roll(a, 1), F(3, 4), exact=True)
case("roll-dim", lambda m, a: a.roll(-2, 1), F(3, 4), exact=True)
case("roll-tuple", lambda m, a: a.roll((1, 5), (0, -1)), F(3, 4), exact=True)
case("repeat", lambda m, a: a.repeat(2, 3), F(3, 4), exact=True)
case("repeat-more", lambda m, a: a.repeat(2, 1, 3), F(3, 4), exact=True)
case("repeat-0d", lambda m, a: a.repeat(2, 3), F(), exact=True)
case("repeat-tuple", lambda m, a: a.repeat((2, 2)), F(3), exact=True)
case("repeat_interleave", lambda m, a: m.repeat_interleave(a, 2), F(3, 2), exact=True)
case("repeat_interleave-dim", lambda m, a: a.repeat_interleave(3, dim=-1), F(3, 2), exact=True)
case("repeat_interleave-tensor", lambda m, a, r: a.repeat_interleave(r, dim=0), F(3, 2), V([1, 0, 2]), exact=True)
case("repeat_interleave-counts", lambda m, r: m.repeat_interleave(r), V([1, 2, 0, 3]), exact=True, fd=False)
case("expand_as", lambda m, a, b: a.expand_as(b), F(3, 1), F(2, 3, 4, grad=False), exact=True)
case("view", lambda m, a: a.view(4, -1), F(2, 6), exact=True)
case("view_as", lambda m, a, b: a.view_as(b), F(2, 6), F(3, 4, grad=False), exact=True)
case("reshape_as", lambda m, a, b: a.reshape_as(b), F(2, 6), F(4, 3, grad=False), exact=True)
case("movedim", lambda m, a: m.movedim(a, 0, -1), F(2, 3, 4), exact=True)
case("movedim-tuple", lambda m, a: a.movedim((0, 1), (2, 0)), F(2, 3, 4), exact=True)
case("moveaxis", lambda m, a: a.moveaxis(-1, 0), F(2, 3, 4), exact=True)
case("swapaxes", lambda m, a: m.swapaxes(a, 0, -1), F(2, 3, 4), exact=True)
case("swapdims", lambda m, a: a.swapdims(1, 2), F(2, 3, 4), exact=True)
case("unflatten", lambda m, a: m.unflatten(a, 1, (3, -1)), F(2, 12), exact=True)
case("unflatten-neg", lambda m, a: a.unflatten(-1, (2, 2)), F(3, 4), exact=True)
case("type_as", lambda m, a, b: a.type_as(b), F(3), D(3, grad=False), exact=True)
case("type_as-int", lambda m, a, b: a.type_as(b), F(3, kind="big", grad=False), Z(3), exact=True, fd=False)
case("diag-1d", lambda m, a: m.diag(a), F(3), exact=True)
case("diag-1d-offset", lambda m, a: a.diag(-1), F(3), exact=True)
case("diag-2d", lambda m, a: a.diag(), F(3, 4), exact=True)
case("diag-2d-offset", lambda m, a: m.diag(a, 2), F(3, 4), exact=True)
case("diagonal", lambda m, a: m.diagonal(a), F(3, 4), exact=True)
case("diagonal-3d", lambda m, a: a.diagonal(1, 1, 2), F(2, 3, 4), exact=True)
case("diagonal-neg-dims", lambda m, a: a.diagonal(offset=-1, dim1=-1, dim2=0), F(3, 2, 4), exact=True)
case("trace", lambda m, a: m.trace(a), F(3, 4))
case("trace-int", lambda m, a: a.trace(), Z(3, 3), exact=True, fd=False)
case("outer", lambda m, a, b: m.outer(a, b), F(3), F(4), exact=True)
case("outer-mixed", lambda m, a, b: a.outer(b), Z(3), F(4), exact=True, fd=False)
case("ger", lambda m, a, b: a.ger(b), D(3), D(2), exact=True)
case("dot", lambda m, a, b: m.dot(a, b), F(5), F(5))
case("dot-int", lambda m, a, b: a.dot(b), Z(5), Z(5), exact=True, fd=False)
case("mm", lambda m, a, b: m.mm(a, b), F(3, 5), F(5, 2))
case("mm-f64", lambda m, a, b: a.mm(b), D(3, 5), D(5, 2))
case("mm-int", lambda m, a, b: a.mm(b), Z(3, 5), Z(5, 2), exact=True, fd=False)
case("bmm", lambda m, a, b: m.bmm(a, b), F(2, 3, 4), F(2, 4, 5))
case("bmm-f64", lambda m, a, b: a.bmm(b), D(2, 3, 4), D(2, 4, 1))
for _eq, _shapes in [
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->", [(3, 4)]),
    ("ij", [(3, 4)]),
    ("ji", [(3, 4)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->ij", [(3, 3, 2)]),
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]),
    ("ij,ij,ij->i", [(3, 4), (3, 4), (1, 4)]),
    ("bi,bj->ij", [(4, 3), (4, 2)]),
    ("i j , j k -> i k", [(3, 4), (4, 2)]),
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
]:
    case(f"einsum-{_eq}", lambda m, *ts, e=_eq: m.einsum(e, *ts), *(F(*s) for s in _shapes))
case("einsum-list", lambda m, a, b: m.einsum("ij,jk", [a, b]), F(3, 4), F(4, 2))
case("einsum-f64", lambda m, a, b: m.einsum("ij,kj->ik", a, b), D(3, 4), D(2, 4))
case("einsum-int", lambda m, a: m.einsum("ij->j", a), Z(3, 4), exact=True, fd=False)
case("einsum-0d", lambda m, a, b: m.einsum(",i->i", a, b), F(), F(3))


error("where-shapes", RuntimeError, lambda m: m.where(m.ones(2, 3, dtype=m.bool), m.ones(2), 0.0))
error("where-not-bool", RuntimeError, lambda m: m.where(m.ones(3, dtype=m.int64), m.ones(3), m.zeros(3)))
error("view_as", RuntimeError, lambda m: m.ones(2, 3).view_as(m.ones(5)))
error("expand_as", RuntimeError, lambda m: m.ones(3, 2).expand_as(m.ones(2, 2)))
error("split-sizes", RuntimeError, lambda m: m.ones(3, 2).split([1, 1]))
error("split-zero", RuntimeError, lambda m: m.ones(3, 2).split(0))
error("split-dim", IndexError, lambda m: m.ones(3, 2).split(1, 2))
error("chunk-zero", RuntimeError, lambda m: m.ones(3, 2).chunk(0))
error("narrow-start", IndexError, lambda m: m.ones(3, 4).narrow(1, 5, 0))
error("narrow-length", RuntimeError, lambda m: m.ones(3, 4).narrow(1, 3, 2))
error("unbind-0d", IndexError, lambda m: m.tensor(1.0).unbind())
error("gather-bounds", RuntimeError, lambda m: m.ones(3, 4).gather(1, m.tensor([[4]])))
error("gather-negative", RuntimeError, lambda m: m.ones(3, 4).gather(1, m.tensor([[-1]])))
error("gather-ndim", RuntimeError, lambda m: m.ones(3, 4).gather(1, m.tensor([1])))
error("gather-size", RuntimeError, lambda m: m.ones(3, 4).gather(1, m.zeros(4, 1, dtype=m.int64)))
error("gather-float-index", RuntimeError, lambda m: m.ones(3, 4).gather(1, m.zeros(3, 1)))
error("gather-dim", IndexError, lambda m: m.ones(3, 4).gather(2, m.zeros(3, 1, dtype=m.int64)))
error("scatter-bounds", RuntimeError, lambda m: m.ones(3, 4).scatter(1, m.tensor([[9]]), 1.0))
error("scatter-dtype", RuntimeError, lambda m: m.ones(3, 4).scatter(1, m.tensor([[0]]), m.ones(1, 1, dtype=m.float64)))
error(
    "scatter_add-dtype",
    RuntimeError,
    lambda m: m.ones(3, 4).scatter_add(1, m.tensor([[0]]), m.ones(1, 1, dtype=m.int64)),
)
error("index_select-bounds", IndexError, lambda m: m.ones(3, 4).index_select(0, m.tensor([3])))
error("index_select-2d", IndexError, lambda m: m.ones(3, 4).index_select(0, m.tensor([[0]])))
error("index_select-float", RuntimeError, lambda m: m.ones(3, 4).index_select(0, m.tensor([0.0])))
error("index_select-dim", IndexError, lambda m: m.ones(3, 4).index_select(2, m.tensor([0])))
error("masked_fill-mask-dtype", RuntimeError, lambda m: m.ones(3).masked_fill(m.ones(3, dtype=m.uint8), 0.0))
error("masked_fill-value-1d", RuntimeError, lambda m: m.ones(3).masked_fill(m.ones(3, dtype=m.bool), m.ones(1)))
error("masked_fill-shapes", RuntimeError, lambda m: m.ones(3).masked_fill(m.ones(2, dtype=m.bool), 0.0))
error("masked_select-shapes", RuntimeError, lambda m: m.ones(3).masked_select(m.ones(2, dtype=m.bool)))
error("tril-1d", RuntimeError, lambda m: m.ones(3).tril())
error("triu-0d", RuntimeError, lambda m: m.tensor(1.0).triu())
error("flip-twice", RuntimeError, lambda m: m.ones(3, 2).flip(0, 0))
error("flip-dim", IndexError, lambda m: m.ones(3, 2).flip(2))
error("flip-int-dims", TypeError, lambda m: m.flip(m.ones(3, 2), 0))
error("roll-align", RuntimeError, lambda m: m.ones(3, 2).roll((1, 2), (0,)))
error("roll-dim", IndexError, lambda m: m.ones(3, 2).roll(1, 2))
error("repeat-fewer", RuntimeError, lambda m: m.ones(3, 2).repeat(2))
error("repeat_interleave-size", RuntimeError, lambda m: m.ones(3, 2).repeat_interleave(m.tensor([1, 2]), dim=0))
error("movedim-dim", IndexError, lambda m: m.ones(3, 2).movedim(0, 2))
error("movedim-twice", RuntimeError, lambda m: m.ones(3, 2, 1).movedim((0, 0), (1, 2)))
error("movedim-lengths", RuntimeError, lambda m: m.ones(3, 2).movedim((0, 1), (1,)))
error("swapaxes-dim", IndexError, lambda m: m.ones(3, 2).swapaxes(0, 2))
error("unflatten-sizes", RuntimeError, lambda m: m.ones(2, 12).unflatten(1, (5, -1)))
error("diag-3d", RuntimeError, lambda m: m.ones(2, 2, 2).diag())
error("diagonal-same", RuntimeError, lambda m: m.ones(2, 2).diagonal(0, 1, 1))
error("trace-3d", RuntimeError, lambda m: m.ones(2, 2, 2).trace())
error("dot-dtypes", RuntimeError, lambda m: m.dot(m.ones(2), m.ones(2, dtype=m.float64)))
error("dot-sizes", RuntimeError, lambda m: m.dot(m.ones(2), m.ones(3)))
error("dot-2d", RuntimeError, lambda m: m.dot(m.ones(2, 2), m.ones(2, 2)))
error("mm-shapes", RuntimeError, lambda m: m.mm(m.ones(2, 3), m.ones(2, 2)))
error("mm-3d", RuntimeError, lambda m: m.mm(m.ones(2, 3, 3), m.ones(3, 2)))
error("mm-dtypes", RuntimeError, lambda m: m.mm(m.ones(2, 2), m.ones(2, 2, dtype=m.float64)))
error("bmm-shapes", RuntimeError, lambda m: m.bmm(m.ones(2, 3, 3), m.ones(3, 3, 2)))
error("bmm-2d", RuntimeError, lambda m: m.bmm(m.ones(3, 3), m.ones(3, 2)))
error("outer-2d", RuntimeError, lambda m: m.outer(m.ones(2, 2), m.ones(2)))
error("einsum-sizes", RuntimeError, lambda m: m.einsum("ij,j", m.ones(2, 3), m.ones(2)))
error("einsum-operands", RuntimeError, lambda m: m.einsum("ij,jk", m.ones(2, 3)))
error("einsum-subscripts", RuntimeError, lambda m: m.einsum("ijk", m.ones(2, 3)))
error("einsum-dtypes", RuntimeError, lambda m: m.einsum("i,i", m.ones(2), m.ones(2, dtype=m.float64)))
error("einsum-output", RuntimeError, lambda m: m.einsum("ij->k", m.ones(2, 3)))


# -- the checks -------------------------------------------------------------------------------------
def _arrays(c, f64=False):
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    out = []
    for s in c.inputs:
        a = s.array(rng)
        if f64 and a.dtype == np.float32:
            a = a.astype(np.float64)
        out.append(a)
    return out


def _ours(arrays, specs):
    return [
        fastnn.tensor(a, dtype=a.dtype, requires_grad=s.grad and a.dtype.kind == "f") for a, s in zip(arrays, specs)
    ]


def _flat(x):
    """The tensors and other leaves of a result (tuples and named tuples flattened)."""
    if isinstance(x, (tuple, list)):
        return [v for item in x for v in _flat(item)]
    return [x]


def _tol(dtype, exact):
    if exact:
        return 0.0
    return 1e-6 if dtype in ("float32", "float16") else 1e-12


def _compare(ours, theirs, torch, exact, where):
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs), where
        if hasattr(theirs, "values"):  # torch.return_types
            assert type(ours).__name__ == type(theirs).__name__, where
            _compare(ours.values, theirs.values, torch, exact, where + ".values")
            _compare(ours.indices, theirs.indices, torch, exact, where + ".indices")
            return
        for i, (o, t) in enumerate(zip(ours, theirs)):
            _compare(o, t, torch, exact, f"{where}[{i}]")
        return
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, fastnn.Tensor), (where, type(ours))
        want_dtype = str(theirs.dtype).removeprefix("torch.")
        assert str(ours.dtype) == want_dtype, (where, ours.dtype, want_dtype)
        assert tuple(ours.shape) == tuple(theirs.shape), (where, ours.shape, theirs.shape)
        o = ours.detach().numpy()
        t = theirs.detach().numpy()
        if exact or want_dtype in ("bool", "int64", "int32", "int16", "int8", "uint8"):
            np.testing.assert_array_equal(o, t, err_msg=where)
        else:
            tol = _tol(want_dtype, False)
            np.testing.assert_allclose(o, t, rtol=tol, atol=tol, err_msg=where)
        return
    assert type(ours) is type(theirs) and ours == theirs, (where, ours, theirs)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_matches_torch(c, torch):
    arrays = _arrays(c)
    ours = _ours(arrays, c.inputs)
    theirs = [torch.tensor(a, requires_grad=s.grad and a.dtype.kind == "f") for a, s in zip(arrays, c.inputs)]
    out_t = c.fn(torch, *theirs)
    out_o = c.fn(fastnn, *ours)
    _compare(out_o, out_t, torch, c.exact, c.id)
    if not c.grad:
        return
    flat_t = [o for o in _flat(out_t) if isinstance(o, torch.Tensor) and o.requires_grad]
    flat_o = [o for o in _flat(out_o) if isinstance(o, fastnn.Tensor) and o.requires_grad]
    assert len(flat_t) == len(flat_o), c.id
    if not flat_t:
        return
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal(tuple(o.shape)) for o in flat_t]
    loss_t = sum((o * torch.tensor(w, dtype=o.dtype)).sum() for o, w in zip(flat_t, ws))
    loss_o = sum((o * fastnn.tensor(w, dtype=o.dtype)).sum() for o, w in zip(flat_o, ws))
    loss_t.backward()
    loss_o.backward()
    for i, (to, tt) in enumerate(zip(ours, theirs)):
        if not tt.requires_grad:
            continue
        if tt.grad is None:
            assert to.grad is None or not to.grad.numpy().any(), (c.id, i)
            continue
        assert to.grad is not None, (c.id, i)
        assert str(to.grad.dtype) == str(tt.grad.dtype).removeprefix("torch."), (c.id, i)
        # in float32 when any float input is float32: torch computes part of a mixed-dtype
        # gradient in the lower precision
        low = any(t.dtype in (torch.float32, torch.float16) for t in theirs)
        tol = 1e-5 if low else 1e-10
        np.testing.assert_allclose(to.grad.numpy(), tt.grad.numpy(), rtol=tol, atol=tol, err_msg=f"{c.id} grad {i}")


FD_CASES = [c for c in CASES if c.fd and c.grad and any(s.grad and s.dtype.startswith("float") for s in c.inputs)]


def _loss(c, arrays, ws):
    ts = _ours(arrays, c.inputs)
    outs = [o for o in _flat(c.fn(fastnn, *ts)) if isinstance(o, fastnn.Tensor) and o.dtype.kind == "f"]
    return ts, outs, sum((o * fastnn.tensor(w, dtype=o.dtype)).sum() for o, w in zip(outs, ws))


@pytest.mark.parametrize("c", FD_CASES, ids=repr)
def test_gradient_finite_differences(c):
    """float64 autograd through fastnn's code against central differences of its forward."""
    arrays = _arrays(c, f64=True)
    with fastnn.no_grad():
        outs = [o for o in _flat(c.fn(fastnn, *_ours(arrays, c.inputs))) if isinstance(o, fastnn.Tensor)]
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal(tuple(o.shape)) for o in outs if o.dtype.kind == "f"]
    ts, outs, loss = _loss(c, arrays, ws)
    if not isinstance(loss, fastnn.Tensor) or not loss.requires_grad:
        return  # nothing reaches the inputs (an empty result)
    loss.backward()
    eps = 1e-6
    for k, (a, s) in enumerate(zip(arrays, c.inputs)):
        if not (s.grad and a.dtype.kind == "f"):
            continue
        num = np.zeros(a.shape)
        for i in np.ndindex(a.shape):
            x = [v.copy() for v in arrays]
            x[k][i] += eps
            with fastnn.no_grad():
                fp = _loss(c, x, ws)[2].item()
            x[k][i] -= 2 * eps
            with fastnn.no_grad():
                fm = _loss(c, x, ws)[2].item()
            num[i] = (fp - fm) / (2 * eps)
        got = ts[k].grad.numpy() if ts[k].grad is not None else np.zeros(a.shape)
        assert ts[k].grad is None or ts[k].grad.dtype == np.float64
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-6, err_msg=f"{c.id} input {k}")


def _host(x):
    return x._data if isinstance(x._data, (np.ndarray, np.generic)) else x._data.get()


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_on_emulated_device(c, emulated_gpu):
    """Every case on a CUDA device (the emulated one: CuPy's strictness about host arrays, NumPy's
    arithmetic) gives the CPU's results and gradients, on the device."""
    arrays = _arrays(c)
    host = _ours(arrays, c.inputs)
    dev = [fastnn.tensor(a, dtype=a.dtype, device="cuda", requires_grad=t.requires_grad) for a, t in zip(arrays, host)]
    out_h, out_d = _flat(c.fn(fastnn, *host)), _flat(c.fn(fastnn, *dev))
    assert len(out_h) == len(out_d)
    for h, d in zip(out_h, out_d):
        if not isinstance(h, fastnn.Tensor):
            assert h == d, c.id
            continue
        assert d.is_cuda and d.dtype == h.dtype and d.shape == h.shape, c.id
        # the device's matrix products are its gemm kernel's: float32 sums in another order
        np.testing.assert_allclose(_host(d), _host(h), rtol=1e-6, atol=1e-6, err_msg=c.id)
    outs = [(h, d) for h, d in zip(out_h, out_d) if isinstance(h, fastnn.Tensor) and h.requires_grad]
    if not (c.grad and outs) or not all(np.isfinite(_host(h)).all() for h, _ in outs):
        return  # (a weighted sum of infinities is no loss to differentiate)
    rng = np.random.default_rng(3)
    ws = [rng.standard_normal(tuple(h.shape)) for h, _ in outs]
    sum((h * fastnn.tensor(w, dtype=h.dtype)).sum() for (h, _), w in zip(outs, ws)).backward()
    sum((d * fastnn.tensor(w, dtype=d.dtype, device="cuda")).sum() for (_, d), w in zip(outs, ws)).backward()
    for h, d in zip(host, dev):
        if h.grad is None:
            assert d.grad is None, c.id
            continue
        assert d.grad.is_cuda, c.id
        np.testing.assert_allclose(_host(d.grad), _host(h.grad), rtol=1e-5, atol=1e-5, err_msg=c.id)


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(case):
    """fastnn raises what torch raises (checked against torch itself below)."""
    _, exc, fn = case
    with pytest.raises(exc):
        fn(fastnn)


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_are_torchs(case, torch):
    _, exc, fn = case
    with pytest.raises(exc):
        fn(torch)


DTYPE_NAMES = [
    "float",
    "double",
    "half",
    "float16",
    "float32",
    "float64",
    "long",
    "int",
    "int64",
    "int32",
    "int16",
    "short",
    "int8",
    "uint8",
    "bool",
]


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_dtype_names_match_torch(name, torch):
    ours, theirs = getattr(fastnn, name), getattr(torch, name)
    assert str(np.dtype(ours)) == str(theirs).removeprefix("torch.")
    assert fastnn.zeros(2, dtype=ours).dtype == ours


def test_var_with_no_degrees_of_freedom_warns(torch):
    for m in (torch, fastnn):
        with pytest.warns(UserWarning, match="degrees of freedom"):
            v = m.ones(1).var()
        assert math.isnan(v.item())


OUT_CALLS = [
    lambda o: fastnn.sin(fastnn.ones(2), out=o),
    lambda o: fastnn.add(fastnn.ones(2), 1, out=o),
    lambda o: fastnn.pow(fastnn.ones(2), 2, out=o),
    lambda o: fastnn.cumsum(fastnn.ones(2), 0, out=o),
    lambda o: fastnn.sort(fastnn.ones(2), out=(o, o)),
    lambda o: fastnn.gather(fastnn.ones(2), 0, fastnn.tensor([0]), out=o),
]


@pytest.mark.parametrize("call", OUT_CALLS)
def test_out_is_refused(call):
    with pytest.raises(NotImplementedError, match="out= is not supported"):
        call(fastnn.zeros(2))


OUT_NAMES = sorted(
    n
    for n in _compat.torch_names("torch out=")
    if callable(vars(fastnn).get(n)) and not isinstance(vars(fastnn)[n], type)
)


def test_out_names_cover_the_common_functions():
    assert {"add", "matmul", "cat", "stack", "sum", "mean", "max", "zeros", "arange", "where", "topk"} <= set(OUT_NAMES)


@pytest.mark.parametrize("name", OUT_NAMES)
def test_out_is_refused_by_every_function_torch_takes_it_for(name):
    """Each fastnn function whose torch counterpart takes out=: NotImplementedError naming it and
    saying what to do instead (not a TypeError about an unexpected keyword); out=None is fine."""
    x = fastnn.ones(2)
    with pytest.raises(NotImplementedError, match=rf"fastnn\.{name}: out= is not supported; use the returned"):
        getattr(fastnn, name)(x, x, out=fastnn.zeros(2))


def test_out_none_is_accepted():
    x = fastnn.ones(2)
    assert fastnn.cat([x, x], out=None).shape == (4,)
    assert fastnn.add(x, x, out=None).tolist() == [2.0, 2.0]
    assert fastnn.sum(x, out=None).item() == 2.0
    assert fastnn.zeros(3, out=None).shape == (3,)


def test_named_results(torch):
    a = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]], np.float32)
    for name, call in [
        ("max", lambda m, t: m.max(t, 1)),
        ("min", lambda m, t: t.min(dim=0)),
        ("sort", lambda m, t: t.sort()),
        ("topk", lambda m, t: t.topk(2)),
        ("median", lambda m, t: t.median(1)),
    ]:
        ours, theirs = call(fastnn, fastnn.tensor(a)), call(torch, torch.tensor(a))
        assert type(ours).__name__ == type(theirs).__name__ == name
        values, indices = ours
        assert values is ours.values and indices is ours.indices and ours[0] is values
        _compare(ours, theirs, torch, True, name)
        assert repr(ours).startswith(f"fastnn.return_types.{name}(")
    assert isinstance(fastnn.max(fastnn.tensor(a)), fastnn.Tensor)


EXPORTED = [
    "sin",
    "pow",
    "round",
    "where",
    "cumsum",
    "all",
    "einsum",
    "flip",
    "multinomial",
    "linspace",
]


def test_functions_are_exported():
    for name in EXPORTED:
        assert callable(getattr(fastnn, name)) and callable(getattr(fastnn.Tensor, name, len)), name
    assert "sin" in fastnn.__all__ and "round" not in fastnn.__all__  # star imports keep builtins


@pytest.mark.parametrize(
    "value,dtype,spec",
    [(2.5, "float32", ".3f"), (2.5, "float64", ">8"), (1 / 3, "float64", ""), (3, "int64", "d"), (True, "bool", "")],
)
def test_format_of_a_zero_dim_tensor_matches_torch(torch, value, dtype, spec):
    ours, theirs = fastnn.tensor(value, dtype=getattr(fastnn, dtype)), torch.tensor(value, dtype=getattr(torch, dtype))
    assert format(ours, spec) == format(theirs, spec)
    assert f"{ours.sum() * 2:.2e}" == f"{theirs.sum() * 2:.2e}"


def test_format_of_a_tensor_with_dims_matches_torch(torch):
    ours, theirs = fastnn.ones(2), torch.ones(2)
    assert format(ours, "") == str(ours)
    with pytest.raises(TypeError, match="unsupported format string"):
        format(theirs, ".2f")
    with pytest.raises(TypeError, match="unsupported format string"):
        format(ours, ".2f")


def raises_like_torch(fn, ours, theirs):
    with pytest.raises(Exception) as e_theirs:
        fn(theirs)
    with pytest.raises(type(e_theirs.value)) as e_ours:
        fn(ours)
    return e_ours.value, e_theirs.value


def test_expand_to_zero_dims_matches_torch(torch):
    for ours, theirs in [(fastnn.tensor(2.0), torch.tensor(2.0)), (fastnn.tensor([2.0]), torch.tensor([2.0]))]:
        if theirs.dim() == 0:
            assert tuple(ours.expand(()).shape) == tuple(theirs.expand(()).shape) == ()
        assert tuple(ours.expand(3, 1).shape) == tuple(theirs.expand(3, 1).shape)
        ours_e, theirs_e = raises_like_torch(lambda t: t.expand(-1, 1), ours, theirs)
        assert theirs.dim() == 0 or str(ours_e) == str(theirs_e)  # (torch's 0-d message is an overflow's)
    x = fastnn.tensor(2.0, requires_grad=True)
    x.expand(()).backward()
    assert x.grad.shape == () and x.grad.item() == 1.0
