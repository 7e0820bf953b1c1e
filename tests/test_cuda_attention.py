"""Scaled dot-product attention on CUDA arrays: both devices apply attention's one set of meta
functions (csrc/ops/attention_meta.cpp), so the device refuses exactly what the CPU refuses, in
the same words, and reads every mask layout through its strides as the CPU does (on the emulated
device, and on the CUDA module itself where built, every check before a launch:
FakeDeviceArray); with a GPU and CuPy, the kernels against the float64 reference and the CPU op
(error bounds shared with tests/test_cuda_emu_attention.py, which checks the same kernels on the
emulator), bit-identical reruns, and compute-sanitizer."""

import numpy as np
import pytest
from conftest import compute_sanitizer, num_threads, randn
from fastnn import cuda, ops, ref
from fastnn.ref.attention import _probs
from fastnn.ref.rounding import EPS32
from test_cuda import BUILT, FakeDeviceArray

FWD, BWD = "scaled_dot_product_attention_forward", "scaled_dot_product_attention_backward"


def check_attention(rng, run, q, k, v, mask=None, causal=False, scale=None):
    """run(q, k, v, mask, causal, scale, dout) -> (out, lse, dq, dk, dv, delta or None) of the
    CUDA kernels as NumPy arrays, checked against the reference and the CPU op; returns them.

    Bounds from the magnitudes each result sums (float64, from the reference's probabilities):
    a score is an fmaf chain of HD terms (plus a float mask's rounding), so it errs by
    s_err <= (HD + 1) eps |scale| max |q| |k| (+ eps max |mask|), and a probability by about
    twice that relatively (its score and the log-sum-exp); out sums S terms one by one (and the
    row sum S / 32 tile sums of 32-lane trees), dv and dk L terms, dq S terms, dp DV terms:
    t = 4 s_err + (L + S + HD + DV + 16) eps relative to the sum of the terms' magnitudes.
    delta = dout . out enters ds with the forward's error of out. The CPU op errs by as much."""
    L, HD = q.shape[-2:]
    S, DV = k.shape[-2], v.shape[-1]
    sc = 1.0 / np.sqrt(HD) if scale is None else scale
    dout = randn(rng, *(q.shape[:-1] + (DV,)))
    out, lse, dq, dk, dv, delta = run(q, k, v, mask, causal, sc, dout)
    got = {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}
    for name, a in dict(got, delta=delta).items():
        assert a is None or not np.isnan(a).any(), f"{name}: unwritten (NaN) elements"
    ro, rl = ref.scaled_dot_product_attention_forward(q, k, v, mask, causal, sc)
    rdq, rdk, rdv = ref.scaled_dot_product_attention_backward(dout, q, k, v, ro, rl, mask, causal, sc)
    p = _probs(q, k, mask, causal, sc)[0]
    f = lambda a: np.abs(a.astype(np.float64))
    T = lambda a: np.swapaxes(a, -1, -2)
    s_err = (HD + 1) * EPS32 * abs(sc) * (f(q) @ T(f(k))).max(initial=0)
    if mask is not None and mask.dtype != bool:
        s_err += EPS32 * float(np.abs(np.where(np.isfinite(mask), mask, 0)).max(initial=0))
    t = 4 * s_err + (L + S + HD + DV + 16) * EPS32
    pv = p @ f(v)
    a = p * (f(dout) @ T(f(v)) + (f(dout) * pv).sum(-1, keepdims=True))
    bounds = {
        "out": t * pv,
        "dv": t * (T(p) @ f(dout)),
        "dq": t * abs(sc) * (a @ f(k)),
        "dk": t * abs(sc) * (T(a) @ f(q)),
    }
    fin = np.isfinite(rl)
    assert np.array_equal(np.isneginf(lse), np.isneginf(rl)) and np.isfinite(lse[fin]).all()
    bounds["lse"] = 2 * s_err + (S + 8) * EPS32 * (np.abs(rl[fin]) + 1)
    np.testing.assert_array_less(np.abs(lse[fin] - rl[fin]), bounds["lse"])
    if delta is not None:  # the backward's scratch: dout . out summed in double
        np.testing.assert_array_less(
            np.abs(delta - (dout.astype(np.float64) * out).sum(-1).reshape(delta.shape)),
            EPS32 * (f(dout) * f(out)).sum(-1).reshape(delta.shape) + 1e-30,
        )
    for name, want in (("out", ro), ("dq", rdq), ("dk", rdk), ("dv", rdv)):
        np.testing.assert_array_less(np.abs(got[name] - want), bounds[name] + 1e-30, err_msg=name)
    # the CPU op: each errs within its bound of the reference
    with num_threads(1):  # the same bits on any thread count; one keeps OpenMP out of TSan runs
        co, cl = ops.scaled_dot_product_attention_forward(q, k, v, mask, causal, sc)
        cg = ops.scaled_dot_product_attention_backward(dout, q, k, v, co, cl, mask, causal, sc)
    cpu = dict(zip(("dq", "dk", "dv"), cg), out=co, lse=cl)
    assert np.array_equal(np.isneginf(lse), np.isneginf(cl))
    np.testing.assert_array_less(np.abs(lse[fin] - cl[fin]), 2 * bounds["lse"])
    for name in ("out", "dq", "dk", "dv"):
        np.testing.assert_array_less(np.abs(got[name] - cpu[name]), 2 * bounds[name] + 1e-30, err_msg=name)
    # a query that sees no key: out 0, lse -inf, dq 0 (exactly)
    assert (out[~fin] == 0).all() and (dq[~fin] == 0).all()
    return out, lse, (dq, dk, dv)


