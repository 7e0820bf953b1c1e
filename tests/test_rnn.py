"""rnn/lstm/gru forward and backward through time (and the single-step cells) against the float64
reference (fastnn.ref.rnn) on every ISA path, reverse direction, thread invariance, bad input,
and torch.nn.LSTM/GRU/RNN parity when torch is importable."""

import numpy as np
import pytest
from conftest import ISAS, num_threads
from fastnn import _core, ops
from fastnn.ref import rnn as ref

KINDS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
G = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# (T, B, I, H): one step of one row of one unit; hidden sizes around the 16-lane vectors and
# the GEMM tiles (7, 16, 17, 31, 33); odd input sizes; batches past one GEMM row tile (17);
# T > 2 with B >= 8, the backward that takes dx_t from each step's product (csrc/ops/rnn.cpp).
SHAPES = [(1, 1, 1, 1), (1, 3, 5, 7), (4, 2, 3, 17), (3, 5, 9, 33), (6, 4, 11, 16), (2, 17, 13, 31), (5, 9, 7, 19)]
# biases given (ih, hh), initial states given, reverse, dy / dh_n / dc_n given
VARIANTS = {
    "full": ((True, True), True, False, True),
    "bare": ((False, False), False, False, True),
    "reverse": ((True, True), True, True, True),
    "ih_only_rev": ((True, False), False, True, True),
    "hh_only_nody": ((False, True), True, False, False),
}
# float32 against float64: each value is a few float32 sums of <= G*H + I + 1 products and gate
# evaluations (a few ulp each) carried through T <= 6 steps of a contracting recurrence
# (weights ~ U(-1/sqrt(H), 1/sqrt(H)), torch's initialisation); 2^-16 of each array's scale
# (max(1, max |desired|)) is ~128 ulps of it. A wrong gate, index or step is an O(scale) error.
TOL = 2.0**-16


def _data(rng, kind, T, B, I, H, biases=(True, True), states=True, grads=True):
    g = G[kind]
    k = 1 / np.sqrt(H)

    def u(*s):
        return rng.uniform(-k, k, s).astype(np.float32)

    def n(*s):
        return rng.standard_normal(s).astype(np.float32)

    d = dict(
        x=n(T, B, I),
        h0=n(B, H) if states else None,
        c0=n(B, H) if states and kind == "lstm" else None,
        w_ih=u(g * H, I),
        w_hh=u(g * H, H),
        b_ih=u(g * H) if biases[0] else None,
        b_hh=u(g * H) if biases[1] else None,
        dy=n(T, B, H) if grads else None,
        dh_n=n(B, H),
        dc_n=n(B, H) if kind == "lstm" else None,
    )
    return d


def _nl(kind):
    return "relu" if kind == "rnn_relu" else "tanh"


def run_kernels(kind, d, reverse, isa=None):
    """(outputs, gradients) of the fastnn kernels: LSTM outputs (y, h_n, c_n), others (y, h_n)."""
    a = (d["x"], d["h0"])
    if kind == "lstm":
        y, hn, cn, ws = _core.lstm_forward(*a, d["c0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], reverse, isa)
        g = _core.lstm_backward(d["dy"], d["dh_n"], d["dc_n"], *a, d["c0"], d["w_ih"], d["w_hh"], y, ws, reverse, isa)
        return (y, hn, cn), g
    if kind == "gru":
        y, hn, ws = _core.gru_forward(*a, d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], reverse, isa)
        g = _core.gru_backward(d["dy"], d["dh_n"], *a, d["w_ih"], d["w_hh"], y, ws, reverse, isa)
        return (y, hn), g
    y, hn, ws = _core.rnn_forward(*a, d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], _nl(kind), reverse, isa)
    g = _core.rnn_backward(d["dy"], d["dh_n"], *a, d["w_ih"], d["w_hh"], y, ws, _nl(kind), reverse, isa)
    return (y, hn), g


