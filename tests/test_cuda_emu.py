"""The CUDA kernels (csrc/cuda/*.cu) compiled as host C++ and run by the emulator
(csrc/cuda/emu), against the CPU kernels and the float64 references, in the three fiber orders;
and the emulator's own reports of CUDA misuse (csrc/cuda/emu/selftest.cu).

The module is built only with -DFASTNN_CUDA_EMULATION=ON (docs/cuda-emulator.md); without it these
tests skip, unless FASTNN_REQUIRE_CUDA_EMU=1 (CI), where its absence fails."""

import os

import fastnn
import numpy as np
import pytest
from conftest import randn
from fastnn import cuda, ref
from fastnn.ref.rounding import EPS32
from test_act import ACTS, assert_within, bwd_bound, fn, fwd_bound

if os.environ.get("FASTNN_REQUIRE_CUDA_EMU") == "1":
    import _fastnn_cuda_emu as emu
else:
    emu = pytest.importorskip("_fastnn_cuda_emu")

# FASTNN_EMU_ORDERS=random (a comma-separated subset) runs fewer: CI's sanitizer build takes one.
ORDERS = os.environ.get("FASTNN_EMU_ORDERS", "forward,reverse,random").split(",")


class Device:
    """The CUDA entries on the emulated device with the CPU entries' arguments (fastnn._core's,
    through fastnn.cuda.run): NumPy in (lists of arrays too), NumPy out; outputs start as NaN
    (fake_cupy.empty). Each writeable NumPy argument gets its device copy's values back after
    the call, so updates in place (optimizer steps, running statistics) show as on the CPU."""

    def __init__(self, cp):
        self.cp = cp

    def __getattr__(self, name):
        def call(*args):
            copies = []

            def to_device(a):
                if isinstance(a, np.ndarray):
                    copies.append((a, self.cp.asarray(a)))
                    return copies[-1][1]
                if isinstance(a, (list, tuple)):
                    return type(a)(to_device(v) for v in a)
                return a

            r = cuda.run(name, *[to_device(a) for a in args])
            for host, d in copies:
                if host.flags.writeable:
                    host[...] = d.get()
            return _to_host(r)

        return call


def _to_host(r):
    if isinstance(r, tuple):
        return tuple(_to_host(v) for v in r)
    return r.get() if hasattr(r, "__cuda_array_interface__") else r


@pytest.fixture
def dev(emulated_gpu):
    """The emulated device's entries, called as the CPU's (see Device)."""
    return Device(emulated_gpu)


@pytest.fixture(params=ORDERS)
def order(request, monkeypatch):
    """Every test runs with the fibers of each block resumed in each of the three orders."""
    monkeypatch.setenv("FASTNN_EMU_ORDER", request.param)
    monkeypatch.setenv("FASTNN_EMU_SEED", "12345")
    return request.param


# (M, N, K): one element, K below the 16-deep tile, the 64x64 tile exactly and +-1 around it,
# primes, an empty product (K = 0: out = beta c + bias).
GEMM_SHAPES = [(1, 1, 1), (5, 130, 3), (64, 64, 16), (65, 63, 17), (37, 71, 45), (3, 2, 0)]


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=str)
def test_gemm(rng, order, emulated_gpu, shape, ta, tb):
    cp = emulated_gpu
    M, N, K = shape
    a = randn(rng, *((K, M) if ta else (M, K)))
    b = randn(rng, *((N, K) if tb else (K, N)))
    c, bias = randn(rng, M, N), randn(rng, N)
    for kw in ({}, {"c": c, "alpha": 0.5, "beta": -2.0, "bias": bias}):
        dkw = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        got = fastnn.ops.gemm(cp.asarray(a), cp.asarray(b), trans_a=ta, trans_b=tb, **dkw).get()
        want = ref.gemm(a, b, trans_a=ta, trans_b=tb, **kw)
        mag = ref.gemm(
            np.abs(a),
            np.abs(b),
            trans_a=ta,
            trans_b=tb,
            c=None if "c" not in kw else np.abs(c),
            alpha=abs(kw.get("alpha", 1.0)),
            beta=abs(kw.get("beta", 0.0)),
            bias=None if "bias" not in kw else np.abs(bias),
        )
        assert got.shape == (M, N) and not np.isnan(got).any()
        np.testing.assert_array_less(np.abs(got - want), 2 * (K + 2) * EPS32 * mag + 1e-30)
        cpu = fastnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, **kw)
        np.testing.assert_allclose(got, cpu, rtol=0, atol=float(2 * (K + 2) * EPS32 * mag.max() + 1e-30))


