"""nn.ConvTranspose1d/2d and F.conv_transpose1d/2d (conv2d's backward-data as the forward, its
forward and backward-weight as the gradients): torch parity of outputs and every gradient in
float32 and float64 over strides, paddings, output_padding (also past the padding), groups,
dilation and output_size; a float64 finite-difference check; torch's errors."""

import re

import fastnn
import numpy as np
import pytest
from fastnn import nn
from fastnn.nn import functional as F

try:
    import torch
except ImportError:  # torch is an optional test peer
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

CONFIGS = [
    dict(cin=100, cout=128, k=7, hw=(1, 1)),  # DCGAN's first generator layer
    dict(cin=128, cout=64, k=4, hw=(7, 7), stride=2, padding=1),  # and its upsampling layers
    dict(cin=6, cout=4, k=3, hw=(5, 6), stride=2, padding=1, output_padding=1, groups=2),
    dict(cin=4, cout=6, k=3, hw=(5, 6), stride=1, padding=2, output_padding=1, dilation=2),
    dict(cin=4, cout=6, k=3, hw=(5, 6), stride=1, padding=0, output_padding=1, dilation=2),
    dict(cin=4, cout=6, k=3, hw=(5, 6), stride=3, padding=(1, 0), output_padding=2),
    dict(cin=4, cout=6, k=(2, 3), hw=(5, 6), stride=(2, 3), padding=(0, 1), dilation=(2, 1), bias=False),
    dict(cin=3, cout=5, k=1, hw=(4, 3)),
]


def _pair(dtype):
    return (torch.float64, np.float64) if dtype == "float64" else (torch.float32, np.float32)


def _run(cfg, dtype, rng, batch=2, output_size=None, unbatched=False):
    cfg = dict(cfg)
    cin, cout, k, hw = cfg.pop("cin"), cfg.pop("cout"), cfg.pop("k"), cfg.pop("hw")
    tdt, ndt = _pair(dtype)
    theirs = torch.nn.ConvTranspose2d(cin, cout, k, **cfg).to(tdt)
    ours = nn.ConvTranspose2d(cin, cout, k, **cfg).to(ndt)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()
    ]
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({n: v.detach().numpy() for n, v in theirs.state_dict().items()})
    shape = ((cin,) if unbatched else (batch, cin)) + hw
    x = rng.standard_normal(shape).astype(ndt)
    xt, xf = torch.tensor(x, requires_grad=True), fastnn.tensor(x, requires_grad=True)
    yt = theirs(xt, output_size=output_size)
    yf = ours(xf, output_size=output_size)
    assert tuple(yf.shape) == tuple(yt.shape) and yf.dtype == ndt
    g = rng.standard_normal(tuple(yt.shape)).astype(ndt)
    (yt * torch.tensor(g)).sum().backward()
    (yf * fastnn.tensor(g)).sum().backward()
    tol = 1e-10 if dtype == "float64" else 2e-5
    pairs = [(yf.detach().numpy(), yt.detach().numpy()), (xf.grad.numpy(), xt.grad.numpy())]
    pairs += [(p.grad.numpy(), q.grad.numpy()) for p, q in zip(ours.parameters(), theirs.parameters())]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max(initial=0))))


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_conv_transpose2d_matches_torch(rng, cfg, dtype):
    _run(cfg, dtype, rng)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_size_and_unbatched(rng, dtype):
    cfg = dict(cin=4, cout=2, k=3, hw=(5, 5), stride=2, padding=1)
    for size in [(9, 9), (10, 10), (9, 10), (2, 2, 10, 9)]:
        _run(cfg, dtype, rng, output_size=size)
    _run(cfg, dtype, rng, unbatched=True)


@needs_torch
@pytest.mark.parametrize("cfg", [dict(stride=2, padding=1, output_padding=1), dict(stride=1, dilation=2)], ids=str)
def test_conv_transpose1d_matches_torch(rng, cfg):
    theirs, ours = torch.nn.ConvTranspose1d(4, 6, 3, **cfg), nn.ConvTranspose1d(4, 6, 3, **cfg)
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({n: v.detach().numpy() for n, v in theirs.state_dict().items()})
    for shape in [(2, 4, 9), (4, 9)]:
        x = rng.standard_normal(shape).astype(np.float32)
        xt, xf = torch.tensor(x, requires_grad=True), fastnn.tensor(x, requires_grad=True)
        yt, yf = theirs(xt), ours(xf)
        np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=2e-5, atol=2e-5)
        yt.pow(2).sum().backward()
        (yf * yf).sum().backward()
        np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=2e-5, atol=2e-5)


