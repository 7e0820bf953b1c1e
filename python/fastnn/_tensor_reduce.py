"""Tensor's reductions and sorts beyond tensor.py's sum/mean/max/min/argmax/argmin, with torch's
signatures, result dtypes and gradients: prod, std, var, amax, amin, norm, logsumexp, cumsum,
cumprod, all, any, count_nonzero, sort, argsort, topk, median.

A dim out of range is torch's IndexError; a 0-d tensor takes dim 0 or -1. The (values,
indices) results are fastnn.return_types named tuples. Attached to Tensor by
fastnn._tensor_api.
"""

import math
import warnings

import numpy as np

from . import _dtypes
from . import return_types as _rt
from ._device import xp as _xp
from .tensor import Tensor, _axes, _dim


def _reduced_count(shape, axis):
    return math.prod(shape) if axis is None else math.prod(shape[i] for i in axis)


def _restore(xp, g, axis, keepdim, ndim):
    """A reduction's gradient (or result) with the reduced axes back as size 1."""
    if keepdim or axis is None and not ndim:
        return g
    if axis is None:
        return g.reshape((1,) * ndim)
    return xp.expand_dims(g, axis)


def _one_axis(dim, ndim):
    """The axis of an int dim for a reduction along one dim (None for a 0-d tensor)."""
    d = _dim(dim, ndim)
    return d if ndim else None


def _check_nonempty(a, axis, name):
    if a.size:
        return
    axes = range(a.ndim) if axis is None else axis
    for i in axes:
        if a.shape[i] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {i} to have non-zero size.")
    if axis is None:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")


def _exclusive_products(xp, y):
    """For y along its last axis: the product of all other elements at each position, with no
    division (exact where y has zeros): prefix products times suffix products."""
    ones = xp.ones(y.shape[:-1] + (1,), y.dtype)
    pre = xp.concatenate([ones, xp.cumprod(y, axis=-1)[..., :-1]], axis=-1)
    rev = y[..., ::-1]
    suf = xp.concatenate([ones, xp.cumprod(rev, axis=-1)[..., :-1]], axis=-1)[..., ::-1]
    return pre * suf


def _along(xp, shape, dim, index):
    """The index tuple that picks index (of `shape`) along dim and the element's own position on
    every other dim."""
    out = []
    for d, n in enumerate(shape):
        if d == dim:
            out.append(index)
        else:
            out.append(xp.arange(n).reshape((-1,) + (1,) * (len(shape) - d - 1)))
    return tuple(out)


def _var_parts(self, dim, unbiased, keepdim, correction, name):
    if isinstance(dim, bool):  # var(True): the unbiased flag given by position
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{name}(): give unbiased or correction, not both")
    c = correction if correction is not None else (1 if unbiased in (None, True) else 0)
    a = self._data
    if a.dtype.kind != "f":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    axis = _axes(dim, a.ndim)
    n = _reduced_count(a.shape, axis)
    dof = n - c
    if dof <= 0:
        warnings.warn(
            f"{name}(): degrees of freedom is <= 0. Correction should be strictly less than the reduction factor "
            "(input numel divided by output numel).",
            UserWarning,
            stacklevel=3,
        )
    xp = _xp(a)
    mean = a.mean(axis=axis, keepdims=True) if a.size else xp.zeros((1,) * a.ndim, a.dtype)
    d = a - mean
    with np.errstate(all="ignore"):
        var = xp.asarray((d * d).sum(axis=axis, keepdims=keepdim) / a.dtype.type(max(dof, 0)))
    return a, xp, axis, d, var, a.dtype.type(max(dof, 0))


