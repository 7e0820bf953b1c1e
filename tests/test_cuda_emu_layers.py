"""fastnn's Python layer on CUDA arrays (Tensor, nn, optim, train, save / load), run on the emulated
device (the fixture emulated_gpu: tests/fake_cupy.py as CuPy, the CUDA kernels compiled as host
C++): device objects, moves and their errors, tensor ops and every layer forward and backward
against the CPU, optimizers, training steps of a CNN, an LSTM classifier and a transformer
block, state dicts across devices, and fit(device=).

Bounds, as in test_cuda_emu_rnn.py: 2 (K + 2) eps32 relative to max(1, max |CPU value|), K the
longest chain of float32 sums behind a value (either device may err either way, hence 2). The
K of each case is written next to it; values without sums (elementwise math, maxima) get K = 0,
and moves and integer results (indices, counts, dropout masks) must be equal. Training runs on
both devices from the same initial values and data: each step's loss and the parameters after
it carry the earlier steps' differences, so the bound of step s (1-based) takes s times the K
of one step."""

import copy
import io
import re

import fastnn
import numpy as np
import pytest
from fastnn import nn, optim, train
from fastnn.data import DataLoader, TensorDataset
from fastnn.nn import functional as F
from fastnn.ref.rounding import EPS32
from fastnn.sparse import RowSparse

MIXED = re.escape("Expected all tensors to be on the same device, but found at least two devices, ")


@pytest.fixture
def gpu(emulated_gpu):
    return emulated_gpu


def host(v):
    """A NumPy copy of a tensor, a RowSparse gradient (densified) or an array of either device."""
    if isinstance(v, RowSparse):
        v = v.to("cpu").to_dense()
    if isinstance(v, fastnn.Tensor):
        v = v._data
    return v if isinstance(v, (np.ndarray, np.generic)) else v.get()


def close(got, want, k, what=""):
    """got (device) within 2 (k + 2) eps32 max(1, max |want|) of want (CPU), elementwise."""
    g, w = np.asarray(host(got)), np.asarray(host(want))
    assert g.shape == w.shape and g.dtype == w.dtype, (what, g.shape, w.shape, g.dtype, w.dtype)
    if g.dtype.kind != "f":
        np.testing.assert_array_equal(g, w, err_msg=what)
        return
    tol = 2 * (k + 2) * EPS32 * max(1.0, float(np.abs(w).max(initial=0.0)))
    err = np.abs(g.astype(np.float64) - w.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=what)
    err = np.where(np.isnan(err), 0, err)
    assert (err <= tol).all(), f"{what}: max error {err.max():.3g} over {tol:.3g} (K = {k})"


def on_cuda(*tensors):
    return all(t.is_cuda and t.device == "cuda:0" for t in tensors)


# -- devices and moves ----------------------------------------------------------------------------


def test_device_objects():
    d = fastnn.device("cuda:1")
    assert (d.type, d.index, str(d), repr(d)) == ("cuda", 1, "cuda:1", "device(type='cuda', index=1)")
    assert repr(fastnn.device("cpu")) == "device(type='cpu')" and fastnn.device("cpu") == "cpu"
    assert fastnn.device("cuda", 0) == "cuda" and fastnn.device("cuda", 0) == "cuda:0" and fastnn.device(0) == "cuda:0"
    assert fastnn.device("cuda:0") != "cuda:1" and fastnn.device("cuda") != "cpu" and fastnn.device("cpu") != "cuda"
    assert fastnn.device(fastnn.device("cuda:2")).index == 2 and fastnn.device("cuda") != 3.5
    for bad in ("gpu", "cuda:x", "cpu:1", "cuda:-1"):
        with pytest.raises(RuntimeError):
            fastnn.device(bad)
    t = fastnn.zeros(2)
    assert t.device == "cpu" and not t.is_cuda and t.to("cpu") is t and t.cpu() is t


def test_no_device_no_cuda_tensors(monkeypatch):
    monkeypatch.setattr(fastnn.cuda, "_module", None)
    monkeypatch.setattr(fastnn.cuda, "_tried", True)
    for make in (
        lambda: fastnn.zeros(2, device="cuda"),
        lambda: fastnn.ones(2).cuda(),
        lambda: nn.Linear(2, 2).to("cuda"),
        lambda: fastnn.tensor([1.0], device="cuda"),
    ):
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            make()


