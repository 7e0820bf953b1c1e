"""fastnn.ops' recurrent layers and cells on CUDA arrays: both devices apply rnn's one set of meta
functions (csrc/ops/rnn_meta.cpp), so the device refuses exactly what the CPU refuses, in the same
words (on the emulated device, and on the CUDA module itself where built, every check before a
launch: FakeDeviceArray); and, with a GPU and CuPy, the CUDA kernels (csrc/cuda/rnn.cu) against
the CPU kernels, the workspaces of the two devices interchangeable, and a compute-sanitizer run
(skipped elsewhere; tests/test_cuda_emu_rnn.py checks the same kernels without a GPU). The
shapes, error bounds and CPU calls here are shared with that file."""

import numpy as np
import pytest
from conftest import compute_sanitizer
from fastnn import cuda, ops
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray
from test_rnn import G, _data, _nl

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
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
}


def _refusal(call, A, arrays):
    """(exception type, message) of a refused call, or None. A device names its own arrays in
    one message (a required array left out: "expected x to be a CUDA array of float32"); that
    word aside, the messages are the CPU's."""
    try:
        call(A, arrays)
    except (TypeError, ValueError) as e:
        return type(e), str(e).replace("a CUDA array of", "a numpy.ndarray of")
    return None


def _fake(v):
    """FakeDeviceArray over v's memory, with v's strides."""
    return FakeDeviceArray(v, strides=None if v.flags.c_contiguous else v.strides)


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cpu_refuses_each_bad_call(rng, name):
    call, exc = BAD_CALLS[name]
    with pytest.raises(exc, match=r"^fastnn\.ops\.(lstm|gru|rnn)_(forward|backward): expected "):
        call(lambda v: v, _arrays(rng))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_the_device_refuses_each_bad_call_in_the_cpus_words(rng, name, emulated_gpu):
    """One table for both devices: the same exception with the same message."""
    call, exc = BAD_CALLS[name]
    cpu = _refusal(call, lambda v: v, _arrays(rng))
    dev = _refusal(call, emulated_gpu.ndarray, _arrays(rng))  # no copy: strides stay
    assert cpu is not None and cpu[0] is exc
    assert dev == cpu


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_cuda_refuses_each_bad_call_before_any_launch(rng, name):
    """The CUDA module itself (no GPU needed: host memory dressed as device arrays, refused
    before any launch), in the CPU's words."""
    call, exc = BAD_CALLS[name]
    cpu = _refusal(call, lambda v: v, _arrays(rng))
    assert _refusal(call, _fake, _arrays(rng)) == cpu


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
