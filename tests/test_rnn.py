"""rnn/lstm/gru forward and backward through time (and the single-step cells) against the float64
reference (fastnn.ref.rnn) on every ISA path, reverse direction, thread invariance, bad input,
and torch.nn.LSTM/GRU/RNN parity when torch is importable.

Also, folded here from the device test files: the cuda recurrent layers (from test_cuda_rnn.py); on the emulated device (from test_cuda_emu_rnn.py)."""

import numpy as np
import pytest
from conftest import ISAS, compute_sanitizer, num_threads, refusal
from fastnn import _core, cuda, ops
from fastnn.ref import rnn as ref
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray

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


# ---------------------------------------------------------------------------------------------
# The CUDA recurrent layers (from test_cuda_rnn.py)
# fastnn.ops' recurrent layers and cells on CUDA arrays: both devices apply rnn's one set of meta
# functions (csrc/ops/rnn_meta.cpp), so the device refuses exactly what the CPU refuses, in the same
# words (on the emulated device, and on the CUDA module itself where built, every check before a
# launch: FakeDeviceArray); and, with a GPU and CuPy, the CUDA kernels (csrc/cuda/rnn.cu) against
# the CPU kernels, the workspaces of the two devices interchangeable, and a compute-sanitizer run
# (skipped elsewhere; tests/test_cuda_emu_rnn.py checks the same kernels without a GPU). The
# shapes, error bounds and CPU calls here are shared with that file.

DEVICE_KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
# (T, B, I, H), biases (ih, hh), states h0/c0 given, reverse, dy given, dh_n/dc_n given:
# one step of one row of one unit with everything given; H = 33 (not a multiple of 32, G*H
# crossing the gemm's 64-wide tiles) with b_hh only and no dy (only dh_n, dc_n); no biases or
# states in reverse; T*B = 66 rows past one 64-row tile with b_ih only and no dh_n / dc_n.
CASES = {
    "one": ((1, 1, 1, 1), (True, True), True, False, True, True),
    "h33_hh_nody": ((3, 2, 5, 33), (False, True), True, False, False, True),
    "bare_rev": ((3, 3, 7, 17), (False, False), False, True, True, True),
    "rows66_ih_rev": ((2, 33, 4, 9), (True, False), True, True, True, False),
}


def case_data(rng, kind, case):
    shape, biases, states, reverse, grads, final = CASES[case]
    d = _data(rng, kind, *shape, biases, states, grads)
    if not final:
        d["dh_n"] = d["dc_n"] = None
    return d, reverse


def bounds(T, B, I, H, g):
    """Error bounds (relative to each array's scale max(1, max |reference|)) for float32 against
    float32 (GPU against the CPU: either may err either way, hence 2) or float64.
    A pre-activation sums I + H + 2 terms per step and the forward carries that error through
    T steps of a contracting recurrence (weights ~ U(+-1/sqrt(H)), torch's initialisation);
    the backward adds a sum of G*H terms per step for dh and the T*B rows of the weight and
    bias gradients. Every term is within the array's scale, so 2 (K + 2) eps with K the
    longest chain of sums. A wrong gate, index or step is an O(scale) error."""
    k_fwd = T * (I + H + 2)
    k_bwd = T * (I + H + g * H + 4) + T * B
    return 2 * (k_fwd + 2) * EPS32, 2 * (k_bwd + 2) * EPS32


def close(got, want, tol, what):
    want = np.asarray(want, np.float64)
    assert got.dtype == np.float32 and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    assert not np.isnan(got).any(), f"{what}: unwritten (NaN) elements"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= tol * scale).all(), f"{what}: max error {err.max():.3g} over {tol * scale:.3g}"


