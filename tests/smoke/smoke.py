"""Smoke test of an installed fastnn: every op in fastnn.ops once, on small shapes, against the
float64 NumPy reference of the same name in fastnn.ref, with the ISA the dispatcher picked.

Meant for a wheel in a fresh environment, possibly under an emulated CPU (qemu-x86_64 -cpu
Nehalem): plain Python, no pytest, a few seconds natively. Run from anywhere but the source
tree's python/ folder (the installed package must be the one imported):

    python tests/smoke/smoke.py                            # prints show_config, one line per op
    FASTNN_EXPECT_ISA=avx2 python tests/smoke/smoke.py     # also fail unless avx2 was selected

Exit status 0 when every check passed. An op in fastnn.ops without a case here fails the run:
add its case to CASES (one entry: name -> function building the arguments).
"""

import atexit
import os
import shutil
import sys
import tempfile
import traceback

import fastnn
import numpy as np
from fastnn import ops, ref

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape, dtype=np.float32)


def positive(*shape):
    return np.abs(randn(*shape)) + 0.1


# name -> () -> (args, kwargs); both fastnn.ops.<name> and fastnn.ref.<name> get fresh copies.
CT = dict(stride=2, padding=1, output_padding=1)  # the transposed convolutions: 5x6 -> 10x12
CASES = {
    "gemm": lambda: ((randn(33, 70), randn(41, 70)), dict(trans_b=True, bias=randn(41), activation="relu")),
    "conv2d_forward": lambda: ((randn(2, 3, 6, 5), randn(4, 3, 3, 3), randn(4)), dict(padding=1)),
    "conv2d_backward_data": lambda: ((randn(2, 4, 6, 5), randn(4, 3, 3, 3), (2, 3, 6, 5)), dict(padding=1)),
    "conv2d_backward_weight": lambda: ((randn(2, 4, 6, 5), randn(2, 3, 6, 5), (4, 3, 3, 3)), dict(padding=1)),
    "conv2d_backward_bias": lambda: ((randn(2, 4, 3, 3),), {}),
    "conv_transpose2d_forward": lambda: ((randn(2, 4, 5, 6), randn(4, 3, 3, 3), randn(3)), CT),
    "conv_transpose2d_backward_data": lambda: ((randn(2, 3, 10, 12), randn(4, 3, 3, 3), (2, 4, 5, 6)), CT),
    "conv_transpose2d_backward_weight": lambda: ((randn(2, 3, 10, 12), randn(2, 4, 5, 6), (4, 3, 3, 3)), CT),
    "conv_transpose2d_backward_bias": lambda: ((randn(2, 3, 10, 12),), {}),
    "max_pool2d_forward": lambda: ((randn(2, 3, 7, 6), 2), {}),
    "max_pool2d_backward": lambda: _max_pool_backward(),
    "avg_pool2d_forward": lambda: ((randn(2, 3, 7, 6), 3), dict(stride=2, padding=1)),
    "avg_pool2d_backward": lambda: ((randn(2, 3, 4, 3), randn(2, 3, 7, 6), 3), dict(stride=2, padding=1)),
    "global_avg_pool2d_forward": lambda: ((randn(2, 3, 5, 4),), {}),
    "global_avg_pool2d_backward": lambda: ((randn(2, 3, 1, 1), randn(2, 3, 5, 4)), {}),
    "relu_forward": lambda: ((randn(37),), {}),
    "relu_backward": lambda: ((randn(37), randn(37)), {}),
    "leaky_relu_forward": lambda: ((randn(37), 0.2), {}),
    "leaky_relu_backward": lambda: ((randn(37), randn(37), 0.2), {}),
    "sigmoid_forward": lambda: ((randn(37),), {}),
    "sigmoid_backward": lambda: ((randn(37), RNG.random(37, dtype=np.float32)), {}),
    "tanh_forward": lambda: ((randn(37),), {}),
    "tanh_backward": lambda: ((randn(37), np.tanh(randn(37))), {}),
    "gelu_forward": lambda: ((randn(37),), {}),
    "gelu_backward": lambda: ((randn(37), randn(37)), dict(approximate="tanh")),
    "softmax_forward": lambda: ((randn(3, 19),), {}),
    "softmax_backward": lambda: ((randn(3, 19), _softmax(randn(3, 19))), {}),
    "log_softmax_forward": lambda: ((randn(3, 19), 0), {}),
    "log_softmax_backward": lambda: ((randn(3, 19), np.log(_softmax(randn(3, 19)))), {}),
    "cross_entropy_forward": lambda: ((randn(6, 5), RNG.integers(0, 5, 6)), dict(label_smoothing=0.1)),
    "cross_entropy_backward": lambda: ((np.float32(1.0), randn(6, 5), RNG.integers(0, 5, 6)), {}),
    "sgd_step": lambda: (
        ([randn(9), randn(2, 3)], [randn(9), randn(2, 3)], [randn(9), randn(2, 3)], 0.1),
        dict(momentum=0.9, weight_decay=0.01),
    ),
    "adam_step": lambda: (([randn(9)], [randn(9)], [randn(9)], [positive(9)], 3), dict(lr=0.01)),
    "grad_norm": lambda: (([randn(9), randn(2, 3)],), {}),
    "batch_norm2d_forward": lambda: ((randn(3, 4, 3, 2), randn(4), randn(4), randn(4), positive(4), True), {}),
    "batch_norm2d_backward": lambda: ((randn(3, 4, 3, 2), randn(3, 4, 3, 2), randn(4), randn(4), positive(4)), {}),
    "embedding_forward": lambda: ((randn(10, 4), RNG.integers(0, 10, (2, 3))), dict(padding_idx=0)),
    "embedding_backward": lambda: ((randn(2, 3, 4), RNG.integers(0, 10, (2, 3)), 10), {}),
    "layer_norm_forward": lambda: ((randn(3, 4, 5), (5,), randn(5), randn(5)), {}),
    "layer_norm_backward": lambda: _layer_norm_backward(),
    "scaled_dot_product_attention_forward": lambda: (
        (randn(1, 2, 5, 8), randn(1, 2, 7, 8), randn(1, 2, 7, 8)),
        dict(attn_mask=RNG.random((5, 7)) < 0.8),
    ),
    "scaled_dot_product_attention_backward": lambda: _sdpa_backward(),
    "word2vec_train": lambda: _word2vec("memory"),
    "word2vec_train_file": lambda: _word2vec("file"),
    "word2vec_count_file": lambda: ((_word2vec_file(),), {}),
}
# Ops that update arguments in place: their arguments are compared too (with the results).
IN_PLACE = {"sgd_step", "adam_step", "word2vec_train", "word2vec_train_file"}

