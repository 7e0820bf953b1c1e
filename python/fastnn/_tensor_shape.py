"""Tensor's shape, indexing and linear-algebra functions with torch's signatures, dtypes and
gradients: split chunk narrow unbind gather scatter scatter_add index_select index_fill
masked_fill masked_select where nonzero tril triu flip roll repeat repeat_interleave expand_as
view_as reshape_as movedim swapaxes unflatten diag diagonal trace outer dot mm bmm einsum.

Results are copies (fastnn has no views): writing into a piece of split() does not change the
tensor it came from. Attached to Tensor by fastnn._tensor_api; einsum and where are
module-level only (and Tensor.where(condition, other)).
"""

import math
import operator
import string

import numpy as np

from . import _device as _dev
from . import _dtypes
from ._device import xp as _xp
from ._tensor_math import aligned, broadcast_shape, tensor_of
from ._tensor_reduce import _along
from .tensor import Tensor, _by_keyword, _dim, _shape_args, _strided_view, _unbroadcast, _view_or_copy, matmul


def _slice(self, d, start, stop):
    """self[..., start:stop, ...] on dim d (a copy), its gradient put back in place."""
    a = self._data
    xp = _xp(a)
    key = (slice(None),) * d + (slice(start, stop),)
    out, view = _view_or_copy(a[key], a, self)

    def backward(g):
        z = xp.zeros(a.shape, g.dtype)
        z[key] = g
        return (z,)

    return _strided_view(Tensor._result(out, (self,), backward, "slice"), view, self)


def _index_array(index, name, like):
    """The data of an integer index tensor (int64 or int32), on like's device."""
    t = tensor_of(index, like)
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int32 or int64 for index")
    return aligned(like, t)[1]._data


def _check_bounds(idx, n, d, name, error=RuntimeError):
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            if error is IndexError:
                raise IndexError("index out of range in self")
            raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {n}")


def _along_checks(a, d, idx, name, src=None):
    if idx.ndim != a.ndim:
        raise RuntimeError(
            f"Index tensor must have the same number of dimensions as {'self' if src is None else 'input'} tensor"
        )
    for i in range(a.ndim):
        if i != d and idx.shape[i] > a.shape[i]:
            raise RuntimeError(
                f"Size does not match at dimension {i} expected index {list(idx.shape)} to be no larger than self "
                f"{list(a.shape)} apart from dimension {d}"
            )
        if src is not None and idx.shape[i] > src.shape[i]:
            raise RuntimeError(
                f"Expected index {list(idx.shape)} to be no larger than src {list(src.shape)} at dimension {i}"
            )
    _check_bounds(idx, a.shape[d] if a.ndim else 1, d, name)


def _head(shape):
    """The key of the leading block of `shape` (src elements a scatter reads)."""
    return tuple(slice(0, n) for n in shape)


def _scatter_like(self, dim, index, src, name, add):
    a = self._data
    xp = _xp(a)
    d = _dim(dim, a.ndim)
    idx = _index_array(index, name, self)
    if isinstance(src, Tensor):
        src = aligned(self, src)[1]
        if src.dtype != a.dtype:
            raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
        if src.ndim != a.ndim:
            raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    elif add:
        raise TypeError(f"{name}(): argument 'src' must be Tensor, not {type(src).__name__}")
    _along_checks(a, d, idx, name, src._data if isinstance(src, Tensor) else None)
    if not a.ndim:
        a, idx = a.reshape(1), idx.reshape(1)
    where = _along(xp, idx.shape, d, idx)
    out = a.copy()
    parents = (self,)
    if isinstance(src, Tensor):
        s = src._data.reshape(1) if not src.ndim else src._data
        part = s[_head(idx.shape)]
        if add:
            _dev.scatter_add(out, where, part)
        else:
            out[where] = part
        parents = (self, src)
    else:
        out[where] = np.asarray(src, dtype=a.dtype)[()]
    shape = self.shape

    def backward(g):
        g = g.reshape(a.shape)
        gs = g
        if not add:
            gs = g.copy()
            gs[where] = 0
        grads = [gs.reshape(shape)]
        if len(parents) == 2:
            z = xp.zeros(src._data.reshape(-1).shape if not src.ndim else src.shape, g.dtype)
            z[_head(idx.shape)] = g[where]
            grads.append(z.reshape(src.shape))
        return tuple(grads)

    return Tensor._result(out.reshape(shape), parents, backward, name)


