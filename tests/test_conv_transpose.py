"""nn.ConvTranspose1d/2d and F.conv_transpose1d/2d (conv2d's backward-data as the forward, its
forward and backward-weight as the gradients): torch parity of outputs and every gradient in
float32 and float64 over strides, paddings, output_padding (also past the padding), groups,
dilation and output_size; a float64 finite-difference check; torch's errors."""

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