def test_float64_gradients_by_finite_differences(rng):
    x = rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(3)
    g = rng.standard_normal((2, 3, 6, 9))
    kw = dict(stride=2, padding=(1, 0), output_padding=1)

    def loss(xa, wa, ba):
        return float((F.conv_transpose2d(fastnn.tensor(xa), fastnn.tensor(wa), fastnn.tensor(ba), **kw) * g).sum())

    xt, wt, bt = (fastnn.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv_transpose2d(xt, wt, bt, **kw)
    assert tuple(y.shape) == g.shape
    (y * fastnn.tensor(g)).sum().backward()
    for name, a, grad in (("x", x, xt.grad), ("w", w, wt.grad), ("b", b, bt.grad)):
        num = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            d = np.zeros_like(a)
            d[i] = 1e-6
            args = [x, w, b]
            k = "xwb".index(name)
            plus, minus = list(args), list(args)
            plus[k], minus[k] = a + d, a - d
            num[i] = (loss(*plus) - loss(*minus)) / 2e-6
        np.testing.assert_allclose(grad.numpy(), num, rtol=1e-6, atol=1e-7)


def test_torch_errors():
    x = fastnn.randn(1, 4, 5, 5)
    w = fastnn.randn(4, 2, 3, 3)
    with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation"):
        F.conv_transpose2d(x, w, stride=1, output_padding=1)
    m = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match="requested an output size of"):
        m(x, output_size=(12, 12))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        m(x, output_size=(9,))
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(4, 2, 3, padding_mode="reflect")
    with pytest.raises(RuntimeError, match="conv_transpose2d"):
        F.conv_transpose2d(fastnn.randn(1, 3, 5, 5), w)  # channels
    with pytest.raises(RuntimeError, match="too small"):
        F.conv_transpose2d(fastnn.randn(1, 4, 1, 1), w, padding=3)


# ---------------------------------------------------------------------------------------------
# fastnn.ops.conv_transpose2d_* on every backend (each CPU ISA, the emulated device) against
# fastnn.ref's scatter from the definition (not conv2d's references): the DCGAN shapes at a small
# batch (a kernel over the whole 1x1 input; 4x4 stride 2 on 7x7 and 14x14, blocks of images),
# odd channel counts off every tile, groups with dilation, output_padding past the padding.

OPS_CASES = [
    ((5, 10, 1, 1), (10, 16, 7, 7), dict()),
    ((11, 12, 7, 7), (12, 8, 4, 4), dict(stride=2, padding=1)),
    ((3, 8, 14, 14), (8, 1, 4, 4), dict(stride=2, padding=1)),
    ((2, 17, 5, 6), (17, 33, 3, 3), dict(stride=1, padding=1)),
    ((2, 6, 5, 6), (6, 2, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=3, dilation=(1, 2))),
    ((2, 4, 5, 6), (4, 6, 3, 2), dict(stride=3, padding=(1, 0), output_padding=2)),
    ((0, 4, 5, 6), (4, 6, 3, 3), dict(stride=2)),  # an empty batch
]


@pytest.mark.parametrize("xs,ws,kw", OPS_CASES, ids=str)
def test_ops_on_every_backend(rng, backend, xs, ws, kw):
    from fastnn import ops, ref
    from fastnn.ref.rounding import EPS32

    P, get = backend.put, backend.get

    def check(got, want, mag, k):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_less(np.abs(got - want), 2 * (k + 2) * EPS32 * mag + 1e-30)

    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    groups = kw.get("groups", 1)
    b = rng.standard_normal(ws[1] * groups).astype(np.float32)
    y = ops.conv_transpose2d_forward(P(x), P(w), P(b), **kw)
    want = ref.conv_transpose2d_forward(x, w, b, **kw)
    mag = ref.conv_transpose2d_forward(np.abs(x), np.abs(w), np.abs(b), **kw)
    check(get(y), want, mag, ws[0] * ws[2] * ws[3])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    out = P(np.full(xs, np.nan, np.float32))
    dx = ops.conv_transpose2d_backward_data(P(dy), P(w), xs, out=out, **kw)
    assert dx is out
    mag = ref.conv_transpose2d_backward_data(np.abs(dy), np.abs(w), xs, **kw)
    check(get(dx), ref.conv_transpose2d_backward_data(dy, w, xs, **kw), mag, ws[1] * ws[2] * ws[3])
    dw = ops.conv_transpose2d_backward_weight(P(dy), P(x), ws, **kw)
    n = max(1, xs[0] * xs[2] * xs[3])
    mag = ref.conv_transpose2d_backward_weight(np.abs(dy), np.abs(x), ws, **kw)
    check(get(dw), ref.conv_transpose2d_backward_weight(dy, x, ws, **kw), mag, n)
    db = ops.conv_transpose2d_backward_bias(P(dy))
    n = max(1, y.shape[0] * y.shape[2] * y.shape[3])
    check(get(db), ref.conv_transpose2d_backward_bias(dy), ref.conv_transpose2d_backward_bias(np.abs(dy)), n)


