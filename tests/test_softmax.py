"""softmax / log_softmax / cross-entropy: every ISA path against the float64 reference, the
reference backwards against finite differences, torch parity, thread invariance, bad input."""

import numpy as np
import pytest
from conftest import ISAS, num_threads, randn, refusal
from fastnn import _core, ops, ref
from fastnn.ref.rounding import EPS32

# Row lengths around the 8-lane vectors and the 16 lanes a row's sums keep (AVX2 walks a row 16
# at a time, then one full vector and one masked one; AVX-512 16 and one masked): n % 16 of 0,
# 1-7 (masked only), 8 (no mask), 9-15 (a full vector and a masked one).
SHAPES = [
    (1, 1),
    (2, 7),
    (3, 8),
    (2, 9),
    (3, 15),
    (2, 16),
    (5, 17),
    (3, 24),
    (2, 25),
    (4, 33),
    (7, 1000),
    (0, 5),
    (1, 1003),
]


def _ce(isa, logits, target, weight, ignore_index, smoothing, reduction):
    """ops.cross_entropy_* on one ISA (the _core row kernels with the ops reductions)."""
    loss, wt = _core.cross_entropy_rows(logits, target, weight, ignore_index, smoothing, isa=isa)
    return loss, wt


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax_rows_against_reference(rng, isa, shape):
    x = randn(rng, *shape) * 4
    y = _core.softmax_forward(x, -1, isa=isa)
    ly = _core.log_softmax_forward(x, -1, isa=isa)
    # exp to ~2 ulp, a float32 sum of n terms: relative ~ (log2(n) + 4) eps on each probability
    n = max(shape[-1], 1)
    np.testing.assert_allclose(y, ref.softmax_forward(x), rtol=(np.log2(n) + 8) * EPS32, atol=1e-30)
    # log_softmax: absolute error ~ eps * (|x - max| + |log sum|)
    np.testing.assert_allclose(
        ly, ref.log_softmax_forward(x), rtol=0, atol=(np.log2(n) + 8) * EPS32 * (np.abs(x).max(initial=1) + 10)
    )
    dy = randn(rng, *shape)
    np.testing.assert_allclose(
        _core.softmax_backward(dy, y, -1, isa=isa),
        ref.softmax_backward(dy, y),
        rtol=1e-5,
        atol=(n + 8) * EPS32 * np.abs(dy).max(initial=0),
    )
    np.testing.assert_allclose(
        _core.log_softmax_backward(dy, ly, -1, isa=isa),
        ref.log_softmax_backward(dy, ly),
        rtol=1e-5,
        atol=(n + 8) * EPS32 * np.abs(dy).sum(-1).max(initial=0),
    )


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_softmax_any_dim(rng, isa, dim):
    x = randn(rng, 3, 19, 5) * 3
    for fwd, bwd, rf, rb in (
        (_core.softmax_forward, _core.softmax_backward, ref.softmax_forward, ref.softmax_backward),
        (_core.log_softmax_forward, _core.log_softmax_backward, ref.log_softmax_forward, ref.log_softmax_backward),
    ):
        y = fwd(x, dim, isa=isa)
        np.testing.assert_allclose(y, rf(x, dim), rtol=1e-5, atol=1e-5)
        dy = randn(rng, *x.shape)
        np.testing.assert_allclose(bwd(dy, y, dim, isa=isa), rb(dy, y, dim), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("isa", ISAS)
def test_softmax_extremes(isa):
    x = np.array(
        [[1e4, -1e4, 0, 3], [-np.inf, 0, 1, -np.inf], [88, 89, 90, -200], [-1e30, -1e30, -1e30, -1e30]], np.float32
    )
    y = _core.softmax_forward(x, -1, isa=isa)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, ref.softmax_forward(x), rtol=1e-6, atol=1e-30)
    ly = _core.log_softmax_forward(x, -1, isa=isa)
    assert ly[1, 0] == -np.inf and np.isfinite(ly[0]).all()
    nan = _core.softmax_forward(np.array([[1, np.nan, 2]], np.float32), -1, isa=isa)
    assert np.isnan(nan).all()  # a NaN in a row poisons the row, as in torch


