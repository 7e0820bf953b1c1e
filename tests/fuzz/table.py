"""Every public op of fastnn.ops: a hypothesis strategy of valid calls, the float64 reference of
fastnn.ref, the check of a result against it, and the roles of the arguments that the generic
mutations (mutations.py) change.

A valid call draws its sizes from small values, 0 and 1 where the op takes them, primes and the
edges of the SIMD tiles (7/8/9, 15/16/17, 31/32/33), and its values from a NumPy generator
seeded by one drawn integer (run.py's --seed replays a run, --dump keeps a failing case's
arrays). The elementwise and normalising
ops also get NaN, infinities, signed zeros and subnormals. The checks are the per-op tests'
error bounds (imported from tests/test_<op>.py where a function states them, written out here
otherwise, with their reasoning): a mismatch is a finding, never a reason to widen one.

A non-finite expected value must be matched exactly (NaN by NaN, an infinity by the same one),
and one past the float32 range by the infinity of its sign; the bounds then apply to the other
elements, computed from the arguments with their non-finite values read as 0."""

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from fastnn import ops, ref
from fastnn.ref.rounding import EPS32, U32
from hypothesis import assume
from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------------
# A case, an op's entry in the table, and the functions the strategies share.


class Case:
    """The keyword arguments of one call (every parameter of the op by name), and what the
    reference needs besides them (hidden: the biases of a recurrent forward whose workspace a
    backward takes)."""

    def __init__(self, kw, hidden=None):
        self.kw, self.hidden = kw, hidden or {}

    def __repr__(self):
        from .mutations import describe

        return f"Case({describe(self.kw)}{', hidden' if self.hidden else ''})"


@dataclass(frozen=True)
class Op:
    """One op. case(empty) is a strategy of valid Cases (empty=True: a zero-sized batch);
    check(kw, got, want) raises AssertionError when the results differ beyond the op's bound.
    The roles name the arguments the generic mutations change: arrays (float arrays read),
    index (integer index arrays -> the end of their valid range given the call), ints (integer
    or pair options), shapes (tuples of sizes), lists (lists of arrays), outs (out parameter ->
    the position of its result), inplace (arguments the op updates in place: their values after
    the call are its results; written(kw): those this call writes), saved_from (the arguments a
    backward's saved state was computed from: a mutation leaves them, or makes them refused,
    never None, which the state would not match). call replaces fastnn.ops.<name> (the
    harness's self-tests); test_modules: the per-op test modules whose bounds the check uses
    (imported before the fuzzing: hypothesis refuses a @given defined while a test runs)."""

    name: str
    case: Callable[[bool], Any]
    check: Callable[[dict, list, list], None]
    reference: Callable | None = None
    results: Callable | None = None
    arrays: tuple = ()
    index: dict = field(default_factory=dict)
    ints: tuple = ()
    shapes: tuple = ()
    lists: tuple = ()
    outs: dict = field(default_factory=dict)
    inplace: tuple = ()
    call: Callable | None = None
    test_modules: tuple = ()
    written: Callable | None = None
    saved_from: tuple = ()

    def writes(self, kw):
        """The arguments the op updates in place in this call (inplace, or written(kw) of them:
        the momentum buffers with momentum only)."""
        return tuple(self.written(kw)) if self.written else self.inplace

    def run(self, kw):
        """The op on the keyword arguments kw (fastnn.ops.<name> unless call is given)."""
        return (self.call or getattr(ops, self.name))(**kw)

    def want(self, kw, hidden):
        """The reference's results on (copies of) the arguments, as a list: in float64, never
        written into a given out (float32: its rounding would be the reference's)."""
        if self.reference is not None:
            return self.reference(kw, hidden)
        return as_list(getattr(ref, self.name)(**{k: None if k in self.outs else v for k, v in kw.items()}))

    def got(self, kw, ret):
        """The op's results (its return value, or the arguments it updated in place) as a list."""
        if self.results is not None:
            return self.results(kw, ret)
        if self.inplace:
            return flat([kw[n] if n in self.writes(kw) else None for n in self.inplace])
        return as_list(ret)


def as_list(r):
    return list(r) if isinstance(r, (tuple, list)) else [r]


def flat(values):
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(v)
        else:
            out.append(v)
    return out


# Sizes: 0 first where the op takes it (hypothesis shrinks towards the first value), then small
# sizes, primes and the edges of the 8/16/32-lane tiles.
SMALL = (1, 2, 3, 5, 7, 8, 9)
EDGES = SMALL + (15, 16, 17, 31, 32, 33)
SEEDS = st.integers(0, 2**32 - 1)


def sizes(values=EDGES, zero=False):
    return st.sampled_from(((0,) if zero else ()) + tuple(values))


def randn(rng, shape, scale=1.0, offset=0.0):
    """A float32 array (0-d too, never a NumPy scalar) of normal values."""
    return np.array(rng.standard_normal(shape) * scale + offset, np.float32)


# NaN, both infinities, signed zeros, a subnormal and (big=True) values near the float32 range.
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -3e-39)
BIG = (1e30, -1e30, 3e38)


def with_specials(rng, a, big=False, infinities=True):
    """a with about a quarter of its elements (at least one) replaced by special values."""
    if a.size:
        k = int(rng.integers(1, a.size // 4 + 2))
        pool = [v for v in SPECIALS + (BIG if big else ()) if infinities or not np.isinf(v)]
        a.reshape(-1)[rng.integers(0, a.size, k)] = rng.choice(np.array(pool, np.float32), k)
    return a


def maybe_specials(draw, rng, a, big=False, infinities=True):
    return with_specials(rng, a, big, infinities) if draw(st.booleans()) else a


def f64(a):
    return None if a is None else np.asarray(a, np.float64)


def fin(a):
    """|a| in float64 with the non-finite values read as 0 (for the bounds)."""
    a = np.abs(np.asarray(a, np.float64))
    return np.where(np.isfinite(a), a, 0.0)


# Below FLT_MIN a float32 rounding errs by up to half the subnormal spacing 2^-149, not by a
# relative eps: every bound gets that absolute term for a few roundings (the per-op tests' data
# has no subnormal results; the fuzz cases have).
SUBNORMAL = 8 * 2.0**-149


def _finite(a):
    """a in float64 with the non-finite values read as 0."""
    a = np.asarray(a, np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def within(what, got, want, bound):
    """|got - want| <= bound + SUBNORMAL elementwise (in float64), with a message naming the
    worst element."""
    got64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got64 - want64)
    bound = np.asarray(bound, np.float64) + SUBNORMAL
    bad = ~(err <= bound)
    if bad.any():
        b = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
        i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(b, 1e-300), -1)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements beyond the bound; worst at {tuple(map(int, i))}: "
            f"got {got64[i]!r}, want {want64[i]!r}, bound {b[i]:.3g}"
        )


def allclose(what, got, want, rtol, atol):
    within(what, got, want, atol + rtol * np.abs(np.asarray(want, np.float64)))


def pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ---------------------------------------------------------------------------------------------
# Findings left unfixed: what the cases leave out for each, and why (docs/testing.md lists them
# with a reproducer). Each entry is a known deviation to fix, not a rule of the ops; deleting it
# puts its cases back.

KNOWN_FINDINGS = {}


# ---------------------------------------------------------------------------------------------
# gemm


@st.composite
def gemm_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    M = 0 if empty else draw(sizes(zero=True))
    N, K = draw(sizes(zero=True)), draw(sizes(zero=True))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    batch = draw(st.sampled_from([((), ()), ((2,), (2,)), ((3,), ()), ((), (2,)), ((2, 1), (3,)), ((1, 2), (2, 1))]))
    a = randn(rng, batch[0] + ((K, M) if trans_a else (M, K)))
    b = randn(rng, batch[1] + ((N, K) if trans_b else (K, N)))
    # transposed and strided views: read in place or copied, never wrong
    from .mutations import relayout

    if draw(st.booleans()):
        a = relayout(a, draw(st.sampled_from(["step", "transposed", "reversed"])))
    if draw(st.booleans()):
        b = relayout(b, draw(st.sampled_from(["step", "transposed", "reversed"])))
    # c: (M, N) with batch dimensions that broadcast to the result's (gemm_meta.cpp)
    out_batch = np.broadcast_shapes(batch[0], batch[1])
    c_shape = draw(st.sampled_from([None, (M, N), out_batch + (M, N), (1,) * len(out_batch) + (M, N)]))
    c = None if c_shape is None else randn(rng, c_shape)
    bias = randn(rng, (N,)) if draw(st.booleans()) else None
    kw = dict(
        a=a,
        b=b,
        c=c,
        trans_a=trans_a,
        trans_b=trans_b,
        alpha=draw(st.sampled_from([1.0, -0.5, 2.0, 0.0])),
        beta=0.0 if c is None else draw(st.sampled_from([0.0, 1.0, -1.5])),  # beta != 0 needs c
        bias=bias,
        activation=draw(st.sampled_from([None, "relu"])),
        out=None,
    )
    return Case(kw)


def _gemm_c(kw):
    """c as the op reads it: out's values before the call when c is None (the in-place update)."""
    return kw["out"] if kw["c"] is None and kw["out"] is not None else kw["c"]


def gemm_reference(kw, hidden):
    k = dict(kw, c=_gemm_c(kw), out=None)
    return [ref.gemm(**k)]


def gemm_check(kw, got, want):
    from test_gemm import gemm_bound

    k = dict(kw, c=_gemm_c(kw), out=None)
    k.pop("activation")
    a, b, c = k.pop("a"), k.pop("b"), k.pop("c")
    within("gemm", got[0], want[0], gemm_bound(a, b, c, **k))


# ---------------------------------------------------------------------------------------------
# conv2d


