"""fastnn.Tensor: a small reverse-mode autograd over NumPy arrays and fastnn.ops, with PyTorch's names.

A Tensor holds a NumPy array (float32 for values, int64 for indices and targets). An operation on
tensors that require gradients records a node: its parents and a function from the output's
gradient to the parents' gradients. `backward()` runs the nodes in reverse topological order,
accumulates `.grad` on the leaves that require it and frees the graph. The heavy forwards and
backwards (convolution, pooling, linear layers, activations, losses) are kernel calls made by
fastnn.nn.functional; the elementwise arithmetic here is NumPy.
"""
import contextlib
import functools

import numpy as np

from .sparse import RowSparse

float32 = np.float32
float64 = np.float64
int64 = np.int64
long = np.int64
bool_ = np.bool_

_grad_enabled = True


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which operations record no graph."""

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


def is_grad_enabled():
    return _grad_enabled


class Node:
    """One recorded operation: the parents whose gradients backward(g) returns, in order."""

    __slots__ = ("parents", "backward", "name")

    def __init__(self, parents, backward, name):
        self.parents = parents
        self.backward = backward
        self.name = name


def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    a = np.asarray(data)
    if dtype is None:
        if a.dtype.kind not in "fiub":
            raise TypeError(f"fastnn.tensor: expected numbers, got an array of {a.dtype}")
        if a.dtype == np.float64 or a.dtype == np.float16:
            dtype = np.float32  # fastnn's kernels are float32; ask for float64 explicitly
        elif a.dtype.kind in "iu" and a.dtype != np.int64:
            dtype = np.int64
        else:
            dtype = a.dtype
    # np.asarray keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)
    return np.asarray(a, dtype=dtype, order="C")


def _unbroadcast(g, shape):
    """g summed down to `shape` (the axes a broadcast added or stretched)."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