CE_OPTS = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(ignore_index=2),
    dict(label_smoothing=0.1),
    dict(weight=True),
    dict(weight=True, label_smoothing=0.25, ignore_index=0),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (3, 8), (4, 9), (9, 17), (2, 31), (33, 1000), (4, 1)], ids=str)
@pytest.mark.parametrize("opts", CE_OPTS, ids=lambda o: ",".join(o) or "default")
def test_cross_entropy_against_reference(rng, isa, shape, opts, monkeypatch):
    N, C = shape
    x = randn(rng, N, C) * 5
    t = rng.integers(0, C, N)
    o = dict(opts)
    if o.pop("weight", False):
        o["weight"] = (rng.random(C) + 0.5).astype(np.float32)
    if o.get("ignore_index", -100) >= C:
        o["ignore_index"] = C - 1
    t[: N // 3] = o.get("ignore_index", t[0])  # some ignored rows (or repeated targets)
    # run ops' wrappers on this ISA
    real = _core.cross_entropy_rows, _core.cross_entropy_backward_rows
    monkeypatch.setattr(_core, "cross_entropy_rows", lambda *a, **k: real[0](*a, **k, isa=isa))
    monkeypatch.setattr(_core, "cross_entropy_backward_rows", lambda *a, **k: real[1](*a, **k, isa=isa))
    loss = ops.cross_entropy_forward(x, t, **o)
    want = ref.cross_entropy_forward(x, t, **o)
    assert loss.dtype == np.float32 and loss.shape == want.shape
    # float64 per-row terms from a float32 lse: relative ~ (log2 C + 8) eps of |terms|
    np.testing.assert_allclose(loss, want, rtol=(np.log2(C) + 16) * EPS32, atol=1e-6, equal_nan=True)
    g = randn(rng, *want.shape) if o.get("reduction") == "none" else np.float32(1.7)
    d = ops.cross_entropy_backward(g, x, t, **o)
    np.testing.assert_allclose(
        d,
        ref.cross_entropy_backward(g, x, t, **o),
        rtol=1e-5,
        atol=(np.log2(C) + 16) * EPS32 * np.abs(g).max(),
        equal_nan=True,
    )


def test_cross_entropy_spatial_and_all_ignored(rng):
    x = randn(rng, 2, 5, 3, 4)
    t = rng.integers(0, 5, (2, 3, 4))
    for red in ("mean", "sum", "none"):
        np.testing.assert_allclose(
            ops.cross_entropy_forward(x, t, reduction=red), ref.cross_entropy_forward(x, t, reduction=red), rtol=1e-5
        )
        g = randn(rng, 2, 3, 4) if red == "none" else np.float32(1)
        np.testing.assert_allclose(
            ops.cross_entropy_backward(g, x, t, reduction=red),
            ref.cross_entropy_backward(g, x, t, reduction=red),
            rtol=1e-5,
            atol=1e-7,
        )
    t2 = np.full(3, -100)
    assert np.isnan(ops.cross_entropy_forward(randn(rng, 3, 4), t2))  # torch: nan (0 / 0)


def test_reference_backwards_match_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    t = np.array([1, 4, 0])
    w = rng.random(5) + 0.5
    dy = rng.standard_normal((3, 5))
    eps = 1e-6
    for f, b in (
        (
            lambda v: (ref.softmax_forward(v, 1) * dy).sum(),
            lambda: ref.softmax_backward(dy, ref.softmax_forward(x, 1), 1),
        ),
        (
            lambda v: (ref.log_softmax_forward(v, 0) * dy).sum(),
            lambda: ref.log_softmax_backward(dy, ref.log_softmax_forward(x, 0), 0),
        ),
        (
            lambda v: float(ref.cross_entropy_forward(v, t, w, 0, 0.2)),
            lambda: ref.cross_entropy_backward(1.0, x, t, w, 0, 0.2),
        ),
    ):
        num = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += eps
            xm[i] -= eps
            num[i] = (f(xp) - f(xm)) / (2 * eps)
        np.testing.assert_allclose(b(), num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "opts", CE_OPTS[:5] + [dict(weight=True, label_smoothing=0.3)], ids=lambda o: ",".join(o) or "default"
)
def test_torch_parity(rng, opts):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = randn(rng, 16, 10) * 3
    t = rng.integers(0, 10, 16)
    o = dict(opts)
    if o.pop("weight", False):
        o["weight"] = (rng.random(10) + 0.5).astype(np.float32)
    ot = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in o.items()}
    xt = torch.from_numpy(x.copy()).requires_grad_()
    lt = F.cross_entropy(xt, torch.from_numpy(t), **ot)
    np.testing.assert_allclose(ops.cross_entropy_forward(x, t, **o), lt.detach().numpy(), rtol=2e-6, atol=1e-7)
    g = randn(rng, *lt.shape) if o.get("reduction") == "none" else np.float32(1)
    lt.backward(torch.from_numpy(np.asarray(g)))
    np.testing.assert_allclose(ops.cross_entropy_backward(g, x, t, **o), xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    for dim in (0, 1):
        np.testing.assert_allclose(
            ops.softmax_forward(x, dim), F.softmax(torch.from_numpy(x), dim).numpy(), rtol=1e-6, atol=1e-9
        )
        np.testing.assert_allclose(
            ops.log_softmax_forward(x, dim), F.log_softmax(torch.from_numpy(x), dim).numpy(), rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize("isa", ISAS)
def test_thread_counts_bit_identical(rng, isa, monkeypatch):
    # 301 rows of 257 (257 % 16 = 1: every row ends in a masked vector), rows split over threads
    x = randn(rng, 301, 257) * 3
    t = rng.integers(0, 257, 301)
    real = _core.cross_entropy_rows, _core.cross_entropy_backward_rows
    monkeypatch.setattr(_core, "cross_entropy_rows", lambda *a, **k: real[0](*a, **k, isa=isa))
    monkeypatch.setattr(_core, "cross_entropy_backward_rows", lambda *a, **k: real[1](*a, **k, isa=isa))
    dy = randn(rng, *x.shape)
    res = []
    for n in (1, 2, 3):
        with num_threads(n):
            y, ly = _core.softmax_forward(x, -1, isa=isa), _core.log_softmax_forward(x, 0, isa=isa)
            res.append(
                (
                    y,
                    ly,
                    _core.log_softmax_forward(x, -1, isa=isa),
                    _core.softmax_backward(dy, y, -1, isa=isa),
                    _core.log_softmax_backward(dy, ly, 0, isa=isa),
                    ops.cross_entropy_forward(x, t, label_smoothing=0.1),
                    ops.cross_entropy_backward(np.float32(1), x, t, label_smoothing=0.1),
                )
            )
    for other in res[1:]:
        for a, b in zip(res[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op", ["softmax_forward", "log_softmax_forward", "softmax_backward", "log_softmax_backward"])
def test_a_bool_dim_is_refused(rng, op):
    # pybind11 took True for dim 1; torch refuses a bool (found by the fuzz suite, tests/fuzz)
    x = randn(rng, 4, 3)
    args = (x,) if op.endswith("_forward") else (x, x)
    assert refusal(lambda: getattr(ops, op)(*args, dim=True)) == (
        TypeError,
        f"fastnn.ops.{op}: expected dim to be an int, got bool",
    )
    # and a NumPy float was truncated: np.float16(0.9) was dim 0 (found by the fuzz suite)
    for bad in (np.float32(1.7), np.float16(0.9)):
        assert refusal(lambda d=bad: getattr(ops, op)(*args, dim=d)) == (
            TypeError,
            f"fastnn.ops.{op}: expected dim to be an int, got {type(bad).__name__}",
        )
    np.testing.assert_array_equal(getattr(ops, op)(*args, dim=np.int64(0)), getattr(ops, op)(*args, dim=0))


@pytest.mark.parametrize("op", ["cross_entropy_forward", "cross_entropy_backward"])
def test_cross_entropy_target_of_one_row_and_none(rng, op):
    # 1-D logits (one row) took any target to reshape() (NumPy's ValueError, or the first of its
    # values), None gave an AttributeError, 0-d logits an IndexError (found by the fuzz suite)
    x = randn(rng, 3)
    call = getattr(ops, op)
    pre = () if op == "cross_entropy_forward" else (np.float32(1),)
    cases = [
        ((x, np.zeros(5, np.int64)), ValueError, "expected target of shape () for logits of shape (3,), got (5,)"),
        ((x, None), TypeError, "expected target to be a numpy.ndarray, got NoneType"),
        ((x[:1].reshape(()), np.array(0)), ValueError, "expected logits of 1 or more dimensions, got shape ()"),
    ]
    for args, exc, words in cases:
        assert refusal(call, *pre, *args) == (exc, f"fastnn.ops.{op}: {words}")
    assert call(*pre, x, np.array(1)).shape == ((3,) if pre else ())


def test_cross_entropy_backward_grad_shape_is_the_losss(rng):
    # a grad of one element and another shape was taken for a scalar, and a grad's shape was
    # checked after a float64 copy: a huge view was a MemoryError (found by the fuzz suite)
    x, t = randn(rng, 4, 3), np.array([0, 1, 2, 1])
    op = "fastnn.ops.cross_entropy_backward"
    assert refusal(ops.cross_entropy_backward, np.ones(1, np.float32), x, t) == (
        ValueError,
        f"{op}: expected a scalar grad for reduction 'mean', got shape (1,)",
    )
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**40,), strides=(0,))
    assert refusal(lambda: ops.cross_entropy_backward(huge, x, t, reduction="none")) == (
        ValueError,
        f"{op}: expected grad of shape (4,), got (1099511627776,)",
    )
    np.testing.assert_array_equal(
        ops.cross_entropy_backward(np.array(2.0), x, t), ops.cross_entropy_backward(2.0, x, t)
    )


def test_cross_entropy_backward_huge_arguments_are_refused_not_copied(rng):
    # None logits were an AttributeError; for 'mean' the class weights were copied to float64
    # (or a float64 (C,) of ones made) before any check: a huge stride-0 weight or logits was
    # NumPy's MemoryError (found by the fuzz suite, tests/fuzz)
    op = "fastnn.ops.cross_entropy_backward"
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**40,), strides=(0,))
    x, t = randn(rng, 4, 3), np.array([0, 1, 2, 1])
    assert refusal(ops.cross_entropy_backward, np.float32(1), None, t)[0] is TypeError
    kind, msg = refusal(lambda: ops.cross_entropy_backward(np.float32(1), x, t, weight=big))
    assert kind is ValueError and msg.startswith(f"{op}: expected weight to be C-contiguous"), msg
    kind, msg = refusal(ops.cross_entropy_backward, np.float32(1), big, np.array(0))
    assert kind is ValueError and msg.startswith(f"{op}: expected logits to be C-contiguous")
    # a float target with class weights: the gather was NumPy's IndexError, now the kernel's words
    kind, msg = refusal(ops.cross_entropy_backward, np.float32(1), x, t.astype(np.float64), np.ones(3, np.float32))
    assert kind is TypeError and msg.startswith(f"{op}: expected target"), msg