@st.composite
def conv_geometry(draw, empty=False):
    """(x shape, w shape, stride, padding, dilation, groups) that PyTorch accepts."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    C = groups * draw(sizes((1, 2, 3, 5, 8, 16)))
    OC = groups * draw(sizes((1, 2, 3, 7, 16, 17)))
    KH, KW = draw(sizes((1, 2, 3, 5))), draw(sizes((1, 2, 3, 5)))
    H, W = draw(sizes((1, 2, 3, 5, 7, 8, 9, 17))), draw(sizes((1, 2, 3, 5, 7, 8, 9, 17)))
    B = 0 if empty else draw(sizes((1, 2, 3), zero=True))
    stride = draw(st.sampled_from([1, 2, 3, (1, 2), (2, 1)]))
    dilation = draw(st.sampled_from([1, 2, (1, 2)]))
    padding = draw(st.sampled_from([0, 1, 2, (1, 0), (0, 2), "valid", "same"]))
    if padding == "same":
        stride = 1
    from fastnn._conv import conv2d_params

    (sh, sw), (pt, pb, pl, pr), (dh, dw) = conv2d_params((KH, KW), stride, padding, dilation)
    assume((H + pt + pb - dh * (KH - 1) - 1) >= 0 and (W + pl + pr - dw * (KW - 1) - 1) >= 0)
    return (B, C, H, W), (OC, C // groups, KH, KW), stride, padding, dilation, groups


def _conv_out_shape(x_shape, w_shape, stride, padding, dilation):
    from fastnn._conv import conv2d_params

    (sh, sw), (pt, pb, pl, pr), (dh, dw) = conv2d_params(w_shape[2:], stride, padding, dilation)
    OH = (x_shape[2] + pt + pb - dh * (w_shape[2] - 1) - 1) // sh + 1
    OW = (x_shape[3] + pl + pr - dw * (w_shape[3] - 1) - 1) // sw + 1
    return (x_shape[0], w_shape[0], OH, OW)


@st.composite
def conv_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    xs, ws, stride, padding, dilation, groups = draw(conv_geometry(empty))
    bias = randn(rng, (ws[0],)) if draw(st.booleans()) else None
    kw = dict(
        x=randn(rng, xs),
        w=randn(rng, ws),
        bias=bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        activation=draw(st.sampled_from([None, "relu"])),
        out=None,
    )
    return Case(kw)


@st.composite
def conv_backward_data_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    xs, ws, stride, padding, dilation, groups = draw(conv_geometry(empty))
    dy = randn(rng, _conv_out_shape(xs, ws, stride, padding, dilation))
    kw = dict(
        dy=dy,
        w=randn(rng, ws),
        input_shape=xs,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        out=None,
    )
    return Case(kw)


@st.composite
def conv_backward_weight_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    xs, ws, stride, padding, dilation, groups = draw(conv_geometry(empty))
    dy = randn(rng, _conv_out_shape(xs, ws, stride, padding, dilation))
    kw = dict(
        dy=dy,
        x=randn(rng, xs),
        weight_shape=ws,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        out=None,
    )
    return Case(kw)


@st.composite
def conv_backward_bias_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    B = 0 if empty else draw(sizes((1, 2, 3), zero=True))
    shape = (B, draw(sizes(EDGES)), draw(sizes((1, 2, 3, 7, 16, 17), zero=True)), draw(sizes((1, 2, 5, 9))))
    return Case(dict(dy=randn(rng, shape), out=None))


def _conv_bound(what, got, want, magnitude, k):
    """tests/test_conv2d.py's bound: float32 sums of k products, 4 (sqrt(k) + 2) eps32 of the
    sum of |terms| (the magnitude: the same convolution of |inputs|)."""
    from test_conv2d import bound

    within(what, got, want, bound(magnitude, k))


def conv_forward_check(kw, got, want):
    x, w, b = kw["x"], kw["w"], kw["bias"]
    opts = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"])
    mag = ref.conv2d_forward(fin(x), fin(w), None if b is None else fin(b), **opts)
    _conv_bound("conv2d_forward", got[0], want[0], mag, np.shape(w)[1] * np.shape(w)[2] * np.shape(w)[3])


def conv_backward_data_check(kw, got, want):
    w = kw["w"]
    opts = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"])
    mag = ref.conv2d_backward_data(fin(kw["dy"]), fin(w), kw["input_shape"], **opts)
    _conv_bound("conv2d_backward_data", got[0], want[0], mag, np.shape(w)[0] * np.shape(w)[2] * np.shape(w)[3])


def conv_backward_weight_check(kw, got, want):
    dy = kw["dy"]
    opts = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"])
    mag = ref.conv2d_backward_weight(fin(dy), fin(kw["x"]), kw["weight_shape"], **opts)
    k = max(1, np.shape(dy)[0] * np.shape(dy)[2] * np.shape(dy)[3])
    _conv_bound("conv2d_backward_weight", got[0], want[0], mag, k)


def conv_backward_bias_check(kw, got, want):
    dy = kw["dy"]
    k = max(1, np.shape(dy)[0] * np.shape(dy)[2] * np.shape(dy)[3])
    _conv_bound("conv2d_backward_bias", got[0], want[0], ref.conv2d_backward_bias(fin(dy)), k)


# ---------------------------------------------------------------------------------------------
# conv_transpose2d (conv2d's adjoint on its kernels)


@st.composite
def conv_transpose_geometry(draw, empty=False):
    """(x shape, w shape, stride, padding, output_padding, dilation, groups) that PyTorch accepts."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    C = groups * draw(sizes((1, 2, 3, 5, 8, 16)))
    OCg = draw(sizes((1, 2, 3, 7, 16, 17)))
    KH, KW = draw(sizes((1, 2, 3, 4, 5))), draw(sizes((1, 2, 3, 4, 5)))
    H, W = draw(sizes((1, 2, 3, 5, 7, 8, 14))), draw(sizes((1, 2, 3, 5, 7, 8, 14)))
    B = 0 if empty else draw(sizes((1, 2, 3, 11), zero=True))
    stride = draw(st.sampled_from([1, 2, 3, (1, 2), (2, 1)]))
    dilation = draw(st.sampled_from([1, 1, 2, (1, 2)]))
    padding = draw(st.sampled_from([0, 1, 2, (1, 0), (0, 2)]))
    st2, dil2, pad2 = pair(stride), pair(dilation), pair(padding)
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(st2, dil2))
    k = (KH, KW)
    assume(
        all(
            (n - 1) * s - 2 * p + d * (kk - 1) + 1 + o >= 1
            for n, s, p, d, kk, o in zip((H, W), st2, pad2, dil2, k, opad)
        )
    )
    return (B, C, H, W), (C, OCg, KH, KW), stride, padding, opad, dilation, groups


def _ct_opts(kw):
    return {n: kw[n] for n in ("stride", "padding", "output_padding", "groups", "dilation")}


def _ct_out_shape(xs, ws, stride, padding, opad, dilation, groups):
    from fastnn._conv import conv_transpose2d_geometry

    return conv_transpose2d_geometry(xs, ws, stride, padding, opad, dilation, groups, "fuzz")[3]


@st.composite
def ct_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    xs, ws, stride, padding, opad, dilation, groups = draw(conv_transpose_geometry(empty))
    bias = randn(rng, (ws[1] * groups,)) if draw(st.booleans()) else None
    kw = dict(x=randn(rng, xs), w=randn(rng, ws), bias=bias, stride=stride, padding=padding)
    return Case(dict(kw, output_padding=opad, groups=groups, dilation=dilation, out=None))


@st.composite
def ct_backward_data_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    xs, ws, stride, padding, opad, dilation, groups = draw(conv_transpose_geometry(empty))
    dy = randn(rng, _ct_out_shape(xs, ws, stride, padding, opad, dilation, groups))
    kw = dict(dy=dy, w=randn(rng, ws), input_shape=xs, stride=stride, padding=padding)
    return Case(dict(kw, output_padding=opad, groups=groups, dilation=dilation, out=None))


@st.composite
def ct_backward_weight_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    xs, ws, stride, padding, opad, dilation, groups = draw(conv_transpose_geometry(empty))
    dy = randn(rng, _ct_out_shape(xs, ws, stride, padding, opad, dilation, groups))
    kw = dict(dy=dy, x=randn(rng, xs), weight_shape=ws, stride=stride, padding=padding)
    return Case(dict(kw, output_padding=opad, groups=groups, dilation=dilation, out=None))


def ct_forward_check(kw, got, want):
    x, w, b = kw["x"], kw["w"], kw["bias"]
    mag = ref.conv_transpose2d_forward(fin(x), fin(w), None if b is None else fin(b), **_ct_opts(kw))
    _conv_bound("conv_transpose2d_forward", got[0], want[0], mag, np.shape(w)[0] * np.shape(w)[2] * np.shape(w)[3])


def ct_backward_data_check(kw, got, want):
    w = kw["w"]
    mag = ref.conv_transpose2d_backward_data(fin(kw["dy"]), fin(w), kw["input_shape"], **_ct_opts(kw))
    k = np.shape(w)[1] * np.shape(w)[2] * np.shape(w)[3]
    _conv_bound("conv_transpose2d_backward_data", got[0], want[0], mag, k)


def ct_backward_weight_check(kw, got, want):
    x = kw["x"]
    mag = ref.conv_transpose2d_backward_weight(fin(kw["dy"]), fin(x), kw["weight_shape"], **_ct_opts(kw))
    k = max(1, np.shape(x)[0] * np.shape(x)[2] * np.shape(x)[3])
    _conv_bound("conv_transpose2d_backward_weight", got[0], want[0], mag, k)


def ct_backward_bias_check(kw, got, want):
    dy = kw["dy"]
    k = max(1, np.shape(dy)[0] * np.shape(dy)[2] * np.shape(dy)[3])
    _conv_bound("conv_transpose2d_backward_bias", got[0], want[0], ref.conv_transpose2d_backward_bias(fin(dy)), k)


# ---------------------------------------------------------------------------------------------
# pooling


def _pool_fits(H, W, k, s, p, d, ceil):
    (kh, kw), (ph, pw), (dh, dw) = pair(k), pair(p), pair(d)
    sh, sw = pair(k if s is None else s)
    if ph > kh // 2 or pw > kw // 2:
        return False
    return min(ref.pool2d.out_size(H, kh, sh, ph, dh, ceil), ref.pool2d.out_size(W, kw, sw, pw, dw, ceil)) >= 1


