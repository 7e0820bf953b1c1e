"""The CUDA recurrent layers (csrc/cuda/rnn.cu: tanh/relu RNN, LSTM, GRU, whole sequence and the
T = 1 calls the cell ops make) run by the emulator through fastnn._cuda's own entries (the
emulated device, called with the CPU entries' arguments), against the CPU kernels and the float64
references, in the three fiber orders; the CPU's workspace feeds the CUDA backward and the other
way round; and the cell ops through fastnn.ops on the emulated device."""

import numpy as np
import pytest
from fastnn import ops
from test_cuda_emu import dev, emu, order  # noqa: F401  (dev, order: fixtures; emu: skips without the module)
from test_cuda_rnn import CASES, KINDS, bounds, case_data, close, grad_names, ops_backward, ops_forward
from test_rnn import G, _data, _nl, run_reference

SWAP_CASES = ("bare_rev",)  # also checked with the workspaces of the other device


def emu_forward(dev, kind, d, reverse):
    """(outputs, ws) of the device's forward: LSTM outputs (y, h_n, c_n), the others (y, h_n)."""
    return ops_forward(kind, d, reverse, dev)


def emu_backward(dev, kind, d, reverse, y, ws):
    return ops_backward(kind, d, reverse, y, ws, dev)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_sequence(rng, order, dev, kind, case):
    d, reverse = case_data(rng, kind, case)
    T, B, I = d["x"].shape
    H = d["w_hh"].shape[1]
    tf, tb = bounds(T, B, I, H, G[kind])
    outs, ws = emu_forward(dev, kind, d, reverse)
    couts, cws = ops_forward(kind, d, reverse)
    routs, rgrads = run_reference(kind, d, reverse)
    for name, a, c, r in zip(("y", "h_n", "c_n"), outs, couts, routs):
        close(a, c, tf, f"{name} vs CPU")
        close(a, r, tf, f"{name} vs reference")
    assert ws.shape == cws.shape  # the same layout: gates / c / tanh c (LSTM), r z n gh_n (GRU)
    close(ws, cws, tf, "ws vs CPU")
    grads = emu_backward(dev, kind, d, reverse, outs[0], ws)
    cgrads = ops_backward(kind, d, reverse, couts[0], cws)
    names = grad_names(kind)
    assert len(grads) == len(cgrads) == len(names)
    for name, a, c, r in zip(names, grads, cgrads, rgrads):
        close(a, c, tb, f"{name} vs CPU")
        close(a, r, tb, f"{name} vs reference")
    if case not in SWAP_CASES:
        return
    # the workspaces are interchangeable: each backward reads the other's forward
    swapped = zip(
        names, emu_backward(dev, kind, d, reverse, couts[0], cws), ops_backward(kind, d, reverse, outs[0], ws)
    )
    for name, a, c in swapped:
        close(a, c, tb, f"{name} (workspaces swapped)")


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch(order, dev, kind):
    """B = 0: empty outputs, zero weight and bias gradients (the CPU's contract)."""
    d = _data(np.random.default_rng(0), kind, 3, 0, 4, 5)
    outs, ws = emu_forward(dev, kind, d, False)
    assert outs[0].shape == (3, 0, 5) and outs[1].shape == (0, 5) and ws.size == 0
    grads = emu_backward(dev, kind, d, False, outs[0], ws)
    assert grads[0].shape == (3, 0, 4)
    for gw in grads[-4:]:
        assert gw.shape[0] == G[kind] * 5 and not gw.any()