# ---- argument checks: one set of rules (csrc/ops/attention_meta.cpp) on every device ----


def _arrays(rng):
    return {
        "q": randn(rng, 1, 2, 5, 8),
        "k": randn(rng, 1, 2, 6, 8),
        "v": randn(rng, 1, 2, 6, 4),
        "out": randn(rng, 1, 2, 5, 4),
        "lse": randn(rng, 1, 2, 5),
        "q3": randn(rng, 2, 5, 8),
        "k3": randn(rng, 2, 6, 8),
        "v3": randn(rng, 2, 6, 4),
        "bool56": rng.random((5, 6)) < 0.5,
    }


def _misaligned_mask():
    """A float32 (5, 6) mask whose rows lie 26 bytes apart: no whole number of elements."""
    return np.ndarray((5, 6), np.float32, buffer=np.zeros(160, np.uint8), strides=(26, 4))


def _fwd(A, a, q="q", k="k", v="v", mask=None, **kw):
    m = None if mask is None else A(mask)
    return ops.scaled_dot_product_attention_forward(A(a[q]), A(a[k]), A(a[v]), m, **kw)


def _bwd(A, a, **change):
    args = dict(dout=a["out"], q=a["q"], k=a["k"], v=a["v"], out=a["out"], lse=a["lse"])
    args.update(change)
    return ops.scaled_dot_product_attention_backward(**{n: None if x is None else A(x) for n, x in args.items()})