def _dims_arg(dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        return tuple(dims[0])
    return tuple(dims)


def _letters_check(dims, ndim, what="dims"):
    axes = tuple(_dim(d, ndim) for d in dims)
    if len(set(axes)) != len(axes):
        twice = next(d for d in axes if axes.count(d) > 1)
        raise RuntimeError(f"dim {twice} appears multiple times in the list of {what}")
    return axes


class ShapeMethods:
    """Splitting, gathering and scattering, masks, triangles, flips and rolls, repeats, dim
    moves, diagonals and products."""

    def split(self, split_size, dim=0):
        """Pieces along dim: of split_size each (the last smaller), or of the sizes in a list."""
        split_size_or_sections = split_size
        a = self._data
        d = _dim(dim, a.ndim)
        n = a.shape[d] if a.ndim else 0
        if isinstance(split_size_or_sections, (list, tuple)):
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise RuntimeError(
                    f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at dimension "
                    f"{d}), but got split_sizes={sizes}"
                )
        else:
            size = operator.index(split_size_or_sections)
            if size < 0:
                raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
            if size == 0:
                if n:
                    raise RuntimeError(
                        f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}"
                    )
                return (self.clone(),)
            sizes = [min(size, n - i) for i in range(0, n, size)] or [0]
        bounds = np.cumsum([0] + sizes)
        return tuple(_slice(self, d, int(bounds[i]), int(bounds[i + 1])) for i in range(len(sizes)))

    def chunk(self, chunks, dim=0):
        """split into pieces of ceil(size / chunks) along dim (there may be fewer than chunks)."""
        chunks = operator.index(chunks)
        if chunks <= 0:
            raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        d = _dim(dim, self.ndim)
        n = self.shape[d]
        if n == 0:
            return tuple(_slice(self, d, 0, 0) for _ in range(chunks))
        return self.split(-(-n // chunks), d)

    def narrow(self, dim, start, length):
        """The length elements from start (negative: from the end) along dim."""
        a = self._data
        d = _dim(dim, a.ndim)
        n = a.shape[d]
        start, length = operator.index(start), operator.index(length)
        if not -n <= start <= n:
            raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got {start})")
        start = start % n if start < 0 else start
        if length < 0 or start + length > n:
            raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
        return _slice(self, d, start, start + length)

    def unbind(self, dim=0):
        """The slices along dim, that dim removed."""
        if not self.ndim:
            raise IndexError("Dimension specified as 0 but tensor has no dimensions")
        d = _dim(dim, self.ndim)
        return tuple(_slice(self, d, i, i + 1).squeeze(d) for i in range(self.shape[d]))

    def gather(self, dim, index, *, sparse_grad=False):
        """out[i][j] = self[index[i][j]][j] (dim 0; likewise for any dim): index is an int64 or
        int32 tensor with self's number of dims, no larger than self on the other dims."""
        a = self._data
        xp = _xp(a)
        d = _dim(dim, a.ndim)
        idx = _index_array(index, "gather", self)
        _along_checks(a, d, idx, "gather")
        if not a.ndim:
            return Tensor._result(a.copy(), (self,), lambda g: (g,), "gather")
        where = _along(xp, idx.shape, d, idx)
        out = a[where]

        def backward(g):
            z = xp.zeros(a.shape, g.dtype)
            _dev.scatter_add(z, where, g)
            return (z,)

        return Tensor._result(out, (self,), backward, "gather")

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        """A copy of self with src's elements (or a number) written at index along dim:
        out[index[i][j]][j] = src[i][j] (dim 0). src must have self's dtype. reduce= is not
        supported (use scatter_add)."""
        if reduce is not None:
            raise NotImplementedError("fastnn: scatter(reduce=...) is not supported; use scatter_add")
        if src is None:
            src = value
        if src is None:
            raise TypeError("scatter(): expected src (a tensor) or value (a number)")
        return _scatter_like(self, dim, index, src, "scatter", add=False)

    def scatter_add(self, dim, index, src):
        """A copy of self with src's elements added at index along dim (repeated indices add)."""
        return _scatter_like(self, dim, index, src, "scatter_add", add=True)

    def index_select(self, dim, index):
        """The slices at index (a 1-d or 0-d int64/int32 tensor) along dim."""
        a = self._data
        xp = _xp(a)
        d = _dim(dim, a.ndim)
        idx = _index_array(index, "index_select", self)
        if idx.ndim > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        idx = idx.reshape(-1)
        _check_bounds(idx, a.shape[d] if a.ndim else 1, d, "index_select", IndexError)
        if not a.ndim:
            return Tensor._result(a.copy(), (self,), lambda g: (g.reshape(()),), "index_select")
        out = xp.take(a, idx, axis=d)
        key = (slice(None),) * d + (idx,)

        def backward(g):
            z = xp.zeros(a.shape, g.dtype)
            _dev.scatter_add(z, key, g)
            return (z,)

        return Tensor._result(out, (self,), backward, "index_select")

    def index_fill(self, dim, index, value):
        """A copy of self with the slices at index along dim set to value (a number or a 0-d
        tensor)."""
        a = self._data
        d = _dim(dim, a.ndim)
        idx = _index_array(index, "index_fill", self).reshape(-1)
        _check_bounds(idx, a.shape[d] if a.ndim else 1, d, "index_fill", IndexError)
        key = (slice(None),) * d + (idx,) if a.ndim else ()
        out = a.copy()
        parents = (self,)
        if isinstance(value, Tensor):
            if value.ndim:
                raise RuntimeError(
                    f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with {value.ndim} dimension(s)."
                )
            v = aligned(self, value)[1]
            out[key] = v._data.astype(a.dtype)
            parents = (self, v)
        else:
            out[key] = np.asarray(value, dtype=a.dtype)[()]

        def backward(g):
            gs = g.copy()
            gs[key] = 0
            if len(parents) == 1:
                return (gs,)
            return gs, g[key].sum().astype(parents[1].dtype)

        return Tensor._result(out, parents, backward, "index_fill")

    def masked_fill(self, mask, value):
        """self with value (a number or a 0-d tensor, cast to self's dtype) where the bool mask
        (broadcast with self) is True."""
        m = tensor_of(mask, self)
        if m.dtype != np.bool_:
            raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {m.dtype}")
        m = aligned(self, m)[1]
        a, c = self._data, m._data
        xp = _xp(a)
        shape = broadcast_shape(a.shape, c.shape)
        parents = (self,)
        if isinstance(value, Tensor):
            if value.ndim:
                raise RuntimeError(
                    f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with {value.ndim} dimension(s)."
                )
            v = aligned(self, value)[1]
            fill = v._data.astype(a.dtype)
            parents = (self, v)
        else:
            fill = xp.asarray(np.asarray(value).astype(a.dtype))
        out = xp.where(c, fill, a)
        if out.shape != shape:
            out = xp.broadcast_to(out, shape).copy()

        def backward(g):
            zero = xp.zeros((), g.dtype)
            ga = _unbroadcast(xp.where(c, zero, g), a.shape)
            if len(parents) == 1:
                return (ga,)
            return ga, xp.where(c, g, zero).sum().astype(parents[1].dtype)

        return Tensor._result(out, parents, backward, "masked_fill")

    def masked_select(self, mask):
        """The elements where the bool mask (broadcast with self) is True, as a 1-d tensor."""
        m = tensor_of(mask, self)
        if m.dtype != np.bool_:
            raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {m.dtype}")
        m = aligned(self, m)[1]
        a = self._data
        xp = _xp(a)
        shape = broadcast_shape(a.shape, m._data.shape)
        ab, cb = xp.broadcast_to(a, shape), xp.broadcast_to(m._data, shape)
        out = ab[cb]

        def backward(g):
            z = xp.zeros(shape, g.dtype)
            z[cb] = g
            return (_unbroadcast(z, a.shape),)

        return Tensor._result(out, (self,), backward, "masked_select")

    def where(self, condition, other):
        """where(condition, self, other)."""
        return where(condition, self, other)

    def nonzero(self, *, as_tuple=False):
        """The indices of the nonzero elements: an (N, ndim) int64 tensor, or (as_tuple) one
        1-d tensor per dim."""
        a = self._data
        xp = _xp(a)
        if not a.ndim:
            a = a.reshape(1)
        idx = xp.nonzero(a)
        if as_tuple:
            return tuple(Tensor(i.astype(np.int64), dtype=np.int64) for i in idx)
        return Tensor(xp.stack(idx, axis=1).astype(np.int64) if idx else xp.zeros((0, 0), np.int64), dtype=np.int64)

    def argwhere(self):
        """nonzero() (an (N, ndim) int64 tensor)."""
        return self.nonzero()

    def _triangle(self, diagonal, name):
        a = self._data
        if a.ndim < 2:
            raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
        xp = _xp(a)
        fn = getattr(xp, name)
        k = operator.index(diagonal)
        return Tensor._result(fn(a, k), (self,), lambda g: (fn(g, k),), name)

    def tril(self, diagonal=0):
        """The lower triangle of the last two dims (elements on or below the diagonal-th
        diagonal), the rest zero."""
        return self._triangle(diagonal, "tril")

    def triu(self, diagonal=0):
        """The upper triangle of the last two dims (on or above the diagonal-th diagonal)."""
        return self._triangle(diagonal, "triu")

    def flip(self, *dims, **kwargs):
        """self reversed along dims (flip(0, 1), flip((0, 1)) or flip(dims=(0, 1)))."""
        a = self._data
        axes = _letters_check(_dims_arg(_by_keyword(dims, kwargs, "dims", "flip") if kwargs else dims), a.ndim)
        if not a.ndim or not axes:
            return Tensor._result(a.copy(), (self,), lambda g: (g,), "flip")
        xp = _xp(a)
        out = xp.ascontiguousarray(xp.flip(a, axis=axes))
        return Tensor._result(out, (self,), lambda g: (xp.ascontiguousarray(xp.flip(g, axis=axes)),), "flip")

    def roll(self, shifts, dims=None):
        """self rolled by shifts along dims (None: the flattened tensor, reshaped back)."""
        a = self._data
        xp = _xp(a)
        if dims is None or (isinstance(dims, (tuple, list)) and not dims):
            if isinstance(shifts, (tuple, list)):
                if len(shifts) != 1:
                    raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
                shifts = shifts[0]
            s = operator.index(shifts)
            out = xp.roll(a.reshape(-1), s).reshape(a.shape)
            return Tensor._result(out, (self,), lambda g: (xp.roll(g.reshape(-1), -s).reshape(a.shape),), "roll")
        sh = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
        dm = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if len(sh) != len(dm):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(sh)}, dims:{len(dm)}")
        axes = tuple(_dim(d, a.ndim) for d in dm)
        sh = tuple(operator.index(s) for s in sh)
        if not a.ndim:
            return Tensor._result(a.copy(), (self,), lambda g: (g,), "roll")
        out = xp.roll(a, sh, axis=axes)
        return Tensor._result(out, (self,), lambda g: (xp.roll(g, tuple(-s for s in sh), axis=axes),), "roll")

    def repeat(self, *sizes, **kwargs):
        """self tiled sizes[i] times along each dim (more sizes than dims add leading dims)."""
        sizes = _shape_args(_by_keyword(sizes, kwargs, "repeats", "repeat") if kwargs else sizes)
        a = self._data
        if len(sizes) < a.ndim:
            raise RuntimeError(
                "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"
            )
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"Trying to create tensor with negative dimension: {list(sizes)}")
        xp = _xp(a)
        base = a.reshape((1,) * (len(sizes) - a.ndim) + a.shape)
        out = xp.tile(base, sizes) if sizes else a.copy()

        def backward(g):
            if not sizes:
                return (g,)
            split = []
            for r, n in zip(sizes, base.shape):
                split += [r, n]
            gg = g.reshape(split).sum(axis=tuple(range(0, 2 * len(sizes), 2)))
            return (gg.reshape(a.shape),)

        return Tensor._result(out, (self,), backward, "repeat")

    def repeat_interleave(self, repeats=None, dim=None, *, output_size=None):
        """Each element (dim None: of the flattened tensor) or slice along dim repeated
        repeats times (a number, or a tensor of one count per slice)."""
        a = self._data
        x = self if dim is not None else self.reshape(-1)
        d = _dim(dim, a.ndim) if dim is not None else 0
        if not x.ndim:
            x = x.reshape(1)
        n = x.shape[d]
        if isinstance(repeats, Tensor):
            reps = _dev.to_host(repeats._data).astype(np.int64).reshape(-1)
            if reps.size == 1:
                reps = np.full(n, reps[0])
            elif reps.size != n:
                raise RuntimeError(
                    f"repeats must have the same size as input along dim, but got repeats.size(0) = {reps.size} and "
                    f"input.size({d}) = {n}"
                )
        else:
            reps = np.full(n, operator.index(repeats), np.int64)
        if (reps < 0).any():
            raise RuntimeError("repeats can not be negative")
        idx = np.repeat(np.arange(n), reps)
        if output_size is not None and idx.size != output_size:
            raise RuntimeError(f"repeat_interleave: output_size {output_size} does not match the repeats ({idx.size})")
        return x.index_select(d, Tensor(_dev.move(idx, _dev.device_of(a)), dtype=np.int64))

    def expand_as(self, other):
        """self expanded to other's shape."""
        return self.expand(*other.shape)

    def view_as(self, other):
        """self with other's shape."""
        return self.view(*other.shape)

    def reshape_as(self, other):
        """self reshaped to other's shape."""
        return self.reshape(*other.shape)

    def movedim(self, source, destination):
        """self with its dims at source (an int or a sequence) moved to destination."""
        n = self.ndim
        src = tuple(source) if isinstance(source, (tuple, list)) else (source,)
        dst = tuple(destination) if isinstance(destination, (tuple, list)) else (destination,)
        if len(src) != len(dst):
            raise RuntimeError(
                f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain the same number "
                f"of dims as destination ({list(dst)} dims)"
            )
        src = _letters_check(src, n, "source")
        dst = _letters_check(dst, n, "destination")
        if not n:
            return Tensor._result(self._data.copy(), (self,), lambda g: (g,), "movedim")
        order = [i for i in range(n) if i not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.permute(*order)

    moveaxis = movedim

    def swapaxes(self, axis0, axis1):
        """self with dims axis0 and axis1 exchanged (transpose)."""
        n = self.ndim
        d0, d1 = _dim(axis0, n), _dim(axis1, n)
        if not n:
            return Tensor._result(self._data.copy(), (self,), lambda g: (g,), "swapaxes")
        return self.transpose(d0, d1)

    def swapdims(self, dim0, dim1):
        """self with dims dim0 and dim1 exchanged (swapaxes under torch's other names)."""
        return self.swapaxes(dim0, dim1)

    def unflatten(self, dim, sizes):
        """dim split into dims of sizes (one of them may be -1)."""
        d = _dim(dim, self.ndim)
        sizes = tuple(int(s) for s in sizes)
        n = self.shape[d]
        known = math.prod(s for s in sizes if s != -1)
        if sizes.count(-1) > 1 or (-1 not in sizes and known != n) or (-1 in sizes and (known == 0 or n % known)):
            raise RuntimeError(
                f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} ({n}) in the input tensor"
            )
        sizes = tuple(n // known if s == -1 else s for s in sizes)
        return self.reshape(*(self.shape[:d] + sizes + self.shape[d + 1 :]))

    def diag(self, diagonal=0):
        """A 1-d tensor as the diagonal-th diagonal of a square matrix, or a matrix's
        diagonal-th diagonal as a 1-d tensor."""
        a = self._data
        xp = _xp(a)
        k = operator.index(diagonal)
        if a.ndim == 1:
            n = a.shape[0] + abs(k)
            rows = xp.arange(a.shape[0]) + max(-k, 0)
            cols = xp.arange(a.shape[0]) + max(k, 0)
            out = xp.zeros((n, n), a.dtype)
            out[rows, cols] = a
            return Tensor._result(out, (self,), lambda g: (g[rows, cols],), "diag")
        if a.ndim == 2:
            return self.diagonal(k)
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {a.ndim}D")

    def diagonal(self, offset=0, dim1=0, dim2=1):
        """The offset-th diagonal of the matrices on dims dim1, dim2, as the last dim."""
        a = self._data
        xp = _xp(a)
        d1, d2 = _dim(dim1, a.ndim), _dim(dim2, a.ndim)
        if d1 == d2:
            raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
        k = operator.index(offset)
        out = xp.ascontiguousarray(xp.diagonal(a, k, d1, d2))
        m = out.shape[-1]
        rows = xp.arange(m) + max(-k, 0)
        cols = xp.arange(m) + max(k, 0)

        def backward(g):
            z = xp.zeros(a.shape, g.dtype)
            xp.moveaxis(z, (d1, d2), (-2, -1))[..., rows, cols] = g
            return (z,)

        return Tensor._result(out, (self,), backward, "diagonal")

    def trace(self):
        """The sum of a matrix's diagonal (integers give int64)."""
        if self.ndim != 2:
            raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {self.ndim}")
        return self.diagonal().sum()

    def outer(self, vec2):
        """The outer product of two 1-d tensors, in their promoted dtype."""
        v = tensor_of(vec2, self)
        if self.ndim != 1 or v.ndim != 1:
            raise RuntimeError(f"outer: expected 1D tensors, but got {self.ndim}D and {v.ndim}D tensors")
        from ._tensor_math import common

        x, y = common(*aligned(self, v))
        return x.reshape(-1, 1) * y.reshape(1, -1)

    ger = outer

    def dot(self, tensor):
        """The inner product of two 1-d tensors of one dtype and length."""
        v = tensor_of(tensor, self)
        if self.ndim != 1 or v.ndim != 1:
            raise RuntimeError(f"1D tensors expected, but got {self.ndim}D and {v.ndim}D tensors")
        if self.dtype != v.dtype:
            raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {self.dtype} and {v.dtype}")
        if self.shape != v.shape:
            raise RuntimeError(
                f"inconsistent tensor size, expected tensor [{self.shape[0]}] and src [{v.shape[0]}] to have the same "
                f"number of elements, but got {self.shape[0]} and {v.shape[0]} elements respectively"
            )
        x, y = aligned(self, v)
        a, b = x._data, y._data
        xp = _xp(a)
        out = xp.asarray(xp.dot(a, b), dtype=a.dtype)
        return Tensor._result(out, (x, y), lambda g: (g * b, g * a), "dot")

    def mm(self, mat2):
        """The matrix product of two 2-d tensors of one dtype."""
        m = tensor_of(mat2, self)
        if self.ndim != 2:
            raise RuntimeError("self must be a matrix")
        if m.ndim != 2:
            raise RuntimeError("mat2 must be a matrix")
        if self.dtype != m.dtype:
            raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {self.dtype} != {m.dtype}")
        if self.shape[1] != m.shape[0]:
            (p, q), (r, s) = self.shape, m.shape
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({p}x{q} and {r}x{s})")
        return matmul(self, m)

    def bmm(self, mat2):
        """Batched matrix products of two 3-d tensors of one dtype (b, n, m) @ (b, m, p)."""
        m = tensor_of(mat2, self)
        if self.ndim != 3:
            raise RuntimeError("batch1 must be a 3D tensor")
        if m.ndim != 3:
            raise RuntimeError("batch2 must be a 3D tensor")
        if self.dtype != m.dtype:
            raise RuntimeError(f"expected scalar type {self.dtype} but found {m.dtype}")
        b, _, k = self.shape
        if m.shape[:2] != (b, k):
            raise RuntimeError(
                f"Expected size for first two dimensions of batch2 tensor to be: [{b}, {k}] but got: "
                f"[{m.shape[0]}, {m.shape[1]}]."
            )
        return matmul(self, m)


def where(condition, input=None, other=None):
    """where(condition, input, other): input where the bool condition is True, else other
    (tensors or numbers, broadcast; torch's promoted dtype, numbers weak); where(condition):
    condition.nonzero(as_tuple=True)."""
    c = tensor_of(condition)
    if input is None and other is None:
        return c.nonzero(as_tuple=True)
    if c.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype {c.dtype}")
    tensors = [t for t in (input, other) if isinstance(t, Tensor)]
    c, *tensors = aligned(c, *tensors)
    xp = _xp(c._data)
    dev = _dev.device_of(c._data)
    x = tensors.pop(0) if isinstance(input, Tensor) else input
    y = tensors.pop(0) if isinstance(other, Tensor) else other
    dt = _dtypes.result_type(*(v._data if isinstance(v, Tensor) else v for v in (x, y)))

    def arr(v):
        if isinstance(v, Tensor):
            return v._data if v.dtype == dt else v._data.astype(dt)
        return _dev.move(np.asarray(v, dtype=dt), dev)

    a, b = arr(x), arr(y)
    broadcast_shape(c._data.shape, a.shape, b.shape)
    out = xp.where(c._data, a, b)
    cond = c._data
    parents = tuple(v for v in (x, y) if isinstance(v, Tensor))

    def backward(g):
        zero = xp.zeros((), g.dtype)
        grads = []
        if isinstance(x, Tensor):
            grads.append(_unbroadcast(xp.where(cond, g, zero), x.shape).astype(x.dtype, copy=False))
        if isinstance(y, Tensor):
            grads.append(_unbroadcast(xp.where(cond, zero, g), y.shape).astype(y.dtype, copy=False))
        return tuple(grads)

    return Tensor._result(out, parents, backward, "where")


# -- einsum -------------------------------------------------------------------------------------
def _einsum_terms(equation, operands):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(
            f"einsum(): {'more' if len(operands) > len(terms) else 'fewer'} operands were provided than specified in "
            "the equation"
        )
    for ch in eq.replace("->", "").replace(",", "").replace("...", ""):
        if ch not in string.ascii_letters:
            raise RuntimeError(f"einsum(): invalid subscript given at index {eq.index(ch)} in the equation string")
    used = set(eq)
    free = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for t, op in zip(terms, operands):
        if "..." in t:
            n_ell = max(n_ell, op.ndim - (len(t) - 3))
    ell = "".join(free[:n_ell])
    expanded = []
    for i, (t, op) in enumerate(zip(terms, operands)):
        if "..." in t:
            k = op.ndim - (len(t) - 3)
            if k < 0:
                raise RuntimeError(
                    f"einsum(): the number of subscripts in the equation ({len(t) - 3}) is more than the number of dimensions ({op.ndim}) for operand {i}"
                )
            t = t.replace("...", ell[n_ell - k :])
        elif len(t) != op.ndim:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({len(t)}) does not match the number of dimensions "
                f"({op.ndim}) for operand {i} and no ellipsis was given"
            )
        expanded.append(t)
    if arrow:
        out = rhs.replace("...", ell)
        for c in out:
            if c not in "".join(expanded):
                raise RuntimeError(
                    f"einsum(): output subscript {c} does not appear in the equation for any input operand"
                )
            if out.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    else:
        joined = "".join(expanded)
        out = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in ell))
    return expanded, out


