"""Recurrent-layer benchmark: one layer's forward + backward through time (LSTM, GRU, tanh RNN)
on the recurrent performance-anchor shapes, fastnn.ops against torch.nn.LSTM/GRU/RNN with the
same weights (autograd, as a training step runs it) and the float64 NumPy reference. Each
result (y, h_n, dx, dh0, dw_ih, dw_hh, db) is validated against the reference first."""

import numpy as np

from fastnn import ops
from fastnn.ref import rnn as ref

from .harness import Case, optional

torch = optional("torch")
# float32 against float64 over up to T = 128 steps of a contracting recurrence and weight
# gradients summed over T*B <= 8192 rows: 2^-12 of each array's scale (max(1, max |desired|)),
# ~2000 ulps of it; wrong results are off by O(scale).
TOL = 2.0**-12
G = {"lstm": 4, "gru": 3, "rnn": 1}
# (kind, I, H, T, B); quick: small versions of the same.
FULL = [
    ("lstm", 128, 256, 128, 16),
    ("lstm", 50, 128, 32, 16),
    ("lstm", 50, 128, 128, 1),
    ("gru", 128, 256, 128, 64),
    ("rnn", 128, 256, 128, 64),
]
QUICK = [("lstm", 50, 128, 32, 16), ("lstm", 50, 128, 16, 1), ("gru", 32, 64, 16, 8), ("rnn", 32, 64, 16, 8)]


def _case(kind, I, H, T, B):
    rng = np.random.default_rng(0)
    g = G[kind]
    k = 1 / np.sqrt(H)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    h0 = rng.standard_normal((B, H), dtype=np.float32)
    c0 = rng.standard_normal((B, H), dtype=np.float32) if kind == "lstm" else None
    w_ih, w_hh = (rng.uniform(-k, k, (g * H, n)).astype(np.float32) for n in (I, H))
    b_ih, b_hh = (rng.uniform(-k, k, g * H).astype(np.float32) for _ in range(2))
    dy = rng.standard_normal((T, B, H), dtype=np.float32)

    def fastnn_fn():
        if kind == "lstm":
            y, hn, cn, ws = ops.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
            dx, dh0, _, dwi, dwh, dbi, dbh = ops.lstm_backward(dy, None, None, x, h0, c0, w_ih, w_hh, y, ws)
        elif kind == "gru":
            y, hn, ws = ops.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh)
            dx, dh0, dwi, dwh, dbi, dbh = ops.gru_backward(dy, None, x, h0, w_ih, w_hh, y, ws)
        else:
            y, hn, ws = ops.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh)
            dx, dh0, dwi, dwh, dbi, dbh = ops.rnn_backward(dy, None, x, h0, w_ih, w_hh, y, ws)
        return y, hn, dx, dh0, dwi, dwh, dbi, dbh

    def numpy_fn():
        if kind == "lstm":
            y, hn, _, cache = ref.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
            dx, dh0, _, dwi, dwh, dbi, dbh = ref.lstm_backward(dy, None, None, cache)
        else:
            f, b = (ref.gru_forward, ref.gru_backward) if kind == "gru" else (ref.rnn_forward, ref.rnn_backward)
            y, hn, cache = f(x, h0, w_ih, w_hh, b_ih, b_hh)
            dx, dh0, dwi, dwh, dbi, dbh = b(dy, None, cache)
        return y, hn, dx, dh0, dwi, dwh, dbi, dbh

    impls = {"fastnn": fastnn_fn}
    if torch:
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
        m = cls(I, H)
        with torch.no_grad():
            for name, a in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
                getattr(m, name).copy_(torch.from_numpy(a))
        xt, h0t, dyt = torch.from_numpy(x), torch.from_numpy(h0)[None], torch.from_numpy(dy)
        c0t = torch.from_numpy(c0)[None] if kind == "lstm" else None

        def torch_fn():
            m.zero_grad(set_to_none=True)
            xx, hh = xt.detach().requires_grad_(), h0t.detach().requires_grad_()
            if kind == "lstm":
                y, (hn, _) = m(xx, (hh, c0t))
            else:
                y, hn = m(xx, hh)
            y.backward(dyt)
            return (
                y.detach().numpy(),
                hn[0].detach().numpy(),
                xx.grad.numpy(),
                hh.grad[0].numpy(),
                m.weight_ih_l0.grad.numpy(),
                m.weight_hh_l0.grad.numpy(),
                m.bias_ih_l0.grad.numpy(),
                m.bias_hh_l0.grad.numpy(),
            )

        impls["torch"] = torch_fn
    impls["numpy"] = numpy_fn
    want = [None]

    def check(got):
        if want[0] is None:
            want[0] = numpy_fn()
        names = ("y", "h_n", "dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh")
        for name, a, d in zip(names, got, want[0]):
            err = np.abs(np.asarray(a, np.float64) - d)
            bound = TOL * max(1.0, float(np.abs(d).max()))
            assert err.max() <= bound, f"{name}: max error {err.max():.3g} over {bound:.3g}"

    flops = 3 * 2.0 * T * B * g * H * (I + H)  # forward's GEMMs, twice that backward
    return Case(f"{kind} fwd+bwd I={I} H={H} T={T} B={B}", impls, check, flops=flops)


def cases(quick=False):
    return [_case(*c) for c in (QUICK if quick else FULL)]
