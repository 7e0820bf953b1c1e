"""pool2d: max (with indices), average and global average pooling, forward and backward, on
every ISA path against the float64 reference; every option combination, odd shapes around the
16-lane vector, 1x1 images, batch 0 and 1, thread invariance, the reference backward against
finite differences, parity with torch.nn.functional, and PyTorch's errors."""

import itertools

import numpy as np
import pytest
from conftest import ISAS, num_threads, randn, refusal
from fastnn import _core, ops, ref
from fastnn.ref.rounding import EPS32

# (N, C, H, W): odd sizes, W around 16 and 32 lanes (stride 1 and 2), 1x1, batch 0 and 1.
SHAPES = [(2, 3, 9, 11), (1, 2, 7, 35), (1, 1, 5, 17), (0, 2, 6, 6), (1, 1, 1, 1), (1, 1, 33, 16)]
# kernel, stride, padding, dilation, ceil_mode
MAX_OPTS = [
    (k, s, p, d, c)
    for k, s, p, d, c in itertools.product([1, 2, 3, (3, 2)], [None, 1, 2, 3], [0, 1], [1, 2, (1, 2)], [False, True])
]
AVG_OPTS = [
    (k, s, p, c, cip)
    for k, s, p, c, cip in itertools.product([1, 2, 3, (2, 3)], [None, 1, 2, 3], [0, 1], [False, True], [True, False])
]


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def fits(shape, k, s, p, d=1, c=False):
    """True if PyTorch accepts these options for this shape (the errors are tested below)."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(k), _pair(p), _pair(d)
    sh, sw = _pair(k if s is None else s)
    if ph > kh // 2 or pw > kw // 2:
        return False
    return min(ref.pool2d.out_size(shape[2], kh, sh, ph, dh, c), ref.pool2d.out_size(shape[3], kw, sw, pw, dw, c)) >= 1


def check_max(rng, isa, shape, k, s, p, d, c):
    x = randn(rng, *shape)
    y, idx = _core.max_pool2d_forward(x, k, s, p, d, c, isa=isa)
    y_ref, idx_ref = ref.max_pool2d_forward(x, k, s, p, d, c)
    assert y.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, idx_ref)  # random data: no ties
    np.testing.assert_array_equal(y, y_ref)  # a max is exact
    dy = randn(rng, *y.shape)
    if idx.size and (idx.max() >= x.shape[2] * x.shape[3]):
        # a dilated window that misses the input gets PyTorch's index, outside the plane: the
        # backward refuses it rather than write there
        with pytest.raises(ValueError, match="indices in"):
            _core.max_pool2d_backward(dy, x, idx, k, s, p, d, c, isa=isa)
        return
    dx = _core.max_pool2d_backward(dy, x, idx, k, s, p, d, c, isa=isa)
    # float32 sums of the dy that share an input, in output order: a few roundings
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, x, idx, k, s, p, d, c), rtol=8 * EPS32, atol=8 * EPS32)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("opt", [(2, None, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False)])
def test_max_backward_through_relu(rng, isa, opt):
    # relu=True: the gradient w.r.t. the ReLU's input, in the pooling backward's one pass; equal
    # to relu_backward(max_pool2d_backward(...)) (same sums, then a mask: bit-identical)
    k, s, p, d, c = opt
    x = np.maximum(randn(rng, 3, 5, 12, 11), 0)  # a ReLU output: about half exact zeros
    x[0, 0, 0, :3] = np.nan  # NaN passes the gradient, as in torch
    y, idx = _core.max_pool2d_forward(x, k, s, p, d, c, isa=isa)
    dy = randn(rng, *y.shape)
    fused = _core.max_pool2d_backward(dy, x, idx, k, s, p, d, c, relu=True, isa=isa)
    plain = _core.max_pool2d_backward(dy, x, idx, k, s, p, d, c, isa=isa)
    np.testing.assert_array_equal(fused, ops.relu_backward(plain, x))
    np.testing.assert_allclose(
        fused, ref.max_pool2d_backward(dy, x, idx, k, s, p, d, c, relu=True), rtol=8 * EPS32, atol=8 * EPS32
    )
    assert (fused[x <= 0] == 0).all() and (fused[np.isnan(x)] == plain[np.isnan(x)]).all()


def test_max_backward_through_relu_matches_torch(rng):
    torch = pytest.importorskip("torch")
    z = randn(rng, 2, 4, 10, 10)
    zt = torch.from_numpy(z.copy()).requires_grad_()
    yt = torch.nn.functional.max_pool2d(torch.relu(zt), 2)
    dy = randn(rng, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    x = ops.relu_forward(z)
    y, idx = ops.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, x, idx, 2, relu=True), zt.grad.numpy())


def check_avg(rng, isa, shape, k, s, p, c, cip):
    x = randn(rng, *shape)
    y = _core.avg_pool2d_forward(x, k, s, p, c, cip, isa=isa)
    kh, kw = _pair(k)
    # float32 sum of at most kh*kw terms of |x| < ~5, then one division: kh*kw + 1 roundings
    np.testing.assert_allclose(y, ref.avg_pool2d_forward(x, k, s, p, c, cip), rtol=0, atol=(kh * kw + 1) * EPS32 * 5)
    dy = randn(rng, *y.shape)
    dx = _core.avg_pool2d_backward(dy, x, k, s, p, c, cip, isa=isa)
    np.testing.assert_allclose(
        dx, ref.avg_pool2d_backward(dy, x, k, s, p, c, cip), rtol=0, atol=(kh * kw + 1) * EPS32 * 5
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("isa", ISAS)
def test_max_every_option(rng, isa, shape):
    n = 0
    for opt in MAX_OPTS:
        if fits(shape, *opt):
            check_max(rng, isa, shape, *opt)
            n += 1
    assert n > 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("isa", ISAS)
def test_avg_every_option(rng, isa, shape):
    n = 0
    for k, s, p, c, cip in AVG_OPTS:
        if fits(shape, k, s, p, 1, c):
            check_avg(rng, isa, shape, k, s, p, c, cip)
            n += 1
    assert n > 0


@pytest.mark.parametrize("isa", ISAS)
def test_large_2x2(rng, isa):  # the benchmark's layer, smaller batch
    check_max(rng, isa, (4, 32, 32, 32), 2, None, 0, 1, False)
    check_avg(rng, isa, (4, 32, 32, 32), 2, None, 0, False, True)


@pytest.mark.parametrize("isa", ISAS)
def test_max_ties_and_nan(isa):
    x = np.zeros((1, 1, 4, 6), np.float32)  # all ties: the first of each window
    y, idx = _core.max_pool2d_forward(x, 2, isa=isa)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2, 4], [12, 14, 16]])
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = np.nan  # NaN wins; the last NaN in window order
    x[0, 0, 2, 2] = -np.inf
    y, idx = _core.max_pool2d_forward(x, 2, isa=isa)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 7
    assert np.array_equal(idx, ref.max_pool2d_forward(x, 2)[1])


@pytest.mark.parametrize("isa", ISAS)
def test_thread_invariance(rng, isa):
    x = randn(rng, 3, 17, 20, 23)
    with num_threads(1):
        one = (*_core.max_pool2d_forward(x, 3, 2, 1, isa=isa), _core.avg_pool2d_forward(x, 3, 2, 1, isa=isa))
        dy = randn(rng, *one[0].shape)
        bwd = (_core.max_pool2d_backward(dy, x, one[1], 3, 2, 1), _core.avg_pool2d_backward(dy, x, 3, 2, 1))
    with num_threads(2):
        two = (*_core.max_pool2d_forward(x, 3, 2, 1, isa=isa), _core.avg_pool2d_forward(x, 3, 2, 1, isa=isa))
        bwd2 = (_core.max_pool2d_backward(dy, x, one[1], 3, 2, 1), _core.avg_pool2d_backward(dy, x, 3, 2, 1))
    assert all(np.array_equal(a, b) for a, b in zip(one + bwd, two + bwd2))


# (kernel, stride, padding, ceil_mode, count_include_pad): the general path, and the AVX-512
# 2-wide stride-2 path with power-of-two (multiply) and other (divide) divisors.
@pytest.mark.parametrize(
    "opt",
    [
        (3, 2, 1, False, True),
        (2, 2, 0, False, True),
        (2, 2, 1, True, False),
        ((3, 2), 2, 1, False, True),
        ((3, 2), 2, (1, 0), True, False),
    ],
)
@pytest.mark.parametrize("shape", [(2, 3, 13, 37), (1, 2, 5, 67)])  # 1 and 2 vectors + a tail
def test_isas_agree_bitwise(rng, shape, opt):
    x = randn(rng, *shape)
    want = _core.avg_pool2d_forward(x, *opt, isa="default")
    np.testing.assert_allclose(want, ref.avg_pool2d_forward(x, *opt), rtol=4 * EPS32, atol=1e-6)
    for isa in ISAS:
        assert np.array_equal(_core.avg_pool2d_forward(x, *opt, isa=isa), want)


# Widths around the 8- (AVX2) and 16-lane (AVX-512) vectors at stride 1 and 2, and the tails
# after them; small integers make ties in most windows, and NaNs sit in some. (kernel, stride,
# padding, ceil_mode): the 2-wide stride-2 path, the general path, left/right border outputs.
@pytest.mark.parametrize(
    "opt",
    [
        (2, 2, 0, False),
        (2, 2, 1, True),
        (3, 2, 1, True),
        (3, 1, 1, False),
        ((2, 3), 1, (1, 0), True),
        ((3, 2), 2, (0, 1), False),
    ],
)
@pytest.mark.parametrize("w", [7, 8, 9, 15, 16, 17, 18, 31, 33, 34])
def test_lane_edges_ties_nan(rng, w, opt):
    k, s, p, c = opt
    x = rng.integers(-2, 3, size=(2, 2, 5, w)).astype(np.float32)
    x.flat[rng.choice(x.size, size=x.size // 17, replace=False)] = np.nan
    y_ref, idx_ref = ref.max_pool2d_forward(x, k, s, p, 1, c)
    for isa in ISAS:
        y, idx = _core.max_pool2d_forward(x, k, s, p, 1, c, isa=isa)
        np.testing.assert_array_equal(idx, idx_ref)  # first maximum of ties, last NaN
        np.testing.assert_array_equal(y, y_ref)
    x = randn(rng, 2, 2, 5, w)
    for cip in (True, False):
        want = _core.avg_pool2d_forward(x, k, s, p, c, cip, isa="default")
        for isa in ISAS:
            assert np.array_equal(_core.avg_pool2d_forward(x, k, s, p, c, cip, isa=isa), want)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (0, 2, 3, 3), (1, 1, 1, 1)])
def test_global(rng, shape):
    x = randn(rng, *shape)
    y = ops.global_avg_pool2d_forward(x)
    np.testing.assert_allclose(y, ref.global_avg_pool2d_forward(x), rtol=EPS32, atol=1e-7)
    dy = randn(rng, *y.shape)
    np.testing.assert_allclose(
        ops.global_avg_pool2d_backward(dy, x), ref.global_avg_pool2d_backward(dy, x), rtol=2 * EPS32
    )


def test_out_buffers(rng):
    x = randn(rng, 2, 3, 8, 8)
    out, ind = np.full((2, 3, 4, 4), np.nan, np.float32), np.zeros((2, 3, 4, 4), np.int64)
    y, idx = ops.max_pool2d_forward(x, 2, out=out, indices=ind)
    assert y is out and idx is ind and np.array_equal(idx, ref.max_pool2d_forward(x, 2)[1])
    dx = np.full_like(x, np.nan)
    assert ops.max_pool2d_backward(out, x, ind, 2, out=dx) is dx and not np.isnan(dx).any()
    assert ops.avg_pool2d_forward(x, 2, out=out) is out
    assert ops.avg_pool2d_backward(out, x, 2, out=dx) is dx


# ---------------------------------------------------------------------------------------------
# The reference backward against float64 finite differences (directional derivative).


@pytest.mark.parametrize(
    "kind,opts",
    [
        ("max", (3, 2, 1, 2, True)),
        ("max", (2, None, 0, 1, False)),
        ("avg", (3, 2, 1, True, False)),
        ("avg", (2, 1, 1, False, True)),
        ("global", ()),
    ],
)
def test_reference_backward_finite_differences(rng, kind, opts):
    x = rng.standard_normal((2, 2, 7, 8))
    v = rng.standard_normal(x.shape)
    h = 1e-6
    if kind == "max":
        f = lambda z: ref.max_pool2d_forward(z, *opts)[0]  # noqa: E731 (no ties: piecewise linear)
    elif kind == "avg":
        f = lambda z: ref.avg_pool2d_forward(z, *opts)  # noqa: E731
    else:
        f = ref.global_avg_pool2d_forward
    dy = rng.standard_normal(f(x).shape)
    numeric = np.sum(dy * (f(x + h * v) - f(x - h * v))) / (2 * h)
    if kind == "max":
        dx = ref.max_pool2d_backward(dy, x, ref.max_pool2d_forward(x, *opts)[1], *opts)
    elif kind == "avg":
        dx = ref.avg_pool2d_backward(dy, x, *opts)
    else:
        dx = ref.global_avg_pool2d_backward(dy, x)
    np.testing.assert_allclose(np.sum(dx * v), numeric, rtol=1e-7, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Parity with torch.nn.functional (skipped without torch).


@pytest.mark.parametrize(
    "opt", [(2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 0), (2, 1), True), (3, 1, 1, 2, False)]
)
def test_torch_parity_max(rng, opt):
    torch = pytest.importorskip("torch")
    k, s, p, d, c = opt
    x = randn(rng, 2, 3, 11, 13)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt, it = torch.nn.functional.max_pool2d(xt, k, s, p, d, c, return_indices=True)
    dy = randn(rng, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, idx = ops.max_pool2d_forward(x, k, s, p, d, c)
    assert np.array_equal(y, yt.detach().numpy()) and np.array_equal(idx, it.numpy())
    np.testing.assert_allclose(
        ops.max_pool2d_backward(dy, x, idx, k, s, p, d, c), xt.grad.numpy(), rtol=4 * EPS32, atol=4 * EPS32
    )


@pytest.mark.parametrize(
    "opt",
    [(2, None, 0, False, True), (3, 2, 1, True, True), (3, 2, 1, True, False), ((2, 3), (1, 2), (1, 1), True, False)],
)
def test_torch_parity_avg(rng, opt):
    torch = pytest.importorskip("torch")
    k, s, p, c, cip = opt
    x = randn(rng, 2, 3, 11, 13)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = torch.nn.functional.avg_pool2d(xt, k, s, p, c, cip)
    dy = randn(rng, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(
        ops.avg_pool2d_forward(x, k, s, p, c, cip), yt.detach().numpy(), rtol=4 * EPS32, atol=4 * EPS32
    )
    np.testing.assert_allclose(
        ops.avg_pool2d_backward(dy, x, k, s, p, c, cip), xt.grad.numpy(), rtol=4 * EPS32, atol=4 * EPS32
    )


def test_torch_parity_global(rng):
    torch = pytest.importorskip("torch")
    x = randn(rng, 2, 3, 7, 5)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, 1)
    dy = randn(rng, 2, 3, 1, 1)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ops.global_avg_pool2d_forward(x), yt.detach().numpy(), rtol=4 * EPS32, atol=1e-7)
    np.testing.assert_allclose(ops.global_avg_pool2d_backward(dy, x), xt.grad.numpy(), rtol=4 * EPS32)


# Options PyTorch refuses; we refuse them too, with a ValueError naming the op.
REFUSED = [
    ((1, 1, 4, 4), 3, 1, 2, 1),
    ((1, 1, 1, 1), 2, None, 0, 1),
    ((1, 1, 4, 4), 0, 1, 0, 1),
    ((1, 1, 4, 4), 2, 0, 0, 1),
    ((1, 1, 4, 4), 2, 1, 0, 0),
    ((1, 1, 2, 2), 2, 1, 0, 2),
    ((1, 0, 4, 4), 2, None, 0, 1),
]


@pytest.mark.parametrize("shape,k,s,p,d", REFUSED)
def test_refused_like_torch(shape, k, s, p, d):
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match="max_pool2d_forward"):
        ops.max_pool2d_forward(x, k, s, p, d)
    if d == 1:
        with pytest.raises(ValueError, match="avg_pool2d_forward"):
            ops.avg_pool2d_forward(x, k, s, p)
    torch = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, ValueError)):
        torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, d)


def _bad_calls(x, y, idx, bad_idx):
    """name -> (call(A), exception, pattern): A wraps each array for a device (NumPy itself, or
    a device copy); every argument rule of pooling is covered once."""
    return {
        "float64": (
            lambda A: ops.max_pool2d_forward(A(x.astype(np.float64)), 2),
            TypeError,
            "max_pool2d_forward.*float32",
        ),
        "3d": (lambda A: ops.avg_pool2d_forward(A(x[0]), 2), ValueError, "4-D"),
        "kernel_str": (lambda A: ops.max_pool2d_forward(A(x), "2"), TypeError, "kernel_size"),
        "kernel_triple": (lambda A: ops.max_pool2d_forward(A(x), (2, 2, 2)), ValueError, "pair"),
        "ceil_int": (lambda A: ops.max_pool2d_forward(A(x), 2, ceil_mode=1), TypeError, "ceil_mode"),
        "indices_int32": (
            lambda A: ops.max_pool2d_forward(A(x), 2, indices=A(np.zeros((1, 2, 3, 3), np.int32))),
            TypeError,
            "indices to be int64",
        ),
        "out_shape": (
            lambda A: ops.max_pool2d_forward(A(x), 2, out=A(np.zeros((1, 2, 2, 2), np.float32))),
            ValueError,
            "expected out of shape",
        ),
        "dy_shape": (lambda A: ops.max_pool2d_backward(A(y[:, :1]), A(x), A(idx), 2), ValueError, "dy of shape"),
        "indices_range": (lambda A: ops.max_pool2d_backward(A(y), A(x), A(bad_idx), 2), ValueError, "indices in"),
        "stride_0": (lambda A: ops.avg_pool2d_backward(A(y), A(x), 2, 0), ValueError, "stride should be"),
        "global_dy": (lambda A: ops.global_avg_pool2d_backward(A(y), A(x)), ValueError, "global_avg_pool2d_backward"),
        # ints past int64 were pybind11's RuntimeError "Unable to cast Python instance" (found by
        # the fuzz suite, tests/fuzz)
        "kernel_past_int64": (
            lambda A: ops.max_pool2d_forward(A(x), 2**63),
            ValueError,
            "^fastnn.ops.max_pool2d_forward: expected kernel_size to fit in int64, got 9223372036854775808$",
        ),
        "kernel_ndarray": (  # was NumPy's "only integer scalar arrays can be converted to a scalar index"
            lambda A: ops.max_pool2d_forward(A(x), np.array([2, 2])),
            TypeError,
            "^fastnn.ops.max_pool2d_forward: expected kernel_size to be an int, got ndarray",
        ),
        "padding_pair_past_int64": (
            lambda A: ops.avg_pool2d_backward(A(y), A(x), 2, padding=(0, -(2**64))),
            ValueError,
            "^fastnn.ops.avg_pool2d_backward: expected padding to fit in int64",
        ),
    }


def _cases(rng):
    x = randn(rng, 1, 2, 6, 6)
    y, idx = ops.max_pool2d_forward(x, 2)
    bad = idx.copy()
    bad[0, 1, 2, 2] = 36  # outside the 6x6 plane
    return x, y, idx, bad


BAD_NAMES = list(_bad_calls(*_cases(np.random.default_rng(0))))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input(rng, name):
    call, exc, pattern = _bad_calls(*_cases(rng))[name]
    with pytest.raises(exc, match=pattern):
        call(lambda a: a)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_same_words_on_the_device(rng, name, emulated_gpu):
    """pool2d's meta functions are the device's rules too: the same exception and message
    (the CPU finds a bad index while scattering and adds that dx is not valid)."""
    call, exc, pattern = _bad_calls(*_cases(rng))[name]
    with pytest.raises(exc, match=pattern) as cpu:
        call(lambda a: a)
    with pytest.raises(exc, match=pattern) as dev:
        call(emulated_gpu.asarray)
    assert str(cpu.value).removesuffix(" (dx is not valid)") == str(dev.value)


@pytest.mark.parametrize("k,s,p,ceil", [(2**31 - 1, None, 2, True), ((3, 2**31 - 1), (1, 2**31 - 1), (1, 1), True)])
def test_reference_windows_of_huge_kernels(rng, k, s, p, ceil):
    # a kernel of 2^31 taps over a small input is one window: the reference walked every tap and
    # hung where the kernels answer at once (found by the fuzz suite, tests/fuzz)
    x = randn(rng, 2, 3, 9, 7)
    y, idx = ops.max_pool2d_forward(x, k, s, p, 1, ceil)
    y_ref, idx_ref = ref.max_pool2d_forward(x, k, s, p, 1, ceil)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_allclose(
        ops.avg_pool2d_forward(x, k, s, p, ceil), ref.avg_pool2d_forward(x, k, s, p, ceil), rtol=1e-6, atol=1e-6
    )


def test_global_backward_needs_dy(rng):
    # dy=None passed the checks (the meta function's dy is optional, for the forward) and the
    # kernel read a null pointer: a segfault (found by the fuzz suite, tests/fuzz)
    x = randn(rng, 2, 3, 4, 5)
    assert refusal(ops.global_avg_pool2d_backward, None, x) == (
        TypeError,
        "fastnn.ops.global_avg_pool2d_backward: expected dy to be a numpy.ndarray of float32, got NoneType",
    )


def test_global_backward_needs_dy_on_the_device(rng, emulated_gpu):
    x = emulated_gpu.asarray(randn(rng, 2, 3, 4, 5))
    with pytest.raises(TypeError, match="^fastnn.ops.global_avg_pool2d_backward: expected dy to be a CUDA array"):
        ops.global_avg_pool2d_backward(None, x)


def test_bad_layout_and_overlap(rng):
    x = randn(rng, 1, 2, 6, 6)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.avg_pool2d_forward(x[:, :, :, ::2], 2)
    y, _ = ops.max_pool2d_forward(x, 2)
    with pytest.raises(ValueError, match="not to share memory"):
        ops.avg_pool2d_backward(y, x, 2, out=x)


# ---------------------------------------------------------------------------------------------
# Every backend (conftest.backend: the CPU at each ISA, the emulated device in each fiber order,
# a GPU when present), against the float64 reference and the CPU's default path.

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode): overlapping and disjoint windows,
# padding, dilation, ceil mode, one pixel, rectangular everything.
POOL_CASES = [
    (2, 3, 9, 8, 3, 2, 1, 1, True),
    (1, 2, 7, 7, 2, 2, 0, 1, False),
    (2, 1, 10, 11, 3, 1, 1, 2, False),
    (1, 1, 1, 1, 1, 1, 0, 1, False),
    (2, 2, 5, 6, (2, 3), (1, 2), (1, 1), 1, True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool2d_every_backend(rng, backend, case):
    N, C, H, W, k, s, p, d, ceil = case
    x = randn(rng, N, C, H, W)
    x[0, 0, 0, :2] = np.nan if H * W > 4 else x[0, 0, 0, :2]  # NaN wins the window
    y, idx = backend.run.max_pool2d_forward(x, k, s, p, d, ceil, None, None)
    y_cpu, idx_cpu = ops.max_pool2d_forward(x, k, s, p, d, ceil)
    np.testing.assert_array_equal(y, y_cpu)  # the same window walk: the same bits and indices
    np.testing.assert_array_equal(idx, idx_cpu)
    dy = randn(rng, *y.shape)
    for relu in (False, True):
        xr = np.maximum(x, 0) if relu else x
        dx = backend.run.max_pool2d_backward(dy, xr, idx, k, s, p, d, ceil, relu, None)
        want = ops.max_pool2d_backward(dy, xr, idx_cpu, k, s, p, d, ceil, relu=relu)
        np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)  # atomic adds in any order
    if d == 1:
        xa = np.nan_to_num(x)
        for cip in (True, False):
            ya = backend.run.avg_pool2d_forward(xa, k, s, p, ceil, cip, None)
            np.testing.assert_allclose(ya, ops.avg_pool2d_forward(xa, k, s, p, ceil, cip), rtol=1e-6, atol=1e-6)
            dya = randn(rng, *ya.shape)
            np.testing.assert_allclose(
                backend.run.avg_pool2d_backward(dya, xa, k, s, p, ceil, cip, None),
                ops.avg_pool2d_backward(dya, xa, k, s, p, ceil, cip),
                rtol=1e-5,
                atol=1e-6,
            )


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 2, 17, 19), (3, 1, 40, 40)], ids=str)
def test_global_avg_pool2d_every_backend(rng, backend, shape):
    x = randn(rng, *shape)
    y = backend.run.global_avg_pool2d_forward(x, None)
    np.testing.assert_allclose(y, ops.global_avg_pool2d_forward(x), rtol=4e-6, atol=1e-6)
    dy = randn(rng, *y.shape)
    np.testing.assert_allclose(
        backend.run.global_avg_pool2d_backward(dy, x, None), ops.global_avg_pool2d_backward(dy, x), rtol=1e-6, atol=0
    )


def test_pooling_matches_the_cpu_every_backend(rng, backend):
    P, G = backend.put, backend.get
    x = randn(rng, 2, 3, 9, 8)
    y, idx = ops.max_pool2d_forward(x, 3, 2, 1, 1, True)
    gy, gidx = ops.max_pool2d_forward(P(x), 3, 2, 1, 1, True)
    np.testing.assert_array_equal(G(gy), y)
    np.testing.assert_array_equal(G(gidx), idx)
    dy = randn(rng, *y.shape)
    np.testing.assert_allclose(
        G(ops.max_pool2d_backward(P(dy), P(x), gidx, 3, 2, 1, 1, True)),
        ops.max_pool2d_backward(dy, x, idx, 3, 2, 1, 1, True),
        rtol=1e-6,
        atol=1e-6,
    )
    ya = ops.avg_pool2d_forward(x, 2, 1, 1, False, False)
    np.testing.assert_allclose(G(ops.avg_pool2d_forward(P(x), 2, 1, 1, False, False)), ya, rtol=1e-6, atol=1e-6)
    dya = randn(rng, *ya.shape)
    np.testing.assert_allclose(
        G(ops.avg_pool2d_backward(P(dya), P(x), 2, 1, 1, False, False)),
        ops.avg_pool2d_backward(dya, x, 2, 1, 1, False, False),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        G(ops.global_avg_pool2d_forward(P(x))), ops.global_avg_pool2d_forward(x), rtol=1e-5, atol=1e-6
    )


def test_window_offsets_cost_nothing_and_sizes_past_32_bits_are_refused():
    """The first tap inside the input is found in O(1), however much padding precedes it (a
    window of 2^30 with padding 2^29 over a 2x2 image); kernel, stride, padding or dilation past
    2^31-1 is a ValueError (their products would overflow)."""
    x = np.ones((1, 1, 2, 2), np.float32)
    y, idx = ops.max_pool2d_forward(x, 2**30, None, 2**29)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 1.0
    assert ops.avg_pool2d_forward(x, 2**30, None, 2**29).shape == (1, 1, 1, 1)
    for k, p in [(2**40, 2**39), ((1, 2**33), (0, 2**32))]:
        with pytest.raises(ValueError, match="max_pool2d_forward: expected kernel_size, stride, padding and dilation"):
            ops.max_pool2d_forward(x, k, None, p)