def test_tensor_moves_and_conversions(gpu):
    a = fastnn.randn(2, 3)
    b = a.to("cuda")
    assert on_cuda(b) and isinstance(b._data, gpu.ndarray) and b.device == fastnn.device("cuda", 0)
    assert str(b.device) == "cuda:0" and repr(b.device) == "device(type='cuda', index=0)"
    assert b.to("cuda") is b and b.cuda() is b and b.cuda(0) is b and b.to(fastnn.device("cuda:0")) is b
    assert on_cuda(a.cuda(), a.to(0), a.to(b), a.to(device="cuda"), a.to("cuda", fastnn.float64))
    assert a.to("cuda", fastnn.float64).dtype == np.float64 and b.to(copy=True) is not b
    np.testing.assert_array_equal(b.cpu().numpy(), a.numpy())
    np.testing.assert_array_equal(b.numpy(force=True), a.numpy())
    assert b.tolist() == a.tolist() and b[1, 2].item() == a[1, 2].item() and float(b[0, 0]) == float(a[0, 0])
    assert b[1, 2].shape == () and a[1, 2].shape == ()
    assert repr(b) == repr(a)[:-1] + ", device='cuda:0')"
    with pytest.raises(
        TypeError,
        match=re.escape(
            "can't convert cuda:0 device type tensor to numpy. Use "
            "Tensor.cpu() to copy the tensor to host memory first."
        ),
    ):
        b.numpy()
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor"):
        np.asarray(b)
    i = fastnn.tensor([[1, 2]], device="cuda")
    assert on_cuda(i) and i.dtype == np.int64 and i.tolist() == [[1, 2]]
    c = fastnn.tensor(b)  # a copy on b's device
    assert on_cuda(c) and c._data is not b._data
    c.zero_()
    assert b.tolist() == a.tolist() and c.sum().item() == 0
    c.copy_(a)  # across devices
    assert c.tolist() == a.tolist() and on_cuda(c)
    made = [
        fastnn.zeros(2, 3, device="cuda"),
        fastnn.ones(2, device="cuda:0"),
        fastnn.full((2, 2), 7.0, device="cuda"),
        fastnn.empty(3, device=fastnn.device("cuda")),
        fastnn.randn(2, device="cuda"),
        fastnn.rand(2, device="cuda"),
        fastnn.randint(0, 5, (2, 3), device="cuda"),
        fastnn.randperm(4, device="cuda"),
        fastnn.arange(5, device="cuda"),
        fastnn.zeros_like(b),
        fastnn.ones_like(b),
        fastnn.as_tensor(np.ones(2), device="cuda"),
        fastnn.tensor(np.eye(2), device="cuda"),
    ]
    assert on_cuda(*made) and made[2].tolist() == [[7.0, 7.0], [7.0, 7.0]] and made[8].tolist() == [0, 1, 2, 3, 4]
    assert fastnn.zeros_like(b, device="cpu").device == "cpu" and fastnn.as_tensor(b) is b
    # random values come from the host generator: the same numbers on either device
    fastnn.manual_seed(3)
    r = [fastnn.randn(4, device="cuda"), fastnn.rand(3, device="cuda"), fastnn.randint(9, size=(5,), device="cuda")]
    fastnn.manual_seed(3)
    for x, y in zip(r, [fastnn.randn(4), fastnn.rand(3), fastnn.randint(9, size=(5,))]):
        np.testing.assert_array_equal(host(x), y.numpy())


def test_mixed_devices_are_an_error(gpu):
    a, b = fastnn.ones(2, 3), fastnn.ones(2, 3, device="cuda")
    lin = nn.Linear(3, 2).to("cuda")
    for f in (
        lambda: b + a,
        lambda: a * b,
        lambda: b @ a.T,
        lambda: fastnn.cat([b, a]),
        lambda: fastnn.stack([a, b]),
        lambda: fastnn.where(b > 0, b, a),
        lambda: b > a,
        lambda: F.linear(b, a),
        lambda: lin(a),
        lambda: F.cross_entropy(b, fastnn.tensor([0, 1])),
        lambda: F.mse_loss(b, a),
        lambda: nn.Embedding(4, 2).to("cuda")(fastnn.tensor([1])),
        lambda: a[fastnn.tensor([0], device="cuda")],
    ):
        with pytest.raises(RuntimeError, match=f"({MIXED}cuda:0 and cpu!|{MIXED}cpu and cuda:0!|indices should be)"):
            f()
    with pytest.raises(RuntimeError, match="a leaf Variable"):
        lin.weight += 1
    with pytest.raises(RuntimeError, match=MIXED):
        b.add_(a)


def test_cpu_scalars_and_autograd_across_devices(gpu):
    b = fastnn.tensor([[1.0, -2.0, 3.0]], device="cuda")
    s = fastnn.tensor(2.0, requires_grad=True)  # a 0-d CPU tensor acts as a scalar, as in torch
    w = fastnn.tensor([0.5, 1.0, -1.0], requires_grad=True)
    out = (b * s + w.cuda()).sum() / s
    assert on_cuda(out)
    out.backward()
    assert s.grad.device == "cpu" and w.grad.device == "cpu"  # gradients reach the CPU leaves
    # out = (s sum(b) + sum(w)) / s: d/dw = 1/s, d/ds = sum(b)/s - (s sum(b) + sum(w))/s^2 (exact in float32)
    assert w.grad.tolist() == [0.5, 0.5, 0.5] and s.grad.item() == 1.0 - 4.5 / 4.0
    b += 1
    b *= fastnn.tensor(3.0)
    assert on_cuda(b) and b.tolist() == [[6.0, -3.0, 12.0]]
    with pytest.raises(RuntimeError, match="invalid gradient at index 0 - expected device cuda:0 but got cpu"):
        (b * fastnn.ones(1, requires_grad=True).cuda()).backward(fastnn.ones(1, 3))


