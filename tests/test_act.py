"""Activations: every ISA path against the float64 reference (fastnn.ref), forward and backward,
odd lengths around the vector widths, NaN, in-place out=, thread invariance, the reference
against float64 finite differences, parity with torch.nn.functional, bad input."""

import numpy as np
import pytest
from conftest import ISAS, num_threads, randn
from fastnn import _core, ops, ref
from fastnn.ref.rounding import EPS32

TINY = 1e-37  # exp_f flushes below FLT_MIN to 0 (float32 gives a denormal there)
# The backward multiplies that flushed exp by up to ~2|x| u' (gelu_tanh: ~1e4 at |x| ~ 40).
TINY_BWD = 1e4 * TINY
# Lengths around 4/8/16-lane vectors and the 64-element thread grain, and one past a thread split.
SIZES = [0, 1, 7, 15, 16, 17, 63, 65, 1000, 3 * 65536 + 5]

# name -> (forward kwargs, which input the backward takes)
ACTS = {
    "relu": ({}, "x"),
    "leaky_relu": ({"negative_slope": 0.2}, "x"),
    "sigmoid": ({}, "y"),
    "tanh": ({}, "y"),
    "gelu": ({"approximate": "none"}, "x"),
    "gelu_tanh": ({"approximate": "tanh"}, "x"),
}


def fn(module, name, direction):
    base = "gelu" if name == "gelu_tanh" else name
    return getattr(module, f"{base}_{direction}")


def u_of(x):  # the tanh argument of gelu(approximate="tanh")
    return np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)


def fwd_bound(name, x, desired):
    """Allowed |error| of the float32 forward. Our exp is accurate to ~2 ulp, but its argument t
    is computed in float32 first, and an error of d in t moves e^t by d relative: the bound is
    eps * (4 + T) relative to |y| with T the measured growth of that error (sigmoid: |x|; tanh:
    2|x|; gelu: x^2, as z = x/sqrt2 and z*z each round; gelu_tanh: 6|u|, u from x^3 rounds
    three times), plus TINY. relu and leaky_relu round at most once (x * slope)."""
    x = np.asarray(x, np.float64)
    t = {
        "relu": 0 * x,
        "leaky_relu": 0 * x,
        "sigmoid": np.abs(x),
        "tanh": 2 * np.abs(x),
        "gelu": x * x + 8,
        "gelu_tanh": 6 * np.abs(u_of(x)) + 8,
    }[name]
    return EPS32 * (4 + t) * np.abs(desired) + TINY


def bwd_bound(name, dy, xy):
    """Allowed |error| of the float32 backward: the forward's bound applied to each term of the
    derivative (summed in magnitude: cancellation between them is bounded by the same)."""
    x, dy = np.asarray(xy, np.float64), np.abs(np.asarray(dy, np.float64))
    if name in ("relu", "leaky_relu"):
        return EPS32 * dy
    if name in ("sigmoid", "tanh"):  # dy * (1 - y) * y, dy * (1 - y * y): 3 roundings
        return 4 * EPS32 * np.abs(
            ref.sigmoid_backward(dy, x) if name == "sigmoid" else ref.tanh_backward(dy, x)
        ) + 4 * EPS32 * dy * np.abs(x)
    if name == "gelu":
        pdf = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
        # Phi(|x|) + |x| phi(x); Phi(0) = 1/2 written out (gelu(0) / 0 is not it)
        phi_abs = np.where(x == 0, 0.5, ref.gelu_forward(np.abs(x)) / np.maximum(np.abs(x), 1e-300))
        mag = phi_abs + np.abs(x) * pdf
        return EPS32 * (16 + x * x) * dy * mag + TINY_BWD
    u = u_of(x)
    s = 1 / (1 + np.exp(-2 * np.clip(u, -300, 300)))
    mag = s + np.abs(x) * 2 * s * (1 - s) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)
    return EPS32 * (16 + 4 * np.abs(u)) * dy * mag + TINY_BWD


def assert_within(actual, desired, bound, what):
    assert isinstance(actual, np.ndarray) and actual.dtype == np.float32
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    err = np.abs(actual.astype(np.float64) - desired)
    bad = ~(err <= bound) & ~(np.isnan(actual) & np.isnan(desired))
    if bad.any():
        i = np.argmax(np.where(bad, err / bound, -1))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} beyond the bound; at {i}: "
            f"actual {actual.flat[i]!r}, desired {desired.flat[i]!r}, bound {bound.flat[i]:.3g}"
        )