@pytest.mark.parametrize("op", ["cross_entropy_forward", "cross_entropy_backward"])
def test_cross_entropy_logits_past_memory_are_refused_not_copied(op):
    # (N, C, d...) logits are copied to rows before the entries' checks: a huge stride-0 view of
    # 2^40 classes was NumPy's MemoryError, naming no op (found by the fuzz suite, tests/fuzz)
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1, 2**40, 3), strides=(0, 0, 0))
    pre = () if op == "cross_entropy_forward" else (np.float32(1),)
    kind, msg = refusal(getattr(ops, op), *pre, big, np.zeros((1, 3), np.int64))
    assert kind is ValueError and msg.startswith(f"fastnn.ops.{op}: expected logits that fit in memory"), msg


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 2)])
@pytest.mark.parametrize("name", ["weight", "target"])
def test_cross_entropy_backward_out_sharing_memory_with_weight_or_target(rng, shape, name):
    # the kernel writes out while it reads the class weights: an out over the weights' memory
    # gave a wrong gradient, silently (found by the fuzz suite, tests/fuzz)
    buf = np.zeros(64, np.float32)
    x, t = randn(rng, *shape), np.zeros((shape[0],) + shape[2:], np.int64)
    out = buf[: x.size].reshape(shape)
    weight = buf[: shape[1]] if name == "weight" else np.ones(shape[1], np.float32)
    target = buf.view(np.int64)[: t.size].reshape(t.shape) if name == "target" else t
    assert refusal(lambda: ops.cross_entropy_backward(np.float32(1), x, target, weight, out=out)) == (
        ValueError,
        f"fastnn.ops.cross_entropy_backward: expected out not to share memory with {name}, got overlapping arrays",
    )