@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("kind", KINDS)
def test_cells(rng, order, dev, kind, states):
    """The calls the cell ops make on CUDA arrays (T = 1, dy = None, y = None for LSTM / GRU, the
    RNN's ws its output) against the CPU cell ops."""
    d = _data(rng, kind, 1, 5, 7, 17, states=states, grads=False)
    x, h, c, w = d["x"][0], d["h0"], d["c0"], (d["w_ih"], d["w_hh"])
    tf, tb = bounds(1, 5, 7, 17, G[kind])
    outs, ws = emu_forward(dev, kind, d, False)
    if kind == "lstm":
        h1, c1, cws = ops.lstm_cell_forward(x, h, c, *w, d["b_ih"], d["b_hh"])
        want, got = (h1, c1, cws), (outs[1], outs[2], ws)
        cg = ops.lstm_cell_backward(d["dh_n"], d["dc_n"], x, h, c, *w, cws)
        y_arg = None
    elif kind == "gru":
        h1, cws = ops.gru_cell_forward(x, h, *w, d["b_ih"], d["b_hh"])
        want, got = (h1, cws), (outs[1], ws)
        cg = ops.gru_cell_backward(d["dh_n"], x, h, *w, cws)
        y_arg = None
    else:
        h1, cws = ops.rnn_cell_forward(x, h, *w, d["b_ih"], d["b_hh"], nonlinearity=_nl(kind))
        want, got = (h1, cws), (outs[1], outs[0])
        cg = ops.rnn_cell_backward(d["dh_n"], x, h, *w, cws, nonlinearity=_nl(kind))
        y_arg = outs[0]
    for i, (a, b) in enumerate(zip(got, want)):
        close(a, b, tf, f"forward output {i}")
    grads = emu_backward(dev, kind, d, False, y_arg, ws)
    assert len(grads) == len(cg)
    close(grads[0][0], cg[0], tb, "dx")
    for i, (a, b) in enumerate(zip(grads[1:], cg[1:])):
        close(a, b, tb, f"gradient {i + 1}")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_same_bits_in_every_schedule(rng, monkeypatch, dev, kind):
    """No atomics, bias sums in row order: two random fiber schedules give the same bits."""
    d, reverse = case_data(rng, kind, "rows66_ih_rev")
    monkeypatch.setenv("FASTNN_EMU_ORDER", "random")
    runs = []
    for seed in ("1", "2"):
        monkeypatch.setenv("FASTNN_EMU_SEED", seed)
        outs, ws = emu_forward(dev, kind, d, reverse)
        runs.append(outs + (ws,) + emu_backward(dev, kind, d, reverse, outs[0], ws))
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_cells_through_fastnn_ops_on_the_emulated_device(rng, order, emulated_gpu, kind):
    """fastnn.ops' cell ops on device arrays (x as a one-step view, no copy; the RNN backward
    without a workspace) against the same ops on the CPU."""
    cp = emulated_gpu
    d = _data(rng, kind, 1, 5, 7, 17, grads=False)
    tf, tb = bounds(1, 5, 7, 17, G[kind])
    x, h, c, w, b = d["x"][0], d["h0"], d["c0"], (d["w_ih"], d["w_hh"]), (d["b_ih"], d["b_hh"])
    up = lambda a: None if a is None else cp.asarray(a)  # noqa: E731
    gx, gh, gc, gw, gb = up(x), up(h), up(c), tuple(map(up, w)), tuple(map(up, b))
    if kind == "lstm":
        got, want = ops.lstm_cell_forward(gx, gh, gc, *gw, *gb), ops.lstm_cell_forward(x, h, c, *w, *b)
        gg = ops.lstm_cell_backward(up(d["dh_n"]), up(d["dc_n"]), gx, gh, gc, *gw, got[2])
        cg = ops.lstm_cell_backward(d["dh_n"], d["dc_n"], x, h, c, *w, want[2])
    elif kind == "gru":
        got, want = ops.gru_cell_forward(gx, gh, *gw, *gb), ops.gru_cell_forward(x, h, *w, *b)
        gg = ops.gru_cell_backward(up(d["dh_n"]), gx, gh, *gw, got[1])
        cg = ops.gru_cell_backward(d["dh_n"], x, h, *w, want[1])
    else:
        nl = _nl(kind)
        got = ops.rnn_cell_forward(gx, gh, *gw, *gb, nonlinearity=nl)
        want = ops.rnn_cell_forward(x, h, *w, *b, nonlinearity=nl)
        gg = ops.rnn_cell_backward(up(d["dh_n"]), gx, gh, *gw, got[1], nonlinearity=nl)
        cg = ops.rnn_cell_backward(d["dh_n"], x, h, *w, want[1], nonlinearity=nl)
    for i, (a, c_) in enumerate(zip(got, want)):
        close(cp.asnumpy(a), c_, tf, f"forward output {i}")
    assert len(gg) == len(cg) and gg[0].shape == x.shape
    for i, (a, c_) in enumerate(zip(gg, cg)):
        close(cp.asnumpy(a), c_, tb, f"gradient {i}")