def inputs(rng, n, scale=4.0):
    return (randn(rng, n) * np.float32(scale)), randn(rng, n)


def check(rng, isa, name, n, scale=4.0):
    """Forward and backward of one activation on the isa path against the reference."""
    kw, takes = ACTS[name]
    x, dy = inputs(rng, n, scale)
    y = fn(_core, name, "forward")(x, isa=isa, **kw)
    y_ref = fn(ref, name, "forward")(x, **kw)
    assert_within(y, y_ref, fwd_bound(name, x, y_ref), f"{name} forward")
    xy = y if takes == "y" else x
    dx = fn(_core, name, "backward")(dy, xy, isa=isa, **kw)
    assert_within(dx, fn(ref, name, "backward")(dy, xy, **kw), bwd_bound(name, dy, xy), f"{name} backward")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("isa", ISAS)
def test_against_reference(rng, isa, name, n):
    check(rng, isa, name, n)


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("isa", ISAS)
def test_wide_range(rng, isa, name):
    # |x| up to ~40: exp's clamps, the far tails, tanh's and sigmoid's saturation.
    check(rng, isa, name, 20001, scale=12.0)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("isa", ISAS)
def test_gelu_backward_at_the_ends_of_the_range(isa, approximate):
    # found by the fuzz suite: where the derivative underflows to 0 (x below ~-13, ~-10 for
    # tanh) an infinite dy gave inf * 0 = NaN, not the infinity the exact (tiny, negative)
    # derivative gives; and the tanh form gave NaN past |x| ~1e13 (x^3, du overflow), where
    # the derivative is 1 or 0. In every lane of 16-lane vectors and of a masked tail.
    x = np.array([-10.4, -14.0, -20.0, -40.0, -1e5, -1e20, -3e38, 1e13, -1e13, 1e20, 3e38, 2.0, -0.5], np.float32)
    xs = np.roll(np.resize(x, 16 * 3 + 7), 3)
    for g in (np.inf, -np.inf, 1.0, 3e38):
        dy = np.full_like(xs, g)
        got = _core.gelu_backward(dy, xs, approximate, isa=isa)
        want = ref.gelu_backward(dy, xs, approximate)
        assert not np.isnan(got).any() and not np.isnan(want).any()
        fin = np.isfinite(want)
        assert np.array_equal(got[~fin], want[~fin])
        assert np.array_equal(np.isinf(got), ~fin)
        assert_within(
            got[fin],
            want[fin],
            bwd_bound(f"gelu{'_tanh' * (approximate == 'tanh')}", dy, xs)[fin] + TINY_BWD * abs(g),
            "gelu backward",
        )
    assert (
        _core.gelu_backward(
            np.full(3, np.inf, np.float32), np.array([-20, -1e20, -3e38], np.float32), approximate, isa=isa
        )
        == -np.inf
    ).all()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("isa", ISAS)