@needs_torch
@pytest.mark.parametrize("xs,ws,kw", OPS_CASES[:-1], ids=str)
def test_reference_matches_torch(rng, xs, ws, kw):
    """The float64 reference is torch's conv_transpose2d and its gradients."""
    from fastnn import ref

    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[1] * kw.get("groups", 1))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, **kw)
    dy = rng.standard_normal(tuple(yt.shape))
    (yt * torch.tensor(dy)).sum().backward()
    got = [
        ref.conv_transpose2d_forward(x, w, b, **kw),
        ref.conv_transpose2d_backward_data(dy, w, xs, **kw),
        ref.conv_transpose2d_backward_weight(dy, x, ws, **kw),
        ref.conv_transpose2d_backward_bias(dy),
    ]
    for a, t in zip(got, (yt, xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_ref_gradients_match_finite_differences(rng):
    from fastnn import ref

    kw = dict(stride=2, padding=1, output_padding=1, dilation=(1, 2))
    x, w = rng.standard_normal((2, 3, 3, 4)), rng.standard_normal((3, 2, 3, 2))
    g = rng.standard_normal(ref.conv_transpose2d_forward(x, w, **kw).shape)

    def loss(xa, wa):
        return float((ref.conv_transpose2d_forward(xa, wa, **kw) * g).sum())

    for a, grad in (
        (x, ref.conv_transpose2d_backward_data(g, w, x.shape, **kw)),
        (w, ref.conv_transpose2d_backward_weight(g, x, w.shape, **kw)),
    ):
        num = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            a[i] += 1e-6
            up = loss(x, w)
            a[i] -= 2e-6
            num[i] = (up - loss(x, w)) / 2e-6
            a[i] += 1e-6
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-7)


OPS_BAD = [
    ("output_padding", dict(stride=1, output_padding=1), ValueError, "output padding must be smaller"),
    ("channels", dict(x=(1, 3, 5, 5)), ValueError, "expected an input with 4 channels"),
    ("groups", dict(groups=3), ValueError, "groups=3"),
    ("too_small", dict(x=(1, 4, 1, 1), padding=3), ValueError, "is too small"),
    ("rank", dict(x=(4, 5, 5)), ValueError, "expected a 4-D input"),
    ("not_array", dict(x=None), TypeError, "expected x to be an array"),
    ("negative_padding", dict(padding=-1), ValueError, "padding and output_padding >= 0"),
    ("bias", dict(bias=(3,)), ValueError, "expected bias float32 of shape (2,)"),
]


@pytest.mark.parametrize("name,kw,exc,needle", OPS_BAD, ids=[b[0] for b in OPS_BAD])
def test_ops_refuse_bad_input_naming_the_entry(name, kw, exc, needle):
    from fastnn import ops

    kw = dict(kw)
    xs = kw.pop("x", (1, 4, 5, 5))
    x = None if xs is None else np.zeros(xs, np.float32)
    bias = kw.pop("bias", None)
    b = None if bias is None else np.zeros(bias, np.float32)
    with pytest.raises(exc, match=re.escape(needle)) as e:
        ops.conv_transpose2d_forward(x, np.zeros((4, 2, 3, 3), np.float32), b, **kw)
    assert "conv_transpose2d_forward" in str(e.value) or "output padding" in str(e.value)


def test_ops_refuse_a_dy_of_another_shape():
    from fastnn import ops

    w = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(
        ValueError, match=re.escape("conv_transpose2d_backward_data: expected dy of shape (1, 2, 11, 11)")
    ):
        ops.conv_transpose2d_backward_data(np.zeros((1, 2, 9, 9), np.float32), w, (1, 4, 5, 5), stride=2)
    with pytest.raises(ValueError, match="conv_transpose2d_backward_weight: expected dy of shape"):
        ops.conv_transpose2d_backward_weight(
            np.zeros((1, 2, 9, 9), np.float32), np.zeros((1, 4, 5, 5), np.float32), w.shape, stride=2
        )


@needs_torch
def test_an_output_past_the_full_scatter_is_zeros_and_the_bias(rng):
    """Input 1 pixel high, stride 3, padding 1, output_padding 2: the one output row lies past
    the full scatter, so it is the bias alone and no gradient reaches x or w (ops and nn)."""
    from fastnn import ops

    x = rng.standard_normal((2, 3, 1, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 1, 2)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    kw = dict(stride=3, padding=1, output_padding=2)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, **kw)
    yt.sum().backward()
    y = ops.conv_transpose2d_forward(x, w, b, **kw)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6)
    dy = np.ones(y.shape, np.float32)
    assert not ops.conv_transpose2d_backward_data(dy, w, x.shape, **kw).any()
    assert not ops.conv_transpose2d_backward_weight(dy, x, w.shape, **kw).any()
    xf, wf, bf = (fastnn.tensor(a, requires_grad=True) for a in (x, w, b))
    yf = F.conv_transpose2d(xf, wf, bf, **kw)
    yf.sum().backward()
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=1e-6)
    for a, t in ((xf, xt), (wf, wt), (bf, bt)):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_ops_refuse_an_out_aliasing_the_bias():
    from fastnn import ops

    out = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="conv_transpose2d_forward: expected out not to share memory with bias"):
        ops.conv_transpose2d_forward(
            np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32), out.reshape(1), out=out
        )