def test_gemm_relu(rng, order, emulated_gpu):
    cp = emulated_gpu
    a, b = randn(rng, 33, 20), randn(rng, 20, 65)
    got = fastnn.ops.gemm(cp.asarray(a), cp.asarray(b), activation="relu").get()
    assert (got >= 0).all() and (got == 0).any()
    np.testing.assert_allclose(got, np.maximum(a.astype(np.float64) @ b, 0), atol=1e-4)


def test_gemm_reads_transposed_views_in_place_and_copies_other_strides(rng, emulated_gpu, monkeypatch):
    """As on the CPU: a.T of a C-contiguous array is read with the transpose flag flipped (no
    copy), any other strided operand is copied first; the results are the CPU's."""
    cp = emulated_gpu
    a, b = randn(rng, 20, 33), randn(rng, 65, 20)
    copies = []
    real = cp.ascontiguousarray
    monkeypatch.setattr(cp, "ascontiguousarray", lambda x: copies.append(x.shape) or real(x), raising=False)
    da, db = cp.asarray(a), cp.asarray(b)
    got = fastnn.ops.gemm(da.T, db.T, trans_b=False).get()
    assert copies == []
    want = fastnn.ops.gemm(a.T, b.T)
    np.testing.assert_allclose(got, want, rtol=0, atol=float(44 * EPS32 * (np.abs(a.T) @ np.abs(b.T)).max()))
    got = fastnn.ops.gemm(da[:, ::3], cp.asarray(randn(rng, 11, 4))).get()
    assert copies == [(20, 11)] and got.shape == (20, 4)


def test_gemm_broadcasts_batches_on_the_device(rng, order, emulated_gpu):
    cp = emulated_gpu
    a, b, c = randn(rng, 3, 1, 5, 7), randn(rng, 4, 7, 6), randn(rng, 4, 5, 6)
    got = fastnn.ops.gemm(cp.asarray(a), cp.asarray(b), cp.asarray(c), beta=1.0).get()
    want = fastnn.ops.gemm(a, b, c, beta=1.0)
    assert got.shape == want.shape == (3, 4, 5, 6)
    np.testing.assert_allclose(got, want, rtol=0, atol=float(18 * EPS32 * (np.abs(a) @ np.abs(b) + np.abs(c)).max()))


@pytest.mark.parametrize("n", [0, 1, 255, 257, 1000])
@pytest.mark.parametrize("name", list(ACTS))
def test_act(rng, order, emulated_gpu, name, n):
    cp = emulated_gpu
    kw, takes = ACTS[name]
    x, dy = randn(rng, n) * np.float32(4), randn(rng, n)
    y = fn(fastnn.ops, name, "forward")(cp.asarray(x), **kw).get()
    y_ref = fn(ref, name, "forward")(x, **kw)
    assert_within(y, y_ref, fwd_bound(name, x, y_ref), f"{name} forward")
    xy = y if takes == "y" else x
    dx = fn(fastnn.ops, name, "backward")(cp.asarray(dy), cp.asarray(xy), **kw).get()
    assert_within(dx, fn(ref, name, "backward")(dy, xy, **kw), bwd_bound(name, dy, xy), f"{name} backward")


# Rows (warp per row: row lengths below, at and past 32; row counts not a multiple of the
# block's 8 warps) and columns (softmax over a middle axis).
SOFTMAX_CASES = [((1, 1), -1), ((9, 31), -1), ((17, 32), -1), ((3, 100), -1), ((2, 5, 7), 1), ((4, 3), 0)]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=str)
def test_softmax(rng, order, dev, shape, dim, log):
    x, dy = randn(rng, *shape) * np.float32(3), randn(rng, *shape)
    y = (dev.log_softmax_forward if log else dev.softmax_forward)(x, dim, None)
    want = (ref.log_softmax_forward if log else ref.softmax_forward)(x, dim)
    n = shape[dim]
    np.testing.assert_allclose(y, want, rtol=(n + 8) * EPS32 * 4, atol=(n + 8) * EPS32 * (4 if log else 1e-3))
    cpu = (fastnn.ops.log_softmax_forward if log else fastnn.ops.softmax_forward)(x, dim)
    np.testing.assert_allclose(y, cpu, rtol=(n + 8) * EPS32 * 4, atol=(n + 8) * EPS32)
    dx = (dev.log_softmax_backward if log else dev.softmax_backward)(dy, y, dim, None)
    want = (ref.log_softmax_backward if log else ref.softmax_backward)(dy, y, dim)
    scale = np.abs(dy).max() * (n + 4)
    np.testing.assert_allclose(dx, want, rtol=0, atol=float(scale * EPS32 * 8))