# Ops whose reference keeps a different state between its forward and backward (the recurrent
# layers: fastnn.ops returns an opaque workspace, fastnn.ref.rnn a cache): one check per op runs
# the forward and the backward of both and compares every output.
RECURRENT = {
    f"{kind}{cell}_{way}": (kind, bool(cell))
    for kind in ("lstm", "gru", "rnn")
    for cell in ("", "_cell")
    for way in ("forward", "backward")
}


def _layer_norm_backward():
    x, w = randn(3, 4, 5), randn(5)
    _, mean, rstd = ref.layer_norm_forward(x, (5,), w, None)
    return (randn(3, 4, 5), x, mean.astype(np.float32), rstd.astype(np.float32), w), {}


def _sdpa_backward():
    q, k, v = randn(1, 2, 5, 8), randn(1, 2, 7, 8), randn(1, 2, 7, 8)
    out, lse = ref.scaled_dot_product_attention_forward(q, k, v, is_causal=True)
    return (randn(1, 2, 5, 8), q, k, v, out.astype(np.float32), lse.astype(np.float32)), dict(is_causal=True)


_TMP = []


def _word2vec_file():
    """A small text file (removed at exit): 12 words w0 .. w11 and an unknown one."""
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="fastnn-smoke-"))
        atexit.register(shutil.rmtree, _TMP[0], True)
    path = os.path.join(_TMP[0], "corpus.txt")
    lines = [" ".join(f"w{w}" for w in RNG.integers(0, 12, 9)) + " unknown" for _ in range(8)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _word2vec(entry):
    """Skip-gram with negative sampling and hierarchical softmax on 12 words: each word's path is
    4 inner nodes of a binary heap over 16 leaves (clipped to syn1's 11 rows: any rows will do)."""
    v, d = 12, 8
    counts = RNG.integers(1, 50, v)
    c = np.cumsum(counts**0.75)
    points, codes, lengths = np.zeros((v, 4), np.int32), np.zeros((v, 4), np.uint8), np.full(v, 4, np.int32)
    for w in range(v):
        node = w + 16
        for k in range(3, -1, -1):
            codes[w, k], node = node & 1, node >> 1
            points[w, k] = min(node - 1, v - 2)
    kw = dict(
        syn1neg=randn(v, d) * 0.1,
        cum_table=np.round(c / c[-1] * (2**31 - 1)).astype(np.uint32),
        syn1=randn(v - 1, d) * 0.1,
        points=points,
        codes=codes,
        code_lengths=lengths,
        sample_int=np.full(v, 0xFFFFFFFF, np.uint32),
        window=3,
        negative=3,
        num_threads=1,
        compute_loss=True,
    )
    syn0 = (RNG.random((v, d), dtype=np.float32) - 0.5) / d
    if entry == "file":
        return (syn0, _word2vec_file(), [f"w{i}" for i in range(v)]), kw
    words = RNG.integers(0, v, 60).astype(np.int32)
    return (syn0, words, np.array([20, 20, 60], np.int64)), kw


def check_recurrent(kind, cell):
    from fastnn.ref import rnn as rref

    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    T, B, I, H = (1 if cell else 3), 2, 5, 4
    x, h0, c0 = randn(T, B, I), randn(B, H), randn(B, H)
    w_ih, w_hh, b_ih, b_hh = randn(G * H, I), randn(G * H, H), randn(G * H), randn(G * H)
    dy, dh, dc = randn(T, B, H), randn(B, H), randn(B, H)
    st = (h0, c0) if kind == "lstm" else (h0,)
    ds = (dh, dc) if kind == "lstm" else (dh,)
    extra = ("tanh",) if kind == "rnn" else ()
    want_f = getattr(rref, f"{kind}_forward")(x, *st, w_ih, w_hh, b_ih, b_hh, *extra)
    want_b = getattr(rref, f"{kind}_backward")(np.zeros_like(dy) if cell else dy, *ds, want_f[-1])
    if cell:
        got_f = getattr(ops, f"{kind}_cell_forward")(x[0], *st, w_ih, w_hh, b_ih, b_hh, *extra)
        got_b = getattr(ops, f"{kind}_cell_backward")(*ds, x[0], *st, w_ih, w_hh, got_f[-1], *extra)
        got_f, want_f = got_f[:-1], want_f[1:-1]  # the new states
        got_b = (got_b[0][None],) + tuple(got_b[1:])
    else:
        fwd = getattr(ops, f"{kind}_forward")(x, *st, w_ih, w_hh, b_ih, b_hh, *extra)
        got_b = getattr(ops, f"{kind}_backward")(dy, *ds, x, *st, w_ih, w_hh, fwd[0], fwd[-1], *extra)
        got_f, want_f = fwd[:-1], want_f[:-1]
    for i, (g, w) in enumerate(zip(list(got_f) + list(got_b), list(want_f) + list(want_b))):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5, err_msg=f"result {i}")


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _max_pool_backward():
    x = randn(2, 3, 7, 6)
    _, idx = ref.max_pool2d_forward(x, 2)
    return (randn(*idx.shape), x, idx, 2), {}