# name -> (call(A, arrays), exception): A wraps each array (NumPy itself, or a device array over
# the same memory, strides kept); every rule of attention once.
BAD_CALLS = {
    "q_float64": (lambda A, a: _fwd(A, dict(a, q=a["q"].astype(np.float64))), TypeError),
    "q_strided": (lambda A, a: _fwd(A, dict(a, q=np.swapaxes(a["k"], 2, 3)[..., :5, :])), ValueError),
    "q_2d": (lambda A, a: _fwd(A, {n: x[0, 0] for n, x in a.items() if n in ("q", "k", "v")}), ValueError),
    "k_rank": (lambda A, a: _fwd(A, dict(a, k=a["k"][0])), ValueError),
    "k_head_dim": (lambda A, a: _fwd(A, dict(a, k=a["k"][..., :4].copy())), ValueError),
    "v_length": (lambda A, a: _fwd(A, dict(a, v=a["v"][:, :, :5].copy())), ValueError),
    "v_batch": (lambda A, a: _fwd(A, dict(a, v=np.concatenate([a["v"]] * 2))), ValueError),
    "head_dim_0": (lambda A, a: _fwd(A, dict(a, q=a["q"][..., :0].copy(), k=a["k"][..., :0].copy())), ValueError),
    "causal_and_mask": (lambda A, a: _fwd(A, a, mask=a["bool56"], is_causal=True), ValueError),
    "mask_int8": (lambda A, a: _fwd(A, a, mask=np.ones((5, 6), np.int8)), TypeError),
    "mask_float64": (lambda A, a: _fwd(A, a, mask=np.zeros((5, 6))), TypeError),
    "mask_not_broadcastable": (lambda A, a: _fwd(A, a, mask=np.ones((5, 5), bool)), ValueError),
    "mask_5d": (lambda A, a: _fwd(A, a, mask=np.ones((1, 1, 1, 5, 6), bool)), ValueError),
    "mask_misaligned_stride": (lambda A, a: _fwd(A, a, mask=_misaligned_mask()), ValueError),
    "mask_3d_q": (lambda A, a: _fwd(A, a, "q3", "k3", "v3", mask=np.ones((3, 5, 6), bool)), ValueError),
    "scale_str": (lambda A, a: _fwd(A, a, scale="x"), TypeError),
    "scale_inf": (lambda A, a: _fwd(A, a, scale=float("inf")), ValueError),
    "scale_nan": (lambda A, a: _fwd(A, a, scale=float("nan")), ValueError),
    "bwd_dout_shape": (lambda A, a: _bwd(A, a, dout=a["out"][..., :3].copy()), ValueError),
    "bwd_out_shape": (lambda A, a: _bwd(A, a, out=a["out"][:, :1].copy()), ValueError),
    "bwd_lse_shape": (lambda A, a: _bwd(A, a, lse=a["lse"][..., :4].copy()), ValueError),
    "bwd_out_float64": (lambda A, a: _bwd(A, a, out=a["out"].astype(np.float64)), TypeError),
    "bwd_dout_none": (lambda A, a: _bwd(A, a, dout=None), TypeError),
    "bwd_v_rank": (lambda A, a: _bwd(A, a, v=a["v"][0]), ValueError),
}


def _refusal(call, A, arrays):
    """(exception type, message) of a refused call, or None. A device names its own arrays in
    one message (a required array left out: "expected dout to be a CUDA array of float32"); that
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
    with pytest.raises(exc, match=r"^fastnn\.ops\.scaled_dot_product_attention_(forward|backward): expected "):
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
    """What only a device refuses: a NumPy array among its arrays, and head dims past the
    kernels' tiles (the CPU op takes any)."""
    fwd, bwd = ops.scaled_dot_product_attention_forward, ops.scaled_dot_product_attention_backward
    q, k, v = A(a["q"]), A(a["k"]), A(a["v"])
    with pytest.raises(TypeError, match=FWD + ": expected k to be a CUDA array like the other.*cannot be mixed"):
        fwd(q, a["k"], v)
    with pytest.raises(TypeError, match=FWD + ": expected q to be a CUDA array"):
        fwd(a["q"], a["k"], a["v"], A(a["bool56"]))  # only the mask on the device
    with pytest.raises(TypeError, match=FWD + ": expected attn_mask to be a CUDA array.*got ndarray"):
        fwd(q, k, v, a["bool56"])
    with pytest.raises(TypeError, match=BWD + ": expected lse to be a CUDA array"):
        bwd(A(a["out"]), q, k, v, A(a["out"]), a["lse"])
    big = A(np.zeros((1, 2, 6, 129), np.float32))
    with pytest.raises(ValueError, match=FWD + ": the CUDA kernels take head dims up to 128, got HD 129 and DV 4"):
        fwd(A(np.zeros((1, 2, 5, 129), np.float32)), big, v)
    with pytest.raises(ValueError, match=FWD + ": the CUDA kernels take head dims up to 128, got HD 8 and DV 200"):
        fwd(q, k, A(np.zeros((1, 2, 6, 200), np.float32)))
    o = A(np.zeros((1, 2, 5, 129), np.float32))
    with pytest.raises(ValueError, match=BWD + ": the CUDA kernels take head dims up to 128, got HD 8 and DV 129"):
        bwd(o, q, k, big, o, A(a["lse"]))