class Tensor:
    """An n-dimensional array with an optional gradient (torch.Tensor's names)."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_retain", "__weakref__")
    __array_priority__ = 100  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._node = None
        self._retain = False
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)

    # -- construction of results ------------------------------------------------------------
    @staticmethod
    def _result(data, parents, backward, name):
        """A new tensor from an op; records a node when grad mode is on and a parent needs it."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        out._retain = False
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._node = Node(parents, backward, name)
        else:
            out.requires_grad = False
            out._node = None
        return out

    # -- properties ---------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def device(self):
        return "cpu"

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20)
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra})"

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    # -- conversion ---------------------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"a Tensor with {self.data.size} elements cannot be converted to a Python scalar")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        return Tensor(self.data)

    def clone(self):
        return Tensor._result(self.data.copy(), (self,), lambda g: (g,), "clone")

    def float(self):
        return self.to(np.float32)

    def long(self):
        return self.to(np.int64)

    def to(self, *args, **kwargs):
        """to(dtype) converts (differentiably between float types); to("cpu") / to(device) and
        memory_format keywords are accepted as no-ops."""
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, (type, np.dtype)):
                try:
                    dt = np.dtype(a)
                except TypeError:
                    continue
                if dt == self.data.dtype:
                    return self
                src = self.data.dtype
                if dt.kind == "f" and src.kind == "f":
                    return Tensor._result(self.data.astype(dt), (self,), lambda g: (g.astype(src),), "to")
                return Tensor(self.data.astype(dt))
        return self

    def cpu(self):
        return self

    def contiguous(self, memory_format=None):
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError("only floating point tensors can require gradients")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        self._retain = True

    def zero_(self):
        self.data[...] = 0
        return self

    def fill_(self, value):
        self.data[...] = value
        return self

    def copy_(self, other):
        self.data[...] = _as_array(other)
        return self

    # -- autograd -----------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = np.ones_like(self.data)
        else:
            g = np.asarray(_as_array(gradient), dtype=self.data.dtype).reshape(self.data.shape)
        _run_backward(self, g, retain_graph)

    # -- arithmetic ---------------------------------------------------------------------------
    def _binary(self, other, fwd, name, grads):
        if not isinstance(other, Tensor):
            dt = self._float_dtype(other)
            other = Tensor(np.asarray(other, dtype=dt), dtype=dt)
        o = other
        a, b = self.data, o.data
        out = fwd(a, b)
        if out.dtype == np.float64 and (a.dtype == np.float32 or b.dtype == np.float32):
            out = out.astype(np.float32)

        def backward(g):
            ga, gb = grads(g, a, b, out)
            return (None if ga is None else _unbroadcast(ga, a.shape).astype(a.dtype, copy=False),
                    None if gb is None else _unbroadcast(gb, b.shape).astype(b.dtype, copy=False))
        return Tensor._result(out, (self, o), backward, name)

    def _float_dtype(self, other):
        if self.data.dtype.kind == "f":
            return self.data.dtype
        return np.float32 if isinstance(other, float) else self.data.dtype

    def __add__(self, other):
        return self._binary(other, np.add, "add", lambda g, a, b, o: (g, g))

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, np.subtract, "sub", lambda g, a, b, o: (g, -g))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        return self._binary(other, np.multiply, "mul", lambda g, a, b, o: (g * b, g * a))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, np.true_divide, "div", lambda g, a, b, o: (g / b, -g * a / (b * b)))

    def __rtruediv__(self, other):
        dt = self._float_dtype(1.0)
        return Tensor(np.asarray(other, dtype=dt), dtype=dt) / self

    def __neg__(self):
        return Tensor._result(-self.data, (self,), lambda g: (-g,), "neg")

    def __pos__(self):
        return self

    def __pow__(self, p):
        if isinstance(p, Tensor):  # d/da = p a^(p-1), d/dp = a^p log a (nan for a < 0, as torch)
            def grads(g, a, b, out):
                with np.errstate(divide="ignore", invalid="ignore"):
                    return g * b * np.power(a, b - 1), g * out * np.log(a)
            return self._binary(p, np.power, "pow", grads)
        a = self.data
        out = np.power(a, p).astype(a.dtype, copy=False)
        return Tensor._result(out, (self,), lambda g: (g * p * np.power(a, p - 1),), "pow")

    def __rpow__(self, base):
        return (self * float(np.log(base))).exp()

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(Tensor(other), self)

    def _compare(self, other, fn):
        o = other.data if isinstance(other, Tensor) else other
        return Tensor(fn(self.data, o))

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        return int(self.item())

    # in-place arithmetic on tensors outside the graph (parameter updates, buffers)
    def _inplace(self, other, fn):
        if _grad_enabled and self.requires_grad and self.is_leaf:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        fn(self.data, other.data if isinstance(other, Tensor) else other, out=self.data, casting="unsafe")
        return self

    def __iadd__(self, other):
        return self._inplace(other, np.add)

    def __isub__(self, other):
        return self._inplace(other, np.subtract)

    def __imul__(self, other):
        return self._inplace(other, np.multiply)

    def __itruediv__(self, other):
        return self._inplace(other, np.true_divide)

    def add_(self, other, alpha=1):
        return self._inplace(other if alpha == 1 else _as_array(other) * alpha, np.add)

    def sub_(self, other, alpha=1):
        return self._inplace(other if alpha == 1 else _as_array(other) * alpha, np.subtract)

    def mul_(self, other):
        return self._inplace(other, np.multiply)

    def div_(self, other):
        return self._inplace(other, np.true_divide)

    def clamp_(self, min=None, max=None):
        np.clip(self.data, min, max, out=self.data)
        return self

    def uniform_(self, a=0.0, b=1.0):
        from . import random as _random
        self.data[...] = _random.generator().uniform(a, b, self.data.shape)
        return self

    def normal_(self, mean=0.0, std=1.0):
        from . import random as _random
        self.data[...] = _random.generator().normal(mean, std, self.data.shape)
        return self

    # -- elementwise functions ------------------------------------------------------------------
    def exp(self):
        out = np.exp(self.data)
        return Tensor._result(out, (self,), lambda g: (g * out,), "exp")

    def log(self):
        a = self.data
        return Tensor._result(np.log(a), (self,), lambda g: (g / a,), "log")

    def sqrt(self):
        out = np.sqrt(self.data)
        return Tensor._result(out, (self,), lambda g: (g / (2 * out),), "sqrt")

    def abs(self):
        a = self.data
        return Tensor._result(np.abs(a), (self,), lambda g: (g * np.sign(a),), "abs")

    def clamp(self, min=None, max=None):
        a = self.data
        out = np.clip(a, min, max)
        keep = np.ones(a.shape, bool)
        if min is not None:
            keep &= a >= min
        if max is not None:
            keep &= a <= max
        return Tensor._result(out, (self,), lambda g: (g * keep,), "clamp")

    clip = clamp

    def relu(self):
        from .nn import functional as F
        return F.relu(self)

    def sigmoid(self):
        from .nn import functional as F
        return F.sigmoid(self)

    def tanh(self):
        from .nn import functional as F
        return F.tanh(self)

    def softmax(self, dim):
        from .nn import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim):
        from .nn import functional as F
        return F.log_softmax(self, dim)

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        a = self.data
        axis = _axes(dim, a.ndim)
        dtype = a.dtype if a.dtype.kind == "f" else np.int64  # torch: bool and int sums are int64
        out = np.asarray(a.sum(axis=axis, keepdims=keepdim, dtype=dtype))

        def backward(g):
            if not keepdim and axis is not None:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, a.shape).copy(),)
        return Tensor._result(out, (self,), backward, "sum")

    def mean(self, dim=None, keepdim=False):
        a = self.data
        axis = _axes(dim, a.ndim)
        n = a.size if axis is None else int(np.prod([a.shape[i] for i in axis]))
        out = np.asarray(a.mean(axis=axis, keepdims=keepdim), dtype=a.dtype)

        def backward(g):
            if not keepdim and axis is not None:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g / n, a.shape).astype(a.dtype),)
        return Tensor._result(out, (self,), backward, "mean")

    def _extreme(self, dim, keepdim, fn, argfn, name):
        a = self.data
        if dim is None:
            flat = argfn(a.reshape(-1))
            out = np.asarray(a.reshape(-1)[flat])

            def backward(g):
                d = np.zeros(a.size, a.dtype)
                d[flat] = g
                return (d.reshape(a.shape),)
            return Tensor._result(out, (self,), backward, name)
        dim = dim % a.ndim
        idx = np.expand_dims(argfn(a, axis=dim), dim)
        vals = np.take_along_axis(a, idx, dim)

        def backward(g):
            d = np.zeros_like(a)
            gg = g if keepdim else np.expand_dims(g, dim)
            np.put_along_axis(d, idx, gg, dim)
            return (d,)
        values = Tensor._result(vals if keepdim else vals.squeeze(dim), (self,), backward, name)
        indices = Tensor(idx if keepdim else idx.squeeze(dim))
        return values, indices

    def max(self, dim=None, keepdim=False):
        return self._extreme(dim, keepdim, np.max, np.argmax, "max")

    def min(self, dim=None, keepdim=False):
        return self._extreme(dim, keepdim, np.min, np.argmin, "min")

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor(np.asarray(np.argmax(self.data)))
        return Tensor(np.argmax(self.data, axis=dim, keepdims=keepdim))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor(np.asarray(np.argmin(self.data)))
        return Tensor(np.argmin(self.data, axis=dim, keepdims=keepdim))

    # -- shape ----------------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_args(shape)
        a = self.data
        out = a.reshape(shape)
        return Tensor._result(out, (self,), lambda g: (g.reshape(a.shape),), "reshape")

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        s = self.data.shape
        if not s:
            return self.reshape(1)
        end = end_dim % len(s)
        new = s[:start_dim] + (int(np.prod(s[start_dim:end + 1])),) + s[end + 1:]
        return self.reshape(new)

    def squeeze(self, dim=None):
        a = self.data
        out = np.squeeze(a) if dim is None else (np.squeeze(a, dim) if a.shape[dim] == 1 else a)
        return Tensor._result(out, (self,), lambda g: (g.reshape(a.shape),), "squeeze")

    def unsqueeze(self, dim):
        a = self.data
        out = np.expand_dims(a, dim)
        return Tensor._result(out, (self,), lambda g: (g.reshape(a.shape),), "unsqueeze")

    def permute(self, *dims):
        dims = _shape_args(dims)
        inv = np.argsort(dims)
        out = np.ascontiguousarray(self.data.transpose(dims))
        return Tensor._result(out, (self,), lambda g: (np.ascontiguousarray(g.transpose(inv)),), "permute")

    def transpose(self, d0, d1):
        dims = list(range(self.ndim))
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return self.permute(*dims)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError("t() expects a tensor with <= 2 dimensions")
        return self.permute(*reversed(range(self.ndim)))

    def expand(self, *shape):
        shape = _shape_args(shape)
        a = self.data
        shape = tuple(a.shape[i - len(shape) + a.ndim] if n == -1 else n for i, n in enumerate(shape))
        out = np.ascontiguousarray(np.broadcast_to(a, shape))
        return Tensor._result(out, (self,), lambda g: (_unbroadcast(g, a.shape),), "expand")

    def __getitem__(self, key):
        if isinstance(key, Tensor):
            key = key.data
        elif isinstance(key, tuple):
            key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
        a = self.data
        out = np.ascontiguousarray(a[key])

        def backward(g):
            d = np.zeros_like(a)
            np.add.at(d, key, g)
            return (d,)
        return Tensor._result(out, (self,), backward, "index")

    def __setitem__(self, key, value):
        if _grad_enabled and self.requires_grad:
            raise RuntimeError("in-place assignment to a tensor that requires grad is not supported")
        if isinstance(key, Tensor):
            key = key.data
        self.data[key] = _as_array(value)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