def test_gelu_backward_edges_in_one_block_of_many(rng, isa, approximate):
    # the backward runs blocks of 1024 (csrc/cpu/act_impl.h, kGeluBlock): a block holding an x
    # past the edges takes the edge form, the others the plain one; both agree on ordinary x
    n = 3 * 1024 + 77
    x = rng.standard_normal(n).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    x[1500], x[1600], x[3100] = -20.0, 3e38, -11.0
    dy[1500], dy[3100] = np.inf, -np.inf
    got = _core.gelu_backward(dy, x, approximate, isa=isa)
    with np.errstate(invalid="ignore", over="ignore"):
        want = ref.gelu_backward(dy, x, approximate)
    assert got[1500] == -np.inf and got[3100] == np.inf and not np.isnan(got).any()
    fin = np.isfinite(want)
    kind = "gelu_tanh" if approximate == "tanh" else "gelu"
    assert_within(got[fin], want[fin], bwd_bound(kind, dy, x)[fin], "gelu backward blocks")
    # a block without edges gives what the same values give in a block with one
    plain = _core.gelu_backward(dy[:1024].copy(), x[:1024].copy(), approximate, isa=isa)
    xe, dye = x[:1024].copy(), dy[:1024].copy()
    xe[7], dye[7] = -30.0, np.inf
    edged = _core.gelu_backward(dye, xe, approximate, isa=isa)
    mask = np.arange(1024) != 7
    np.testing.assert_array_equal(plain[mask], edged[mask])


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("isa", ISAS)
def test_special_values(isa, name):
    kw, _ = ACTS[name]
    x = np.array(
        [np.nan, np.inf, -np.inf, 0.0, 1e-30, -1e-30, 89.0, -89.0, 100.0, -100.0, 0.624, 0.626, -0.626], np.float32
    )
    y = fn(_core, name, "forward")(x, isa=isa, **kw)
    with np.errstate(invalid="ignore"):
        desired = fn(ref, name, "forward")(x, **kw)
    assert np.isnan(y[0])  # NaN propagates
    np.testing.assert_allclose(y[1:], desired[1:], rtol=4 * EPS32, atol=TINY)
    # More edges, in every lane of 16-lane vectors and of a masked tail (NaN must propagate
    # from any lane): denormals; tanh's old branch point 0.625 and the AVX-512 clamp at |x| 9
    # (tanh rounds to 1 from ~9.01); gelu's |x| cap 20 and erfc's underflow; exp's clamps at
    # 88.7 / -87.3 / -104. Finite values within the forward bound, the rest exactly.
    more = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            1e-40,
            -1e-40,
            3e-39,
            0.624,
            0.626,
            -0.626,
            8.99,
            -9.0,
            9.01,
            10.0,
            -13.0,
            13.5,
            -19.9,
            20.5,
            -25.0,
            88.0,
            -88.0,
            -103.0,
            -105.0,
            1e30,
            -1e30,
        ],
        np.float32,
    )
    xs = np.roll(np.resize(more, 16 * 4 + 13), 5)
    ys = fn(_core, name, "forward")(xs, isa=isa, **kw)
    with np.errstate(invalid="ignore", over="ignore"):
        want = fn(ref, name, "forward")(xs, **kw)
    fin = np.isfinite(want) & np.isfinite(xs)
    assert np.array_equal(ys[~fin], want[~fin].astype(np.float32), equal_nan=True)
    assert_within(ys[fin], want[fin], fwd_bound(name, xs[fin], want[fin]), f"{name} edges")


@pytest.mark.parametrize("name", list(ACTS))
def test_out_and_in_place(rng, name):
    kw, takes = ACTS[name]
    x, dy = inputs(rng, 1001)
    want = fn(ops, name, "forward")(x, **kw)
    out = np.full_like(x, np.nan)
    assert fn(ops, name, "forward")(x, out=out, **kw) is out and np.array_equal(out, want)
    x2 = x.copy()
    assert fn(ops, name, "forward")(x2, out=x2, **kw) is x2 and np.array_equal(x2, want)
    xy = want if takes == "y" else x
    dwant = fn(ops, name, "backward")(dy, xy, **kw)
    dy2 = dy.copy()
    assert fn(ops, name, "backward")(dy2, xy, out=dy2, **kw) is dy2 and np.array_equal(dy2, dwant)


def test_shapes_are_kept(rng):
    x = randn(rng, 2, 3, 5, 7)
    assert ops.relu_forward(x).shape == x.shape and ops.gelu_backward(x, x).shape == x.shape
    assert ops.sigmoid_forward(np.array(2.0, np.float32)).shape == ()


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("isa", ISAS)
def test_dense_grid_and_piece_edges(isa, name):
    # Every x on a fine grid over [-14, 14] and the float32 neighbours of the edges where the
    # evaluation changes form: AVX2 gelu's pieces (centred on k/2, edges k/2 + 1/4) and its
    # switch to the erfc form at |x| = 3.75, AVX-512 gelu's pieces (k/4 + 1/8) and its
    # (-4.125, 3.875) window, tanh's |x| = 9; forward and backward within the bounds.
    kw, takes = ACTS[name]
    edges = np.array(
        [k / 2 + 0.25 for k in range(8)] + [k / 4 + 0.125 for k in range(16)] + [3.75, 3.875, 4.125, 9.0], np.float32
    )
    e = np.concatenate([edges, np.nextafter(edges, np.float32(np.inf)), np.nextafter(edges, np.float32(0))])
    x = np.concatenate([np.linspace(-14, 14, 200_003, dtype=np.float32), e, -e])
    y = fn(_core, name, "forward")(x, isa=isa, **kw)
    y_ref = fn(ref, name, "forward")(x, **kw)
    assert_within(y, y_ref, fwd_bound(name, x, y_ref), f"{name} forward")
    dy = np.ones_like(x)
    xy = y if takes == "y" else x
    assert_within(
        fn(_core, name, "backward")(dy, xy, isa=isa, **kw),
        fn(ref, name, "backward")(dy, xy, **kw),
        bwd_bound(name, dy, xy),
        f"{name} backward",
    )


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("isa", ISAS)
def test_thread_invariance(rng, isa, name):
    kw, _ = ACTS[name]
    x, dy = inputs(rng, 5 * 65536 + 3)
    with num_threads(1):
        y1 = fn(_core, name, "forward")(x, isa=isa, **kw)
        d1 = fn(_core, name, "backward")(dy, x, isa=isa, **kw)
    for n in (2, 3):
        with num_threads(n):
            assert np.array_equal(fn(_core, name, "forward")(x, isa=isa, **kw), y1)
            assert np.array_equal(fn(_core, name, "backward")(dy, x, isa=isa, **kw), d1)


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("isa", ISAS)
def test_position_invariance(rng, isa, name):
    # An element's result depends on its value only, not on where it falls in a vector, in a
    # block of vectors (gelu takes 4 at a time) or in the masked tail: shift the same values
    # through every offset of a 64-element block, mixing the polynomial range and the tails.
    kw, _ = ACTS[name]
    x = (rng.standard_normal(700) * 6.0).astype(np.float32)
    y0 = fn(_core, name, "forward")(x, isa=isa, **kw)
    for shift in range(1, 65):
        y = fn(_core, name, "forward")(np.ascontiguousarray(x[shift:]), isa=isa, **kw)
        assert np.array_equal(y, y0[shift:], equal_nan=True), shift