@st.composite
def pool_options(draw, empty=False, dilation=True):
    """(x shape, kernel_size, stride, padding, dilation, ceil_mode) that PyTorch accepts."""
    N = 0 if empty else draw(sizes((1, 2, 3), zero=True))
    shape = (N, draw(sizes((1, 2, 3, 5))), draw(sizes((1, 2, 3, 5, 7, 9, 16, 17))), draw(sizes(EDGES)))
    k = draw(st.sampled_from([1, 2, 3, 5, (3, 2), (1, 3)]))
    s = draw(st.sampled_from([None, 1, 2, 3, (2, 1)]))
    p = draw(st.sampled_from([0, 1, 2, (1, 0)]))
    d = draw(st.sampled_from([1, 2, (1, 2)])) if dilation else 1
    ceil = draw(st.booleans())
    assume(_pool_fits(shape[2], shape[3], k, s, p, d, ceil))
    return shape, k, s, p, d, ceil


@st.composite
def max_pool_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape, k, s, p, d, ceil = draw(pool_options(empty))
    x = maybe_specials(draw, rng, randn(rng, shape), big=True)  # a max is exact at any magnitude
    kw = dict(x=x, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil, out=None, indices=None)
    return Case(kw)


@st.composite
def max_pool_backward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape, k, s, p, d, ceil = draw(pool_options(empty))
    x = randn(rng, shape)
    if draw(st.booleans()):  # relu=True reads x as a ReLU's output: zeros and NaN matter
        x = np.maximum(x, 0)
    y, idx = ref.max_pool2d_forward(x, k, s, p, d, ceil)
    # a dilated window that misses the input gets PyTorch's index outside the plane, which the
    # backward refuses (tests/test_pool2d.py): not a valid call
    assume(not idx.size or idx.max() < shape[2] * shape[3])
    kw = dict(
        dy=randn(rng, y.shape),
        x=x,
        indices=idx,
        kernel_size=k,
        stride=s,
        padding=p,
        dilation=d,
        ceil_mode=ceil,
        relu=draw(st.booleans()),
        out=None,
    )
    return Case(kw)


@st.composite
def avg_pool_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape, k, s, p, _, ceil = draw(pool_options(empty, dilation=False))
    x = maybe_specials(draw, rng, randn(rng, shape))
    kw = dict(x=x, kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=draw(st.booleans()), out=None)
    return Case(kw)


@st.composite
def avg_pool_backward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape, k, s, p, _, ceil = draw(pool_options(empty, dilation=False))
    cip = draw(st.booleans())
    x = randn(rng, shape)
    y = ref.avg_pool2d_forward(x, k, s, p, ceil, cip)
    kw = dict(
        dy=randn(rng, y.shape), x=x, kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, out=None
    )
    return Case(kw)


@st.composite
def global_pool_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    N = 0 if empty else draw(sizes((1, 2, 3), zero=True))
    shape = (N, draw(sizes(EDGES)), draw(sizes(EDGES)), draw(sizes(EDGES)))
    return Case(dict(x=maybe_specials(draw, rng, randn(rng, shape)), out=None))


@st.composite
def global_pool_backward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    N = 0 if empty else draw(sizes((1, 2, 3), zero=True))
    shape = (N, draw(sizes(EDGES)), draw(sizes(EDGES)), draw(sizes(EDGES)))
    return Case(dict(dy=randn(rng, shape[:2] + (1, 1)), x=randn(rng, shape), out=None))


def _window(kw):
    kh, kwid = pair(kw["kernel_size"])
    return kh * kwid


def max_pool_forward_check(kw, got, want):
    within("max_pool2d_forward y", got[0], want[0], 0.0)  # a max is exact


def max_pool_backward_check(kw, got, want):
    # dx sums the dy of the windows whose maximum an input is, in output order: at most
    # kh*kw terms, so (kh*kw) eps32 of the sum of their magnitudes
    mag = ref.max_pool2d_backward(
        fin(kw["dy"]),
        kw["x"],
        kw["indices"],
        kw["kernel_size"],
        kw["stride"],
        kw["padding"],
        kw["dilation"],
        kw["ceil_mode"],
        relu=kw["relu"],
    )
    within("max_pool2d_backward", got[0], want[0], _window(kw) * EPS32 * mag + 1e-30)


def avg_pool_forward_check(kw, got, want):
    # tests/test_pool2d.py: a float32 sum of kh*kw terms, then one division
    k = dict(kw, x=fin(kw["x"]), out=None)
    within("avg_pool2d_forward", got[0], want[0], (_window(kw) + 1) * EPS32 * ref.avg_pool2d_forward(**k) + 1e-30)


def avg_pool_backward_check(kw, got, want):
    k = dict(kw, dy=fin(kw["dy"]), out=None)
    within("avg_pool2d_backward", got[0], want[0], (_window(kw) + 1) * EPS32 * ref.avg_pool2d_backward(**k) + 1e-30)


def global_pool_forward_check(kw, got, want):
    # tests/test_pool2d.py: summed in float64, rounded once (rtol eps32, atol 1e-7 of |x| ~ 1)
    mag = ref.global_avg_pool2d_forward(fin(kw["x"]))
    within("global_avg_pool2d_forward", got[0], want[0], EPS32 * np.abs(want[0]) + 1e-7 * mag)


def global_pool_backward_check(kw, got, want):
    allclose("global_avg_pool2d_backward", got[0], want[0], 2 * EPS32, 0.0)


# ---------------------------------------------------------------------------------------------
# activations: any shape; NaN, infinities, subnormals and values near the float32 range


ACT_SHAPES = st.sampled_from(
    [(), (0,), (1,), (7,), (8,), (9,), (15,), (16,), (17,), (33,), (63,), (65,), (3, 5), (2, 0, 3), (2, 3, 17)]
)


def _act_kind(name, kw):
    base = name.rsplit("_", 1)[0]
    return "gelu_tanh" if base == "gelu" and kw.get("approximate") == "tanh" else base