def _axes(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, int):
        return (dim % ndim,)
    return tuple(d % ndim for d in dim)


def _run_backward(root, g, retain_graph):
    # reverse topological order by an iterative depth-first search
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._node is not None:
            for p in t._node.parents:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
    grads = {id(root): g}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue  # no gradient reached this node (e.g. a fused consumer bypassed it)
        if t._node is None or t._retain:
            # a copy: the same gradient array may reach several tensors, and .grad is the
            # user's to modify in place (clip_grad_norm_, zero_)
            if isinstance(g, RowSparse) or isinstance(t.grad, RowSparse):
                # a row-sparse gradient (Embedding(sparse=True)) stays sparse while only sparse
                # ones arrive; a dense one joining it makes the sum dense
                total = g.clone() if t.grad is None else t.grad + g
                t.grad = total if isinstance(total, RowSparse) else Tensor(total.astype(t.data.dtype))
            elif t.grad is None:
                t.grad = Tensor(np.array(g, dtype=t.data.dtype, copy=True))
            else:
                t.grad.data = t.grad.data + g
            if t._node is None:
                continue
        node = t._node
        pgrads = node.backward(g)
        for p, pg in zip(node.parents, pgrads):
            if pg is None or not p.requires_grad:
                continue
            k = id(p)
            if k in grads:
                grads[k] = grads[k] + pg
            else:
                grads[k] = pg
        if not retain_graph:  # free the saved arrays; a second backward through it raises
            node.backward, node.parents = _freed, ()


