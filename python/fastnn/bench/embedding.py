"""Embedding forward + backward (the dense weight gradient, rows summed in position order): a
word-level table of 50,000 x 256 looked up by a 32 x 64 batch of token ids, and a character
table, fastnn.ops (outputs preallocated) against torch.nn.functional.embedding with autograd and
the float64 NumPy reference; validated against the reference first."""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import U32
from .harness import Case, optional, within

torch = optional("torch")


def _case(vocab, dim, batch, length):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((vocab, dim)).astype(np.float32)
    idx = rng.integers(0, vocab, (batch, length))
    dy = rng.standard_normal((batch, length, dim)).astype(np.float32)
    y, dw = np.empty((batch, length, dim), np.float32), np.empty_like(w)

    def fastnn_emb():
        return (ops.embedding_forward(w, idx, out=y), ops.embedding_backward(dy, idx, vocab, out=dw))

    def numpy_emb():
        return ref.embedding_forward(w, idx), ref.embedding_backward(dy, idx, vocab)

    impls = {"fastnn": fastnn_emb, "numpy": numpy_emb}
    if torch:
        wt, it, dyt = torch.from_numpy(w), torch.from_numpy(idx), torch.from_numpy(dy)

        def torch_emb():
            ww = wt.detach().requires_grad_()
            yy = torch.nn.functional.embedding(it, ww)
            yy.backward(dyt)
            return yy.detach().numpy(), ww.grad.numpy()

        impls["torch"] = torch_emb
    want = numpy_emb()
    # the forward copies rows (exact); a gradient row is a float32 sum of its occurrences
    counts = np.bincount(idx.ravel(), minlength=vocab)[:, None]
    checks = (
        within(lambda: (want[0], 0.0)),
        within(lambda: (want[1], 4 * U32 * counts * np.abs(want[1]).max() + 1e-30)),
    )

    def check(got):
        for c, g in zip(checks, got):
            c(g)

    return Case(
        f"embedding fwd+bwd {vocab}x{dim} [{batch}x{length}]",
        impls,
        check,
        bytes=float(2 * y.nbytes + dw.nbytes + dy.nbytes),
    )


def cases(quick=False):
    if quick:
        return [_case(1000, 32, 4, 16)]
    return [_case(50_000, 256, 32, 64), _case(65, 32, 32, 64)]
