"""The CUDA scaled dot-product attention (csrc/cuda/attention.cu: online-softmax forward, delta,
key-tile dk/dv and query-tile dq passes) run by the emulator through fastnn._cuda's own entries
(the emulated device, called with the CPU entries' arguments), in the three fiber orders, against
the float64 reference and the CPU op: lengths of 1, the 32-key / 32-query tiles +-1 (16 for the
dq pass), primes, L != S both ways with and without causal, head dims that are not multiples of
32 up to the 128 limit, every mask kind read through its own strides (on the device as on the
CPU: no copy), fully masked rows, empty inputs; the backward's bits do not depend on the fiber
order; and the path through fastnn.ops / fastnn.cuda on the emulated device."""

import numpy as np
import pytest
from conftest import num_threads, randn
from fastnn import ops
from fastnn.ref.rounding import EPS32
from test_attention import _masks  # every mask kind of the CPU tests
from test_cuda_attention import check_attention
from test_cuda_emu import dev, emu, order  # noqa: F401  (dev, order: fixtures; emu: skips without it)

FWD_OP, BWD_OP = "scaled_dot_product_attention_forward", "scaled_dot_product_attention_backward"


def _qkv(rng, B, NH, L, S, HD, DV):
    return randn(rng, B, NH, L, HD), randn(rng, B, NH, S, HD), randn(rng, B, NH, S, DV)


def _on_device(dev, mask):
    """The mask as a device array over the same memory (its strides kept: a broadcast or
    transposed view stays one), or None."""
    return None if mask is None else dev.cp.ndarray(mask)


def _run(dev):
    """check_attention's run on the emulated device: (out, lse, dq, dk, dv, delta), delta the
    backward's scratch (its last allocation)."""

    def run(q, k, v, mask, causal, scale, dout):
        m = _on_device(dev, mask)
        out, lse = dev.scaled_dot_product_attention_forward(q, k, v, m, causal, scale)
        grads = dev.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, m, causal, scale)
        return (out, lse) + grads + (dev.made[-1],)

    return run


def _check(dev, rng, q, k, v, mask=None, causal=False, scale=None):
    """The emulated kernels against the reference and the CPU op (bounds: check_attention)."""
    return check_attention(rng, _run(dev), q, k, v, mask, causal, scale)


# (B, NH, L, S, HD, DV): one of everything; tiles +-1 (L 33 crosses a 32-query and two 16-query
# tiles, S 31 one partial key tile); L < S over three key tiles with DV 96 (four lane chunks);
# L > S with HD 64 (two chunks) and primes; exact tiles with B * NH = 4; odd head dims.
SHAPES = [
    (1, 1, 1, 1, 1, 1),
    (1, 2, 33, 31, 40, 33),
    (1, 1, 17, 65, 7, 96),
    (1, 1, 47, 13, 64, 5),
    (2, 2, 32, 32, 32, 32),
    (3, 1, 5, 3, 3, 70),
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_attention_shapes(rng, order, dev, shape, causal):
    q, k, v = _qkv(rng, *shape)
    _check(dev, rng, q * np.float32(2), k, v, causal=causal)


def test_attention_largest_head_dims_and_scale(rng, order, dev):
    """HD = DV = 128: every kernel's four lane chunks and its largest shared memory."""
    q, k, v = _qkv(rng, 1, 1, 5, 34, 128, 128)
    _check(dev, rng, q, k, v, scale=-0.3)
    q, k, v = _qkv(rng, 1, 1, 18, 9, 128, 1)
    _check(dev, rng, q, k, v, causal=True, scale=0.5)


@pytest.mark.parametrize("dims", [(2, 2, 9, 35, 5, 9)], ids=str)
def test_attention_masks(rng, order, dev, dims):
    B, NH, L, S, HD, DV = dims
    q, k, v = _qkv(rng, B, NH, L, S, HD, DV)
    for name, mask in _masks(rng, B, NH, L, S):
        out, lse, _ = _check(dev, rng, q, k, v, mask=mask)
        if "empty row" in name:
            assert np.isneginf(lse[0, 0, 3]) and (out[0, 0, 3] == 0).all(), name
        if "float (L, S)" in name:
            assert np.isneginf(lse[:, :, 1]).all(), name


def test_attention_empty(rng, order, dev):
    fwd, bwd = dev.scaled_dot_product_attention_forward, dev.scaled_dot_product_attention_backward
    q, k, v = _qkv(rng, 2, 1, 5, 4, 3, 2)
    out, lse = fwd(q, k[:, :, :0], v[:, :, :0], None, False, 0.5)  # no keys
    assert (out == 0).all() and np.isneginf(lse).all()
    dq, dk, dv = bwd(np.ones_like(out), q, k[:, :, :0], v[:, :, :0], out, lse, None, False, 0.5)
    assert (dq == 0).all() and dk.shape == (2, 1, 0, 3) and dv.shape == (2, 1, 0, 2)
    out, lse = fwd(q[:, :, :0], k, v, None, False, 0.5)  # no queries
    assert out.shape == (2, 1, 0, 2) and lse.shape == (2, 1, 0)
    dq, dk, dv = bwd(out, q[:, :, :0], k, v, out, lse, None, True, 0.5)
    assert dq.shape == (2, 1, 0, 3) and (dk == 0).all() and (dv == 0).all()
    out, lse = fwd(q[:0], k[:0], v[:0], None, False, 0.5)
    assert out.shape == (0, 1, 5, 2)
    # causal with S > L: keys past the last query get no gradient
    q, k, v = _qkv(rng, 1, 1, 3, 40, 4, 4)
    out, lse = fwd(q, k, v, None, True, 0.5)
    dq, dk, dv = bwd(np.ones_like(out), q, k, v, out, lse, None, True, 0.5)
    assert (dk[:, :, 3:] == 0).all() and (dv[:, :, 3:] == 0).all() and (dv[:, :, :3] != 0).all()


def test_attention_head_dim_limit(rng, dev):
    """The device's one rule of its own: head dims up to 128 (the CPU op takes any)."""
    q, k, v = _qkv(rng, 1, 1, 2, 2, 129, 4)
    with pytest.raises(ValueError, match=FWD_OP + ": the CUDA kernels take head dims up to 128, got HD 129 and DV 4"):
        dev.scaled_dot_product_attention_forward(q, k, v, None, False, None)
    assert ops.scaled_dot_product_attention_forward(q, k, v)[0].shape == (1, 1, 2, 4)
    q, k, v = _qkv(rng, 1, 1, 2, 2, 4, 129)
    out = np.zeros((1, 1, 2, 129), np.float32)
    with pytest.raises(ValueError, match=BWD_OP + ": the CUDA kernels take head dims up to 128, got HD 4 and DV 129"):
        dev.scaled_dot_product_attention_backward(out, q, k, v, out, np.zeros((1, 1, 2), np.float32), None, False, None)


def test_attention_backward_bits_do_not_depend_on_the_fiber_order(rng, monkeypatch, dev):
    q, k, v = _qkv(rng, 1, 2, 35, 33, 20, 36)
    mask = _on_device(dev, rng.random((35, 33)) < 0.8)
    dout = randn(rng, 1, 2, 35, 36)
    res = []
    for o in ("forward", "reverse", "random"):
        monkeypatch.setenv("FASTNN_EMU_ORDER", o)
        out, lse = dev.scaled_dot_product_attention_forward(q, k, v, mask, False, 0.25)
        grads = dev.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, mask, False, 0.25)
        res.append((out, lse) + grads + (dev.made[-1],))  # the last: delta, the backward's scratch
    for other in res[1:]:
        for a, b in zip(res[0], other):
            np.testing.assert_array_equal(a, b)