def test_the_device_refuses_what_only_it_refuses(rng, emulated_gpu):
    _device_only_refusals(emulated_gpu.ndarray, _arrays(rng))


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_cuda_refuses_what_only_it_refuses_before_any_launch(rng):
    _device_only_refusals(_fake, _arrays(rng))


# (mask, q's dims): the layouts the meta function reads through their strides: C order, a
# broadcast (B, 1, 1, S), a stride-0 view, a transposed view, a 3-D q's (B, L, S) and (L, 1).
MASK_LAYOUTS = {
    "c_order": (lambda r: r.random((5, 6)) < 0.7, 4),
    "batch_keys": (lambda r: randn(r, 2, 1, 1, 6), 4),
    "stride_0": (lambda r: np.broadcast_to(randn(r, 6), (5, 6)), 4),
    "transposed": (lambda r: np.ascontiguousarray(r.random((6, 5)) < 0.7).T, 4),
    "negative_stride": (lambda r: randn(r, 5, 6)[:, ::-1], 4),
    "q3_full": (lambda r: randn(r, 2, 5, 6), 3),
    "q3_rows": (lambda r: r.random((5, 1)) < 0.7, 3),
}


@pytest.mark.parametrize("name", list(MASK_LAYOUTS))
def test_masks_of_every_layout_read_alike_on_both_devices(rng, name, emulated_gpu):
    """A mask is read in place through its strides (never copied) by both devices: results
    within check_attention's bounds of the reference, the device's and the CPU's alike."""
    make, nd = MASK_LAYOUTS[name]
    mask = make(rng)
    lead = (2, 3) if nd == 4 else (2,)
    q, k, v = randn(rng, *lead, 5, 8), randn(rng, *lead, 6, 8), randn(rng, *lead, 6, 4)
    cp = emulated_gpu

    def run(q, k, v, mask, causal, scale, dout):
        g, gm = [cp.asarray(a) for a in (q, k, v)], cp.ndarray(mask)  # the mask: the same memory, strides
        out, lse = ops.scaled_dot_product_attention_forward(*g, gm, causal, scale)
        grads = ops.scaled_dot_product_attention_backward(cp.asarray(dout), *g, out, lse, gm, causal, scale)
        return tuple(cp.asnumpy(a) for a in (out, lse) + tuple(grads)) + (None,)

    check_attention(rng, run, q, k, v, mask=mask)


# ---- On a GPU (CuPy end to end) ----


def _cupy():
    if not cuda.is_available():
        pytest.skip("no CUDA device")
    return pytest.importorskip("cupy")


def _gpu_run(cp):
    def run(q, k, v, mask, causal, scale, dout):
        gm = None if mask is None else cp.asarray(mask)
        g = [cp.asarray(a) for a in (q, k, v)]
        out, lse = ops.scaled_dot_product_attention_forward(*g, gm, causal, scale)
        grads = ops.scaled_dot_product_attention_backward(cp.asarray(dout), *g, out, lse, gm, causal, scale)
        return tuple(cp.asnumpy(a) for a in (out, lse) + tuple(grads)) + (None,)

    return run