def test_cross_entropy_reference_of_no_rows_and_2_to_the_31_classes():
    # the reference made a float64 (C,) of ones for no weights: 16 GiB for this empty view,
    # which the kernels take (found by the fuzz suite, tests/fuzz)
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(0, 2**31 + 1), strides=(0, 0))
    t = np.zeros(0, np.int64)
    with np.errstate(invalid="ignore"):  # the mean of nothing
        assert np.isnan(ref.cross_entropy_forward(x, t)) and np.isnan(ops.cross_entropy_forward(x, t))


def test_bad_input(rng):
    x = randn(rng, 4, 3)
    t = np.array([0, 1, 2, 1])
    with pytest.raises(TypeError, match="softmax_forward"):
        ops.softmax_forward(x.astype(np.float64))
    with pytest.raises(ValueError, match="dim"):
        ops.softmax_forward(x, 2)
    with pytest.raises(ValueError, match="softmax_backward.*same shape"):
        ops.softmax_backward(x, x[:2])
    with pytest.raises(ValueError, match=r"cross_entropy_forward.*targets in \[0, 3\).*got 3"):
        ops.cross_entropy_forward(x, np.array([0, 1, 3, 1]))
    with pytest.raises(TypeError, match="int64"):
        ops.cross_entropy_forward(x, t.astype(np.int32))
    with pytest.raises(ValueError, match="weight"):
        ops.cross_entropy_forward(x, t, weight=np.ones(4, np.float32))
    with pytest.raises(ValueError, match="reduction"):
        ops.cross_entropy_forward(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        ops.cross_entropy_forward(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="target of shape"):
        ops.cross_entropy_forward(x, t[:3])
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        ops.softmax_forward(x, out=ro)
    with pytest.raises(ValueError, match="overlap|share"):
        ops.cross_entropy_backward(np.float32(1), x, t, out=x)


@pytest.mark.parametrize(
    "logits,target,opts,want",
    [
        ([[-np.inf, 1.0]], [0], {}, np.inf),  # the target's probability is 0
        ([[1.0, -np.inf]], [0], {}, 0.0),  # another class's is: no smoothing term, no NaN
        ([[-np.inf, 1.0], [1.0, 2.0]], [-100, 0], {"reduction": "sum"}, 1.3132616875182228),  # ignored row: 0
        ([[-np.inf, 1.0]], [1], {"label_smoothing": 0.1}, np.inf),  # smoothing counts every class
    ],
)
def test_cross_entropy_reference_with_minus_infinity(logits, target, opts, want):
    # the reference's terms that are not counted were multiplied by 0 and gave NaN for -inf
    # log-probabilities where torch and the kernels give these (found by the fuzz suite)
    x, t = np.array(logits, np.float32), np.array(target)
    np.testing.assert_allclose(ref.cross_entropy_forward(x, t, **opts), want, rtol=1e-7)
    np.testing.assert_allclose(ops.cross_entropy_forward(x, t, **opts), want, rtol=1e-6)


@pytest.mark.parametrize("op", ["cross_entropy_forward", "cross_entropy_backward"])
@pytest.mark.parametrize(
    "option,value,exc,words",
    [
        ("ignore_index", None, TypeError, "expected ignore_index to be an int, got NoneType"),
        ("ignore_index", 2.5, TypeError, "expected ignore_index to be an int, got float"),
        ("ignore_index", 2**63, ValueError, "expected ignore_index to fit in int64"),
        ("ignore_index", True, TypeError, "expected ignore_index to be an int, got bool"),
        ("label_smoothing", "0.1", TypeError, "expected label_smoothing to be a float, got str"),
        ("label_smoothing", None, TypeError, "expected label_smoothing to be a float, got NoneType"),
    ],
)
def test_cross_entropy_option_types_name_the_op(rng, op, option, value, exc, words):
    # were pybind11's "cross_entropy_rows(): incompatible function arguments" (found by the fuzz
    # suite, tests/fuzz)
    x, t = randn(rng, 4, 3), np.array([0, 1, 2, 1])
    args = (x, t) if op == "cross_entropy_forward" else (np.float32(1), x, t)
    kind, msg = refusal(lambda: getattr(ops, op)(*args, **{option: value}))
    assert kind is exc and msg.startswith(f"fastnn.ops.{op}: {words}"), msg


# ---------------------------------------------------------------------------------------------
# Every backend (conftest.backend: the CPU at each ISA, the emulated device in each fiber order,
# a GPU when present), against the float64 reference and the CPU's default path.

# Rows (warp per row: row lengths below, at and past 32; row counts not a multiple of the
# block's 8 warps) and columns (softmax over a middle axis); ten dims (more than a shape keeps
# inline, csrc/core/shape.h).
SOFTMAX_CASES = [
    ((1, 1), -1),
    ((9, 31), -1),
    ((17, 32), -1),
    ((3, 100), -1),
    ((2, 5, 7), 1),
    ((4, 3), 0),
    ((2, 1, 3, 1, 2, 1, 1, 2, 1, 5), 2),
]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=str)
def test_softmax_every_backend(rng, backend, shape, dim, log):
    x, dy = randn(rng, *shape) * np.float32(3), randn(rng, *shape)
    y = (backend.run.log_softmax_forward if log else backend.run.softmax_forward)(x, dim, None)
    want = (ref.log_softmax_forward if log else ref.softmax_forward)(x, dim)
    n = shape[dim]
    np.testing.assert_allclose(y, want, rtol=(n + 8) * EPS32 * 4, atol=(n + 8) * EPS32 * (4 if log else 1e-3))
    cpu = (ops.log_softmax_forward if log else ops.softmax_forward)(x, dim)
    np.testing.assert_allclose(y, cpu, rtol=(n + 8) * EPS32 * 4, atol=(n + 8) * EPS32)
    dx = (backend.run.log_softmax_backward if log else backend.run.softmax_backward)(dy, y, dim, None)
    want = (ref.log_softmax_backward if log else ref.softmax_backward)(dy, y, dim)
    scale = np.abs(dy).max() * (n + 4)
    np.testing.assert_allclose(dx, want, rtol=0, atol=float(scale * EPS32 * 8))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (9, 5), (17, 33), (3, 100)], ids=str)
