"""fastnn.ops' recurrent layers and cells on CUDA arrays: the dispatch checks every input before
any launch (FakeDeviceArray), and, with a GPU and CuPy, the CUDA kernels (csrc/cuda/rnn.cu)
against the CPU kernels, the workspaces of the two devices interchangeable, and a
compute-sanitizer run (skipped elsewhere; tests/test_cuda_emu_rnn.py checks the same kernels
without a GPU). The shapes, error bounds and CPU calls here are shared with that file."""

import numpy as np
import pytest
from conftest import compute_sanitizer
from fastnn import cuda, ops
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray
from test_rnn import G, _data, _nl

CELL = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}
KINDS = list(CELL)
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


def ops_forward(kind, d, reverse):
    """fastnn.ops' forward on d's arrays (NumPy: the CPU; CuPy: the GPU): (outputs, ws)."""
    if kind == "lstm":
        y, hn, cn, ws = ops.lstm_forward(d["x"], d["h0"], d["c0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], reverse)
        return (y, hn, cn), ws
    if kind == "gru":
        y, hn, ws = ops.gru_forward(d["x"], d["h0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], reverse)
    else:
        y, hn, ws = ops.rnn_forward(d["x"], d["h0"], d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], _nl(kind), reverse)
    return (y, hn), ws


def ops_backward(kind, d, reverse, y, ws):
    a = (d["x"], d["h0"])
    if kind == "lstm":
        return ops.lstm_backward(d["dy"], d["dh_n"], d["dc_n"], *a, d["c0"], d["w_ih"], d["w_hh"], y, ws, reverse)
    if kind == "gru":
        return ops.gru_backward(d["dy"], d["dh_n"], *a, d["w_ih"], d["w_hh"], y, ws, reverse)
    return ops.rnn_backward(d["dy"], d["dh_n"], *a, d["w_ih"], d["w_hh"], y, ws, _nl(kind), reverse)


def grad_names(kind):
    return (["dx", "dh0", "dc0"] if kind == "lstm" else ["dx", "dh0"]) + ["dw_ih", "dw_hh", "db_ih", "db_hh"]


# ---- dispatch checks (no GPU needed) ----


def randn32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _lstm_args(rng, change):
    """lstm_forward's arguments as CUDA arrays (T, B, I, H = 3, 2, 5, 4) with `change` applied:
    NumPy arrays there become FakeDeviceArrays, except under the key "numpy"."""
    T, B, I, H = 3, 2, 5, 4
    a = dict(
        x=randn32(rng, T, B, I),
        h0=None,
        c0=None,
        w_ih=randn32(rng, 4 * H, I),
        w_hh=randn32(rng, 4 * H, H),
        b_ih=None,
        b_hh=None,
    )
    a.update({k: v for k, v in change.items() if k != "numpy"})
    a = {k: FakeDeviceArray(v) if isinstance(v, np.ndarray) else v for k, v in a.items()}
    a.update(change.get("numpy", {}))
    return a


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize(
    "change, err, match",
    [
        (dict(x=np.zeros((3, 2, 5))), TypeError, "lstm_forward: x must be float32"),
        (
            dict(x=FakeDeviceArray(np.zeros((3, 2, 5), np.float32), strides=(40, 4, 8))),
            ValueError,
            "lstm_forward: x must be C-contiguous",
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
        (dict(b_hh=np.zeros(16, np.float16)), TypeError, "lstm_forward: b_hh must be float32"),
        (
            dict(numpy=dict(h0=np.zeros((2, 4), np.float32))),
            TypeError,
            "lstm_forward: h0 must be a CUDA array.*cannot be mixed",
        ),
    ],
    ids=["f64", "strided", "2d", "T0", "w_ih", "w_hh", "H0", "h0", "c0", "b_ih", "f16", "mixed"],
)
def test_forward_checks(rng, change, err, match):
    with pytest.raises(err, match=match):
        ops.lstm_forward(**_lstm_args(rng, change))


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_backward_and_cell_checks(rng):
    f = lambda *s: FakeDeviceArray(randn32(rng, *s))  # noqa: E731
    T, B, I, H = 3, 2, 5, 4
    x, w_ih, w_hh = f(T, B, I), f(3 * H, I), f(3 * H, H)
    y, ws = f(T, B, H), f(T * B * 4 * H)
    with pytest.raises(ValueError, match=r"gru_backward: expected ws of shape \(96,\) \(the workspace of gru_forward"):
        ops.gru_backward(None, None, x, None, w_ih, w_hh, y, f(T * B * 6 * H))
    with pytest.raises(TypeError, match=r"gru_backward: expected y to be a CUDA array of float32 \(T, B, H\)"):
        ops.gru_backward(None, None, x, None, w_ih, w_hh, None, ws)
    with pytest.raises(ValueError, match=r"gru_backward: expected dy of shape \(3, 2, 4\)"):
        ops.gru_backward(f(T, B, I), None, x, None, w_ih, w_hh, y, ws)
    with pytest.raises(ValueError, match=r"lstm_backward: expected dc_n of shape \(2, 4\)"):
        ops.lstm_backward(None, None, f(B, I), x, None, None, f(4 * H, I), f(4 * H, H), f(T, B, H), f(T * B * 6 * H))
    with pytest.raises(ValueError, match="rnn_backward: expected nonlinearity 'tanh' or 'relu', got 'gelu'"):
        ops.rnn_backward(None, None, x, None, f(H, I), f(H, H), y, None, nonlinearity="gelu")
    with pytest.raises(TypeError, match="rnn_backward: expected y to be a CUDA array"):
        ops.rnn_backward(None, None, f(1, B, I), None, f(H, I), f(H, H), None, None)
    # the cell ops go to the CUDA kernels (their T = 1 calls), not to the CPU-only refusal
    with pytest.raises(TypeError, match="lstm_forward: x must be float32"):
        ops.lstm_cell_forward(FakeDeviceArray(np.zeros((B, I))), None, None, f(4 * H, I), f(4 * H, H))
    with pytest.raises(ValueError, match=r"gru_forward: expected h0 of shape \(2, 4\)"):
        ops.gru_cell_forward(f(B, I), f(B, H + 1), w_ih, w_hh)
    with pytest.raises(ValueError, match=r"gru_backward: expected ws of shape \(32,\)"):
        ops.gru_cell_backward(f(B, H), f(B, I), None, w_ih, w_hh, ws)
    with pytest.raises(ValueError, match=r"lstm_backward: expected w_ih of shape \(16, 5\)"):
        ops.lstm_cell_backward(f(B, H), None, f(B, I), None, None, f(16, 6), f(4 * H, H), f(B * 6 * H))
    with pytest.raises(ValueError, match=r"rnn_forward: expected nonlinearity"):
        ops.rnn_cell_forward(f(B, I), None, f(H, I), f(H, H), nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"rnn_backward: expected y of shape \(1, 2, 4\)"):
        ops.rnn_cell_backward(f(B, H), f(B, I), None, f(H, I), f(H, H), f(B, H))


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
@pytest.mark.parametrize("kind", KINDS)
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


@pytest.mark.parametrize("kind", KINDS)
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