# ---------------------------------------------------------------------------------------------
# The reference backward against float64 central differences of the reference forward.


@pytest.mark.parametrize("name", list(ACTS))
def test_reference_backward_finite_differences(rng, name):
    kw, takes = ACTS[name]
    x = rng.standard_normal(200) * 3
    x = x[np.abs(x) > 1e-3]  # relu's kink: no finite difference there
    dy = rng.standard_normal(x.size)
    h = 1e-6
    f = fn(ref, name, "forward")
    numeric = dy * (f(x + h, **kw) - f(x - h, **kw)) / (2 * h)
    xy = f(x, **kw) if takes == "y" else x
    analytic = fn(ref, name, "backward")(dy, xy, **kw)
    # central difference error ~ h^2 f''' + rounding eps64 |f| / h: ~1e-9 here
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Parity with torch.nn.functional (skipped without torch).


@pytest.mark.parametrize("name", list(ACTS))
def test_torch_parity(rng, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    kw, takes = ACTS[name]
    x, dy = inputs(rng, 5000)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = {
        "relu": lambda: F.relu(xt),
        "leaky_relu": lambda: F.leaky_relu(xt, 0.2),
        "sigmoid": lambda: torch.sigmoid(xt),
        "tanh": lambda: torch.tanh(xt),
        "gelu": lambda: F.gelu(xt),
        "gelu_tanh": lambda: F.gelu(xt, approximate="tanh"),
    }[name]()
    yt.backward(torch.from_numpy(dy))
    y = fn(ops, name, "forward")(x, **kw)
    dx = fn(ops, name, "backward")(dy, y if takes == "y" else x, **kw)
    # Ours is within the bounds above of the exact value; torch's gelu evaluates 1 + erf (or
    # 1 + tanh) in float32, which cancels in the left tail to an absolute error of ~eps * |x|
    # (and ~eps * x^2 in the gradient's x * phi(x) term), measured up to ~6 eps |x|: the bound
    # adds 8 eps |x|.
    x64, dy64 = x.astype(np.float64), np.abs(dy.astype(np.float64))
    y_ref = fn(ref, name, "forward")(x, **kw)
    assert_within(
        y, yt.detach().numpy().astype(np.float64), 2 * fwd_bound(name, x, y_ref) + 8 * EPS32 * np.abs(x64), "vs torch"
    )
    xy = y if takes == "y" else x
    assert_within(
        dx,
        xt.grad.numpy().astype(np.float64),
        2 * bwd_bound(name, dy, xy) + 8 * EPS32 * dy64 * (1 + x64 * x64),
        "grad vs torch",
    )


# ---------------------------------------------------------------------------------------------
# Bad input: a TypeError or ValueError naming the op.


def test_bad_dtype():
    with pytest.raises(TypeError, match="relu_forward.*float32"):
        ops.relu_forward(np.zeros(4))
    with pytest.raises(TypeError, match="sigmoid_backward.*ndarray"):
        ops.sigmoid_backward([1.0], np.zeros(1, np.float32))


def test_uncommon_dtypes_are_named_as_numpy_prints_them():
    """Every dtype but float32, int64 and bool is named by its NumPy name, call after call."""
    for dtype in [np.float16, np.complex64, np.dtype(">f4"), np.dtype("<U2")]:
        for _ in range(2):
            with pytest.raises(TypeError) as e:
                ops.relu_forward(np.zeros(3, dtype))
            assert str(e.value) == f"fastnn.ops.relu_forward: expected x to be float32, got {np.dtype(dtype)}"


def test_bad_layout_and_out(rng):
    x = randn(rng, 8, 8)
    with pytest.raises(ValueError, match="tanh_forward.*C-contiguous"):
        ops.tanh_forward(x[:, ::2])
    with pytest.raises(ValueError, match="expected out of shape"):
        ops.tanh_forward(x, out=np.empty((8, 7), np.float32))
    with pytest.raises(TypeError, match="out to be float32"):
        ops.tanh_forward(x, out=np.empty((8, 8)))
    ro = np.empty((8, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ops.relu_forward(x, out=ro)
    big = randn(rng, 100)
    with pytest.raises(ValueError, match="not to share memory"):
        ops.relu_forward(big[:64], out=big[1:65])
    with pytest.raises(ValueError, match="gelu_backward.*same shape"):
        ops.gelu_backward(x, x[:4])


def test_bad_options(rng):
    x = randn(rng, 5)
    with pytest.raises(ValueError, match="gelu_forward.*'none' or 'tanh'"):
        ops.gelu_forward(x, approximate="erf")
    with pytest.raises(TypeError, match="gelu_backward.*approximate"):
        ops.gelu_backward(x, x, approximate=None)
    with pytest.raises(TypeError, match="negative_slope"):
        ops.leaky_relu_forward(x, "0.1")
    with pytest.raises(ValueError, match="isa"):
        _core.relu_forward(x, isa="sse9")


# ---------------------------------------------------------------------------------------------
# Every backend (conftest.backend: the CPU at each ISA, the emulated device in each fiber order,
# a GPU when present), against the float64 reference and the CPU's default path.


@pytest.mark.parametrize("n", [0, 1, 255, 257, 1000])
@pytest.mark.parametrize("name", list(ACTS))
def test_act_every_backend(rng, backend, name, n):
    P, G = backend.put, backend.get
    kw, takes = ACTS[name]
    x, dy = randn(rng, n) * np.float32(4), randn(rng, n)
    y = G(fn(ops, name, "forward")(P(x), **kw))
    y_ref = fn(ref, name, "forward")(x, **kw)
    assert_within(y, y_ref, fwd_bound(name, x, y_ref), f"{name} forward")
    xy = y if takes == "y" else x
    dx = G(fn(ops, name, "backward")(P(dy), P(xy), **kw))
    assert_within(dx, fn(ref, name, "backward")(dy, xy, **kw), bwd_bound(name, dy, xy), f"{name} backward")


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh"])
def test_activations_matches_the_cpu_every_backend(rng, backend, name):
    P, G = backend.put, backend.get
    x, dy = randn(rng, 1000) * np.float32(4), randn(rng, 1000)
    kw = {"approximate": "tanh"} if name == "gelu_tanh" else {}
    base = "gelu" if name == "gelu_tanh" else name
    fwd, bwd = getattr(ops, f"{base}_forward"), getattr(ops, f"{base}_backward")
    y = fwd(x, **kw)
    np.testing.assert_allclose(G(fwd(P(x), **kw)), y, rtol=1e-5, atol=1e-6)
    xy = y if name in ("sigmoid", "tanh") else x
    np.testing.assert_allclose(G(bwd(P(dy), P(xy), **kw)), bwd(dy, xy, **kw), rtol=1e-5, atol=1e-6)


# Ten dims: more than an argument's shape keeps inline (csrc/core/shape.h), as any rank works.
RANK10 = (2, 1, 3, 1, 2, 1, 1, 2, 1, 3)


def test_act_rank_10_every_backend(rng, backend):
    P, G = backend.put, backend.get
    x, dy = randn(rng, *RANK10), randn(rng, *RANK10)
    y = G(ops.relu_forward(P(x)))
    assert y.shape == RANK10
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    np.testing.assert_array_equal(G(ops.relu_backward(P(dy), P(x))), ref.relu_backward(dy, x))
    with pytest.raises(ValueError) as e:
        ops.relu_backward(P(dy), P(randn(rng, *RANK10[:-1], 2)))
    assert str(e.value) == (
        "fastnn.ops.relu_backward: expected dy and x of the same shape, got dy (2, 1, 3, 1, 2, 1, 1, 2, 1, 3) "
        "and x (2, 1, 3, 1, 2, 1, 1, 2, 1, 2)"
    )