# -- tensor operations: forward and backward on the device against the CPU ------------------------
# x, y (2, 3, 4), w (4, 5), v (4,); K: the longest sum (reductions over up to 24 elements; the
# gemm's 4; softmax's 4). Elementwise math: K = 0.

TENSOR_OPS = {
    "add": (lambda x, y, w, v: x + y + 1.5, 0),
    "sub": (lambda x, y, w, v: 2 - x - y[0], 2),
    "mul": (lambda x, y, w, v: x * y * 3, 0),
    "div": (lambda x, y, w, v: x / (y.abs() + 1) / 2, 0),
    "rdiv": (lambda x, y, w, v: 3 / (x.abs() + 1), 0),
    "pow": (lambda x, y, w, v: (x.abs() + 1) ** 1.5, 0),
    "pow_tensor": (lambda x, y, w, v: (x.abs() + 1) ** (y * 0.5), 0),
    "rpow": (lambda x, y, w, v: 2**x, 0),
    "exp_log_sqrt": (lambda x, y, w, v: (x.exp() + (y.abs() + 1).log() + (x * x + 1).sqrt()).abs(), 0),
    "clamp_neg": (lambda x, y, w, v: -x.clamp(-0.5, 0.5) + y.clamp(min=0), 0),
    "sum_mean": (lambda x, y, w, v: x.sum(1) + y.mean((0, 2), keepdim=True).sum() + x.mean(), 24),
    "max_min": (lambda x, y, w, v: x.max(2)[0] + y.min(dim=1, keepdim=True)[0][:, 0, :1] + x.max(), 0),
    "shape": (
        lambda x, y, w, v: (
            x.reshape(6, 4).T.unsqueeze(0).permute(2, 0, 1).squeeze(1).flatten()
            + y.transpose(0, 2).expand(1, 4, 3, 2).reshape(-1)
        ),
        2,
    ),
    "index": (
        lambda x, y, w, v: (
            x[1]
            + x[1, :, ::2].sum()
            + x[fastnn.tensor([0, 1, 0])].sum((0, 1))
            + y[..., 1][x[..., 1] > 0].sum()
            + x[:, fastnn.tensor([2, 2])].mean()
        ),
        12,
    ),
    "cat_stack_where": (
        lambda x, y, w, v: (
            fastnn.cat([x, y], 1).sum(1, keepdim=True)
            + fastnn.stack([x, y], 3).mean(3)
            + fastnn.where(x > 0, x, y)
            + fastnn.where(y > 0, 1.0, y)
        ),
        6,
    ),
    "matmul": (lambda x, y, w, v: x.reshape(6, 4) @ w + (x @ y.transpose(1, 2)).sum() + (x @ v).sum(), 16),
    "functions": (
        lambda x, y, w, v: x.relu() + y.sigmoid() + x.tanh() + y.softmax(-1) + x.log_softmax(1) + fastnn.exp(y).abs(),
        4,
    ),
}


@pytest.mark.parametrize("name", list(TENSOR_OPS))
def test_tensor_op(gpu, rng, name):
    fn, k = TENSOR_OPS[name]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 4), (2, 3, 4), (4, 5), (4,))]
    res = []
    for dev in ("cpu", "cuda"):
        ts = [fastnn.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*[t.to(dev) for t in ts])  # moves are graph nodes: gradients reach the CPU leaves
        assert out.device == dev
        up = np.linspace(-1, 1, out._data.size, dtype=np.float32).reshape(out.shape)
        (out * fastnn.tensor(up, device=dev)).sum().backward()
        res.append((out, [t.grad for t in ts]))
    (oc, gc), (od, gd) = res
    close(od, oc, k, "forward")
    for i, (a, b) in enumerate(zip(gd, gc)):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.device == "cpu"
            close(a, b, k, f"grad {i}")


def test_reductions_and_comparisons(gpu):
    x = fastnn.tensor([[1.0, 5.0, -2.0], [4.0, 0.0, 4.0]])
    d = x.cuda()
    for f in (
        lambda t: t.argmax(),
        lambda t: t.argmax(1),
        lambda t: t.argmin(0, keepdim=True),
        lambda t: t == 4,
        lambda t: t != x.cuda() if t.is_cuda else t != x,
        lambda t: t >= 1.0,
        lambda t: t < t[0],
        lambda t: t.sum(dim=0).long(),
        lambda t: (t > 0).sum(),
        lambda t: t.max(1)[1],
    ):
        got, want = f(d), f(x)
        assert got.is_cuda and got.dtype == want.dtype
        np.testing.assert_array_equal(host(got), want.numpy())
    assert bool(d[0, 1] > 4) and int(d.sum()) == 12


# -- layers: the CPU module and a deep copy moved to the device, the same inputs and upstream -------