def copy(v):
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, list):
        return [copy(a) for a in v]
    return v


def arrays(v):
    """Every array in a result (and in the arguments that ops update in place)."""
    if isinstance(v, (list, tuple)):
        return [a for x in v for a in arrays(x)]
    return [] if v is None or isinstance(v, (int, str)) else [np.asarray(v)]


def check(name):
    if name in RECURRENT:
        return check_recurrent(*RECURRENT[name])
    args, kwargs = CASES[name]()
    got_args, want_args = copy(list(args)), copy(list(args))
    got_kw, want_kw = ({k: copy(v) for k, v in kwargs.items()} for _ in range(2))
    got = getattr(ops, name)(*got_args, **got_kw)
    want = getattr(ref, name)(*want_args, **want_kw)
    if name in IN_PLACE:  # updated in place: compare the arguments (and word2vec's counts and loss)
        results = name.startswith("word2vec")  # the optimizers' references return their params
        got = [got if results else None, got_args, [got_kw[k] for k in sorted(got_kw)]]
        want = [want if results else None, want_args, [want_kw[k] for k in sorted(want_kw)]]
    got, want = arrays(got), arrays(want)
    assert len(got) == len(want), f"{len(got)} results, reference {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"result {i}: shape {g.shape}, reference {w.shape}"
        if w.dtype.kind in "iub":
            assert np.array_equal(g, w), f"result {i}: integers differ from the reference"
        else:
            # float32 kernels against float64 references on sums of a few dozen terms.
            np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5, err_msg=f"result {i}")


def main():
    fastnn.show_config()
    info = fastnn._core.build_info()
    failures = []
    expect = os.environ.get("FASTNN_EXPECT_ISA")
    if expect and info["isa_selected"] != expect:
        failures.append(
            f"ISA: selected {info['isa_selected']}, expected {expect} (supported: {', '.join(info['isa_supported'])})"
        )
    missing = sorted(set(ops.__all__) - set(CASES) - set(RECURRENT))
    if missing:
        failures.append(f"no smoke case for fastnn.ops.{', '.join(missing)}: add it to CASES in {__file__}")
    for name in sorted(set(ops.__all__) & (set(CASES) | set(RECURRENT))):
        try:
            check(name)
            print(f"ok    {name}")
        except Exception:  # every op is reported, not only the first failure
            print(f"FAIL  {name}\n{traceback.format_exc()}")
            failures.append(name)
    print(
        f"fastnn smoke ({info['isa_selected']}, {fastnn.get_num_threads()} threads, "
        f"{fastnn.__file__}): {len(failures)} failure(s)" + "".join(f"\n  {f}" for f in failures)
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
