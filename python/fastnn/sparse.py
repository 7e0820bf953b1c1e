"""RowSparse: the row-sparse gradient of a (V, D) weight that nn.Embedding(sparse=True) produces.

    grad.indices  int64 (N,)      rows of the weight (duplicates allowed: their rows add up)
    grad.values   float (N, D)    the gradient rows, values[k] belonging to row indices[k], in the
                                  weight's dtype (float32 or float64)
    grad.shape    (V, D)          the dense shape

The dense gradient it stands for is zeros(V, D) with values[k] added at row indices[k]. A
backward pass produces it uncoalesced (one row per looked-up position, in position order);
coalesce() sums duplicates (through the embedding backward kernel, in position order) and
sorts the rows. Accumulation (a second backward before zero_grad) concatenates; adding a dense
array gives a dense array. optim.SGD and optim.SparseAdam update only the rows it names.

indices and values are NumPy arrays, or CuPy arrays for a weight on a CUDA device (to(device)
moves them); on a device the dense forms go through the embedding backward kernel, which adds
the rows in position order as numpy.add.at does.
"""

import numpy as np

from . import _device as _dev
from ._device import xp as _xp

__all__ = ["RowSparse"]


class RowSparse:
    is_sparse = True
    __array_ufunc__ = None  # ndarray + RowSparse -> RowSparse.__radd__ (a dense result)
    __array_priority__ = 200  # CuPy's operators defer to the reflected ones too

    def __init__(self, indices, values, shape, coalesced=False):
        xp = _xp(values) if hasattr(values, "__cuda_array_interface__") else np
        self.indices = xp.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
        dt = values.dtype if getattr(values, "dtype", None) in (np.float32, np.float64) else np.float32
        self.values = xp.ascontiguousarray(values, dtype=dt).reshape(len(self.indices), shape[1])
        self.shape = tuple(int(s) for s in shape)
        self._coalesced = bool(coalesced)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def device(self):
        return _dev.device_of(self.values)

    def to(self, device):
        """This gradient on `device` (itself when it is there)."""
        d = _dev.as_device(device)
        if self.device == d:
            return self
        return RowSparse(_dev.move(self.indices, d), _dev.move(self.values, d), self.shape, self._coalesced)

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

        xp = _xp(self.values)
        rows, inverse = xp.unique(self.indices, return_inverse=True)
        if len(rows) == len(self.indices):  # unique already: a sort (stability moot)
            values = self.values[np.argsort(self.indices, kind="stable") if xp is np else xp.argsort(self.indices)]
        elif self.values.dtype == np.float64 and xp is np:
            values = xp.zeros((len(rows), self.shape[1]))
            np.add.at(values, inverse.reshape(-1), self.values)  # rows added in position order
        else:
            values = ops.embedding_backward(self.values, inverse.reshape(-1).astype(np.int64, copy=False), len(rows))
        return RowSparse(rows, values, self.shape, coalesced=True)

    def to_dense(self):
        if isinstance(self.values, np.ndarray):
            d = np.zeros(self.shape, self.values.dtype)
            np.add.at(d, self.indices, self.values)
            return d
        if not len(self.indices):
            return _xp(self.values).zeros(self.shape, self.values.dtype)
        from . import ops

        return ops.embedding_backward(self.values, self.indices, self.shape[0])

    def clone(self):
        return RowSparse(self.indices.copy(), self.values.copy(), self.shape, self._coalesced)

    def zero_(self):
        """Empty in place (torch's zero_() of a sparse gradient: no rows left)."""
        xp = _xp(self.values)
        self.indices = xp.zeros(0, np.int64)
        self.values = xp.zeros((0, self.shape[1]), self.values.dtype)
        self._coalesced = True
        return self

    def __add__(self, other):
        if isinstance(other, RowSparse):
            if other.shape != self.shape:
                raise ValueError(f"RowSparse: cannot add gradients of shapes {self.shape} and {other.shape}")
            _dev.check_same_device(self.values, other.values)
            xp = _xp(self.values)
            return RowSparse(
                xp.concatenate([self.indices, other.indices]), xp.concatenate([self.values, other.values]), self.shape
            )
        other = getattr(other, "_data", other)
        if not hasattr(other, "__cuda_array_interface__"):
            other = np.asarray(other)
        if other.shape != self.shape:
            raise ValueError(
                f"RowSparse: cannot add a dense array of shape {other.shape} to a gradient of shape {self.shape}"
            )
        _dev.check_same_device(self.values, other)
        dtype = np.result_type(other.dtype, self.values.dtype)
        if isinstance(other, np.ndarray):
            d = np.array(other, dtype=dtype, copy=True)
            np.add.at(d, self.indices, self.values)
            return d
        return other.astype(dtype) + self.to_dense()  # duplicate rows summed first (deterministic)

    __radd__ = __add__

    def __repr__(self):
        return (
            f"RowSparse(indices={self.indices!r}, values=<{self.values.shape} {self.values.dtype}>, shape={self.shape})"
        )