class ReductionMethods:
    """prod std var amax amin norm logsumexp cumsum cumprod all any count_nonzero sort argsort
    topk median."""

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        """The product of all elements, or along dim (int and bool give int64, as torch)."""
        a = self._data
        xp = _xp(a)
        dt = np.dtype(dtype) if dtype is not None else (a.dtype if a.dtype.kind == "f" else np.dtype(np.int64))
        x = a if a.dtype == dt else a.astype(dt)
        axis = None if dim is None else _one_axis(dim, a.ndim)
        keep = keepdim and dim is not None
        out = xp.asarray(x.prod(axis=axis, keepdims=keep))

        def backward(g):
            if axis is None:
                others = _exclusive_products(xp, x.reshape(1, -1)).reshape(x.shape)
                return ((g * others).astype(a.dtype, copy=False),)
            y = xp.moveaxis(x, axis, -1)
            others = xp.moveaxis(_exclusive_products(xp, y), -1, axis)
            gg = g if keep else xp.expand_dims(g, axis)
            return ((gg * others).astype(a.dtype, copy=False),)

        return Tensor._result(out, (self,), backward, "prod")

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """The variance over dim (None: all), divided by N - correction (default 1; unbiased=False:
        0). Floats only; N - correction <= 0 warns, as torch, and gives inf or NaN."""
        a, xp, axis, d, var, dof = _var_parts(self, dim, unbiased, keepdim, correction, "var")

        def backward(g):
            return (_restore(xp, g, axis, keepdim, a.ndim) * (2 * d / dof),)

        return Tensor._result(var, (self,), backward, "var")

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """The square root of var(dim, unbiased, keepdim, correction=); gradient zero where the
        result is 0, as torch."""
        a, xp, axis, d, var, dof = _var_parts(self, dim, unbiased, keepdim, correction, "std")
        out = xp.sqrt(var)

        def backward(g):
            with np.errstate(all="ignore"):
                s = xp.where(out == 0, xp.zeros((), g.dtype), g / (out * dof))
            return (_restore(xp, s, axis, keepdim, a.ndim) * d,)

        return Tensor._result(out, (self,), backward, "std")

    def _amaxmin(self, dim, keepdim, name):
        a = self._data
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        _check_nonempty(a, axis, name)
        out = xp.asarray((a.max if name == "amax" else a.min)(axis=axis, keepdims=keepdim))

        def backward(g):
            # as torch: shared evenly by the elements equal to the result
            hit = a == _restore(xp, out, axis, keepdim, a.ndim)
            count = hit.sum(axis=axis, keepdims=True).astype(g.dtype)
            return (_restore(xp, g, axis, keepdim, a.ndim) * hit / count,)

        return Tensor._result(out, (self,), backward, name)

    def amax(self, dim=(), keepdim=False):
        """The largest element over dim (an int or a sequence; () or None: all of them)."""
        return self._amaxmin(dim, keepdim, "amax")

    def amin(self, dim=(), keepdim=False):
        """The smallest element over dim (an int or a sequence; () or None: all of them)."""
        return self._amaxmin(dim, keepdim, "amin")

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The vector p-norm over dim (None: all elements): p a number, inf or -inf (max / min of
        |x|), 0 (the count of nonzero elements) or "fro" (2). Floats only; "nuc" is not
        supported."""
        x = self if dtype is None else self.to(dtype)
        a = x._data
        if a.dtype.kind != "f":
            raise RuntimeError(
                f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {a.dtype}"
            )
        if isinstance(p, str):
            if p != "fro":
                raise NotImplementedError(f"fastnn.norm: p={p!r} is not supported (numbers, inf, -inf and 'fro' are)")
            p = 2
        p = float(p)
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        ab = xp.abs(a)
        with np.errstate(all="ignore"):
            if p == 2:
                out = xp.sqrt((a * a).sum(axis=axis, keepdims=keepdim))
            elif p == 1:
                out = ab.sum(axis=axis, keepdims=keepdim)
            elif math.isinf(p):
                _check_nonempty(a, axis, "linalg.vector_norm")
                out = (ab.max if p > 0 else ab.min)(axis=axis, keepdims=keepdim)
            elif p == 0:
                out = (a != 0).sum(axis=axis, keepdims=keepdim).astype(a.dtype)
            else:
                out = (ab**p).sum(axis=axis, keepdims=keepdim) ** (1 / p)
        out = xp.asarray(out, dtype=a.dtype)

        def backward(g):
            gk = _restore(xp, g, axis, keepdim, a.ndim)
            nk = _restore(xp, out, axis, keepdim, a.ndim)
            zero = xp.zeros((), g.dtype)
            with np.errstate(all="ignore"):
                if p == 2:
                    d = xp.where(nk == 0, zero, gk / nk) * a
                elif p == 1:
                    d = gk * xp.sign(a)
                elif math.isinf(p):
                    hit = ab == nk
                    d = gk * xp.sign(a) * hit / hit.sum(axis=axis, keepdims=True).astype(g.dtype)
                elif p == 0:
                    d = xp.zeros(a.shape, g.dtype)
                else:
                    scaled = xp.where(a == 0, zero, xp.sign(a) * ab ** (p - 1))
                    d = scaled * xp.where(nk == 0, zero, gk / nk ** (p - 1))
            return (d,)

        return Tensor._result(out, (x,), backward, "norm")

    def logsumexp(self, dim, keepdim=False):
        """log(sum(exp(x))) over dim, shifted by the maximum (inf and -inf maxima are not
        shifted, as torch); integer inputs give float32."""
        x = self if self.dtype.kind == "f" else self.to(_dtypes.float_of(self.dtype))
        a = x._data
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        with np.errstate(all="ignore"):
            m = a.max(axis=axis, keepdims=True) if a.size else xp.zeros((1,) * a.ndim, a.dtype)
            m = xp.where(xp.isinf(m), xp.zeros((), a.dtype), m)
            s = xp.log(xp.exp(a - m).sum(axis=axis, keepdims=True)) + m
        out = xp.asarray(s if keepdim or axis is None and not a.ndim else s.reshape(_kept_shape(a.shape, axis)))

        def backward(g):
            with np.errstate(all="ignore"):
                return (_restore(xp, g, axis, keepdim, a.ndim) * xp.exp(a - s),)

        return Tensor._result(out, (x,), backward, "logsumexp")

    def cumsum(self, dim, *, dtype=None):
        """Running sums along dim (int and bool give int64, as torch)."""
        a = self._data
        xp = _xp(a)
        dt = np.dtype(dtype) if dtype is not None else (a.dtype if a.dtype.kind == "f" else np.dtype(np.int64))
        d = _one_axis(dim, a.ndim)
        x = a if a.dtype == dt else a.astype(dt)
        if d is None:
            return Tensor._result(x.copy(), (self,), lambda g: (g.astype(a.dtype),), "cumsum")
        out = xp.cumsum(x, axis=d)

        def backward(g):
            r = xp.flip(xp.cumsum(xp.flip(g, axis=d), axis=d), axis=d)
            return (r.astype(a.dtype, copy=False),)

        return Tensor._result(out, (self,), backward, "cumsum")

    def cumprod(self, dim, *, dtype=None):
        """Running products along dim (int and bool give int64); the gradient is exact where the
        input has zeros."""
        a = self._data
        xp = _xp(a)
        dt = np.dtype(dtype) if dtype is not None else (a.dtype if a.dtype.kind == "f" else np.dtype(np.int64))
        d = _one_axis(dim, a.ndim)
        x = a if a.dtype == dt else a.astype(dt)
        if d is None:
            return Tensor._result(x.copy(), (self,), lambda g: (g.astype(a.dtype),), "cumprod")
        out = xp.cumprod(x, axis=d)

        def backward(g):
            y, gy, oy = (xp.moveaxis(v, d, -1) for v in (x, g, out))
            n = y.shape[-1]
            if n == 0:
                return (xp.zeros(a.shape, a.dtype),)
            if bool((y != 0).all()):
                # d out_j / d y_i = out_j / y_i for j >= i
                r = xp.flip(xp.cumsum(xp.flip(gy * oy, axis=-1), axis=-1), axis=-1) / y
            else:
                # g_i = prod_{k<i} y_k * S_i, S_i = g_i + y_{i+1} S_{i+1}: no division by zero
                prefix = xp.concatenate([xp.ones(y.shape[:-1] + (1,), y.dtype), oy[..., :-1]], axis=-1)
                s = xp.zeros(y.shape, y.dtype)
                s[..., n - 1] = gy[..., n - 1]
                for i in range(n - 2, -1, -1):
                    s[..., i] = gy[..., i] + y[..., i + 1] * s[..., i + 1]
                r = prefix * s
            return (xp.moveaxis(r, -1, d).astype(a.dtype, copy=False),)

        return Tensor._result(out, (self,), backward, "cumprod")

    def _truth(self, dim, keepdim, name):
        a = self._data
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        out = xp.asarray(getattr(a != 0, name)(axis=axis, keepdims=keepdim))
        dt = np.uint8 if a.dtype == np.uint8 else np.bool_  # torch keeps uint8
        return Tensor(out.astype(dt), dtype=dt)

    def all(self, dim=None, keepdim=False):
        """True when every element (over dim) is nonzero (a uint8 tensor gives uint8, as torch)."""
        return self._truth(dim, keepdim, "all")

    def any(self, dim=None, keepdim=False):
        """True when some element (over dim) is nonzero (a uint8 tensor gives uint8, as torch)."""
        return self._truth(dim, keepdim, "any")

    def count_nonzero(self, dim=None):
        """The number of nonzero elements (over dim: an int or a sequence), int64."""
        a = self._data
        xp = _xp(a)
        axis = _axes(dim, a.ndim)
        return Tensor(xp.asarray((a != 0).sum(axis=axis), dtype=np.int64), dtype=np.int64)

    def _sorted_indices(self, d, descending):
        a = self._data
        xp = _xp(a)
        if not descending:  # (CuPy's argsort is stable, and takes kind="stable")
            return xp.argsort(a, axis=d, kind="stable")
        # stable descending: ascending order of the reversed array, reversed (equal elements keep
        # their order; NaN first, as torch)
        n = a.shape[d]
        idx = xp.flip(xp.argsort(xp.flip(a, axis=d), axis=d, kind="stable"), axis=d)
        return (n - 1) - idx

    def _picked(self, idx, d, name):
        """a's elements at idx along d, with the gradient put back at those positions."""
        a = self._data
        xp = _xp(a)
        where = _along(xp, idx.shape, d, idx)
        vals = a[where]

        def backward(g):
            z = xp.zeros(a.shape, g.dtype)
            z[where] = g
            return (z,)

        return Tensor._result(vals, (self,), backward, name)

    def sort(self, dim=-1, descending=False, *, stable=False):
        """(values, indices) sorted along dim, as fastnn.return_types.sort. The sort is always
        stable (equal elements keep their order; NaN sorts as the largest, as torch)."""
        a = self._data
        d = _dim(dim, a.ndim)
        if not a.ndim:
            return _rt.sort(self.clone(), Tensor(_xp(a).zeros((), np.int64), dtype=np.int64))
        idx = self._sorted_indices(d, descending)
        return _rt.sort(self._picked(idx, d, "sort"), Tensor(idx, dtype=np.int64))

    def argsort(self, dim=-1, descending=False, *, stable=False):
        """The indices that sort along dim (stable), int64."""
        a = self._data
        d = _dim(dim, a.ndim)
        if not a.ndim:
            return Tensor(_xp(a).zeros((), np.int64), dtype=np.int64)
        return Tensor(self._sorted_indices(d, descending), dtype=np.int64)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """(values, indices) of the k largest (largest=False: smallest) along dim, in sorted
        order, as fastnn.return_types.topk."""
        a = self._data
        d = _dim(dim, a.ndim)
        n = a.shape[d] if a.ndim else 1
        k = int(k)
        if not 0 <= k <= n:
            raise RuntimeError("selected index k out of range")
        if not a.ndim:  # k is 0 or 1
            vals = self.clone() if k else Tensor(_xp(a).zeros(0, a.dtype), dtype=a.dtype)
            return _rt.topk(vals, Tensor(_xp(a).zeros(() if k else 0, np.int64), dtype=np.int64))
        idx = self._sorted_indices(d, largest)
        idx = idx[(slice(None),) * d + (slice(0, k),)]
        return _rt.topk(self._picked(idx, d, "topk"), Tensor(idx, dtype=np.int64))

    def median(self, dim=None, keepdim=False):
        """median(): the lower of the two middle values of all elements (NaN if there is one),
        its gradient shared by the elements equal to it; median(dim, keepdim=False):
        (values, indices) along dim, as fastnn.return_types.median."""
        a = self._data
        xp = _xp(a)
        if dim is None:
            if a.size == 0:
                return Tensor._result(
                    xp.asarray(np.nan, dtype=a.dtype), (self,), lambda g: (xp.zeros(a.shape, g.dtype),), "median"
                )
            flat = a.reshape(-1)
            s = xp.sort(flat)
            out = xp.asarray(s[(flat.size - 1) // 2])
            if a.dtype.kind == "f":
                out = xp.where(xp.isnan(flat).any(), xp.asarray(np.nan, dtype=a.dtype), out)

            def backward(g):
                hit = xp.where(xp.isnan(out), xp.isnan(a), a == out) if a.dtype.kind == "f" else a == out
                return ((g / hit.sum().astype(g.dtype)) * hit,)

            return Tensor._result(out, (self,), backward, "median")
        d = _dim(dim, a.ndim)
        if not a.ndim:
            return _rt.median(self.clone(), Tensor(xp.zeros((), np.int64), dtype=np.int64))
        n = a.shape[d]
        if n == 0:
            raise IndexError(f"median(): Expected reduction dim {d} to have non-zero size.")
        order = self._sorted_indices(d, False)
        idx = order[(slice(None),) * d + (slice((n - 1) // 2, (n - 1) // 2 + 1),)]
        if a.dtype.kind == "f":
            nans = xp.isnan(a)
            first_nan = xp.expand_dims(xp.argmax(nans, axis=d), d)
            idx = xp.where(xp.expand_dims(nans.any(axis=d), d), first_nan, idx)
        values = self._picked(idx, d, "median")
        if not keepdim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return _rt.median(values, Tensor(idx, dtype=np.int64))


def _kept_shape(shape, axis):
    """shape without the reduced axes (all of them for axis None)."""
    if axis is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i not in axis)
