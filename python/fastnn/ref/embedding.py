"""Reference embedding lookup and dense gradient in float64 (fastnn.ops' names and signatures)."""

import numpy as np


def _indices(op, indices, v):
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"fastnn.ref.{op}: expected integer indices, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= v):
        raise ValueError(
            f"fastnn.ref.{op}: expected indices in [0, {v}), got {idx.min() if idx.min() < 0 else idx.max()}"
        )
    return idx.astype(np.int64)


def _padding(op, padding_idx, v):
    if padding_idx is None:
        return None
    if not -v <= padding_idx < v:
        raise ValueError(f"fastnn.ref.{op}: expected padding_idx in [{-v}, {v}), got {padding_idx}")
    return padding_idx % v


def embedding_forward(weight, indices, padding_idx=None, *, out=None):
    w = np.asarray(weight, dtype=np.float64)
    _padding("embedding_forward", padding_idx, w.shape[0])
    y = w[_indices("embedding_forward", indices, w.shape[0])]
    if out is None:
        return y
    out[...] = y
    return out


def embedding_backward(dy, indices, num_embeddings, padding_idx=None, *, out=None):
    g = np.asarray(dy, dtype=np.float64)
    idx = _indices("embedding_backward", indices, num_embeddings)
    pad = _padding("embedding_backward", padding_idx, num_embeddings)
    d = np.zeros((num_embeddings, g.shape[-1]))
    np.add.at(d, idx.reshape(-1), g.reshape(-1, g.shape[-1]))  # rows added in order of position
    if pad is not None:
        d[pad] = 0
    if out is None:
        return d
    out[...] = d
    return out