# Rows of one element, under and over a warp, not a multiple of the 256-thread block.
LN_SHAPES = [(1, 1), (3, 31), (5, 256), (2, 300), (4, 1000), (0, 5)]


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", LN_SHAPES, ids=str)
def test_layer_norm(rng, order, shape, affine):
    m, n = shape
    x, dy = randn(rng, m, n) * np.float32(3) + np.float32(1), randn(rng, m, n)
    w, b = (randn(rng, n), randn(rng, n)) if affine else (None, None)
    y, mean, rstd = emu.layer_norm_forward(x, w, b, 1e-5)
    y_ref, mean_ref, rstd_ref = ref.layer_norm_forward(x, (n,), w, b, 1e-5)
    tol = (n + 16) * EPS32 * 8  # float32 sums of n terms in a tree (the CPU sums in chunks)
    np.testing.assert_allclose(mean, mean_ref.reshape(m), rtol=tol, atol=tol * 3)
    np.testing.assert_allclose(rstd, rstd_ref.reshape(m), rtol=tol)
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol * 4)
    cpu = fastnn.ops.layer_norm_forward(x, (n,), w, b, 1e-5)[0]
    np.testing.assert_allclose(y, cpu, rtol=tol, atol=tol * 4)
    dx, dw, db = emu.layer_norm_backward(dy, x, mean, rstd, w)
    dx_ref, dw_ref, db_ref = ref.layer_norm_backward(dy, x, mean.reshape(m, 1), rstd.reshape(m, 1), w)
    scale = float(np.abs(dx_ref).max()) if m * n else 1.0
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=tol * 8 * max(scale, 1.0))
    if affine:
        mt = (m + 16) * EPS32 * 8
        np.testing.assert_allclose(dw, dw_ref, rtol=mt, atol=mt * max(1.0, m))
        np.testing.assert_allclose(db, db_ref, rtol=mt, atol=mt * max(1.0, m))
    else:
        assert dw is None and db is None


@pytest.mark.parametrize("pad", [-1, 3])
@pytest.mark.parametrize("shape", [(10, 1, 1), (50, 7, 33), (5, 300, 4), (8, 0, 3)], ids=str)
def test_embedding(rng, order, shape, pad):
    v, t, d = shape
    w, dy = randn(rng, v, d), randn(rng, t, d)
    idx = rng.integers(0, v, t).astype(np.int64)
    if t:
        idx[: t // 2] = 3  # repeated rows: many atomic adds into one row
    out = emu.embedding_forward(w, idx)
    np.testing.assert_array_equal(out, w[idx])
    dw = emu.embedding_backward(dy, idx, v, pad)
    want = ref.embedding_backward(dy, idx, v, None if pad < 0 else pad)
    np.testing.assert_allclose(dw, want, rtol=1e-6, atol=(t + 1) * EPS32 * 4)
    if pad >= 0:
        assert (dw[pad] == 0).all()


# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode): overlapping and disjoint windows,
# padding, dilation, ceil mode, one pixel, rectangular everything.
POOL_CASES = [
    (2, 3, 9, 8, 3, 2, 1, 1, True),
    (1, 2, 7, 7, 2, 2, 0, 1, False),
    (2, 1, 10, 11, 3, 1, 1, 2, False),
    (1, 1, 1, 1, 1, 1, 0, 1, False),
    (2, 2, 5, 6, (2, 3), (1, 2), (1, 1), 1, True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool2d(rng, order, dev, case):
    N, C, H, W, k, s, p, d, ceil = case
    x = randn(rng, N, C, H, W)
    x[0, 0, 0, :2] = np.nan if H * W > 4 else x[0, 0, 0, :2]  # NaN wins the window
    y, idx = dev.max_pool2d_forward(x, k, s, p, d, ceil, None, None)
    y_cpu, idx_cpu = fastnn.ops.max_pool2d_forward(x, k, s, p, d, ceil)
    np.testing.assert_array_equal(y, y_cpu)  # the same window walk: the same bits and indices
    np.testing.assert_array_equal(idx, idx_cpu)
    dy = randn(rng, *y.shape)
    for relu in (False, True):
        xr = np.maximum(x, 0) if relu else x
        dx = dev.max_pool2d_backward(dy, xr, idx, k, s, p, d, ceil, relu, None)
        want = fastnn.ops.max_pool2d_backward(dy, xr, idx_cpu, k, s, p, d, ceil, relu=relu)
        np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)  # atomic adds in any order
    if d == 1:
        xa = np.nan_to_num(x)
        for cip in (True, False):
            ya = dev.avg_pool2d_forward(xa, k, s, p, ceil, cip, None)
            np.testing.assert_allclose(ya, fastnn.ops.avg_pool2d_forward(xa, k, s, p, ceil, cip), rtol=1e-6, atol=1e-6)
            dya = randn(rng, *ya.shape)
            np.testing.assert_allclose(
                dev.avg_pool2d_backward(dya, xa, k, s, p, ceil, cip, None),
                fastnn.ops.avg_pool2d_backward(dya, xa, k, s, p, ceil, cip),
                rtol=1e-5,
                atol=1e-6,
            )


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 2, 17, 19), (3, 1, 40, 40)], ids=str)
def test_global_avg_pool2d(rng, order, dev, shape):
    x = randn(rng, *shape)
    y = dev.global_avg_pool2d_forward(x, None)
    np.testing.assert_allclose(y, fastnn.ops.global_avg_pool2d_forward(x), rtol=4e-6, atol=1e-6)
    dy = randn(rng, *y.shape)
    np.testing.assert_allclose(
        dev.global_avg_pool2d_backward(dy, x, None), fastnn.ops.global_avg_pool2d_backward(dy, x), rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (9, 5), (17, 33), (3, 100)], ids=str)