def test_cross_entropy_rows_every_backend(rng, backend, shape, weighted, smoothing):
    M, C = shape
    x = randn(rng, M, C) * np.float32(3)
    t = rng.integers(0, C, M).astype(np.int64)
    t[::4] = -100  # ignored rows
    w = np.abs(randn(rng, C)) + np.float32(0.5) if weighted else None
    loss, wt = backend.run.cross_entropy_rows(x, t, w, -100, smoothing)
    want = ref.cross_entropy_forward(x, t, w, -100, smoothing, reduction="none")
    tol = (C + 8) * EPS32 * 8
    np.testing.assert_allclose(loss, want, rtol=tol, atol=tol * (1 + np.abs(x).max()))
    keep = t != -100
    np.testing.assert_array_equal(wt[~keep], 0)
    np.testing.assert_allclose(wt[keep], 1.0 if w is None else w[t[keep]], rtol=0)
    scale = randn(rng, M)
    dx = backend.run.cross_entropy_backward_rows(x, t, w, -100, smoothing, scale, None)
    want = ref.cross_entropy_backward(scale, x, t, w, -100, smoothing, reduction="none")
    np.testing.assert_allclose(dx, want, rtol=tol, atol=tol * float(np.abs(scale).max()) * (2 if w is None else 4))