# (B, NH, L, S, HD, DV, causal): lengths of 1, tiles +-1, L != S both ways with causal, odd
# head dims, the 128 limit, a longer sequence (many key tiles and online-softmax rescales).
GPU_SHAPES = [
    (1, 1, 1, 1, 1, 1, False),
    (2, 3, 33, 31, 40, 33, True),
    (1, 2, 17, 65, 7, 96, True),
    (1, 1, 47, 13, 64, 5, True),
    (2, 2, 32, 32, 128, 128, False),
    (1, 2, 300, 257, 64, 64, True),
    (3, 1, 129, 200, 96, 80, False),
]


@pytest.mark.parametrize("shape", GPU_SHAPES, ids=str)
def test_gpu_attention_matches_reference_and_cpu(rng, shape):
    cp = _cupy()
    *dims, causal = shape
    B, NH, L, S, HD, DV = dims
    q, k, v = randn(rng, B, NH, L, HD), randn(rng, B, NH, S, HD), randn(rng, B, NH, S, DV)
    check_attention(rng, _gpu_run(cp), q, k, v, causal=causal)


def test_gpu_attention_masks(rng):
    cp = _cupy()
    B, NH, L, S = 2, 2, 45, 70
    q, k, v = randn(rng, B, NH, L, 24), randn(rng, B, NH, S, 24), randn(rng, B, NH, S, 40)
    full = rng.random((B, NH, L, S)) < 0.6
    full[0, 0, 3] = False  # a query that sees no key
    fl = (rng.standard_normal((L, S)) * 2).astype(np.float32)
    fl[1] = -np.inf
    pad = np.ones((B, 1, 1, S), bool)
    pad[1, 0, 0, S // 3 :] = False
    for mask in (
        full,
        fl,
        pad,
        np.broadcast_to(rng.standard_normal(S).astype(np.float32), (L, S)),
        np.ascontiguousarray((rng.random((L, S)) < 0.7).T).T,
    ):
        check_attention(rng, _gpu_run(cp), q, k, v, mask=mask)
    # 3-D inputs
    q3, k3, v3 = q[0], k[0], v[0]
    check_attention(rng, _gpu_run(cp), q3, k3, v3, mask=rng.random((NH, L, S)) < 0.5)


def test_gpu_attention_reruns_are_bit_identical(rng):
    cp = _cupy()
    q, k, v = (cp.asarray(randn(rng, 2, 4, 200, 64)) for _ in range(3))
    dout = cp.asarray(randn(rng, 2, 4, 200, 64))
    res = []
    for _ in range(2):
        out, lse = ops.scaled_dot_product_attention_forward(q, k, v, is_causal=True)
        res.append(
            [
                cp.asnumpy(a)
                for a in (out, lse) + ops.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, is_causal=True)
            ]
        )
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


GPU_SCRIPT = """
import cupy as cp, numpy as np
from fastnn import ops
r = np.random.default_rng(0)
q, k, v = (cp.asarray(r.standard_normal(s, dtype=np.float32)) for s in ((2, 2, 45, 40), (2, 2, 70, 40), (2, 2, 70, 33)))
mask = cp.asarray(r.random((45, 70)) < 0.6)
for kw in (dict(attn_mask=mask), dict(is_causal=True), dict(attn_mask=cp.asarray(r.standard_normal((2, 1, 1, 70), dtype=np.float32)))):
    out, lse = ops.scaled_dot_product_attention_forward(q, k, v, **kw)
    ops.scaled_dot_product_attention_backward(out, q, k, v, out, lse, **kw)
cp.cuda.get_current_stream().synchronize()
"""


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "initcheck", "synccheck"])
def test_gpu_attention_compute_sanitizer_is_clean(tool):
    """The attention kernels under compute-sanitizer (needs a GPU and the tool on PATH)."""
    _cupy()
    compute_sanitizer(tool, GPU_SCRIPT)