def test_cross_entropy_rows(rng, order, dev, shape, weighted, smoothing):
    M, C = shape
    x = randn(rng, M, C) * np.float32(3)
    t = rng.integers(0, C, M).astype(np.int64)
    t[::4] = -100  # ignored rows
    w = np.abs(randn(rng, C)) + np.float32(0.5) if weighted else None
    loss, wt = dev.cross_entropy_rows(x, t, w, -100, smoothing)
    want = ref.cross_entropy_forward(x, t, w, -100, smoothing, reduction="none")
    tol = (C + 8) * EPS32 * 8
    np.testing.assert_allclose(loss, want, rtol=tol, atol=tol * (1 + np.abs(x).max()))
    keep = t != -100
    np.testing.assert_array_equal(wt[~keep], 0)
    np.testing.assert_allclose(wt[keep], 1.0 if w is None else w[t[keep]], rtol=0)
    scale = randn(rng, M)
    dx = dev.cross_entropy_backward_rows(x, t, w, -100, smoothing, scale, None)
    want = ref.cross_entropy_backward(scale, x, t, w, -100, smoothing, reduction="none")
    np.testing.assert_allclose(dx, want, rtol=tol, atol=tol * float(np.abs(scale).max()) * (2 if w is None else 4))


SGD_OPTIONS = [
    dict(),
    dict(momentum=0.9, first_step=True),
    dict(momentum=0.9, dampening=0.1, weight_decay=1e-2),
    dict(momentum=0.9, nesterov=True, maximize=True),
]
ADAM_OPTIONS = [
    dict(),
    dict(weight_decay=1e-2),
    dict(weight_decay=1e-2, decoupled=True),
    dict(amsgrad=True, maximize=True),
    dict(beta1=0.3),
]


# The tensors of one update (one launch each): several 256-thread blocks, none (empty: no
# launch), part of one block.
OPTIM_SIZES = (1000, 0, 37)


@pytest.mark.parametrize("kw", SGD_OPTIONS, ids=str)
def test_sgd_step(rng, order, dev, kw):
    """The CUDA update against the AVX-512 one (the same fused multiply-adds): the same bits."""
    if "avx512" not in fastnn._core.build_info()["isa_supported"]:
        pytest.skip("the bit-for-bit peer is the AVX-512 update")
    p, g, buf = ([randn(rng, n) for n in OPTIM_SIZES] for _ in range(3))
    cp, cbuf = [a.copy() for a in p], [a.copy() for a in buf]
    args = dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False, first_step=False)
    args.update(kw)
    dev.sgd_step(p, g, buf if args["momentum"] else None, *args.values())
    fastnn._core.sgd_step(cp, g, cbuf if args["momentum"] else None, *args.values(), isa="avx512")
    for got, want in zip(p + buf, cp + cbuf):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kw", ADAM_OPTIONS, ids=str)