def test_attention_through_fastnn_ops_on_the_emulated_device(rng, order, emulated_gpu):
    """fastnn.ops -> fastnn.cuda (checks, the strides of a broadcast or transposed CuPy mask,
    3-D inputs) -> the bindings, against the CPU op."""
    cp = emulated_gpu
    q, k, v = (randn(rng, 3, n, d) for n, d in ((21, 10), (34, 10), (34, 6)))
    row, keep = rng.random((1, 34)) < 0.7, rng.random((34, 21)) < 0.7
    fl = randn(rng, 3, 1, 34)
    dout = randn(rng, 3, 21, 6)
    masks = [
        lambda xp: xp.broadcast_to(xp.asarray(row), (21, 34)),  # a stride-0 view
        lambda xp: xp.asarray(keep).T,  # a transposed view
        lambda xp: xp.asarray(fl),
    ]
    cases = [dict(attn_mask=m) for m in masks] + [dict(is_causal=True, scale=0.4)]
    for kw in cases:
        ckw = dict(kw, attn_mask=kw["attn_mask"](np)) if "attn_mask" in kw else kw
        gkw = dict(kw, attn_mask=kw["attn_mask"](cp)) if "attn_mask" in kw else kw
        gq, gk, gv = cp.asarray(q), cp.asarray(k), cp.asarray(v)
        out, lse = ops.scaled_dot_product_attention_forward(gq, gk, gv, **gkw)
        grads = ops.scaled_dot_product_attention_backward(cp.asarray(dout), gq, gk, gv, out, lse, **gkw)
        with num_threads(1):  # the same bits on any thread count; one keeps OpenMP out of TSan runs
            co, cl = ops.scaled_dot_product_attention_forward(q, k, v, **ckw)
            cgrads = ops.scaled_dot_product_attention_backward(dout, q, k, v, co, cl, **ckw)
        # both within _check's bounds of the reference (these magnitudes are O(1)-O(10))
        tol = 2 * 4 * (10 + 1) * EPS32 * 64 + (21 + 34 + 10 + 6 + 16) * EPS32 * 64
        for g, c in zip((out, lse) + tuple(grads), (co, cl) + tuple(cgrads)):
            assert g.shape == c.shape
            np.testing.assert_allclose(cp.asnumpy(g), c, rtol=tol, atol=tol)