class Call(nn.Module):
    """module plus a function of (module, *inputs): tuple arguments, cells over steps, losses."""

    def __init__(self, m, fn):
        super().__init__()
        self.m = m
        object.__setattr__(self, "fn", fn)

    def forward(self, *xs):
        return self.fn(self.m, *xs)


def _bn_eval():
    bn = nn.BatchNorm2d(3)
    bn(fastnn.randn(4, 3, 2, 3) * 2 + 1)  # running statistics away from the defaults
    return bn.eval()


def _lstm_steps(cell, x, h, c):
    outs = []
    for t in range(x.shape[0]):
        h, c = cell(x[t], (h, c))
        outs.append(h)
    return fastnn.stack(outs), c


def f32(*s):
    return lambda rng: rng.standard_normal(s).astype(np.float32)


def i64(high, *s):
    return lambda rng: rng.integers(0, high, s).astype(np.int64)


# name: (module factory, input makers, K). K: Linear 5 + 1 (and 4 rows in dW); conv 3*3*3 + 1
# forward, 4 out channels * 9 taps (dx), 2*4*3 pixels (dw); pools: the window or plane; batch
# norm: M = N*H*W per statistic, twice (mean, then the centred sums), and the backward's two sums
# over M; layer norm likewise over the row; the recurrent layers: test_cuda_emu_rnn.bounds()
# summed over the stacked layers; attention: the projections (E), the scores (HD), the
# weighted values (S) and their backward; losses: the class dim and the batch.
LAYERS = {
    "linear": (lambda: nn.Linear(5, 3), [f32(4, 5)], 6),
    "linear_3d_nobias": (lambda: nn.Linear(5, 3, bias=False), [f32(2, 3, 5)], 6),
    "conv": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), [f32(2, 3, 7, 6)], 37),
    "conv_groups_dilation": (
        lambda: nn.Conv2d(4, 2, (2, 3), padding="same", dilation=2, groups=2, bias=False),
        [f32(1, 4, 5, 6)],
        30,
    ),
    "conv_relu_pool": (
        lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        [f32(2, 2, 5, 5)],
        50,
    ),
    # the transposed convolutions run conv2d's kernels: K as the conv's, per output 4 * 4 * 4 taps
    # at most, 3 * 16 per dx, 2 * 3 * 3 pixels per dw
    "conv_transpose": (lambda: nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1), [f32(2, 4, 3, 3)], 65),
    "conv_transpose_output_padding": (
        lambda: nn.ConvTranspose2d(2, 4, 3, padding=1, output_padding=1, dilation=2, groups=2),
        [f32(1, 2, 4, 5)],
        30,
    ),
    "max_pool": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), [f32(2, 3, 6, 5)], 0),
    "max_pool_indices": (lambda: nn.MaxPool2d(2, return_indices=True), [f32(1, 2, 4, 5)], 0),
    "avg_pools": (
        lambda: Call(
            nn.AvgPool2d(2, padding=1, count_include_pad=False),
            lambda m, x: m(x).sum() + F.adaptive_avg_pool2d(x, 1) + F.adaptive_avg_pool2d(x, (2, 1)),
        ),
        [f32(2, 3, 4, 6)],
        24,
    ),
    "batch_norm2d": (lambda: nn.BatchNorm2d(3), [f32(2, 3, 4, 5)], 160),
    "batch_norm2d_eval": (_bn_eval, [f32(2, 3, 2, 2)], 24),
    "batch_norm1d_no_affine": (lambda: nn.BatchNorm1d(4, affine=False, momentum=0.3), [f32(6, 4)], 24),
    "layer_norm": (lambda: nn.LayerNorm((2, 3)), [f32(4, 2, 3)], 24),
    "activations": (
        lambda: Call(
            nn.GELU(),
            lambda m, x: (
                m(x)
                + nn.LeakyReLU(0.2)(x)
                + nn.Sigmoid()(x)
                + nn.Tanh()(x)
                + nn.ReLU()(x)
                + nn.Softmax(1)(x)
                + nn.LogSoftmax(-1)(x)
                + F.gelu(x, "tanh")
            ),
        ),
        [f32(3, 5)],
        5,
    ),
    "dropout": (lambda: nn.Sequential(nn.Dropout(0.4), nn.Linear(6, 2)), [f32(5, 6)], 7),
    "embedding": (lambda: nn.Embedding(7, 4, padding_idx=2), [i64(7, 3, 5)], 15),
    "rnn_stacked_bidirectional": (
        lambda: nn.RNN(3, 5, num_layers=2, bidirectional=True, nonlinearity="relu"),
        [f32(4, 2, 3)],
        200,
    ),
    "lstm_batch_first_hx": (
        lambda: Call(nn.LSTM(3, 5, batch_first=True), lambda m, x, h, c: m(x, (h, c))),
        [f32(2, 4, 3), f32(1, 2, 5), f32(1, 2, 5)],
        150,
    ),
    "gru_unbatched": (lambda: nn.GRU(3, 4, num_layers=2, dropout=0.5), [f32(5, 3)], 200),
    "cells": (
        lambda: Call(
            nn.ModuleList([nn.LSTMCell(3, 4), nn.GRUCell(3, 4), nn.RNNCell(3, 4)]),
            lambda m, x, h: _lstm_steps(m[0], x, h, h)[0] + m[1](x[0], h) + m[2](x[1]),
        ),
        [f32(3, 2, 3), f32(2, 4)],
        100,
    ),
    "attention_fused": (
        lambda: Call(
            nn.MultiheadAttention(8, 2, batch_first=True),
            lambda m, q, kv: m(
                q,
                kv,
                kv,
                need_weights=False,
                key_padding_mask=fastnn.tensor([[False] * 4 + [True], [False] * 5], device=q.device),
            )[0],
        ),
        [f32(2, 3, 8), f32(2, 5, 8)],
        60,
    ),
    "attention_weights_causal": (
        lambda: Call(
            nn.MultiheadAttention(6, 3),
            lambda m, x: m(x, x, x, attn_mask=fastnn.tensor(np.triu(np.ones((4, 4), bool), 1), device=x.device)),
        ),
        [f32(4, 2, 6)],
        60,
    ),
    "transformer_layer": (
        lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True, norm_first=True, activation="gelu"),
        [f32(2, 3, 8)],
        120,
    ),
    "sdpa_bool_mask": (
        lambda: Call(
            nn.Identity(),
            lambda m, q, k, v: F.scaled_dot_product_attention(
                q, k, v, attn_mask=fastnn.tensor(np.tril(np.ones((3, 4), bool), 1), device=q.device)
            ),
        ),
        [f32(2, 3, 4), f32(2, 4, 4), f32(2, 4, 5)],
        20,
    ),
    "cross_entropy": (
        lambda: Call(
            nn.CrossEntropyLoss(weight=fastnn.tensor([1.0, 2.0, 0.5, 1.0]), ignore_index=1, label_smoothing=0.1),
            lambda m, x, t: m(x, t) + F.cross_entropy(x, t, reduction="none").sum(),
        ),
        [f32(6, 4), i64(4, 6)],
        12,
    ),
    # int32 targets (a bare array) take the array-namespace path instead of the fused kernel
    "cross_entropy_spatial_nll": (
        lambda: Call(
            nn.NLLLoss(reduction="sum"),
            lambda m, x, t: m(F.log_softmax(x, 1), t) + F.cross_entropy(x, t._data.astype(np.int32)),
        ),
        [f32(2, 3, 2, 2), i64(3, 2, 2, 2)],
        12,
    ),
    "mse_bce": (
        lambda: Call(
            nn.MSELoss(),
            lambda m, x, y: (
                m(x, y)
                + nn.BCEWithLogitsLoss(pos_weight=fastnn.tensor([2.0, 1.0, 0.5], device=x.device))(x, y.sigmoid())
                + F.mse_loss(x, y, reduction="sum")
            ),
        ),
        [f32(4, 3), f32(4, 3)],
        12,
    ),
}