def _freed(g):
    raise RuntimeError("Trying to backward through the graph a second time (or directly access saved "
                       "tensors after they have already been freed). Specify retain_graph=True if you "
                       "need to backward a second time.")


def matmul(a, b):
    """a @ b through the gemm kernel (float32, broadcast batch dims as numpy.matmul)."""
    from . import ops
    if not isinstance(a, Tensor):
        a = Tensor(a)
    if not isinstance(b, Tensor):
        b = Tensor(b)
    A, B = a.data, b.data
    if A.ndim == 1 or B.ndim == 1 or A.dtype != np.float32 or B.dtype != np.float32:
        out = np.matmul(A, B)

        def backward(g):
            ga = gb = None
            if a.requires_grad:
                ga = np.matmul(g, np.swapaxes(B, -1, -2)) if B.ndim > 1 else np.multiply.outer(g, B)
                if A.ndim == 1 and B.ndim > 1:
                    ga = np.matmul(B, g) if B.ndim == 2 else ga
            if b.requires_grad:
                gb = np.matmul(np.swapaxes(A, -1, -2), g) if A.ndim > 1 else np.multiply.outer(A, g)
            return (None if ga is None else _unbroadcast(np.asarray(ga), A.shape),
                    None if gb is None else _unbroadcast(np.asarray(gb), B.shape))
        return Tensor._result(out, (a, b), backward, "matmul")
    out = ops.gemm(A, B)

    def backward(g):
        ga = _unbroadcast(ops.gemm(g, B, trans_b=True), A.shape) if a.requires_grad else None
        gb = _unbroadcast(ops.gemm(A, g, trans_a=True), B.shape) if b.requires_grad else None
        return ga, gb
    return Tensor._result(out, (a, b), backward, "matmul")