def ops_forward(kind, d, reverse, ns=ops):
    """The forward on d's arrays: (outputs, ws). ns is fastnn.ops (NumPy arrays: the CPU; CuPy:
    the GPU) or anything with its positional signatures (the emulated device's entries)."""
    if kind == "lstm":
        y, hn, cn, ws = ns.lstm_forward(d["x"], d["h0"], d["c0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], reverse)
        return (y, hn, cn), ws
    if kind == "gru":
        y, hn, ws = ns.gru_forward(d["x"], d["h0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], reverse)
    else:
        y, hn, ws = ns.rnn_forward(d["x"], d["h0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], _nl(kind), reverse)
    return (y, hn), ws


def ops_backward(kind, d, reverse, y, ws, ns=ops):
    a = (d["x"], d["h0"])
    if kind == "lstm":
        return ns.lstm_backward(d["dy"], d["dh_n"], d["dc_n"], *a, d["c0"], d["w_ih"], d["w_hh"], y, ws, reverse)
    if kind == "gru":
        return ns.gru_backward(d["dy"], d["dh_n"], *a, d["w_ih"], d["w_hh"], y, ws, reverse)
    return ns.rnn_backward(d["dy"], d["dh_n"], *a, d["w_ih"], d["w_hh"], y, ws, _nl(kind), reverse)


def grad_names(kind):
    return (["dx", "dh0", "dc0"] if kind == "lstm" else ["dx", "dh0"]) + ["dw_ih", "dw_hh", "db_ih", "db_hh"]


# ---- argument checks: one set of rules (csrc/ops/rnn_meta.cpp) on every device ----


def randn32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


T, B, I, H = 3, 2, 5, 4
F32 = np.float32


def _arrays(rng):
    f = lambda *s: randn32(rng, *s)  # noqa: E731
    return {
        "x": f(T, B, I),
        "w_ih": f(4 * H, I),
        "w_hh": f(4 * H, H),
        "w_ih3": f(3 * H, I),
        "w_hh3": f(3 * H, H),
        "w_ih1": f(H, I),
        "w_hh1": f(H, H),
        "y": f(T, B, H),
        "ws": f(T * B * 6 * H),
        "ws_cell": f(B * 6 * H),
        "ws3_cell": f(B * 4 * H),
        "bh": f(B, H),
        "x1": f(1, B, I),
        "xc": f(B, I),
    }


def _lstm(A, a, **change):
    """lstm_forward of the table's LSTM (T, B, I, H = 3, 2, 5, 4) with `change` (NumPy arrays
    there wrapped by A)."""
    args = dict(x=a["x"], h0=None, c0=None, w_ih=a["w_ih"], w_hh=a["w_hh"], b_ih=None, b_hh=None)
    args.update(change)
    return ops.lstm_forward(**{k: A(v) if isinstance(v, np.ndarray) else v for k, v in args.items()})


def _lstm_bwd(A, a, **change):
    args = dict(dy=None, dh_n=None, dc_n=None, x=a["x"], h0=None, c0=None, w_ih=a["w_ih"], w_hh=a["w_hh"])
    args.update(dict(y=a["y"], ws=a["ws"]))
    args.update(change)
    return ops.lstm_backward(**{k: A(v) if isinstance(v, np.ndarray) else v for k, v in args.items()})


# name -> (call(A, arrays), exception): A wraps each array (NumPy itself, or a device array over
# the same memory); every rule of the recurrent ops once, the cell ops' calls too.
BAD_CALLS = {
    "x_float64": (lambda A, a: _lstm(A, a, x=a["x"].astype(np.float64)), TypeError),
    "x_strided": (lambda A, a: _lstm(A, a, x=np.zeros((T, B, 2 * I), F32)[:, :, ::2]), ValueError),
    "x_none": (lambda A, a: _lstm(A, a, x=None), TypeError),
    "x_2d": (lambda A, a: _lstm(A, a, x=a["x"][0]), ValueError),
    "T_0": (lambda A, a: _lstm(A, a, x=np.zeros((0, B, I), F32)), ValueError),
    "w_ih_shape": (lambda A, a: _lstm(A, a, w_ih=np.zeros((4 * H, I + 1), F32)), ValueError),
    "w_ih_none": (lambda A, a: _lstm(A, a, w_ih=None), TypeError),
    "w_hh_shape": (lambda A, a: _lstm(A, a, w_hh=np.zeros((3 * H, H), F32)), ValueError),
    "H_0": (lambda A, a: _lstm(A, a, w_hh=np.zeros((0, 0), F32)), ValueError),
    "past_2^31_elements": (  # no data: I = 0
        lambda A, a: _lstm(A, a, x=np.zeros((2**17, 2**10, 0), F32), w_ih=np.zeros((4 * H, 0), F32)),
        ValueError,
    ),
    "h0_shape": (lambda A, a: _lstm(A, a, h0=np.zeros((B, I), F32)), ValueError),
    "c0_shape": (lambda A, a: _lstm(A, a, c0=np.zeros((3, H), F32)), ValueError),
    "b_ih_shape": (lambda A, a: _lstm(A, a, b_ih=np.zeros(4 * H - 1, F32)), ValueError),
    "b_hh_float16": (lambda A, a: _lstm(A, a, b_hh=np.zeros(4 * H, np.float16)), TypeError),
    "nonlinearity": (
        lambda A, a: ops.rnn_forward(A(a["x"]), None, A(a["w_ih1"]), A(a["w_hh1"]), nonlinearity="sigmoid"),
        ValueError,
    ),
    "gru_w_hh_of_lstm": (lambda A, a: ops.gru_forward(A(a["x"]), None, A(a["w_ih"]), A(a["w_hh"])), ValueError),
    "ws_shape": (lambda A, a: _lstm_bwd(A, a, ws=a["ws"][:-1]), ValueError),
    "ws_none": (lambda A, a: _lstm_bwd(A, a, ws=None), TypeError),
    "y_none": (lambda A, a: _lstm_bwd(A, a, y=None), TypeError),
    "y_shape": (lambda A, a: _lstm_bwd(A, a, y=a["y"][:2]), ValueError),
    "dy_shape": (lambda A, a: _lstm_bwd(A, a, dy=np.zeros((T, B, I), F32)), ValueError),
    "dh_n_float64": (lambda A, a: _lstm_bwd(A, a, dh_n=np.zeros((B, H))), TypeError),
    "dc_n_shape": (lambda A, a: _lstm_bwd(A, a, dc_n=np.zeros((H, B), F32)), ValueError),
    "gru_ws_of_lstm": (
        lambda A, a: ops.gru_backward(None, None, A(a["x"]), None, A(a["w_ih3"]), A(a["w_hh3"]), A(a["y"]), A(a["ws"])),
        ValueError,
    ),
    "gru_y_none": (
        lambda A, a: ops.gru_backward(None, None, A(a["x"]), None, A(a["w_ih3"]), A(a["w_hh3"]), None, A(a["ws"])),
        TypeError,
    ),
    "rnn_y_none_one_step": (  # the RNN reads y even at T = 1 (its activation's gradient)
        lambda A, a: ops.rnn_backward(None, None, A(a["x1"]), None, A(a["w_ih1"]), A(a["w_hh1"]), None, None),
        TypeError,
    ),
    "rnn_backward_nonlinearity": (
        lambda A, a: ops.rnn_backward(
            None, None, A(a["x"]), None, A(a["w_ih1"]), A(a["w_hh1"]), A(a["y"]), None, nonlinearity="gelu"
        ),
        ValueError,
    ),
    "lstm_cell_x_float64": (
        lambda A, a: ops.lstm_cell_forward(A(a["xc"].astype(np.float64)), None, None, A(a["w_ih"]), A(a["w_hh"])),
        TypeError,
    ),
    "gru_cell_h_shape": (
        lambda A, a: ops.gru_cell_forward(A(a["xc"]), A(np.zeros((B, H + 1), F32)), A(a["w_ih3"]), A(a["w_hh3"])),
        ValueError,
    ),
    "gru_cell_ws_of_lstm": (
        lambda A, a: ops.gru_cell_backward(A(a["bh"]), A(a["xc"]), None, A(a["w_ih3"]), A(a["w_hh3"]), A(a["ws_cell"])),
        ValueError,
    ),
    "lstm_cell_w_ih_shape": (
        lambda A, a: ops.lstm_cell_backward(
            A(a["bh"]), None, A(a["xc"]), None, None, A(np.zeros((4 * H, I + 1), F32)), A(a["w_hh"]), A(a["ws_cell"])
        ),
        ValueError,
    ),
    "rnn_cell_nonlinearity": (
        lambda A, a: ops.rnn_cell_forward(A(a["xc"]), None, A(a["w_ih1"]), A(a["w_hh1"]), nonlinearity="sigmoid"),
        ValueError,
    ),
    "rnn_cell_ws_shape": (  # the RNN cell's ws is its output (1, B, H)
        lambda A, a: ops.rnn_cell_backward(A(a["bh"]), A(a["xc"]), None, A(a["w_ih1"]), A(a["w_hh1"]), A(a["bh"])),
        ValueError,
    ),
    # a cell's x is one step (B, I): a sequence (even of one step) or a vector is refused, not
    # run as T steps (found by the fuzz suite, tests/fuzz)
    "lstm_cell_x_sequence": (
        lambda A, a: ops.lstm_cell_forward(A(a["x"]), None, None, A(a["w_ih"]), A(a["w_hh"])),
        ValueError,
    ),
    "lstm_cell_backward_x_one_step_sequence": (
        lambda A, a: ops.lstm_cell_backward(
            A(a["bh"]), None, A(a["x1"]), None, None, A(a["w_ih"]), A(a["w_hh"]), A(a["ws_cell"])
        ),
        ValueError,
    ),
    "gru_cell_x_vector": (
        lambda A, a: ops.gru_cell_forward(A(a["xc"][0]), None, A(a["w_ih3"]), A(a["w_hh3"])),
        ValueError,
    ),
    "gru_cell_backward_x_sequence": (
        lambda A, a: ops.gru_cell_backward(A(a["bh"]), A(a["x"]), None, A(a["w_ih3"]), A(a["w_hh3"]), A(a["ws3_cell"])),
        ValueError,
    ),
    "rnn_cell_x_sequence": (
        lambda A, a: ops.rnn_cell_forward(A(a["x"]), None, A(a["w_ih1"]), A(a["w_hh1"])),
        ValueError,
    ),
    "rnn_cell_backward_x_sequence": (
        lambda A, a: ops.rnn_cell_backward(A(a["bh"]), A(a["x"]), None, A(a["w_ih1"]), A(a["w_hh1"]), A(a["y"])),
        ValueError,
    ),
}


def test_cell_refusals_name_the_cell_and_its_arguments(rng):
    """A cell runs as its layer at T = 1; what it refuses is in the cell's words: its name, h / c
    / dh / dc for the layer's h0 / c0 / dh_n / dc_n, ws for the RNN cell's (the layer's y)."""
    a = _arrays(rng)
    f64 = a["xc"].astype(np.float64)
    cases = [
        (ops.lstm_cell_forward, (f64, None, None, a["w_ih"], a["w_hh"]), "expected x to be float32, got float64"),
        (ops.gru_cell_forward, (a["xc"], [0.0], a["w_ih3"], a["w_hh3"]), "expected h to be a numpy.ndarray of float32"),
        (ops.lstm_cell_forward, (a["xc"], None, a["xc"], a["w_ih"], a["w_hh"]), "expected c of shape (2, 4)"),
        (
            ops.lstm_cell_backward,
            (a["bh"], a["xc"], a["xc"], None, None, a["w_ih"], a["w_hh"], a["ws_cell"]),
            "expected dc of shape (2, 4)",
        ),
        (
            ops.rnn_cell_backward,
            (a["bh"].T.copy(), a["xc"], None, a["w_ih1"], a["w_hh1"], a["y"][:1]),
            "expected dh of shape (2, 4)",
        ),
        (ops.rnn_cell_backward, (a["bh"], a["xc"], None, a["w_ih1"], a["w_hh1"], a["bh"]), "expected ws of shape"),
    ]
    for op, args, words in cases:
        kind, msg = refusal(op, *args)
        assert msg.startswith(f"fastnn.ops.{op.__name__}: {words}"), msg


def _fake(v):
    """FakeDeviceArray over v's memory, with v's strides."""
    return FakeDeviceArray(v, strides=None if v.flags.c_contiguous else v.strides)


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    with pytest.raises(exc, match=r"^fastnn\.ops\.(lstm|gru|rnn)(_cell)?_(forward|backward): expected "):
        call(lambda v: v, _arrays(rng))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices: the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _arrays(rng))
    dev = refusal(call, emulated_gpu.ndarray, _arrays(rng))  # no copy: strides stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = refusal(call, lambda v: v, _arrays(rng))
    assert refusal(call, _fake, _arrays(rng)) == cpu


def _device_only_refusals(A, a):
    """What only a device refuses: a NumPy array among its arrays."""
    with pytest.raises(TypeError, match="lstm_forward: expected h0 to be a CUDA array like the other.*cannot be mixed"):
        ops.lstm_forward(A(a["x"]), a["bh"], None, A(a["w_ih"]), A(a["w_hh"]))
    with pytest.raises(TypeError, match="gru_backward: expected ws to be a CUDA array like the other"):
        ops.gru_backward(None, None, A(a["x"]), None, A(a["w_ih3"]), A(a["w_hh3"]), A(a["y"]), a["ws"][:96])


def test_the_device_refuses_numpy_arrays_among_its_own(rng, emulated_gpu):
    _device_only_refusals(emulated_gpu.ndarray, _arrays(rng))


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_cuda_refuses_numpy_arrays_among_its_own(rng):
    _device_only_refusals(_fake, _arrays(rng))


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm"])
def test_an_empty_workspace_may_be_left_out_on_both_devices(rng, emulated_gpu, kind):
    """ws has no elements for the RNN (and for any cell with B = 0): None is taken for it, on
    the CPU as on the device, with the same results as the empty array."""
    B_ = 3 if kind == "rnn_tanh" else 0
    d = _data(rng, kind, 2, B_, 5, 4)
    for A in (lambda v: v, emulated_gpu.asarray):
        g = {k: None if v is None else A(v) for k, v in d.items()}
        outs, ws = ops_forward(kind, g, False)
        assert ws.size == 0
        with_ws = ops_backward(kind, g, False, outs[0], ws)
        without = ops_backward(kind, g, False, outs[0], None)
        for a, b in zip(with_ws, without):
            np.testing.assert_array_equal(emulated_gpu.asnumpy(a), emulated_gpu.asnumpy(b))


def test_step_view_is_the_same_memory(rng):
    a = randn32(rng, 3, 5)
    v = cuda.step_view(FakeDeviceArray(a))
    cai = v.__cuda_array_interface__
    assert cai["shape"] == (1, 3, 5) and cai["data"][0] == a.ctypes.data
    s = cuda.step_view(FakeDeviceArray(a, strides=(20, 4))).__cuda_array_interface__
    assert s["strides"] == (60, 20, 4)
    three = FakeDeviceArray(randn32(rng, 1, 3, 5))
    assert cuda.step_view(three) is three


# ---- On a GPU (CuPy end to end) ----


def _cupy():
    if not cuda.is_available():
        pytest.skip("no CUDA device")
    return pytest.importorskip("cupy")


def _on_gpu(cp, d):
    return {k: (None if v is None else cp.asarray(v)) for k, v in d.items()}


@pytest.mark.parametrize("case", list(CASES) + ["large"])
@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_gpu_matches_cpu(rng, kind, case):
    cp = _cupy()
    if case == "large":  # several gemm tiles every way, several blocks per gate step
        d, reverse = _data(rng, kind, 12, 70, 96, 130), True
    else:
        d, reverse = case_data(rng, kind, case)
    T, B, I = d["x"].shape
    H = d["w_hh"].shape[1]
    tf, tb = bounds(T, B, I, H, G[kind])
    g = _on_gpu(cp, d)
    outs, ws = ops_forward(kind, g, reverse)
    couts, cws = ops_forward(kind, d, reverse)
    for name, a, c in zip(("y", "h_n", "c_n"), outs, couts):
        close(cp.asnumpy(a), c, tf, name)
    close(cp.asnumpy(ws), cws, tf, "ws")
    grads = ops_backward(kind, g, reverse, outs[0], ws)
    cgrads = ops_backward(kind, d, reverse, couts[0], cws)
    assert len(grads) == len(cgrads) == len(grad_names(kind))
    for name, a, c in zip(grad_names(kind), grads, cgrads):
        close(cp.asnumpy(a), c, tb, name)
    # each device's backward reads the other's forward
    swapped = ops_backward(kind, g, reverse, cp.asarray(couts[0]), cp.asarray(cws))
    for name, a, c in zip(grad_names(kind), swapped, cgrads):
        close(cp.asnumpy(a), c, tb, f"{name} (CPU workspace)")
    # the same bits on a second run (no atomics)
    again = ops_backward(kind, g, reverse, outs[0], ws)
    for a, b in zip(grads, again):
        assert cp.array_equal(a, b)


@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_gpu_cells_match_cpu(rng, kind):
    cp = _cupy()
    d = _data(rng, kind, 1, 5, 7, 17, grads=False)
    tf, tb = bounds(1, 5, 7, 17, G[kind])
    x, h, c, w, b = d["x"][0], d["h0"], d["c0"], (d["w_ih"], d["w_hh"]), (d["b_ih"], d["b_hh"])
    up = lambda a: None if a is None else cp.asarray(a)  # noqa: E731
    gx, gh, gc, gw, gb = up(x), up(h), up(c), tuple(map(up, w)), tuple(map(up, b))
    if kind == "lstm":
        got = ops.lstm_cell_forward(gx, gh, gc, *gw, *gb)
        want = ops.lstm_cell_forward(x, h, c, *w, *b)
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
    assert gg[0].shape == x.shape
    for i, (a, c_) in enumerate(zip(gg, cg)):
        close(cp.asnumpy(a), c_, tb, f"gradient {i}")


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
f = lambda *s: cp.asarray(r.standard_normal(s).astype(np.float32) * 0.3)
T, B, I, H = 5, 33, 17, 40
x, h, c, dy = f(T, B, I), f(B, H), f(B, H), f(T, B, H)
for rev in (False, True):
    w = (f(4 * H, I), f(4 * H, H))
    y, hn, cn, ws = ops.lstm_forward(x, h, c, *w, f(4 * H), None, rev)
    ops.lstm_backward(dy, hn, cn, x, h, c, *w, y, ws, rev)
    ops.lstm_backward(None, None, None, x, None, None, *w, y, ws, rev)
    w = (f(3 * H, I), f(3 * H, H))
    y, hn, ws = ops.gru_forward(x, None, *w, None, f(3 * H), rev)
    ops.gru_backward(dy, hn, x, None, *w, y, ws, rev)
    w = (f(H, I), f(H, H))
    y, hn, ws = ops.rnn_forward(x, h, *w, f(H), f(H), "relu", rev)
    ops.rnn_backward(dy, None, x, h, *w, y, ws, "relu", rev)
w = (f(3 * H, I), f(3 * H, H))
h1, ws = ops.gru_cell_forward(x[0], h, *w)
ops.gru_cell_backward(h1, x[0], h, *w, ws)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck"])
def test_compute_sanitizer_is_clean(tool):
    """Every recurrent op once under compute-sanitizer (needs a GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)


# ---------------------------------------------------------------------------------------------
# On the emulated device (from test_cuda_emu_rnn.py)
# The CUDA recurrent layers (csrc/cuda/rnn.cu: tanh/relu RNN, LSTM, GRU, whole sequence and the
# T = 1 calls the cell ops make) run by the emulator through fastnn._cuda's own entries (the
# emulated device, called with the CPU entries' arguments), against the CPU kernels and the float64
# references, in the three fiber orders; the CPU's workspace feeds the CUDA backward and the other
# way round; and the cell ops through fastnn.ops on the emulated device.

SWAP_CASES = ("bare_rev",)  # also checked with the workspaces of the other device


def emu_forward(dev, kind, d, reverse):
    """(outputs, ws) of the device's forward: LSTM outputs (y, h_n, c_n), the others (y, h_n)."""
    return ops_forward(kind, d, reverse, dev)


def emu_backward(dev, kind, d, reverse, y, ws):
    return ops_backward(kind, d, reverse, y, ws, dev)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", DEVICE_KINDS)
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


@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_device_empty_batch(order, dev, kind):
    """B = 0: empty outputs, zero weight and bias gradients (the CPU's contract)."""
    d = _data(np.random.default_rng(0), kind, 3, 0, 4, 5)
    outs, ws = emu_forward(dev, kind, d, False)
    assert outs[0].shape == (3, 0, 5) and outs[1].shape == (0, 5) and ws.size == 0
    grads = emu_backward(dev, kind, d, False, outs[0], ws)
    assert grads[0].shape == (3, 0, 4)
    for gw in grads[-4:]:
        assert gw.shape[0] == G[kind] * 5 and not gw.any()


@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_device_cells(rng, order, dev, kind, states):
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


@pytest.mark.parametrize("kind", DEVICE_KINDS)
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