def _outputs(out):
    if isinstance(out, fastnn.Tensor):
        return [out]
    return [t for o in out if o is not None for t in _outputs(o)]


def _run(model, arrays, dev, up_rng):
    fastnn.manual_seed(7)  # the same dropout masks on both devices
    ins = [fastnn.tensor(a, device=dev, requires_grad=a.dtype == np.float32) for a in arrays]
    outs = _outputs(model(*ins))
    total = None
    for o in outs:
        if o.requires_grad:
            g = fastnn.tensor(up_rng.standard_normal(o.shape).astype(np.float32), device=dev)
            total = (o * g).sum() if total is None else total + (o * g).sum()
    total.backward()
    grads = [t.grad for t in ins if t.requires_grad] + [p.grad for p in model.parameters()]
    return outs, grads, [b for b in model.buffers()]


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer(gpu, rng, name):
    make, inputs, k = LAYERS[name]
    fastnn.manual_seed(0)
    cpu = make()
    dev = copy.deepcopy(cpu).to("cuda")
    assert on_cuda(*dev.parameters(), *dev.buffers())
    arrays = [f(rng) for f in inputs]
    oc, gc, bc = _run(cpu, arrays, "cpu", np.random.default_rng(1))
    od, gd, bd = _run(dev, arrays, "cuda", np.random.default_rng(1))
    assert len(od) == len(oc) and len(gd) == len(gc)
    for i, (a, b) in enumerate(zip(od, oc)):
        assert a.is_cuda
        close(a, b, k, f"{name} output {i}")
    for i, (a, b) in enumerate(zip(gd, gc)):
        assert (a is None) == (b is None), i
        if a is not None:
            assert a.is_cuda
            close(a, b, k, f"{name} gradient {i}")
    for i, (a, b) in enumerate(zip(bd, bc)):
        close(a, b, k, f"{name} buffer {i}")


def test_dropout_masks_are_the_host_generators(gpu):
    x = fastnn.ones(50)
    fastnn.manual_seed(5)
    a = F.dropout(x.cuda(), 0.3)
    fastnn.manual_seed(5)
    b = F.dropout(x, 0.3)
    np.testing.assert_array_equal(host(a), b.numpy())
    assert 0 < (b.numpy() == 0).sum() < 50
    assert F.dropout(x.cuda(), 0.3, training=False).is_cuda