def run_reference(kind, d, reverse):
    """The reference on the time-flipped sequence when reverse (then y and dx flipped back);
    None states and bias gradients as zeros / the kernels' both-biases convention."""
    T, B, _ = d["x"].shape
    H = d["w_hh"].shape[1]
    flip = (lambda a: None if a is None else a[::-1]) if reverse else (lambda a: a)
    x, dy = flip(d["x"]), flip(d["dy"])
    h0 = np.zeros((B, H)) if d["h0"] is None else d["h0"]
    b = (d["b_ih"], d["b_hh"])
    if kind == "lstm":
        c0 = np.zeros((B, H)) if d["c0"] is None else d["c0"]
        y, hn, cn, cache = ref.lstm_forward(x, h0, c0, d["w_ih"], d["w_hh"], *b)
        g = ref.lstm_backward(np.zeros_like(y) if dy is None else dy, d["dh_n"], d["dc_n"], cache)
        outs = (flip(y), hn, cn)
    elif kind == "gru":
        y, hn, cache = ref.gru_forward(x, h0, d["w_ih"], d["w_hh"], *b)
        g = ref.gru_backward(np.zeros_like(y) if dy is None else dy, d["dh_n"], cache)
        outs = (flip(y), hn)
    else:
        y, hn, cache = ref.rnn_forward(x, h0, d["w_ih"], d["w_hh"], *b, nonlinearity=_nl(kind))
        g = ref.rnn_backward(np.zeros_like(y) if dy is None else dy, d["dh_n"], cache)
        outs = (flip(y), hn)
    g = list(g)
    g[0] = flip(g[0])
    # the kernels return both bias gradients whatever was given: with no bias the reference
    # gives None; its value is what the gradient would be (db_ih's, or db_hh's for GRU's n part)
    if g[-1] is None or g[-2] is None:
        _, gb = run_reference_biased(kind, d, reverse)
        g[-2], g[-1] = gb[-2], gb[-1]
    return outs, g


def run_reference_biased(kind, d, reverse):
    e = dict(d)
    GH = d["w_hh"].shape[0]
    e["b_ih"] = np.zeros(GH, np.float32) if d["b_ih"] is None else d["b_ih"]
    e["b_hh"] = np.zeros(GH, np.float32) if d["b_hh"] is None else d["b_hh"]
    return run_reference(kind, e, reverse)


def assert_close(got, want, tol, what):
    want = np.asarray(want, np.float64)
    assert got.dtype == np.float32 and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= tol * scale).all(), f"{what}: max error {err.max():.3g} over {tol * scale:.3g}"


def check(kind, d, reverse, isa, tol=TOL):
    outs, grads = run_kernels(kind, d, reverse, isa)
    routs, rgrads = run_reference(kind, d, reverse)
    names = ["y", "h_n", "c_n"]
    gnames = (["dx", "dh0", "dc0"] if kind == "lstm" else ["dx", "dh0"]) + ["dw_ih", "dw_hh", "db_ih", "db_hh"]
    for n, a, b in zip(names, outs, routs):
        assert_close(a, b, tol, n)
    assert len(grads) == len(gnames)
    for n, a, b in zip(gnames, grads, rgrads):
        assert_close(a, b, tol, n)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isa", ISAS)
def test_against_reference(rng, isa, kind, shape, variant):
    biases, states, reverse, grads = VARIANTS[variant]
    check(kind, _data(rng, kind, *shape, biases, states, grads), reverse, isa)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isa", ISAS)
def test_large(rng, isa, kind):
    # a step's GEMM with more rows than one register tile and several column panels
    check(kind, _data(rng, kind, 9, 40, 70, 100), True, isa)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isa", ISAS)