@pytest.mark.parametrize("shape,dim", [((37, 100), -1), ((2, 5, 7), 1)], ids=str)
def test_softmax_matches_the_cpu_every_backend(rng, backend, shape, dim):
    P, G = backend.put, backend.get
    x, dy = randn(rng, *shape), randn(rng, *shape)
    for fwd, bwd in ((ops.softmax_forward, ops.softmax_backward), (ops.log_softmax_forward, ops.log_softmax_backward)):
        y = fwd(x, dim)
        gy = fwd(P(x), dim)
        np.testing.assert_allclose(G(gy), y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(G(bwd(P(dy), gy, dim)), bwd(dy, y, dim), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_the_cpu_every_backend(rng, backend, reduction):
    P, G = backend.put, backend.get
    x, w = randn(rng, 6, 5, 3), np.abs(randn(rng, 5)) + np.float32(0.5)
    t = rng.integers(0, 5, (6, 3)).astype(np.int64)
    t[0, 0] = -100
    kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)
    loss = ops.cross_entropy_forward(x, t, **kw)
    gkw = dict(kw, weight=P(w))
    gloss = ops.cross_entropy_forward(P(x), P(t), **gkw)
    np.testing.assert_allclose(G(gloss), loss, rtol=1e-5, atol=1e-6)
    g = np.ones_like(loss)
    np.testing.assert_allclose(
        G(ops.cross_entropy_backward(P(g), P(x), P(t), **gkw)),
        ops.cross_entropy_backward(g, x, t, **kw),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "out,exc,needle",
    [
        (np.zeros((2, 5, 3), np.float64), TypeError, "expected out to be float32, got float64"),
        (np.zeros((2, 3, 5), np.float32).transpose(0, 2, 1), ValueError, "expected out to be C-contiguous"),
        (np.zeros((2, 5, 4), np.float32), ValueError, "expected out of shape \\(2, 5, 3\\), got \\(2, 5, 4\\)"),
    ],
    ids=["float64", "strided", "shape"],
)
def test_cross_entropy_backward_checks_out_over_extra_dims(rng, out, exc, needle):
    """(N, C, d) logits: the result reaches out by assignment, so out gets the kernels' output
    rules first; a bool grad is refused too."""
    x, t = randn(rng, 2, 5, 3), rng.integers(0, 5, (2, 3)).astype(np.int64)
    with pytest.raises(exc, match="fastnn.ops.cross_entropy_backward: " + needle):
        ops.cross_entropy_backward(np.float32(1.0), x, t, out=out)
    ro = np.zeros((2, 5, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="expected out to be writeable"):
        ops.cross_entropy_backward(np.float32(1.0), x, t, out=ro)
    with pytest.raises(ValueError, match="expected out not to share memory with logits"):
        ops.cross_entropy_backward(np.float32(1.0), x, t, out=x)
    with pytest.raises(TypeError, match="expected grad to be a floating-point number or array, got bool"):
        ops.cross_entropy_backward(np.True_, x, t)
    good = np.zeros((2, 5, 3), np.float32)
    assert ops.cross_entropy_backward(np.float32(1.0), x, t, out=good) is good
    np.testing.assert_array_equal(good, ops.cross_entropy_backward(np.float32(1.0), x, t))


def test_out_of_range_target_with_class_weights_is_the_ops_value_error(rng):
    """reduction='mean' with class weights gathers the targets' weights before the kernel runs:
    a target outside [0, C) must still be the op's ValueError, not NumPy's IndexError."""
    x, w = randn(rng, 4, 5), np.ones(5, np.float32)
    t = np.array([0, 1, 7, 2], np.int64)
    with pytest.raises(ValueError, match="cross_entropy_backward: expected targets in \\[0, 5\\).*got 7 at row 2"):
        ops.cross_entropy_backward(np.float32(1.0), x, t, weight=w)
    with pytest.raises(ValueError, match="cross_entropy_forward: expected targets in \\[0, 5\\)"):
        ops.cross_entropy_forward(x, t, weight=w)