# -- construction -----------------------------------------------------------------------------

def tensor(data, dtype=None, requires_grad=False):
    return Tensor(np.array(_as_array(data), dtype=dtype, copy=True) if dtype else np.array(_as_array(data)),
                  requires_grad=requires_grad)


def as_tensor(data, dtype=None):
    return data if isinstance(data, Tensor) and dtype is None else Tensor(data, dtype=dtype)


def from_numpy(a):
    return Tensor(a)


def _size(shape):
    return _shape_args(shape)


def zeros(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.zeros(_size(shape), dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.ones(_size(shape), dtype), requires_grad=requires_grad)


def full(shape, value, dtype=np.float32, requires_grad=False):
    return Tensor(np.full(_size((shape,)), value, dtype), requires_grad=requires_grad)


def empty(*shape, dtype=np.float32, requires_grad=False):
    return zeros(*shape, dtype=dtype, requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(np.zeros_like(_as_array(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(np.ones_like(_as_array(t), dtype=dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None):
    if end is None:
        start, end = 0, start
    a = np.arange(start, end, step)
    if dtype is not None:
        a = a.astype(dtype)
    return Tensor(a)


def randn(*shape, dtype=np.float32, requires_grad=False):
    from . import random as _random
    return Tensor(_random.generator().standard_normal(_size(shape)).astype(dtype), requires_grad=requires_grad)


def rand(*shape, dtype=np.float32, requires_grad=False):
    from . import random as _random
    return Tensor(_random.generator().random(_size(shape)).astype(dtype), requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=np.int64):
    from . import random as _random
    if high is None:
        low, high = 0, low
    return Tensor(_random.generator().integers(low, high, size=_size((size,))).astype(dtype))


def randperm(n, dtype=np.int64):
    from . import random as _random
    return Tensor(_random.generator().permutation(n).astype(dtype))


def cat(tensors, dim=0):
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    arrays = [t.data for t in tensors]
    out = np.concatenate(arrays, axis=dim)
    sizes = np.cumsum([a.shape[dim] for a in arrays])[:-1]

    def backward(g):
        return tuple(np.ascontiguousarray(p) for p in np.split(g, sizes, axis=dim))
    return Tensor._result(out, tuple(tensors), backward, "cat")


def stack(tensors, dim=0):
    return cat([t.unsqueeze(dim) if isinstance(t, Tensor) else Tensor(np.expand_dims(t, dim))
                for t in tensors], dim)


def where(cond, a, b):
    c = _as_array(cond).astype(bool)
    a = a if isinstance(a, Tensor) else Tensor(np.asarray(a, np.float32))
    b = b if isinstance(b, Tensor) else Tensor(np.asarray(b, np.float32))
    out = np.where(c, a.data, b.data)
    return Tensor._result(out, (a, b), lambda g: (_unbroadcast(np.where(c, g, 0), a.shape),
                                                  _unbroadcast(np.where(c, 0, g), b.shape)), "where")


def _wrap_unary(name):
    @functools.wraps(getattr(Tensor, name))
    def f(t, *args, **kwargs):
        return getattr(t if isinstance(t, Tensor) else Tensor(t), name)(*args, **kwargs)
    return f


exp = _wrap_unary("exp")
log = _wrap_unary("log")
sqrt = _wrap_unary("sqrt")
abs = _wrap_unary("abs")
sum = _wrap_unary("sum")
mean = _wrap_unary("mean")
max = _wrap_unary("max")
min = _wrap_unary("min")
argmax = _wrap_unary("argmax")
argmin = _wrap_unary("argmin")
flatten = _wrap_unary("flatten")
reshape = _wrap_unary("reshape")
relu = _wrap_unary("relu")
sigmoid = _wrap_unary("sigmoid")
tanh = _wrap_unary("tanh")
softmax = _wrap_unary("softmax")
log_softmax = _wrap_unary("log_softmax")
clamp = _wrap_unary("clamp")