def test_weight_gradient_chunks(rng, isa, kind, reverse):
    # Past two steps the backward sums the weight gradients over chunks of about one GEMM K block
    # (kc // B steps): three chunks with a short last one (2, 2, 1 steps), and one step per chunk
    # when a step alone has more rows than kc.
    kc = _core.gemm_tile(isa)["kc"]
    check(kind, _data(rng, kind, 5, kc // 3 + 1, 6, 9, (True, True), True, True), reverse, isa)
    check(kind, _data(rng, kind, 3, kc + 3, 2, 5, (True, False), True, True), reverse, isa)


@pytest.mark.parametrize("kind", KINDS)
def test_ops_entry_points(rng, kind):
    """fastnn.ops (the selected ISA), keyword arguments as documented."""
    d = _data(rng, kind, 3, 2, 5, 9)
    routs, rgrads = run_reference(kind, d, False)
    w = dict(w_ih=d["w_ih"], w_hh=d["w_hh"])
    if kind == "lstm":
        y, hn, cn, ws = ops.lstm_forward(d["x"], d["h0"], d["c0"], **w, b_ih=d["b_ih"], b_hh=d["b_hh"])
        g = ops.lstm_backward(d["dy"], d["dh_n"], d["dc_n"], d["x"], d["h0"], d["c0"], **w, y=y, ws=ws)
        outs = (y, hn, cn)
    elif kind == "gru":
        y, hn, ws = ops.gru_forward(d["x"], d["h0"], **w, b_ih=d["b_ih"], b_hh=d["b_hh"])
        g = ops.gru_backward(d["dy"], d["dh_n"], d["x"], d["h0"], **w, y=y, ws=ws)
        outs = (y, hn)
    else:
        y, hn, ws = ops.rnn_forward(d["x"], d["h0"], **w, b_ih=d["b_ih"], b_hh=d["b_hh"], nonlinearity=_nl(kind))
        g = ops.rnn_backward(d["dy"], d["dh_n"], d["x"], d["h0"], **w, y=y, ws=ws, nonlinearity=_nl(kind))
        outs = (y, hn)
    for a, b in zip(outs + tuple(g), tuple(routs) + tuple(rgrads)):
        assert_close(a, b, TOL, kind)


@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_cells(rng, kind, states):
    """The single-step cells: the reference's T = 1 with dy = 0 and dh (dc) as dh_n (dc_n)."""
    d = _data(rng, kind, 1, 5, 7, 17, states=states, grads=False)
    routs, rgrads = run_reference(kind, d, False)
    x = d["x"][0]
    w = (d["w_ih"], d["w_hh"])
    if kind == "lstm":
        h1, c1, ws = ops.lstm_cell_forward(x, d["h0"], d["c0"], *w, d["b_ih"], d["b_hh"])
        g = ops.lstm_cell_backward(d["dh_n"], d["dc_n"], x, d["h0"], d["c0"], *w, ws)
        outs, routs = (h1, c1), (routs[1], routs[2])
    elif kind == "gru":
        h1, ws = ops.gru_cell_forward(x, d["h0"], *w, d["b_ih"], d["b_hh"])
        g = ops.gru_cell_backward(d["dh_n"], x, d["h0"], *w, ws)
        outs, routs = (h1,), (routs[1],)
    else:
        h1, ws = ops.rnn_cell_forward(x, d["h0"], *w, d["b_ih"], d["b_hh"], nonlinearity=_nl(kind))
        g = ops.rnn_cell_backward(d["dh_n"], x, d["h0"], *w, ws, nonlinearity=_nl(kind))
        outs, routs = (h1,), (routs[1],)
    rgrads = [rgrads[0][0]] + list(rgrads[1:])
    assert g[0].shape == x.shape
    for a, b in zip(outs + tuple(g), tuple(routs) + tuple(rgrads)):
        assert_close(a, b, TOL, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isa", ISAS)
def test_thread_invariance(rng, isa, kind):
    # big enough that the GEMMs, the gates of a step and the bias sums all split over threads
    d = _data(rng, kind, 5, 48, 64, 160)
    with num_threads(1):
        o1, g1 = run_kernels(kind, d, False, isa)
    with num_threads(2):
        o2, g2 = run_kernels(kind, d, False, isa)
    for a, b in zip(o1 + tuple(g1), o2 + tuple(g2)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh"])
@pytest.mark.parametrize("isa", ISAS)
def test_thread_invariance_few_gates(rng, isa, kind):
    # G*H <= 64 rows in the weight-gradient chunks: with two threads their GEMM takes the small-M
    # path, with dG^T packed by the backward (csrc/cpu/gemm_driver.h, run_small_m)
    d = _data(rng, kind, 40, 16, 64, 13 if kind == "lstm" else 40)
    with num_threads(1):
        o1, g1 = run_kernels(kind, d, False, isa)
    with num_threads(2):
        o2, g2 = run_kernels(kind, d, False, isa)
        check(kind, d, False, isa)
    for a, b in zip(o1 + tuple(g1), o2 + tuple(g2)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch(kind):
    """B = 0 (torch accepts it): empty outputs, zero weight and bias gradients."""
    d = _data(np.random.default_rng(0), kind, 3, 0, 4, 5)
    outs, grads = run_kernels(kind, d, False)
    assert outs[0].shape == (3, 0, 5) and outs[1].shape == (0, 5)
    assert grads[0].shape == (3, 0, 4)
    for gw in grads[-4:]:
        assert gw.shape[0] == G[kind] * 5 and not gw.any()


def _lstm_args():
    rng = np.random.default_rng(1)
    T, B, I, H = 3, 2, 5, 4
    return dict(
        x=rng.standard_normal((T, B, I), dtype=np.float32),
        h0=None,
        c0=None,
        w_ih=rng.standard_normal((4 * H, I), dtype=np.float32),
        w_hh=rng.standard_normal((4 * H, H), dtype=np.float32),
    )


@pytest.mark.parametrize(
    "change, err, match",
    [
        (dict(x=np.zeros((3, 2, 5))), TypeError, "lstm_forward: expected x to be float32, got float64"),
        (dict(x=[[[1.0]]]), TypeError, "lstm_forward: expected x to be a numpy.ndarray"),
        (
            dict(x=np.zeros((3, 2, 10), np.float32)[:, :, ::2]),
            ValueError,
            "lstm_forward: expected x to be C-contiguous",
        ),
        (dict(x=np.zeros((2, 5), np.float32)), ValueError, r"lstm_forward: expected x of 3 dimensions \(T, B, I\)"),
        (
            dict(x=np.zeros((0, 2, 5), np.float32)),
            ValueError,
            "lstm_forward: expected a sequence length T > 0, got T=0",
        ),
        (dict(w_ih=np.zeros((16, 6), np.float32)), ValueError, r"lstm_forward: expected w_ih of shape \(16, 5\)"),
        (dict(w_hh=np.zeros((12, 4), np.float32)), ValueError, r"lstm_forward: expected w_hh of shape \(4\*H, H\)"),
        (dict(w_hh=np.zeros((0, 0), np.float32)), ValueError, "lstm_forward: expected a hidden size H > 0"),
        (dict(h0=np.zeros((2, 5), np.float32)), ValueError, r"lstm_forward: expected h0 of shape \(2, 4\)"),
        (dict(c0=np.zeros((3, 4), np.float32)), ValueError, r"lstm_forward: expected c0 of shape \(2, 4\)"),
        (dict(b_ih=np.zeros(15, np.float32)), ValueError, r"lstm_forward: expected b_ih of shape \(16,\)"),
        (dict(b_hh=np.zeros(16, np.float16)), TypeError, "lstm_forward: expected b_hh to be float32"),
    ],
)
def test_bad_input_forward(change, err, match):
    a = _lstm_args()
    a.update(change)
    with pytest.raises(err, match=match):
        ops.lstm_forward(**a)


def test_bad_input_backward_and_others():
    a = _lstm_args()
    y, hn, cn, ws = ops.lstm_forward(**a)
    base = dict(dy=None, dh_n=None, dc_n=None, x=a["x"], h0=None, c0=None, w_ih=a["w_ih"], w_hh=a["w_hh"], y=y, ws=ws)
    for change, err, match in [
        (dict(ws=ws[:-1]), ValueError, r"lstm_backward: expected ws of shape \(144,\) \(the workspace of lstm_forward"),
        (dict(ws=None), TypeError, "lstm_backward: expected ws"),
        (dict(y=None), TypeError, "lstm_backward: expected y"),
        (dict(y=y[:2]), ValueError, r"lstm_backward: expected y of shape \(3, 2, 4\)"),
        (dict(dy=np.zeros((3, 2, 5), np.float32)), ValueError, r"lstm_backward: expected dy of shape \(3, 2, 4\)"),
        (dict(dh_n=np.zeros((2, 4))), TypeError, "lstm_backward: expected dh_n to be float32"),
        (dict(dc_n=np.zeros((4, 2), np.float32)), ValueError, r"lstm_backward: expected dc_n of shape \(2, 4\)"),
    ]:
        b = dict(base)
        b.update(change)
        with pytest.raises(err, match=match):
            ops.lstm_backward(**b)
    x, w_ih, w_hh = a["x"], a["w_ih"][:12], a["w_hh"][:12]
    with pytest.raises(ValueError, match="rnn_forward: expected nonlinearity 'tanh' or 'relu', got 'sigmoid'"):
        ops.rnn_forward(x, None, w_ih[:4], w_hh[:4], nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"gru_forward: expected w_hh of shape \(3\*H, H\), got \(16, 4\)"):
        ops.gru_forward(x, None, a["w_ih"], a["w_hh"])
    y, hn, ws = ops.gru_forward(x, None, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"gru_backward: expected ws of shape \(96,\)"):
        ops.gru_backward(None, None, x, None, w_ih, w_hh, y, ws[:10])
    with pytest.raises(ValueError, match="isa"):
        _core.lstm_forward(a["x"], None, None, a["w_ih"], a["w_hh"], isa="sse9")


# torch parity: torch.nn.LSTM/GRU/RNN (one layer, its layout) with the same weights, forward and
# backward with the same output gradients. Two float32 implementations, each within TOL of the
# exact values: 2 TOL.
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_torch_parity(rng, kind, bias):
    torch = pytest.importorskip("torch")
    T, B, I, H = 7, 3, 10, 19
    d = _data(rng, kind, T, B, I, H, (bias, bias))
    if kind == "lstm":
        m = torch.nn.LSTM(I, H, bias=bias)
    elif kind == "gru":
        m = torch.nn.GRU(I, H, bias=bias)
    else:
        m = torch.nn.RNN(I, H, nonlinearity=_nl(kind), bias=bias)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.from_numpy(d["w_ih"]))
        m.weight_hh_l0.copy_(torch.from_numpy(d["w_hh"]))
        if bias:
            m.bias_ih_l0.copy_(torch.from_numpy(d["b_ih"]))
            m.bias_hh_l0.copy_(torch.from_numpy(d["b_hh"]))
    x = torch.from_numpy(d["x"]).requires_grad_()
    h0 = torch.from_numpy(d["h0"])[None].requires_grad_()
    if kind == "lstm":
        c0 = torch.from_numpy(d["c0"])[None].requires_grad_()
        y, (hn, cn) = m(x, (h0, c0))
        loss = (
            (y * torch.from_numpy(d["dy"])).sum()
            + (hn[0] * torch.from_numpy(d["dh_n"])).sum()
            + (cn[0] * torch.from_numpy(d["dc_n"])).sum()
        )
        touts = (y, hn[0], cn[0])
    else:
        y, hn = m(x, h0)
        loss = (y * torch.from_numpy(d["dy"])).sum() + (hn[0] * torch.from_numpy(d["dh_n"])).sum()
        touts = (y, hn[0])
    loss.backward()
    tgrads = (
        [x.grad, h0.grad[0]] + ([c0.grad[0]] if kind == "lstm" else []) + [m.weight_ih_l0.grad, m.weight_hh_l0.grad]
    )
    if bias:
        tgrads += [m.bias_ih_l0.grad, m.bias_hh_l0.grad]
    outs, grads = run_kernels(kind, d, False)
    for a, b in zip(outs + tuple(grads), list(touts) + tgrads):
        assert_close(a, b.detach().numpy(), 2 * TOL, kind)