@pytest.mark.parametrize("opt_name", ["sgd", "sparse_adam"])
def test_sparse_embedding(gpu, rng, opt_name):
    idx = rng.integers(0, 6, (3, 4))
    results = []
    for dev in ("cpu", "cuda"):
        fastnn.manual_seed(0)
        emb = nn.Embedding(6, 3, sparse=True, padding_idx=0, device=dev)
        opt = optim.SGD(emb.parameters(), lr=0.5) if opt_name == "sgd" else optim.SparseAdam(emb.parameters(), lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            (
                emb(fastnn.tensor(idx, device=dev))
                * fastnn.tensor(np.arange(36, dtype=np.float32).reshape(3, 4, 3), device=dev)
            ).sum().backward()
            assert isinstance(emb.weight.grad, RowSparse) and emb.weight.grad.device == dev
            opt.step()
        results.append((emb.weight, host(emb.weight.grad)))
    (wc, gc), (wd, gd) = results
    assert on_cuda(wd)
    close(gd, gc, 12, "sparse gradient (dense form)")
    close(wd, wc, 12 * 2, "weights after two steps")


# -- modules, optimizers, state -------------------------------------------------------------------


def test_module_moves_in_place(gpu):
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    params, bufs = list(m.parameters()), list(m.buffers())
    m(fastnn.randn(5, 3)).sum().backward()
    assert m.to("cuda") is m
    assert all(a is b for a, b in zip(m.parameters(), params)) and all(a is b for a, b in zip(m.buffers(), bufs))
    assert on_cuda(*params, *bufs, *(p.grad for p in params))
    sd = m.state_dict()
    assert on_cuda(*sd.values()) and set(sd) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }
    assert m.cpu() is m and all(p.device == "cpu" and p.grad.device == "cpu" for p in params)
    assert m.cuda() is m and m.to(fastnn.device("cpu")) is m and m.to(fastnn.ones(1, device="cuda")) is m
    assert on_cuda(*params, *bufs)
    fastnn.manual_seed(1)
    a = nn.Linear(3, 4, device="cuda")
    fastnn.manual_seed(1)
    b = nn.Linear(3, 4)  # initialised on the host in both cases: the same values
    assert on_cuda(a.weight, a.bias)
    np.testing.assert_array_equal(host(a.weight), host(b.weight))
    assert on_cuda(
        *nn.LSTM(2, 3, device="cuda").parameters(),
        *nn.GRUCell(2, 3, device="cuda").parameters(),
        *nn.Conv2d(1, 2, 3, device="cuda").parameters(),
        *nn.BatchNorm2d(2, device="cuda").buffers(),
        *nn.LayerNorm(3, device="cuda").parameters(),
        *nn.Embedding(3, 2, device="cuda").parameters(),
    )
    loss = nn.CrossEntropyLoss(weight=fastnn.tensor([1.0, 2.0]))
    assert loss.to("cuda").weight.is_cuda  # a loss's class weights are a buffer, as in torch


OPTIMIZERS = {
    "sgd_momentum": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01), "momentum_buffer"),
    "sgd_nesterov_maximize": (
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5, nesterov=True, maximize=True),
        "momentum_buffer",
    ),
    "sgd_plain": (lambda ps: optim.SGD(ps, lr=0.1), None),
    "adam_amsgrad": (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True), "max_exp_avg_sq"),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01), "exp_avg_sq"),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer(gpu, rng, name):
    make, key = OPTIMIZERS[name]
    p0 = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,))]
    gs = [[rng.standard_normal(p.shape).astype(np.float32) for p in p0] for _ in range(3)]
    runs = []
    for dev in ("cpu", "cuda"):
        ps = [nn.Parameter(fastnn.tensor(p, device=dev)) for p in p0]
        opt = make(ps)
        for grads in gs:
            for p, g in zip(ps, grads):
                p.grad = fastnn.tensor(g, device=dev)
            opt.step()
        runs.append((ps, opt))
    (pc, oc), (pd, od) = runs
    for i, (a, b) in enumerate(zip(pd, pc)):
        assert a.is_cuda
        close(a, b, 3, f"param {i}")  # elementwise updates, three of them
        if key:
            close(od.state[a][key], oc.state[b][key], 3, f"{key} {i}")
            assert isinstance(od.state[a][key], gpu.ndarray)
    # the state dict travels: CUDA state into a CPU optimizer and back
    buf = io.BytesIO()
    fastnn.save(od.state_dict(), buf)
    ps = [nn.Parameter(fastnn.tensor(host(p))) for p in pd]
    cpu_again = make(ps)
    buf.seek(0)
    cpu_again.load_state_dict(fastnn.load(buf))
    if key:
        assert isinstance(cpu_again.state[ps[0]][key], np.ndarray)
    ps = [nn.Parameter(fastnn.tensor(host(p), device="cuda")) for p in pd]
    gpu_again = make(ps)
    gpu_again.load_state_dict(oc.state_dict())
    if key:
        assert all(
            isinstance(v, gpu.ndarray)
            for st in gpu_again.state.values()
            for v in st.values()
            if isinstance(v, (np.ndarray, gpu.ndarray))
        )


