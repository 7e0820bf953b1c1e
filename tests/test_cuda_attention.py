"""Scaled dot-product attention on CUDA arrays: fastnn.cuda's checks before any launch (with
FakeDeviceArray, no GPU needed) and its mask strides; with a GPU and CuPy, the kernels against the
float64 reference and the CPU op (error bounds shared with tests/test_cuda_emu_attention.py, which
checks the same kernels on the emulator), bit-identical reruns, and compute-sanitizer."""

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


# ---- Checks before any launch (no GPU needed) ----


def test_mask_strides_as_the_cpu_binding_reads_them():
    s = cuda._attn_mask_strides
    assert s(FWD, (5, 6), (6, 1), 1, (2, 3, 5, 6)) == (0, 0, 6, 1)
    assert s(FWD, (2, 1, 1, 6), (24, 24, 24, 4), 4, (2, 3, 5, 6)) == (6, 0, 0, 1)
    assert s(FWD, (5, 6), (0, 4), 4, (2, 3, 5, 6)) == (0, 0, 0, 1)  # a broadcast view
    assert s(FWD, (5, 6), (1, 5), 1, (2, 3, 5, 6)) == (0, 0, 1, 5)  # a transposed view
    assert s(FWD, (3, 1), (1, 1), 1, (2, 3, 6)) == (0, 0, 1, 0)  # 3-D q: (B, L, S) -> b, i, j
    assert s(FWD, (2, 3, 6), (72, 24, 4), 4, (2, 3, 6)) == (18, 0, 6, 1)
    with pytest.raises(
        ValueError, match=FWD + r": expected attn_mask broadcastable to \(2, 3, 5, 6\), got shape \(5, 5\)"
    ):
        s(FWD, (5, 5), (5, 1), 1, (2, 3, 5, 6))
    with pytest.raises(ValueError, match="broadcastable"):
        s(FWD, (1, 1, 1, 5, 6), (30, 30, 30, 6, 1), 1, (2, 3, 5, 6))
    with pytest.raises(ValueError, match="broadcastable"):  # a stride that is no whole number of elements
        s(FWD, (5, 6), (26, 4), 4, (2, 3, 5, 6))


@pytest.mark.skipif(not BUILT, reason="fastnn built without CUDA")
def test_cuda_attention_checks_before_launching(rng):
    F = FakeDeviceArray
    q, k, v = randn(rng, 1, 2, 5, 8), randn(rng, 1, 2, 6, 8), randn(rng, 1, 2, 6, 4)
    fq, fk, fv = F(q), F(k), F(v)
    fwd, bwd = ops.scaled_dot_product_attention_forward, ops.scaled_dot_product_attention_backward
    with pytest.raises(TypeError, match=FWD + ": k must be a CUDA array.*cannot be mixed"):
        fwd(fq, k, fv)
    with pytest.raises(TypeError, match=FWD + ": q must be a CUDA array"):
        fwd(q, k, v, F(np.ones((5, 6), bool)))  # only the mask on the device
    with pytest.raises(TypeError, match=FWD + ": q must be float32"):
        fwd(F(q.astype(np.float64)), fk, fv)
    with pytest.raises(ValueError, match=FWD + ": q must be C-contiguous"):
        fwd(F(q, strides=(320, 160, 4, 20)), fk, fv)
    with pytest.raises(ValueError, match=FWD + r".*\(B, NH, L, HD\) or \(N, L, HD\), got \(5, 8\)"):
        fwd(F(q[0, 0]), F(k[0, 0]), F(v[0, 0]))
    with pytest.raises(ValueError, match=FWD + ".*same rank"):
        fwd(fq, F(k[0]), fv)
    with pytest.raises(ValueError, match=FWD + ".*matching q"):
        fwd(fq, F(k[..., :4].copy()), fv)
    with pytest.raises(ValueError, match=FWD + ".*matching q"):
        fwd(fq, fk, F(v[:, :, :5].copy()))
    with pytest.raises(ValueError, match=FWD + ": the CUDA kernels take head dims up to 128, got HD 129 and DV 4"):
        fwd(F(randn(rng, 1, 2, 5, 129)), F(randn(rng, 1, 2, 6, 129)), fv)
    with pytest.raises(ValueError, match=FWD + ": the CUDA kernels take head dims up to 128, got HD 8 and DV 200"):
        fwd(fq, fk, F(randn(rng, 1, 2, 6, 200)))
    with pytest.raises(ValueError, match=FWD + ".*cannot be combined"):
        fwd(fq, fk, fv, F(np.ones((5, 6), bool)), is_causal=True)
    with pytest.raises(TypeError, match=FWD + ": attn_mask must be None or a CUDA array.*ndarray"):
        fwd(fq, fk, fv, np.ones((5, 6), bool))
    with pytest.raises(TypeError, match=FWD + ": expected attn_mask of dtype bool or float32, got typestr '|i1'"):
        fwd(fq, fk, fv, F(np.ones((5, 6), np.int8)))
    with pytest.raises(ValueError, match=FWD + r".*broadcastable to \(1, 2, 5, 6\), got shape \(5, 5\)"):
        fwd(fq, fk, fv, F(np.ones((5, 5), bool)))
    with pytest.raises(TypeError, match=FWD + ": expected scale to be None or a float, got str"):
        fwd(fq, fk, fv, scale="x")
    with pytest.raises(ValueError, match=FWD + ": expected a finite scale"):
        fwd(fq, fk, fv, scale=float("inf"))
    out, lse = F(randn(rng, 1, 2, 5, 4)), F(randn(rng, 1, 2, 5))
    with pytest.raises(ValueError, match=BWD + r": expected dout and out of shape \(1, 2, 5, 4\)"):
        bwd(F(randn(rng, 1, 2, 5, 3)), fq, fk, fv, out, lse)
    with pytest.raises(ValueError, match=BWD + r": expected lse of shape \(1, 2, 5\), got \(1, 2, 4\)"):
        bwd(out, fq, fk, fv, out, F(randn(rng, 1, 2, 4)))
    with pytest.raises(TypeError, match=BWD + ": lse must be a CUDA array"):
        bwd(out, fq, fk, fv, out, randn(rng, 1, 2, 5))
    with pytest.raises(ValueError, match=BWD + ": the CUDA kernels take head dims up to 128"):
        bwd(F(randn(rng, 1, 2, 5, 130)), fq, fk, F(randn(rng, 1, 2, 6, 130)), F(randn(rng, 1, 2, 5, 130)), lse)


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