def test_adam_step(rng, order, dev, kw):
    """Against the AVX-512 update: the same bits (it and CUDA both divide and take sqrt IEEE)."""
    if "avx512" not in fastnn._core.build_info()["isa_supported"]:
        pytest.skip("the bit-for-bit peer is the AVX-512 update")
    sizes = (777,) + OPTIM_SIZES[1:]
    p, g = [randn(rng, n) for n in sizes], [randn(rng, n) for n in sizes]
    m, v = [randn(rng, n) * np.float32(0.1) for n in sizes], [np.abs(randn(rng, n)) * np.float32(0.01) for n in sizes]
    vmax = [np.abs(randn(rng, n)) * np.float32(0.01) for n in sizes]
    ams = kw.get("amsgrad", False)
    args = dict(lr=1e-2, beta1=kw.get("beta1", 0.9), beta2=0.999, eps=1e-8, weight_decay=kw.get("weight_decay", 0.0))
    c = [[a.copy() for a in lst] for lst in (p, m, v, vmax)]
    flags = (kw.get("decoupled", False), kw.get("maximize", False))
    dev.adam_step(p, g, m, v, 3, *args.values(), ams, vmax if ams else None, *flags)
    fastnn._core.adam_step(c[0], g, c[1], c[2], 3, *args.values(), ams, c[3] if ams else None, *flags, isa="avx512")
    for got, want in zip(p + m + v + vmax, sum(c, [])):
        np.testing.assert_array_equal(got, want)


# ---- The emulator catches CUDA misuse ----


def test_control_kernel_is_correct_in_every_order(order):
    x = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(emu.selftest("neighbour_sum", x), x + np.roll(x, -1))
    np.testing.assert_array_equal(emu.selftest("warp_sum", x)[:2], [x[:32].sum(), x[32:].sum()])


TSAN = os.environ.get("FASTNN_EMU_TSAN") == "1"  # set by CI's ThreadSanitizer build


@pytest.mark.skipif(TSAN, reason="a deliberate race: under ThreadSanitizer see test_tsan_reports")
def test_missing_barrier_shows_as_order_dependent_results():
    """Without __syncthreads a thread reads its neighbour's slot before it is written in one
    order (the NaN poison of dynamic shared memory) and after in another."""
    x = np.arange(64, dtype=np.float32)
    results = {}
    for o in ("forward", "reverse"):
        os.environ["FASTNN_EMU_ORDER"] = o
        try:
            results[o] = emu.selftest("missing_barrier", x)
        finally:
            del os.environ["FASTNN_EMU_ORDER"]
    assert np.isnan(results["forward"]).any()
    assert not np.array_equal(results["forward"], results["reverse"], equal_nan=True)


@pytest.mark.parametrize(
    "name,needle",
    [
        ("early_return", "is not reached by every thread of its block"),
        ("divergent_barriers", "divergent __syncthreads"),
        ("shuffle_from_exited", "which has exited"),
        ("shuffle_outside_mask", "outside the mask"),
        ("too_many_threads", "2048 threads per block"),
    ],
)
def test_misuse_is_reported_with_its_place(order, name, needle):
    with pytest.raises(RuntimeError, match=needle) as e:
        emu.selftest(name, np.arange(64, dtype=np.float32))
    assert "csrc/cuda/emu/selftest.cu:" in str(e.value)


def test_atomic_cross_block_sum(order):
    x = np.arange(1, 9, dtype=np.float32)
    assert emu.selftest("cross_block_atomic", x)[0] == x.sum()


@pytest.mark.skipif(not TSAN, reason="needs the ThreadSanitizer build (CI)")
@pytest.mark.parametrize(
    "name,race",
    [("cross_block_race", True), ("missing_barrier", True), ("cross_block_atomic", False), ("neighbour_sum", False)],
)
def test_tsan_reports(name, race):
    """Under ThreadSanitizer a race between blocks (a non-atomic +=) and between the threads of
    a block (no barrier between a shared-memory write and another thread's read) are reported;
    the atomic and barrier versions are not. In a subprocess, as a report fails the process."""
    import subprocess
    import sys

    code = f"import numpy as np, _fastnn_cuda_emu as e; e.selftest({name!r}, np.arange(1, 65, dtype=np.float32))"
    env = dict(os.environ, FASTNN_EMU_WORKERS="2")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    reported = "ThreadSanitizer: data race" in r.stderr
    assert reported == race, r.stderr[-3000:]
    if race:
        assert "selftest.cu" in r.stderr
