"""The recurrent references (fastnn.ref.rnn: groundwork for the RNN/LSTM/GRU kernels): backward
against float64 finite differences of the forward, and both against torch.nn.RNN / LSTM / GRU with
copied weights (skipped without torch)."""

import numpy as np
import pytest
from fastnn.ref import rnn

T, B, I, H = 4, 3, 5, 6


def _weights(rng, gates, bias=True):
    w = [rng.standard_normal((gates * H, I)) * 0.4, rng.standard_normal((gates * H, H)) * 0.4]
    b = [rng.standard_normal(gates * H) * 0.2, rng.standard_normal(gates * H) * 0.2] if bias else [None, None]
    return w + b


def _run(kind, x, h0, c0, params, nonlinearity="tanh"):
    if kind == "lstm":
        y, h, c, cache = rnn.lstm_forward(x, h0, c0, *params)
        return (y, h, c), cache
    if kind == "gru":
        y, h, cache = rnn.gru_forward(x, h0, *params)
        return (y, h), cache
    y, h, cache = rnn.rnn_forward(x, h0, *params, nonlinearity=nonlinearity)
    return (y, h), cache


def _back(kind, outs_grads, cache):
    if kind == "lstm":
        return rnn.lstm_backward(*outs_grads, cache)
    return (rnn.gru_backward if kind == "gru" else rnn.rnn_backward)(*outs_grads, cache)


@pytest.mark.parametrize("kind,gates,nl", [("rnn", 1, "tanh"), ("rnn", 1, "relu"), ("lstm", 4, None), ("gru", 3, None)])
@pytest.mark.parametrize("bias", [True, False])
def test_backward_matches_finite_differences(kind, gates, nl, bias):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    params = _weights(rng, gates, bias)
    outs, cache = _run(kind, x, h0, c0, params, nl or "tanh")
    ws = [rng.standard_normal(o.shape) for o in outs]
    grads = _back(kind, ws, cache)
    inputs = [x, h0] + ([c0] if kind == "lstm" else []) + params
    analytic = list(grads)

    def loss():
        o, _ = _run(kind, x, h0, c0, params, nl or "tanh")
        return sum((a * w).sum() for a, w in zip(o, ws))

    for arr, g in zip(inputs, analytic):
        if arr is None:
            assert g is None
            continue
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + 1e-6
            lp = loss()
            arr[idx] = old - 1e-6
            lm = loss()
            arr[idx] = old
            num[idx] = (lp - lm) / 2e-6
        # relu's kink: random data keeps |pre-activations| well above the 1e-6 step
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_matches_torch(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = {
        "rnn_tanh": lambda: torch.nn.RNN(I, H, nonlinearity="tanh"),
        "rnn_relu": lambda: torch.nn.RNN(I, H, nonlinearity="relu"),
        "lstm": lambda: torch.nn.LSTM(I, H),
        "gru": lambda: torch.nn.GRU(I, H),
    }[kind]().double()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((1, B, H)), rng.standard_normal((1, B, H))
    xt = torch.from_numpy(x).requires_grad_()
    h0t = torch.from_numpy(h0).requires_grad_()
    c0t = torch.from_numpy(c0).requires_grad_()
    out = mod(xt, (h0t, c0t) if kind == "lstm" else h0t)
    yt, state = out
    params = [p.detach().numpy() for p in (mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0, mod.bias_hh_l0)]
    name = "lstm" if kind == "lstm" else ("gru" if kind == "gru" else "rnn")
    outs, cache = _run(name, x, h0[0], c0[0], params, kind.split("_")[-1] if name == "rnn" else "tanh")
    np.testing.assert_allclose(outs[0], yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(yt.shape)
    dh = rng.standard_normal((1, B, H))
    loss = (yt * torch.from_numpy(dy)).sum() + ((state[0] if kind == "lstm" else state) * torch.from_numpy(dh)).sum()
    loss.backward()
    grads = _back(name, [dy, dh[0]] + ([None] if name == "lstm" else []), cache)
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1], h0t.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    k = 3 if name == "lstm" else 2
    for g, p in zip(grads[k:], (mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0, mod.bias_hh_l0)):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-10, atol=1e-12)