def einsum(equation, *operands):
    """numpy.einsum with torch's equation rules (letters, '...' broadcast, implicit output in
    alphabetical order) and a gradient for every operand; operands of one dtype, given one by
    one or as a list. The sublist form is not supported."""
    if not isinstance(equation, str):
        raise NotImplementedError("fastnn.einsum: only the equation-string form is supported")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ops = aligned(*(tensor_of(o) for o in operands))
    for t in ops[1:]:
        if t.dtype != ops[0].dtype:
            raise RuntimeError(f"expected scalar type {ops[0].dtype} but found {t.dtype}")
    terms, out = _einsum_terms(equation, ops)
    size = {}
    for i, (t, op) in enumerate(zip(terms, ops)):
        for c, n in zip(t, op.shape):
            if c in size and size[c] != n and n != 1 and size[c] != 1:
                raise RuntimeError(
                    f"einsum(): subscript {c} has size {n} for operand {i} which does not broadcast with previously "
                    f"seen size {size[c]}"
                )
            if c not in size or size[c] == 1:
                size[c] = n
    xp = _xp(ops[0]._data)
    arrays = []
    for t, op in zip(terms, ops):
        full = tuple(size[c] for c in t)
        arrays.append(op._data if op.shape == full else xp.broadcast_to(op._data, full))
    result = xp.asarray(xp.einsum(",".join(terms) + "->" + out, *arrays))

    def backward(g):
        grads = []
        for k, (t, op) in enumerate(zip(terms, ops)):
            if not op.requires_grad:
                grads.append(None)
                continue
            others = [terms[j] for j in range(len(ops)) if j != k]
            other_arrays = [arrays[j] for j in range(len(ops)) if j != k]
            uniq = "".join(dict.fromkeys(t))
            present = set(out) | set("".join(others))
            keep = "".join(c for c in uniq if c in present)
            gk = xp.einsum(",".join([out] + others) + "->" + keep, g, *other_arrays)
            gk = gk.reshape(tuple(size[c] if c in keep else 1 for c in uniq))
            gk = xp.broadcast_to(gk, tuple(size[c] for c in uniq))
            if len(uniq) != len(t):  # a letter repeated in the term: the gradient on its diagonal
                z = xp.zeros(tuple(size[c] for c in t), g.dtype)
                key = tuple(xp.arange(size[c]).reshape((-1,) + (1,) * (len(uniq) - uniq.index(c) - 1)) for c in t)
                z[key] = gk
                gk = z
            else:
                gk = xp.ascontiguousarray(gk)
            # dims of size 1 that the operand broadcast
            axes = tuple(i for i, n in enumerate(op.shape) if n == 1 and gk.shape[i] != 1)
            if axes:
                gk = gk.sum(axis=axes, keepdims=True)
            grads.append(gk.astype(op.dtype, copy=False))
        return tuple(grads)

    return Tensor._result(result, tuple(ops), backward, "einsum")
