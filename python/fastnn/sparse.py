"""RowSparse: the row-sparse gradient of a (V, D) weight that nn.Embedding(sparse=True) produces.

    grad.indices  int64 (N,)      rows of the weight (duplicates allowed: their rows add up)
    grad.values   float32 (N, D)  the gradient rows, values[k] belonging to row indices[k]
    grad.shape    (V, D)          the dense shape

The dense gradient it stands for is zeros(V, D) with values[k] added at row indices[k]. A
backward pass produces it uncoalesced (one row per looked-up position, in position order);
coalesce() sums duplicates (through the embedding backward kernel, in position order) and
sorts the rows. Accumulation (a second backward before zero_grad) concatenates; adding a dense
array gives a dense array. optim.SGD and optim.SparseAdam update only the rows it names.
"""
import numpy as np

__all__ = ["RowSparse"]


class RowSparse:
    is_sparse = True
    __array_ufunc__ = None  # ndarray + RowSparse -> RowSparse.__radd__ (a dense result)

    def __init__(self, indices, values, shape, coalesced=False):
        self.indices = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
        self.values = np.ascontiguousarray(values, dtype=np.float32).reshape(len(self.indices), shape[1])
        self.shape = tuple(int(s) for s in shape)
        self._coalesced = bool(coalesced)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def ndim(self):
        return 2

    def nnz(self):
        return len(self.indices)

    def is_coalesced(self):
        return self._coalesced

    def coalesce(self):
        """The same gradient with sorted, unique indices (duplicate rows summed in position order)."""
        if self._coalesced:
            return self
        from . import ops
        rows, inverse = np.unique(self.indices, return_inverse=True)
        if len(rows) == len(self.indices):
            values = self.values[np.argsort(self.indices, kind="stable")]
        else:
            values = ops.embedding_backward(self.values, inverse.reshape(-1), len(rows))
        return RowSparse(rows, values, self.shape, coalesced=True)

    def to_dense(self):
        d = np.zeros(self.shape, np.float32)
        np.add.at(d, self.indices, self.values)
        return d

    def clone(self):
        return RowSparse(self.indices.copy(), self.values.copy(), self.shape, self._coalesced)

    def zero_(self):
        """Empty in place (torch's zero_() of a sparse gradient: no rows left)."""
        self.indices = np.zeros(0, np.int64)
        self.values = np.zeros((0, self.shape[1]), np.float32)
        self._coalesced = True
        return self

    def __add__(self, other):
        if isinstance(other, RowSparse):
            if other.shape != self.shape:
                raise ValueError(f"RowSparse: cannot add gradients of shapes {self.shape} and {other.shape}")
            return RowSparse(np.concatenate([self.indices, other.indices]),
                             np.concatenate([self.values, other.values]), self.shape)
        other = np.asarray(getattr(other, "data", other))
        if other.shape != self.shape:
            raise ValueError(f"RowSparse: cannot add a dense array of shape {other.shape} to a gradient of "
                             f"shape {self.shape}")
        d = np.array(other, dtype=np.result_type(other.dtype, np.float32), copy=True)
        np.add.at(d, self.indices, self.values)
        return d

    __radd__ = __add__

    def __repr__(self):
        return f"RowSparse(indices={self.indices!r}, values=<{self.values.shape} float32>, shape={self.shape})"