def test_optimizer_state_follows_a_moved_model(gpu):
    fastnn.manual_seed(0)
    m = nn.Linear(3, 2)
    opt = optim.Adam(m.parameters(), lr=0.1)
    x = fastnn.randn(4, 3)
    m(x).sum().backward()
    opt.step()
    m.to("cuda")
    opt.zero_grad()
    m(x.cuda()).sum().backward()
    opt.step()
    assert all(isinstance(v, gpu.ndarray) for st in opt.state.values() for k, v in st.items() if k != "step")
    m.cpu()
    opt.step()  # the gradients moved along with the parameters
    assert all(isinstance(v, np.ndarray) for st in opt.state.values() for k, v in st.items() if k != "step")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad(gpu, rng, norm_type):
    gs = [rng.standard_normal(s).astype(np.float32) for s in ((7, 3), (5,), (0,))]
    res = []
    for dev in ("cpu", "cuda"):
        ps = [nn.Parameter(fastnn.zeros(*g.shape, device=dev)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad = fastnn.tensor(g, device=dev)
        total = nn.utils.clip_grad_norm_(ps, 0.5, norm_type)
        assert total.device == dev
        nn.utils.clip_grad_value_(ps[1:], 0.1)
        res.append((total, [p.grad for p in ps], nn.utils.parameters_to_vector([p.grad for p in ps])))
    (tc, gc, vc), (td, gd, vd) = res
    close(td, tc, 26, "total norm")  # 26 elements
    for i, (a, b) in enumerate(zip(gd, gc)):
        close(a, b, 26, f"clipped {i}")
    close(vd, vc, 26, "vector")


# -- training on the device against the CPU ---------------------------------------------------


def _train(make, make_opt, batches, dev, steps, loss_fn):
    fastnn.manual_seed(0)
    model = make().to(dev)
    opt = make_opt(model.parameters())
    losses = []
    for x, y in batches[:steps]:
        opt.zero_grad()
        loss = loss_fn(model(fastnn.tensor(x, device=dev)), fastnn.tensor(y, device=dev))
        loss.backward()
        opt.step()
        assert loss.device == dev
        losses.append(loss.item())
    return losses, model


def _compare_training(make, make_opt, batches, k, loss_fn=F.cross_entropy, steps=3):
    lc, mc = _train(make, make_opt, batches, "cpu", steps, loss_fn)
    ld, md = _train(make, make_opt, batches, "cuda", steps, loss_fn)
    for s, (a, b) in enumerate(zip(ld, lc)):
        close(np.float32(a), np.float32(b), (s + 1) * k, f"loss of step {s + 1}")
    for (n, a), b in zip(md.named_parameters(), mc.parameters()):
        assert a.is_cuda
        close(a, b, steps * k, n)
    assert ld[-1] < ld[0]  # it learns


def test_train_cnn_sgd_momentum(gpu, rng):
    # K per step: conv 9 + 1 and its weight gradient over 4*6*6 pixels, batch norm 2*144 twice,
    # the linear layer's 27 + 1, the loss's 4 classes and 4 rows: 10 + 144 + 576 + 28 + 8
    batches = [(rng.standard_normal((4, 1, 6, 6)).astype(np.float32), rng.integers(0, 4, 4))] * 3
    _compare_training(
        lambda: nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4)
        ),
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        batches,
        766,
    )


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.out = nn.Linear(6, 3)

    def forward(self, tokens):
        y, (h, c) = self.lstm(self.emb(tokens))
        return self.out(h[0] + y.mean(1))


def test_train_lstm_classifier_adam(gpu, rng):
    # K per step: the LSTM's bound over T = 5 (I = 4, H = 6, G = 4), the linear 6 + 1, mean 5,
    # the embedding rows (15 positions), the loss 3 classes and 3 rows
    batches = [(rng.integers(0, 10, (3, 5)), rng.integers(0, 3, 3))] * 3
    _compare_training(
        LSTMClassifier, lambda ps: optim.Adam(ps, lr=0.05), batches, 5 * (4 + 6 + 24 + 4) + 15 + 7 + 5 + 15 + 6
    )


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.pos = nn.PositionalEmbedding(6, 8)
        self.block = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        self.head = nn.Linear(8, 11)

    def forward(self, tokens):
        return self.head(self.block(self.pos(self.emb(tokens)), is_causal=False)).reshape(-1, 11)