@st.composite
def act_case(draw, name, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape = (0,) + draw(ACT_SHAPES) if empty else draw(ACT_SHAPES)
    base, way = name.rsplit("_", 1)
    opts = {}
    if base == "leaky_relu":
        opts["negative_slope"] = draw(st.sampled_from([0.01, 0.2, 0.0, -0.5, 1.0, 3.0]))
    if base == "gelu":
        opts["approximate"] = draw(st.sampled_from(["none", "tanh"]))
    x = maybe_specials(draw, rng, randn(rng, shape, 4.0), big=True)
    if way == "forward":
        return Case(dict(x=x, **opts, out=None))
    dy = maybe_specials(draw, rng, randn(rng, shape), big=True)
    takes = "y" if base in ("sigmoid", "tanh") else "x"
    if takes == "y":  # the forward's output (and some specials)
        x = np.asarray(getattr(ref, f"{base}_forward")(_finite(x)), np.float32)
        x = maybe_specials(draw, rng, x)
    return Case({"dy": dy, takes: x, **opts, "out": None})


def act_check(name):
    def check(kw, got, want):
        from test_act import TINY_BWD, bwd_bound, fwd_bound

        k = _act_kind(name, kw)
        if name.endswith("_forward"):
            bound = fwd_bound(k, fin(kw["x"]), fin(want[0]))
        else:
            xy = kw.get("x", kw.get("y"))
            bound = bwd_bound(k, fin(kw["dy"]), _finite(xy))
            if k in ("gelu", "gelu_tanh"):  # test_act's TINY_BWD is for |dy| ~ 1: it scales with dy
                bound = bound + TINY_BWD * np.maximum(fin(kw["dy"]) - 1, 0)
            if k == "leaky_relu":  # one rounding of dy * slope: test_act's EPS32 |dy| is for |slope| <= 1
                bound = np.maximum(bound, EPS32 * fin(want[0]))
        within(name, got[0], want[0], bound)

    return check


# ---------------------------------------------------------------------------------------------
# softmax / log_softmax / cross-entropy

SOFTMAX_SHAPES = st.sampled_from(
    [(1,), (7,), (16,), (17,), (1, 1), (2, 7), (3, 8), (2, 9), (3, 15), (2, 16), (5, 17), (4, 33), (2, 3, 5), (0, 5)]
)


@st.composite
def softmax_case(draw, name, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape = draw(SOFTMAX_SHAPES)
    if empty:
        shape = (0,) + shape
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    x = maybe_specials(draw, rng, randn(rng, shape, 4.0))
    if name.endswith("_forward"):
        return Case(dict(x=x, dim=dim, out=None))
    fwd = "log_softmax_forward" if name.startswith("log_") else "softmax_forward"
    y = softmax_reference(fwd)(dict(x=randn(rng, shape, 4.0), dim=dim), {})[0]  # the forward's output
    y = maybe_specials(draw, rng, y.astype(np.float32))
    dy = maybe_specials(draw, rng, randn(rng, shape))
    return Case(dict(dy=dy, y=y, dim=dim, out=None))


def softmax_reference(name):
    """fastnn.ref's, and zeros for an empty array (its max has no identity over a 0-length dim)."""

    def reference(kw, hidden):
        a = kw.get("x", kw.get("dy"))
        if np.size(a) == 0:
            return [np.zeros(np.shape(a))]
        return [getattr(ref, name)(**dict(kw, out=None))]

    return reference


def softmax_check(name):
    def check(kw, got, want):
        a = kw.get("x", kw.get("y"))
        n = max(np.shape(a)[kw["dim"]], 1) if np.ndim(a) else 1
        if name == "softmax_forward":  # exp to ~2 ulp, a float32 sum of n terms
            allclose(name, got[0], want[0], (np.log2(n) + 8) * EPS32, 1e-30)
        elif name == "log_softmax_forward":  # absolute: eps (|x - max| + |log sum|)
            allclose(name, got[0], want[0], 0.0, (np.log2(n) + 8) * EPS32 * (fin(a).max(initial=1) + 10))
        elif name == "softmax_backward":  # y in [0, 1] (a softmax, its specials matched exactly)
            allclose(name, got[0], want[0], 1e-5, (n + 8) * EPS32 * fin(kw["dy"]).max(initial=0))
        else:  # exp(y) <= 1 times the row's sum of dy
            dy = fin(kw["dy"])
            rows = dy.sum(axis=kw["dim"]).max(initial=0) if dy.ndim else dy
            allclose(name, got[0], want[0], 1e-5, (n + 8) * EPS32 * np.max(rows, initial=0))

    return check


@st.composite
def ce_case(draw, name, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    C = draw(sizes((1, 2, 3, 5, 8, 9, 16, 17, 33)))
    N = 0 if empty else draw(sizes((1, 2, 3, 5, 7), zero=True))
    extra = draw(st.sampled_from([None, (), (3,), (2, 3)]))
    if extra is None and empty:
        extra = ()
    lshape, tshape = ((C,), ()) if extra is None else ((N, C) + extra, (N,) + extra)
    logits = maybe_specials(draw, rng, randn(rng, lshape, 5.0))
    ignore_index = draw(st.sampled_from([-100, 0, C - 1, -1]))
    target = rng.integers(0, C, tshape).astype(np.int64)
    if target.size and draw(st.booleans()):
        target.reshape(-1)[: max(1, target.size // 3)] = ignore_index  # some ignored rows
    weight = (rng.random(C) + 0.5).astype(np.float32) if draw(st.booleans()) else None
    opts = dict(
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=draw(st.sampled_from([0.0, 0.1, 0.5])),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
    )
    if name == "cross_entropy_forward":
        return Case(dict(logits=logits, target=target, **opts))
    if opts["reduction"] == "none":
        grad = randn(rng, tshape)
    else:
        grad = draw(st.sampled_from([np.float32(1.7), 1.0, np.float32(-0.5), np.array(2.0, np.float32)]))
    return Case(dict(grad=grad, logits=logits, target=target, **opts, out=None))


def ce_check(name):
    def check(kw, got, want):
        C = max(np.shape(kw["logits"])[0 if np.ndim(kw["logits"]) == 1 else 1], 1)
        tol = (np.log2(C) + 16) * EPS32  # float64 per-row terms from a float32 log-sum-exp
        if name == "cross_entropy_forward":
            allclose(name, got[0], want[0], tol, 1e-6)
        else:
            allclose(name, got[0], want[0], 1e-5, tol * fin(kw["grad"]).max(initial=0))

    return check


# ---------------------------------------------------------------------------------------------
# optimizers and grad_norm: lists of arrays of any shapes, updated in place

PARAM_SHAPES = st.lists(st.sampled_from([(0,), (1,), (7,), (16,), (17,), (33,), (2, 3), (3, 0), (65,)]), max_size=4)


@st.composite
def sgd_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shapes = [s if not empty else (0,) + s for s in draw(PARAM_SHAPES)]
    momentum = draw(st.sampled_from([0.0, 0.9, 0.5]))
    nesterov = momentum > 0 and draw(st.booleans())  # torch: with momentum and no dampening
    kw = dict(
        params=[randn(rng, s) for s in shapes],
        grads=[randn(rng, s) for s in shapes],
        momentum_buffers=[randn(rng, s) for s in shapes] if momentum or draw(st.booleans()) else None,
        lr=draw(st.sampled_from([0.1, 0.01, 1.0, 0.0])),
        momentum=momentum,
        dampening=0.0 if nesterov else draw(st.sampled_from([0.0, 0.1])),
        nesterov=nesterov,
        weight_decay=draw(st.sampled_from([0.0, 0.01])),
        maximize=draw(st.booleans()),
        first_step=draw(st.booleans()),
    )
    return Case(kw)


def _f64_lists(kw, names):
    """The list arguments as lists of float64 copies (other values, which the op may ignore, as
    they are: momentum_buffers with momentum 0)."""
    return {n: [np.array(a, np.float64) for a in kw[n]] if isinstance(kw[n], (list, tuple)) else kw[n] for n in names}


def sgd_reference(kw, hidden):
    # momentum_buffers are read only with momentum (the op ignores them otherwise, whatever they
    # hold: a mutation may leave a malformed list there)
    lists = ("params", "grads", "momentum_buffers") if kw["momentum"] else ("params", "grads")
    k = dict(kw, **_f64_lists(kw, lists))
    old = [a.copy() for a in k["params"]]
    oldb = (
        [a.copy() for a in k["momentum_buffers"]]
        if kw["momentum"] and isinstance(k["momentum_buffers"], list)
        else None
    )
    ref.sgd_step(**k)
    hidden_out = {"old": old, "oldb": oldb}
    return [k["params"], k["momentum_buffers"] if kw["momentum"] else None, hidden_out]


def sgd_results(kw, ret):
    assert ret is None, f"sgd_step returned {type(ret).__name__}"
    return [kw["params"], kw["momentum_buffers"] if kw["momentum"] else None, None]  # buffers: with momentum


def sgd_check(kw, got, want):
    # tests/test_optim.py: each step rounds d, buf and p once or twice (1/2 ulp of its operands)
    old, oldb = want[2]["old"], want[2]["oldb"]
    wd, lr = kw["weight_decay"], abs(kw["lr"])
    for i, (p, r) in enumerate(zip(got[0], want[0])):
        g = fin(kw["grads"][i])
        uses_b = kw["momentum"] != 0 and oldb is not None  # the buffers are read with momentum only
        b_old = fin(oldb[i]) if uses_b else 0.0
        b_new = fin(want[1][i]) if uses_b else 0.0
        scale = fin(old[i]) + fin(r) + lr * (g + wd * fin(old[i]) + b_old + b_new)
        within(f"sgd_step params[{i}]", p, r, 2.0 * U32 * scale)
        if uses_b:
            within(
                f"sgd_step momentum_buffers[{i}]",
                got[1][i],
                want[1][i],
                4 * U32 * (b_old + g + wd * fin(old[i]) + b_new),
            )


@st.composite
def adam_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shapes = [s if not empty else (0,) + s for s in draw(PARAM_SHAPES)]
    amsgrad = draw(st.booleans())
    kw = dict(
        params=[randn(rng, s) for s in shapes],
        grads=[randn(rng, s) for s in shapes],
        exp_avgs=[randn(rng, s, 0.1) for s in shapes],
        exp_avg_sqs=[np.abs(randn(rng, s, 0.01)) for s in shapes],
        step=draw(st.sampled_from([1, 2, 10, 1000])),
        lr=draw(st.sampled_from([1e-3, 0.1])),
        beta1=draw(st.sampled_from([0.9, 0.3])),
        beta2=draw(st.sampled_from([0.999, 0.9])),
        eps=draw(st.sampled_from([1e-8, 1e-3])),
        weight_decay=draw(st.sampled_from([0.0, 0.01])),
        amsgrad=amsgrad,
        max_exp_avg_sqs=[np.abs(randn(rng, s, 0.01)) for s in shapes] if amsgrad else None,
        decoupled_weight_decay=draw(st.booleans()),
        maximize=draw(st.booleans()),
    )
    return Case(kw)


ADAM_STATE = ("params", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs")


def adam_reference(kw, hidden):
    k = dict(kw, **_f64_lists(kw, ADAM_STATE + ("grads",)))
    old = {n: [a.copy() for a in k[n]] if isinstance(k[n], list) else None for n in ADAM_STATE}
    ref.adam_step(**k)
    return [k[n] if n in _adam_writes(kw) else None for n in ADAM_STATE] + [old]


def _adam_writes(kw):
    return ADAM_STATE if kw["amsgrad"] else ADAM_STATE[:3]  # max_exp_avg_sqs: with amsgrad


def adam_results(kw, ret):
    assert ret is None, f"adam_step returned {type(ret).__name__}"
    return [kw[n] if n in _adam_writes(kw) else None for n in ADAM_STATE] + [None]


def adam_check(kw, got, want):
    old = want[-1]
    lr, b1, b2, t = kw["lr"], kw["beta1"], kw["beta2"], kw["step"]
    for i in range(len(got[0])):
        g = fin(kw["grads"][i]) + kw["weight_decay"] * fin(old["params"][i])
        m, v = want[1][i], want[3][i] if kw["amsgrad"] else want[2][i]
        # the step's size, lr m_hat / (sqrt(v_hat) + eps) (tests/test_optim.py bounds it by 4 lr
        # for its states; here the states are random, so its own magnitude): its half-dozen
        # roundings, plus 1/2 ulp of |p| before and after (twice: tests/test_optim.py's c = 2)
        den = np.sqrt(fin(v)) / math.sqrt(1 - b2**t) + kw["eps"]
        upd = abs(lr) / (1 - b1**t) * fin(m) / den
        # m = b1 m_old + (1 - b1) d rounds relative to its terms, not to m itself (they may cancel:
        # found with a random seed): the step's error scales with them too
        upd_terms = abs(lr) / (1 - b1**t) * (b1 * fin(old["exp_avgs"][i]) + (1 - b1) * g) / den
        scale = fin(old["params"][i]) + fin(want[0][i]) + 4 * (upd + upd_terms)
        within(f"adam_step params[{i}]", got[0][i], want[0][i], 2.0 * U32 * scale)
        within(f"adam_step exp_avgs[{i}]", got[1][i], want[1][i], 4 * U32 * (b1 * fin(old["exp_avgs"][i]) + g))
        within(
            f"adam_step exp_avg_sqs[{i}]",
            got[2][i],
            want[2][i],
            4 * U32 * (b2 * fin(old["exp_avg_sqs"][i]) + 2 * g * g),
        )
        if kw["amsgrad"]:
            within(
                f"adam_step max_exp_avg_sqs[{i}]",
                got[3][i],
                want[3][i],
                # the max of the old value (exact) and the new exp_avg_sq (within its bound)
                4 * U32 * (b2 * fin(old["exp_avg_sqs"][i]) + 2 * g * g),
            )


@st.composite
def grad_norm_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shapes = [] if empty else draw(PARAM_SHAPES)
    arrays = [randn(rng, s, 4.0) for s in shapes]
    return Case(dict(arrays=arrays, norm_type=draw(st.sampled_from([2.0, 1.0, math.inf, 3.0, 0.5, 2]))))


def grad_norm_check(kw, got, want):
    from test_optim import _depths, _gn_bound

    arrays = [np.asarray(a, np.float32) for a in kw["arrays"]]
    assert isinstance(got[0], float), f"grad_norm returned {type(got[0]).__name__}"
    p = float(kw["norm_type"])
    _, cpu_d, npy_d = _depths(arrays)
    within("grad_norm", got[0], want[0], _gn_bound(arrays, p, cpu_d) + _gn_bound(arrays, p, npy_d))


# ---------------------------------------------------------------------------------------------
# batch norm


@st.composite
def bn_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    training = draw(st.booleans())
    N = 0 if empty else draw(sizes((1, 2, 3, 5), zero=True))
    shape = (N, draw(sizes((1, 2, 3, 8, 17))), draw(sizes((1, 2, 3, 15, 16, 17, 257))), draw(sizes((1, 2, 5))))
    assume(not training or N * shape[2] * shape[3] != 1)  # torch: more than 1 value per channel
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + rng.uniform(-16, 16, (1, c, 1, 1))).astype(np.float32)
    x = maybe_specials(draw, rng, x, big=True)
    affine = draw(st.booleans())
    stats = not training or draw(st.booleans())
    kw = dict(
        x=x,
        weight=(rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c)).astype(np.float32) if affine else None,
        bias=randn(rng, (c,)) if affine else None,
        running_mean=randn(rng, (c,)) if stats else None,
        running_var=rng.uniform(0.5, 2, c).astype(np.float32) if stats else None,
        training=training,
        momentum=draw(st.sampled_from([0.1, 0.5, 1.0, 0.0])),
        eps=draw(st.sampled_from([1e-5, 1e-3])),
        out=None,
    )
    return Case(kw)


def bn_forward_reference(kw, hidden):
    rm, rv = f64(kw["running_mean"]), f64(kw["running_var"])
    y, sm, si = ref.batch_norm2d_forward(**dict(kw, running_mean=rm, running_var=rv, out=None))
    return [y, sm, si, rm, rv]


def bn_forward_results(kw, ret):
    return as_list(ret) + [kw["running_mean"], kw["running_var"]]


def _bn_channels(*arrays):
    """The channels (axis 1) where one of the NCHW arrays holds a non-finite value."""
    bad = np.zeros(np.shape(arrays[0])[1], bool)
    for a in arrays:
        bad |= ~np.isfinite(np.asarray(a, np.float64)).all(axis=(0, 2, 3))
    return bad


def _neutral(a, bad, value, axis):
    """a with the channels bad set to value (a copy)."""
    if a is None:
        return None
    a = np.array(a, copy=True)
    index = (slice(None),) * axis + (bad,)
    a[index] = value
    return a


def bn_forward_check(kw, got, want):
    """tests/test_batchnorm.py's check_forward. In training a channel with a non-finite value
    has non-finite statistics and outputs (matched exactly before this): it is read as a
    channel of zeros with mean 0 and invstd 1; in eval every output element is its own."""
    from test_batchnorm import check_forward

    x = _finite(kw["x"])
    got, want = list(got), list(want)
    if kw["training"]:
        bad = _bn_channels(kw["x"])
        if bad.any():
            x = _neutral(x, bad, 0.0, 1)
            for r in (got, want):
                r[0], r[1], r[2] = _neutral(r[0], bad, 0.0, 1), _neutral(r[1], bad, 0.0, 0), _neutral(r[2], bad, 1.0, 0)
                r[3], r[4] = _neutral(r[3], bad, 0.0, 0), _neutral(r[4], bad, 1.0, 0)
    x = x.astype(np.float32)
    if x.shape[0] * x.shape[2] * x.shape[3] == 0:  # an empty batch (tests/test_batchnorm.py's own case)
        for i, what in enumerate(("y", "save_mean", "save_invstd", "running_mean", "running_var")):
            if want[i] is not None:
                within(f"batch_norm2d_forward {what}", got[i], want[i], U32 * np.abs(want[i]))
        return
    running = None if kw["running_mean"] is None or not kw["training"] else (got[3], want[3], got[4], want[4])
    mom = kw["momentum"]
    other = running is not None and mom != 0.1  # check_forward states the running bounds for momentum 0.1
    wt = kw["weight"]
    mean_tol, _ = check_forward(
        x,
        kw["training"],
        got[:3],
        want[:3],
        wt=None if wt is None else np.asarray(wt),
        running=None if other else running,
    )
    if other:  # (1 - mom) running + mom mean, rounded once: mom times the mean's error, 1/2 ulp
        within("running_mean", got[3], want[3], 2 * (mom * mean_tol + U32 * fin(want[3])) + 1e-300)
    if not kw["training"] and kw["running_mean"] is not None:  # eval: left as they were
        within("running_mean", got[3], want[3], 0.0)
        within("running_var", got[4], want[4], 0.0)


@st.composite
def bn_backward_case(draw, empty=False):
    case = draw(bn_forward_case(empty))
    kw = case.kw
    rng = np.random.default_rng(draw(SEEDS))
    _, sm, si = ops.batch_norm2d_forward(
        **dict(kw, running_mean=f32copy(kw["running_mean"]), running_var=f32copy(kw["running_var"]))
    )
    kw = dict(
        dy=randn(rng, np.shape(kw["x"])),
        x=kw["x"],
        weight=kw["weight"],
        save_mean=sm,
        save_invstd=si,
        training=kw["training"],
        out=None,
    )
    return Case(kw)


def f32copy(a):
    return None if a is None else np.array(a, np.float32)


def bn_backward_check(kw, got, want):
    """tests/test_batchnorm.py's check_backward; a channel with a non-finite dy, x or statistic
    (its outputs matched exactly before this) is read as zeros with mean 0 and invstd 1."""
    from test_batchnorm import check_backward

    dy, x = _finite(kw["dy"]), _finite(kw["x"])
    sm, si = _finite(kw["save_mean"]), _finite(kw["save_invstd"])
    bad = _bn_channels(kw["dy"], kw["x"]) | ~np.isfinite(np.asarray(kw["save_mean"], np.float64))
    bad |= ~np.isfinite(np.asarray(kw["save_invstd"], np.float64))
    got, want = list(got), list(want)
    if bad.any():
        dy, x, sm, si = (
            _neutral(dy, bad, 0.0, 1),
            _neutral(x, bad, 0.0, 1),
            _neutral(sm, bad, 0.0, 0),
            _neutral(si, bad, 1.0, 0),
        )
        for r in (got, want):
            r[0], r[1], r[2] = _neutral(r[0], bad, 0.0, 1), _neutral(r[1], bad, 0.0, 0), _neutral(r[2], bad, 0.0, 0)
    wt = kw["weight"]
    check_backward(
        dy.astype(np.float32),
        x.astype(np.float32),
        None if wt is None else np.asarray(wt),
        sm,
        si,
        kw["training"],
        got,
        want,
    )


# ---------------------------------------------------------------------------------------------
# embedding

INDEX_SHAPES = st.sampled_from([(), (0,), (1,), (7,), (2, 3), (3, 0), (2, 3, 4), (17,)])


@st.composite
def embedding_case(draw, name, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    V = draw(sizes((1, 2, 3, 5, 10, 33)))
    D = draw(sizes((1, 2, 7, 15, 16, 17, 33), zero=True))
    ishape = (0,) + draw(INDEX_SHAPES) if empty else draw(INDEX_SHAPES)
    dtype = draw(st.sampled_from([np.int64, np.int64, np.int32, np.uint8, np.int16]))
    idx = rng.integers(0, V, ishape).astype(dtype)
    if idx.size and draw(st.booleans()):
        idx.reshape(-1)[: idx.size // 2] = idx.reshape(-1)[0]  # repeated rows
    if idx.ndim and draw(st.booleans()):  # other layouts are converted (fastnn.ops._indices)
        from .mutations import relayout

        idx = relayout(idx, draw(st.sampled_from(["step", "reversed", "transposed"])))
    padding_idx = draw(st.sampled_from([None, 0, V - 1, -1, -V]))
    if name == "embedding_forward":
        return Case(dict(weight=randn(rng, (V, D)), indices=idx, padding_idx=padding_idx, out=None))
    return Case(dict(dy=randn(rng, ishape + (D,)), indices=idx, num_embeddings=V, padding_idx=padding_idx, out=None))


def embedding_backward_reference(kw, hidden):
    """fastnn.ref's; for D = 0 its checks, then the (V, 0) zeros (its reshape(-1, 0) fails)."""
    dy = kw["dy"]
    if np.ndim(dy) and np.shape(dy)[-1] == 0:
        ref.embedding.embedding_backward(
            np.zeros(np.shape(kw["indices"]) + (1,)), kw["indices"], kw["num_embeddings"], kw["padding_idx"]
        )
        return [np.zeros((kw["num_embeddings"], 0))]
    return [ref.embedding_backward(**dict(kw, out=None))]


def embedding_forward_check(kw, got, want):
    within("embedding_forward", got[0], want[0], 0.0)  # a copy: exact


def embedding_backward_check(kw, got, want):
    # tests/test_embedding.py: float32 sums of at most t rows (t: the number of indices)
    t = np.size(kw["indices"])
    mag = embedding_backward_reference(dict(kw, dy=fin(kw["dy"]), out=None), {})[0]
    within("embedding_backward", got[0], want[0], 1e-6 * np.abs(want[0]) + (t + 1) * EPS32 * 4 * mag + 1e-30)


# ---------------------------------------------------------------------------------------------
# recurrent layers and cells (the reference and bound of tests/test_rnn.py)

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@st.composite
def rnn_case(draw, kind, way, cell, empty=False):
    from test_rnn import _data

    rng = np.random.default_rng(draw(SEEDS))
    T = 1 if cell else draw(sizes((1, 2, 3, 5)))
    B = 0 if empty else draw(sizes((1, 2, 3, 5, 8, 9, 17), zero=True))
    I, H = draw(sizes((1, 2, 3, 5, 7, 9, 16, 17))), draw(sizes((1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33)))
    nl = draw(st.sampled_from(["tanh", "relu"])) if kind == "rnn" else None
    key = f"rnn_{nl}" if kind == "rnn" else kind
    biases = (draw(st.booleans()), draw(st.booleans()))
    d = _data(rng, key, T, B, I, H, biases, draw(st.booleans()), draw(st.booleans()))
    reverse = False if cell else draw(st.booleans())
    states = dict(h0=d["h0"], c0=d["c0"]) if kind == "lstm" else dict(h0=d["h0"])
    weights = dict(w_ih=d["w_ih"], w_hh=d["w_hh"])
    extra = {"nonlinearity": nl} if kind == "rnn" else {}
    if way == "forward":
        if cell:
            st_ = {"h": d["h0"], "c": d["c0"]} if kind == "lstm" else {"h": d["h0"]}
            return Case(dict(x=d["x"][0], **st_, **weights, b_ih=d["b_ih"], b_hh=d["b_hh"], **extra))
        return Case(dict(x=d["x"], **states, **weights, b_ih=d["b_ih"], b_hh=d["b_hh"], **extra, reverse=reverse))
    hidden = dict(b_ih=d["b_ih"], b_hh=d["b_hh"])
    fwd = getattr(ops, f"{kind}_forward")
    r = fwd(d["x"], *states.values(), d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], *extra.values(), reverse=reverse)
    y, ws = r[0], r[-1]
    dh = d["dh_n"] if draw(st.booleans()) else None
    dc = d["dc_n"] if draw(st.booleans()) else None
    grads = {"dh": dh, "dc": dc} if kind == "lstm" else {"dh": dh}
    if cell:
        st_ = {"h": d["h0"], "c": d["c0"]} if kind == "lstm" else {"h": d["h0"]}
        if kind == "rnn":
            ws = y  # the RNN cell's workspace is its output (fastnn.ops)
        return Case(dict(**grads, x=d["x"][0], **st_, **weights, ws=ws, **extra), hidden)
    g = {"dy": d["dy"], "dh_n": dh, "dc_n": dc} if kind == "lstm" else {"dy": d["dy"], "dh_n": dh}
    return Case(dict(**g, x=d["x"], **states, **weights, y=y, ws=ws, **extra, reverse=reverse), hidden)


def rnn_reference(kind, way, cell):
    def reference(kw, hidden):
        from test_rnn import run_reference

        key = f"rnn_{kw['nonlinearity']}" if kind == "rnn" else kind
        x = np.asarray(kw["x"])
        x = x[None] if cell else x
        B, H = x.shape[1], np.shape(kw["w_hh"])[1]
        zeros = np.zeros((B, H), np.float32)
        h0 = kw.get("h0", kw.get("h"))
        c0 = kw.get("c0", kw.get("c"))
        dh = kw.get("dh_n", kw.get("dh"))
        dc = kw.get("dc_n", kw.get("dc"))
        d = dict(
            x=x,
            h0=h0,
            c0=c0,
            w_ih=kw["w_ih"],
            w_hh=kw["w_hh"],
            b_ih=hidden.get("b_ih", kw.get("b_ih")),
            b_hh=hidden.get("b_hh", kw.get("b_hh")),
            dy=kw.get("dy"),
            dh_n=zeros if dh is None else dh,
            dc_n=zeros if dc is None else dc,
        )
        outs, grads = run_reference(key, d, kw.get("reverse", False))
        if way == "forward":
            if not cell:
                return list(outs)
            # the cells: (h', c') or h'; the RNN cell also returns its output (1, B, H)
            return [outs[1], outs[2]] if kind == "lstm" else [outs[1], outs[0]] if kind == "rnn" else [outs[1]]
        grads = list(grads)
        if cell:
            grads[0] = grads[0][0]
        return grads

    return reference


def rnn_results(kind, way, cell):
    def results(kw, ret):
        r = list(ret)
        if way == "forward":
            if not cell:
                return r[:-1]  # without the opaque workspace
            return r[:2] if kind in ("lstm", "rnn") else r[:1]
        return r

    return results


def rnn_check(name):
    def check(kw, got, want):
        from test_rnn import TOL, assert_close

        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, TOL, f"{name} result {i}")

    return check


# ---------------------------------------------------------------------------------------------
# layer norm

LN_CASES = st.sampled_from(
    [
        ((3, 1), 1),
        ((4, 15), 15),
        ((2, 16), (16,)),
        ((5, 17), (17,)),
        ((2, 3, 255), 255),
        ((3, 257), 257),
        ((2, 3, 4, 5), (4, 5)),
        ((0, 7), 7),
        ((7,), 7),
        ((2, 2, 3), (2, 2, 3)),
        ((33, 12), 12),
        ((3, 0), 0),
        ((2, 3, 0), (3, 0)),
    ]
)


@st.composite
def ln_forward_case(draw, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    shape, ns = draw(LN_CASES)
    if empty:
        shape = (0,) + shape
    x = maybe_specials(draw, rng, randn(rng, shape, 2.0, 3.0), big=True)
    nsh = (ns,) if isinstance(ns, int) else ns
    affine = draw(st.booleans())
    w = (rng.random(nsh) + 0.5).astype(np.float32) if affine else None
    b = randn(rng, nsh) if affine and draw(st.booleans()) else None
    return Case(dict(x=x, normalized_shape=ns, weight=w, bias=b, eps=draw(st.sampled_from([1e-5, 1e-2]))))


@st.composite
def ln_backward_case(draw, empty=False):
    case = draw(ln_forward_case(empty))
    kw = case.kw
    rng = np.random.default_rng(draw(SEEDS))
    _, mean, rstd = ref.layer_norm_forward(kw["x"], kw["normalized_shape"], kw["weight"], kw["bias"], kw["eps"])
    dy = maybe_specials(draw, rng, randn(rng, np.shape(kw["x"])))
    return Case(dict(dy=dy, x=kw["x"], mean=mean.astype(np.float32), rstd=rstd.astype(np.float32), weight=kw["weight"]))


def ln_forward_check(kw, got, want):
    # tests/test_layernorm.py: statistics are float64 sums rounded to float32; y rounds x - mean
    # at |x|'s scale, then two products and a sum
    x, w, b = _finite(kw["x"]), kw["weight"], kw["bias"]
    yr, mr, rr = want
    within("layer_norm_forward mean", got[1], mr, 4 * EPS32 * np.abs(mr) + 4 * EPS32 * np.abs(x).max(initial=0))
    within("layer_norm_forward rstd", got[2], rr, 8 * EPS32 * np.abs(rr))
    wa = 1.0 if w is None else fin(w)
    ba = 0.0 if b is None else fin(b)
    xhat = np.abs(x - mr) * rr
    within("layer_norm_forward y", got[0], yr, 8 * EPS32 * ((xhat + np.abs(x) * rr + 1) * wa + ba) + 1e-30)


def ln_backward_check(kw, got, want):
    dy, x, w = fin(kw["dy"]), _finite(kw["x"]), kw["weight"]
    # the normalised dims: the trailing ones past the first k, whose sizes multiply to mean's
    # (as fastnn.ref finds them); mean and rstd shaped as x with those set to 1
    k = np.ndim(x)
    while k > 0 and int(np.prod(np.shape(x)[:k])) != np.size(kw["mean"]):
        k -= 1
    rows = tuple(range(k, np.ndim(x)))
    stat = np.shape(x)[:k] + (1,) * (np.ndim(x) - k)
    mr, rr = _finite(kw["mean"]).reshape(stat), fin(kw["rstd"]).reshape(stat)
    wa = 1.0 if w is None else fin(w)
    xhat = (x - mr) * rr
    g = dy * wa
    scale = (
        rr * (g + g.mean(axis=rows, keepdims=True) + np.abs(xhat) * (g * np.abs(xhat)).mean(axis=rows, keepdims=True))
        if np.size(x)
        else 0.0
    )
    within(
        "layer_norm_backward dx", got[0], want[0], 32 * EPS32 * (scale + np.abs(x) * rr * rr * g.max(initial=0)) + 1e-30
    )
    if w is None:
        assert got[1] is None and got[2] is None, "dweight, dbias without weight"
        return
    m = max(np.size(x) // max(np.size(w), 1), 1)
    lead = tuple(range(np.ndim(x) - np.ndim(w)))
    within("layer_norm_backward dbias", got[2], want[2], (31 / 2 + 2) * EPS32 * dy.sum(axis=lead) + 1e-30)
    within(
        "layer_norm_backward dweight",
        got[1],
        want[1],
        8 * EPS32 * m * dy.max(initial=0) * (np.abs(xhat).max(initial=0) + np.abs(x).max(initial=0) * rr.max(initial=0))
        + 1e-30,
    )


# ---------------------------------------------------------------------------------------------
# scaled dot-product attention


@st.composite
def sdpa_case(draw, way, empty=False):
    rng = np.random.default_rng(draw(SEEDS))
    L, S = draw(sizes((1, 2, 3, 5, 7, 8, 9, 16, 17, 33, 65))), draw(sizes((1, 2, 3, 5, 8, 9, 17, 33, 64, 65)))
    HD, DV = draw(sizes((1, 2, 3, 5, 8, 9, 16, 17, 32, 33))), draw(sizes((1, 2, 3, 4, 8, 9, 16, 17)))
    lead = draw(st.sampled_from([(1, 1), (2, 3), (1,), (3,), (2, 1)]))
    if empty:
        lead = (0,) + lead[1:]
    q, k, v = randn(rng, lead + (L, HD)), randn(rng, lead + (S, HD)), randn(rng, lead + (S, DV))
    kind = draw(st.sampled_from([None, None, "bool", "float", "causal"]))
    mask, causal = None, kind == "causal"
    if kind in ("bool", "float"):
        mshape = draw(st.sampled_from([(L, S), (1, L, S), lead + (L, S), lead[:-1] + (1, L, S), (L, 1), (1, S)]))
        if kind == "bool":
            mask = rng.random(mshape) < draw(st.sampled_from([0.8, 0.3, 0.0, 1.0]))
        else:
            mask = randn(rng, mshape)
            if mask.size and draw(st.booleans()):
                mask.reshape(-1)[rng.integers(0, mask.size, max(1, mask.size // 3))] = -np.inf
        if draw(st.booleans()):  # broadcast through strides (np.broadcast_to views)
            mask = np.broadcast_to(mask, np.broadcast_shapes(mask.shape, lead + (L, S)))
    scale = draw(st.sampled_from([None, 0.5, -1.0, 2.0, 0.0]))
    kw = dict(q=q, k=k, v=v, attn_mask=mask, is_causal=causal, scale=scale)
    if way == "forward":
        return Case(kw)
    out, lse = ref.scaled_dot_product_attention_forward(q, k, v, mask, causal, scale)
    return Case(
        dict(
            dout=randn(rng, lead + (L, DV)),
            q=q,
            k=k,
            v=v,
            out=out.astype(np.float32),
            lse=lse.astype(np.float32),
            attn_mask=mask,
            is_causal=causal,
            scale=scale,
        )
    )


def _sdpa_bounds(kw, dout=None):
    """tests/test_attention.py's check_attention bounds: a score errs by (HD + 1) eps |scale|
    max |q| |k| (plus a float mask's rounding), a probability twice that relatively; the sums
    add (L + S + HD + DV + 16) eps relative to the sum of their terms' magnitudes."""
    from fastnn.ref.attention import _probs

    q, k, v, mask, causal, scale = (kw[n] for n in ("q", "k", "v", "attn_mask", "is_causal", "scale"))
    L, HD = np.shape(q)[-2:]
    S, DV = np.shape(k)[-2], np.shape(v)[-1]
    sc = 1.0 / np.sqrt(HD) if scale is None else scale
    p = _probs(q, k, mask, causal, sc)[0]
    f = fin
    T = lambda a: np.swapaxes(a, -1, -2)
    s_err = (HD + 1) * EPS32 * abs(sc) * (f(q) @ T(f(k))).max(initial=0)
    if mask is not None and np.asarray(mask).dtype != bool:
        s_err += EPS32 * float(fin(mask).max(initial=0))
    t = 4 * s_err + (L + S + HD + DV + 16) * EPS32
    pv = p @ f(v)
    bounds = {"out": t * pv, "s_err": s_err}
    if dout is not None:
        a = p * (f(dout) @ T(f(v)) + (f(dout) * pv).sum(-1, keepdims=True))
        bounds.update(dv=t * (T(p) @ f(dout)), dq=t * abs(sc) * (a @ f(k)), dk=t * abs(sc) * (T(a) @ f(q)))
    return bounds


def sdpa_forward_check(kw, got, want):
    b = _sdpa_bounds(kw)
    within("scaled_dot_product_attention_forward out", got[0], want[0], b["out"] + 1e-30)
    S = np.shape(kw["k"])[-2]
    rl = want[1]
    within("scaled_dot_product_attention_forward lse", got[1], rl, 2 * b["s_err"] + (S + 8) * EPS32 * (np.abs(rl) + 1))


def sdpa_backward_check(kw, got, want):
    b = _sdpa_bounds(kw, kw["dout"])
    for name, g, w in zip(("dq", "dk", "dv"), got, want):
        within(f"scaled_dot_product_attention_backward {name}", g, w, b[name] + 1e-30)


# ---------------------------------------------------------------------------------------------
# word2vec (the reference and bound of tests/test_word2vec_kernel.py)

_W2V_DIR = None


def _w2v_dir():
    """A temporary directory for the file cases, removed at exit."""
    global _W2V_DIR
    if _W2V_DIR is None:
        import atexit
        import shutil
        import tempfile

        _W2V_DIR = tempfile.mkdtemp(prefix="fastnn-fuzz-w2v-")
        atexit.register(shutil.rmtree, _W2V_DIR, True)
    return _W2V_DIR


@st.composite
def w2v_case(draw, entry, empty=False):
    from test_word2vec_kernel import huffman

    rng = np.random.default_rng(draw(SEEDS))
    V = draw(sizes((1, 2, 3, 5, 10, 33)))
    D = draw(sizes((1, 2, 7, 8, 15, 16, 17, 33)))
    hs = draw(st.booleans())
    negative = draw(st.sampled_from([0, 1, 3, 5] if hs else [1, 3, 5]))
    n = 0 if empty else draw(st.sampled_from([0, 1, 5, 17, 40]))
    s = draw(st.integers(1, 5))
    words = rng.integers(0, V, n).astype(np.int32)
    ends = np.append(np.sort(rng.integers(0, n + 1, s - 1)), n).astype(np.int64)
    counts = rng.integers(1, 100, V)
    kw = dict(syn0=randn(rng, (V, D), 0.3))
    if negative or draw(st.booleans()):
        kw["syn1neg"] = randn(rng, (V, D), 0.3)
        c = np.cumsum(counts**0.75)
        kw["cum_table"] = np.round(c / c[-1] * (2**31 - 1)).astype(np.uint32)
    else:
        kw["syn1neg"] = kw["cum_table"] = None
    if hs:
        kw["points"], kw["codes"], kw["code_lengths"] = huffman(counts)
        kw["syn1"] = randn(rng, (max(V - 1, 1), D), 0.3)
    else:
        kw["points"] = kw["codes"] = kw["code_lengths"] = kw["syn1"] = None
    sample_int = None
    if draw(st.booleans()):
        sample_int = rng.integers(0, 2**32, V, dtype=np.uint64).astype(np.uint32)
        sample_int[rng.random(V) < 0.5] = 0xFFFFFFFF
    kw.update(
        sample_int=sample_int,
        sg=draw(st.booleans()),
        negative=negative,
        window=draw(st.integers(1, 4)),
        shrink_windows=draw(st.booleans()),
        cbow_mean=draw(st.booleans()),
        alpha=draw(st.sampled_from([0.025, 0.1])),
        min_alpha=draw(st.sampled_from([0.0001, 0.025])),
        progress=draw(st.sampled_from([(0.0, 1.0), (0.3, 0.6), (1.0, 1.0)])),
        seed=draw(SEEDS),
        compute_loss=draw(st.booleans()),
        num_threads=draw(st.sampled_from([None, 1, 2])),
    )
    if entry == "word2vec_train":
        return Case(dict(kw, words=words, sentence_ends=ends))
    # the same sentences in a file, with out-of-vocabulary tokens and assorted whitespace
    vocab = [f"w{i}" for i in range(V)]
    lines = []
    for t in range(s):
        toks = [vocab[w] for w in words[(ends[t - 1] if t else 0) : ends[t]]]
        for _ in range(int(rng.integers(0, 3))):
            toks.insert(int(rng.integers(0, len(toks) + 1)), "oov")
        lines.append(str(draw(st.sampled_from([" ", "\t", "  "]))).join(toks))
    path = os.path.join(_w2v_dir(), f"c{draw(SEEDS)}.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    if entry == "word2vec_count_file":
        return Case(dict(path=path, num_threads=kw["num_threads"]))
    return Case(dict(kw, path=path, vocab=vocab))


def _w2v_used(kw):
    """The weights the call trains: syn0, syn1neg with negative sampling, syn1 with HS."""
    neg = kw.get("negative")
    return (
        "syn0",
        *(("syn1neg",) if isinstance(neg, int) and neg > 0 else ()),
        *(("syn1",) if kw.get("points") is not None else ()),
    )


def w2v_reference(entry):
    def reference(kw, hidden):
        mags = {}
        w = {n: (None if kw.get(n) is None else np.array(kw[n], np.float64)) for n in ("syn0", "syn1neg", "syn1")}
        args = {k: v for k, v in kw.items() if k not in w}
        raw, eff, loss = getattr(ref, entry)(**w, **args, magnitudes=mags)
        used = _w2v_used(kw)
        return [w[n] if n in used else None for n in ("syn0", "syn1neg", "syn1")] + [
            np.array([raw, eff], np.int64),
            float(loss),
            mags,
        ]

    return reference


def w2v_results(kw, ret):
    used = _w2v_used(kw)
    return [kw[n] if n in used else None for n in ("syn0", "syn1neg", "syn1")] + [
        np.array(ret[:2], np.int64),
        ret[2],
        None,
    ]


def w2v_check(kw, got, want):
    """tests/test_word2vec_kernel.py's bound: (12 + n_pred) u times the reference's per-element
    magnitudes; the loss likewise times its magnitude."""
    mags = want[-1]
    n_pred = (kw["negative"] + 1 if kw["negative"] else 0) + (
        np.shape(kw["points"])[1] if kw.get("points") is not None else 0
    )
    c = 12 + n_pred
    for i, name in enumerate(("syn0", "syn1neg", "syn1")):
        if want[i] is not None:
            within(f"word2vec {name}", got[i], want[i], c * U32 * mags[name])
    within("word2vec loss", got[4], want[4], c * U32 * mags.get("loss", 0.0))


def w2v_count_results(kw, ret):
    return [ret[1], np.array(ret[2:], np.int64), {"words": ret[0]}]


def w2v_count_reference(kw, hidden):
    words, counts, tokens, lines = ref.word2vec_count_file(**kw)
    return [counts, np.array([tokens, lines], np.int64), {"words": words}]


def w2v_count_check(kw, got, want):
    assert got[2]["words"] == want[2]["words"], (got[2]["words"][:5], want[2]["words"][:5])


def _w2v_ops():
    common = dict(
        arrays=("syn0", "syn1neg", "syn1", "sample_int", "cum_table", "codes", "code_lengths"),
        ints=("negative", "window", "seed", "num_threads"),
        inplace=("syn0", "syn1neg", "syn1"),
        written=_w2v_used,
        test_modules=("test_word2vec_kernel",),
    )
    return {
        "word2vec_train": Op(
            "word2vec_train",
            lambda empty: w2v_case("word2vec_train", empty),
            w2v_check,
            reference=w2v_reference("word2vec_train"),
            results=w2v_results,
            index={"words": lambda kw: np.shape(kw["syn0"])[0], "sentence_ends": lambda kw: np.size(kw["words"]) + 1},
            **common,
        ),
        "word2vec_train_file": Op(
            "word2vec_train_file",
            lambda empty: w2v_case("word2vec_train_file", empty),
            w2v_check,
            reference=w2v_reference("word2vec_train_file"),
            results=w2v_results,
            **common,
        ),
        "word2vec_count_file": Op(
            "word2vec_count_file",
            lambda empty: w2v_case("word2vec_count_file", empty),
            w2v_count_check,
            reference=w2v_count_reference,
            results=w2v_count_results,
            ints=("num_threads",),
            test_modules=("test_word2vec_kernel",),
        ),
    }


# ---------------------------------------------------------------------------------------------
# The table: every op of fastnn.ops.__all__ (tests/test_fuzz.py fails on a missing one).

OUT = {"out": 0}


def _act_ops():
    table = {}
    for base in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu"):
        for way in ("forward", "backward"):
            name = f"{base}_{way}"
            arrays = ("x",) if way == "forward" else ("dy", "y" if base in ("sigmoid", "tanh") else "x")
            table[name] = Op(
                name,
                lambda empty, n=name: act_case(n, empty),
                act_check(name),
                arrays=arrays,
                outs=OUT,
                test_modules=("test_act",),
            )
    return table


def _softmax_ops():
    table = {}
    for name in ("softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"):
        arrays = ("x",) if name.endswith("_forward") else ("dy", "y")
        table[name] = Op(
            name,
            lambda empty, n=name: softmax_case(n, empty),
            softmax_check(name),
            reference=softmax_reference(name),
            arrays=arrays,
            ints=("dim",),
            outs=OUT,
        )
    return table


def _ce_target_end(kw):
    return np.shape(kw["logits"])[0 if np.ndim(kw["logits"]) == 1 else 1]


def _rnn_ops():
    table = {}
    for kind in ("lstm", "gru", "rnn"):
        for cell in (False, True):
            for way in ("forward", "backward"):
                name = f"{kind}{'_cell' if cell else ''}_{way}"
                st_names = (
                    (("h", "c") if kind == "lstm" else ("h",))
                    if cell
                    else (("h0", "c0") if kind == "lstm" else ("h0",))
                )
                if way == "forward":
                    arrays = ("x",) + st_names + ("w_ih", "w_hh", "b_ih", "b_hh")
                elif cell:
                    arrays = (("dh", "dc") if kind == "lstm" else ("dh",)) + ("x",) + st_names + ("w_ih", "w_hh", "ws")
                else:
                    g = ("dy", "dh_n", "dc_n") if kind == "lstm" else ("dy", "dh_n")
                    arrays = g + ("x",) + st_names + ("w_ih", "w_hh", "y", "ws")
                table[name] = Op(
                    name,
                    lambda empty, k=kind, w=way, c=cell: rnn_case(k, w, c, empty),
                    rnn_check(name),
                    reference=rnn_reference(kind, way, cell),
                    results=rnn_results(kind, way, cell),
                    arrays=arrays,
                    test_modules=("test_rnn",),
                    saved_from=st_names if way == "backward" else (),
                )
    return table


OPS = {
    "gemm": Op(
        "gemm",
        gemm_case,
        gemm_check,
        reference=gemm_reference,
        arrays=("a", "b", "c", "bias"),
        outs=OUT,
        test_modules=("test_gemm",),
    ),
    "conv2d_forward": Op(
        "conv2d_forward",
        conv_forward_case,
        conv_forward_check,
        test_modules=("test_conv2d",),
        arrays=("x", "w", "bias"),
        ints=("stride", "padding", "dilation", "groups"),
        outs=OUT,
    ),
    "conv2d_backward_data": Op(
        "conv2d_backward_data",
        conv_backward_data_case,
        conv_backward_data_check,
        test_modules=("test_conv2d",),
        arrays=("dy", "w"),
        ints=("stride", "padding", "dilation", "groups"),
        shapes=("input_shape",),
        outs=OUT,
    ),
    "conv2d_backward_weight": Op(
        "conv2d_backward_weight",
        conv_backward_weight_case,
        conv_backward_weight_check,
        test_modules=("test_conv2d",),
        arrays=("dy", "x"),
        ints=("stride", "padding", "dilation", "groups"),
        shapes=("weight_shape",),
        outs=OUT,
    ),
    "conv2d_backward_bias": Op(
        "conv2d_backward_bias",
        conv_backward_bias_case,
        conv_backward_bias_check,
        arrays=("dy",),
        outs=OUT,
        test_modules=("test_conv2d",),
    ),
    "conv_transpose2d_forward": Op(
        "conv_transpose2d_forward",
        ct_forward_case,
        ct_forward_check,
        test_modules=("test_conv2d",),
        arrays=("x", "w", "bias"),
        ints=("stride", "padding", "output_padding", "groups", "dilation"),
        outs=OUT,
    ),
    "conv_transpose2d_backward_data": Op(
        "conv_transpose2d_backward_data",
        ct_backward_data_case,
        ct_backward_data_check,
        test_modules=("test_conv2d",),
        arrays=("dy", "w"),
        ints=("stride", "padding", "output_padding", "groups", "dilation"),
        shapes=("input_shape",),
        outs=OUT,
    ),
    "conv_transpose2d_backward_weight": Op(
        "conv_transpose2d_backward_weight",
        ct_backward_weight_case,
        ct_backward_weight_check,
        test_modules=("test_conv2d",),
        arrays=("dy", "x"),
        ints=("stride", "padding", "output_padding", "groups", "dilation"),
        shapes=("weight_shape",),
        outs=OUT,
    ),
    "conv_transpose2d_backward_bias": Op(
        "conv_transpose2d_backward_bias",
        conv_backward_bias_case,
        ct_backward_bias_check,
        arrays=("dy",),
        outs=OUT,
        test_modules=("test_conv2d",),
    ),
    "max_pool2d_forward": Op(
        "max_pool2d_forward",
        max_pool_forward_case,
        max_pool_forward_check,
        arrays=("x",),
        ints=("kernel_size", "stride", "padding", "dilation"),
        outs={"out": 0, "indices": 1},
    ),
    "max_pool2d_backward": Op(
        "max_pool2d_backward",
        max_pool_backward_case,
        max_pool_backward_check,
        arrays=("dy", "x"),
        index={"indices": lambda kw: np.shape(kw["x"])[2] * np.shape(kw["x"])[3]},
        ints=("kernel_size", "stride", "padding", "dilation"),
        outs=OUT,
    ),
    "avg_pool2d_forward": Op(
        "avg_pool2d_forward",
        avg_pool_forward_case,
        avg_pool_forward_check,
        arrays=("x",),
        ints=("kernel_size", "stride", "padding"),
        outs=OUT,
    ),
    "avg_pool2d_backward": Op(
        "avg_pool2d_backward",
        avg_pool_backward_case,
        avg_pool_backward_check,
        arrays=("dy", "x"),
        ints=("kernel_size", "stride", "padding"),
        outs=OUT,
    ),
    "global_avg_pool2d_forward": Op(
        "global_avg_pool2d_forward", global_pool_forward_case, global_pool_forward_check, arrays=("x",), outs=OUT
    ),
    "global_avg_pool2d_backward": Op(
        "global_avg_pool2d_backward",
        global_pool_backward_case,
        global_pool_backward_check,
        arrays=("dy", "x"),
        outs=OUT,
    ),
    **_act_ops(),
    **_softmax_ops(),
    "cross_entropy_forward": Op(
        "cross_entropy_forward",
        lambda empty: ce_case("cross_entropy_forward", empty),
        ce_check("cross_entropy_forward"),
        arrays=("logits", "weight"),
        index={"target": _ce_target_end},
        ints=("ignore_index",),
    ),
    "cross_entropy_backward": Op(
        "cross_entropy_backward",
        lambda empty: ce_case("cross_entropy_backward", empty),
        ce_check("cross_entropy_backward"),
        arrays=("grad", "logits", "weight"),
        index={"target": _ce_target_end},
        ints=("ignore_index",),
        outs=OUT,
    ),
    "sgd_step": Op(
        "sgd_step",
        sgd_case,
        sgd_check,
        reference=sgd_reference,
        results=sgd_results,
        lists=("params", "grads", "momentum_buffers"),
        inplace=("params", "momentum_buffers"),
        written=lambda kw: ("params", "momentum_buffers") if kw["momentum"] else ("params",),
    ),
    "adam_step": Op(
        "adam_step",
        adam_case,
        adam_check,
        reference=adam_reference,
        results=adam_results,
        ints=("step",),
        lists=("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"),
        inplace=ADAM_STATE,
        written=_adam_writes,
    ),
    "grad_norm": Op(
        "grad_norm",
        grad_norm_case,
        grad_norm_check,
        reference=lambda kw, hidden: [ref.grad_norm(**kw)],
        lists=("arrays",),
        test_modules=("test_optim",),
    ),
    "batch_norm2d_forward": Op(
        "batch_norm2d_forward",
        bn_forward_case,
        bn_forward_check,
        reference=bn_forward_reference,
        results=bn_forward_results,
        arrays=("x", "weight", "bias", "running_mean", "running_var"),
        outs=OUT,
        inplace=("running_mean", "running_var"),
        test_modules=("test_batchnorm",),
    ),
    "batch_norm2d_backward": Op(
        "batch_norm2d_backward",
        bn_backward_case,
        bn_backward_check,
        arrays=("dy", "x", "weight", "save_mean", "save_invstd"),
        outs=OUT,
        test_modules=("test_batchnorm",),
    ),
    "embedding_forward": Op(
        "embedding_forward",
        lambda empty: embedding_case("embedding_forward", empty),
        embedding_forward_check,
        arrays=("weight",),
        index={"indices": lambda kw: np.shape(kw["weight"])[0]},
        ints=("padding_idx",),
        outs=OUT,
    ),
    "embedding_backward": Op(
        "embedding_backward",
        lambda empty: embedding_case("embedding_backward", empty),
        embedding_backward_check,
        reference=embedding_backward_reference,
        arrays=("dy",),
        index={"indices": lambda kw: kw["num_embeddings"]},
        ints=("num_embeddings", "padding_idx"),
        outs=OUT,
    ),
    **_rnn_ops(),
    "layer_norm_forward": Op(
        "layer_norm_forward",
        ln_forward_case,
        ln_forward_check,
        arrays=("x", "weight", "bias"),
        shapes=("normalized_shape",),
    ),
    "layer_norm_backward": Op(
        "layer_norm_backward",
        ln_backward_case,
        ln_backward_check,
        arrays=("dy", "x", "mean", "rstd", "weight"),
    ),
    "scaled_dot_product_attention_forward": Op(
        "scaled_dot_product_attention_forward",
        lambda empty: sdpa_case("forward", empty),
        sdpa_forward_check,
        arrays=("q", "k", "v", "attn_mask"),
    ),
    "scaled_dot_product_attention_backward": Op(
        "scaled_dot_product_attention_backward",
        lambda empty: sdpa_case("backward", empty),
        sdpa_backward_check,
        arrays=("dout", "q", "k", "v", "out", "lse", "attn_mask"),
        saved_from=("attn_mask",),
    ),
    **_w2v_ops(),
}