def test_train_transformer_block_sgd(gpu, rng):
    # K per step: projections 8 + 1 (and 12 rows in their weight gradients), scores HD = 4,
    # values S = 4, two layer norms over 8 (2 x 16), the feed-forward 16 + 1 and 8 + 1, the head
    # 8 + 1 and its 11 classes, the gradients' sums over 12 rows in each of the 6 linear layers.
    # SGD: Adam would blow the rounding noise of the key bias's gradient (exactly zero: softmax
    # ignores a shift of all scores) up to steps of size lr, which differ from device to device.
    batches = [(rng.integers(0, 11, (3, 4)), rng.integers(0, 11, 12))] * 3
    _compare_training(
        TinyTransformer,
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        batches,
        9 + 4 + 4 + 32 + 17 + 9 + 9 + 11 + 6 * 12,
    )


def test_state_dict_save_load_between_devices(gpu, rng, tmp_path):
    fastnn.manual_seed(0)
    cuda_model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).cuda()
    x = fastnn.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    cuda_model(x.cuda())  # running statistics move
    sd = cuda_model.state_dict()
    assert on_cuda(*sd.values())
    path = str(tmp_path / "m.npz")
    fastnn.save(sd, path)  # host copies
    loaded = fastnn.load(path)
    assert all(v.device == "cpu" for v in loaded.values())
    fastnn.manual_seed(1)
    cpu_model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    cpu_model.load_state_dict(loaded)
    for (n, a), b in zip(cpu_model.state_dict().items(), sd.values()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=n)
    cuda_model.eval()
    cpu_model.eval()
    close(cuda_model(x.cuda()), cpu_model(x), 5, "eval outputs")
    # a CPU state dict copies into the CUDA model's parameters, which stay where they are
    w = cuda_model[0].weight
    cpu_model[0].weight.data[...] = 3.0
    cuda_model.load_state_dict(cpu_model.state_dict())
    assert cuda_model[0].weight is w and on_cuda(w) and host(w).tolist() == [[3.0] * 4] * 3
    on_gpu = fastnn.load(path, map_location="cuda")
    assert on_cuda(*on_gpu.values())
    cuda_model.load_state_dict(on_gpu)
    np.testing.assert_array_equal(host(cuda_model[0].weight), loaded["0.weight"].numpy())
    # a checkpoint of a CUDA run resumes on the CPU
    opt = optim.SGD(cuda_model.parameters(), lr=0.1, momentum=0.9)
    cuda_model.train()
    cuda_model(x.cuda()).sum().backward()
    opt.step()
    ck = str(tmp_path / "ck.npz")
    train.save_checkpoint(ck, cuda_model, opt, epoch=1)
    fastnn.manual_seed(2)
    back = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt2 = optim.SGD(back.parameters(), lr=0.1, momentum=0.9)
    assert train.load_checkpoint(ck, back, opt2)[0] == 1
    np.testing.assert_array_equal(host(back[0].weight), host(cuda_model[0].weight))
    assert isinstance(opt2.state[back[0].weight]["momentum_buffer"], np.ndarray)


def test_fit_on_the_device(gpu, rng):
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    hists = []
    for dev in ("cpu", "cuda"):
        fastnn.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
        opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
        hists.append(
            train.fit(
                model,
                nn.CrossEntropyLoss(),
                opt,
                loader,
                epochs=2,
                val_loader=loader,
                log=None,
                device=dev,
                metrics=("accuracy", lambda o, t: (o.argmax(1) == t).float().mean()),
            )
        )
        assert all(p.device == dev for p in model.parameters())
        ev = train.evaluate(model, loader, nn.CrossEntropyLoss())
        assert ev["loss"] == pytest.approx(hists[-1][-1]["val_loss"])
    (hc, hd) = hists
    # K: the linear layers' 5 + 1 and 8 + 1 and the 8-row gradient sums, the loss's 2 classes and
    # 8 rows, over the 6 steps of two epochs
    for e, (a, b) in enumerate(zip(hd, hc)):
        for key in ("loss", "val_loss"):
            close(np.float32(a[key]), np.float32(b[key]), 6 * (6 + 9 + 8 + 2 + 8), f"epoch {e} {key}")
        assert a["accuracy"] == b["accuracy"] and a["<lambda>"] == b["<lambda>"]


# -- device memory --------------------------------------------------------------------------------


def test_outputs_past_the_device_memory_and_failed_allocations_name_the_op(gpu, monkeypatch):
    x = gpu.asarray(np.ones((4, 256), np.float32))

    class Runtime:
        @staticmethod
        def memGetInfo():
            return (1 << 10, 2 << 10)  # a device of 2 KiB

    monkeypatch.setattr(type(gpu.cuda), "runtime", Runtime, raising=False)
    with pytest.raises(
        ValueError, match=r"fastnn\.ops\.relu_forward: expected an output that fits in the GPU's memory"
    ):
        fastnn.ops.relu_forward(x)
    monkeypatch.setattr(type(gpu.cuda), "runtime", None)  # no runtime API: no bound, as before

    def out_of_memory(shape, dtype=float):
        raise MemoryError("Out of memory allocating 4,096 bytes")  # as CuPy's OutOfMemoryError

    monkeypatch.setattr(gpu, "empty", out_of_memory)
    with pytest.raises(MemoryError, match=r"fastnn\.ops\.relu_forward: cannot allocate 4096 bytes on the GPU"):
        fastnn.ops.relu_forward(x)
