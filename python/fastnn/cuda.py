"""fastnn on NVIDIA GPUs.

Arrays that expose ``__cuda_array_interface__`` (CuPy first; torch and numba tensors too) go to
the CUDA kernels of the optional module ``fastnn._cuda``; ``fastnn.ops`` sends them here on its
own, so ``fastnn.ops.gemm(cupy_a, cupy_b)`` runs on the GPU and returns a CuPy array. Kernels
run on CuPy's current stream; outputs are allocated with CuPy. NumPy arrays stay on the CPU,
and mixing the two in one call is a TypeError.

So far the CUDA kernels are gemm, conv2d, the activations, softmax / log_softmax, layer norm,
embedding, pooling (max, average, global average), cross-entropy, batch norm and the recurrent layers
(RNN, LSTM, GRU and their cells) and scaled dot-product attention (head dims up to 128), forward and backward, the SGD and Adam updates and grad_norm; the other ops refuse GPU arrays with a TypeError. ``is_available()`` says whether the module is built and a device is visible.
"""

import importlib
import math

__all__ = ["is_available", "device_count", "info", "is_cuda_array"]

_module = None
_tried = False


def _cuda():
    """The compiled module, or None when this build has none."""
    global _module, _tried
    if not _tried:
        _tried = True
        try:
            _module = importlib.import_module("fastnn._cuda")
        except ImportError:
            _module = None
    return _module


def device_count() -> int:
    """CUDA devices visible to this process (0 without the module, a driver or a device)."""
    m = _cuda()
    return m.device_count() if m else 0


def is_available() -> bool:
    """True when fastnn was built with CUDA and a device is visible."""
    return device_count() > 0


def info() -> dict:
    """What show_config reports about CUDA."""
    m = _cuda()
    if m is None:
        return {"built": False}
    return {
        "built": True,
        "architectures": m.architectures,
        "compiler": m.compiler,
        "runtime_version": m.runtime_version(),
        "driver_version": m.driver_version(),
        "device_count": m.device_count(),
    }


def is_cuda_array(a) -> bool:
    return hasattr(a, "__cuda_array_interface__")


# ---- arrays ----


class _Dev:
    """A C-contiguous device array (float32 unless typestr says otherwise) seen through
    __cuda_array_interface__."""

    def __init__(self, op, name, a, writable=False, typestr="<f4"):
        if not is_cuda_array(a):
            raise TypeError(
                f"{op}: {name} must be a CUDA array like the other arguments, got "
                f"{type(a).__name__} (NumPy and CUDA arrays cannot be mixed)"
            )
        cai = a.__cuda_array_interface__
        self.shape = tuple(int(s) for s in cai["shape"])
        if cai["typestr"] != typestr:
            kind = {"<f4": "float32", "<i8": "int64"}[typestr]
            raise TypeError(f"{op}: {name} must be {kind}, got typestr {cai['typestr']!r}")
        strides = cai.get("strides")
        if strides is not None:
            expect, step = [], int(typestr[2:])
            for s in reversed(self.shape):
                expect.append(step)
                step *= max(s, 1)
            if tuple(strides) != tuple(reversed(expect)) and 0 not in self.shape:
                raise ValueError(
                    f"{op}: {name} must be C-contiguous, got strides {tuple(strides)} for shape {self.shape}"
                )
        self.ptr, readonly = cai["data"]
        if writable and readonly:
            raise ValueError(f"{op}: {name} is read-only")
        self.array = a
        self.size = 1
        for s in self.shape:
            self.size *= s


def _cupy(op):
    try:
        import cupy
    except ImportError:
        raise TypeError(f"{op}: CUDA arrays need CuPy to allocate outputs (pip install cupy-cuda13x)") from None
    return cupy


def _module_for(op):
    m = _cuda()
    if m is None:
        raise TypeError(
            f"{op}: got CUDA arrays, but this fastnn was built without CUDA "
            "(rebuild with nvcc on PATH, or FASTNN_CUDA=ON)"
        )
    return m


def _stream(op):
    return _cupy(op).cuda.get_current_stream().ptr


def _out(op, out, shape, alias=()):
    """The output array: out if given (checked), else a new CuPy array."""
    if out is None:
        return _Dev(op, "out", _cupy(op).empty(tuple(shape), dtype="float32"), writable=True)
    o = _Dev(op, "out", out, writable=True)
    if o.shape != tuple(shape):
        raise ValueError(f"{op}: out must have shape {tuple(shape)}, got {o.shape}")
    for name, d in alias:
        if d is not None and d.ptr == o.ptr and o.size:
            raise ValueError(f"{op}: out must not alias {name}")
    return o


class _Runtime:
    """What the C++ entries of fastnn._cuda need from Python, asked for only after the
    arguments passed their checks: device arrays from CuPy (empty(shape, dtype)) and the
    stream to launch on (stream)."""

    __slots__ = ("_op",)

    def __init__(self, op):
        self._op = op

    @property
    def stream(self):
        return _stream(self._op)

    def empty(self, shape, dtype):
        return _cupy(self._op).empty(tuple(shape), dtype=dtype)


def run(name, *args):
    """fastnn._cuda.<name>(*args, runtime): the CUDA entries that take the CPU entry's arguments
    (fastnn._core.<name> without isa) and check them by the same rules (the op's meta function
    in C++), e.g. run("conv2d_forward", x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, None, None)."""
    return getattr(_module_for(name), name)(*args, _Runtime(name))


# ---- ops ----


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, activation=None, out=None):
    """fastnn.ops.gemm on CUDA arrays (2-D only so far)."""
    op = "gemm"
    m = _module_for(op)
    da, db = _Dev(op, "a", a), _Dev(op, "b", b)
    if len(da.shape) != 2 or len(db.shape) != 2:
        raise ValueError(f"{op}: CUDA gemm takes 2-D a and b, got shapes {da.shape} and {db.shape}")
    M, K = (da.shape[1], da.shape[0]) if trans_a else da.shape
    K2, N = (db.shape[1], db.shape[0]) if trans_b else db.shape
    if K != K2:
        raise ValueError(f"{op}: op(a) is {M}x{K} but op(b) is {K2}x{N}")
    if activation not in (None, "relu"):
        raise ValueError(f"{op}: activation must be None or 'relu', got {activation!r}")
    if c is None and beta != 0:
        c = out
    dc = _Dev(op, "c", c) if c is not None else None
    if dc is not None and dc.shape != (M, N):
        raise ValueError(f"{op}: c must have shape {(M, N)}, got {dc.shape}")
    dbias = _Dev(op, "bias", bias) if bias is not None else None
    if dbias is not None and dbias.shape != (N,):
        raise ValueError(f"{op}: bias must have shape {(N,)}, got {dbias.shape}")
    o = _out(op, out, (M, N), alias=(("a", da), ("b", db), ("bias", dbias)))
    m.gemm(
        M,
        N,
        K,
        da.ptr,
        db.ptr,
        dc.ptr if dc else 0,
        o.ptr,
        da.shape[1],
        db.shape[1],
        N,
        bool(trans_a),
        bool(trans_b),
        float(alpha),
        float(beta) if dc else 0.0,
        dbias.ptr if dbias else 0,
        1 if activation == "relu" else 0,
        _stream(op),
    )
    return o.array


_ACT = {"relu": 0, "leaky_relu": 1, "sigmoid": 2, "tanh": 3, "gelu": 4, "gelu_tanh": 5}


def act_forward(name, x, alpha=0.01, *, out=None):
    op = f"{name}_forward"
    m = _module_for(op)
    dx = _Dev(op, "x", x)
    o = _out(op, out, dx.shape)
    m.act_forward(_ACT[name], float(alpha), dx.ptr, o.ptr, dx.size, _stream(op))
    return o.array


def act_backward(name, dy, xy, alpha=0.01, *, out=None):
    op = f"{name}_backward"
    m = _module_for(op)
    ddy, dxy = _Dev(op, "dy", dy), _Dev(op, "x or y", xy)
    if ddy.shape != dxy.shape:
        raise ValueError(f"{op}: dy {ddy.shape} and the saved input {dxy.shape} differ in shape")
    o = _out(op, out, ddy.shape)  # elementwise: out may be dy or the saved input (in place)
    m.act_backward(_ACT[name], float(alpha), ddy.ptr, dxy.ptr, o.ptr, ddy.size, _stream(op))
    return o.array


def _axes(op, shape, dim):
    nd = len(shape)
    if not -nd <= dim < max(nd, 1):
        raise ValueError(f"{op}: dim {dim} is out of range for {nd} dimensions")
    dim %= max(nd, 1)
    outer = inner = 1
    for s in shape[:dim]:
        outer *= s
    for s in shape[dim + 1 :]:
        inner *= s
    return outer, (shape[dim] if nd else 1), inner


def softmax_forward(x, dim=-1, *, log=False, out=None):
    op = "log_softmax_forward" if log else "softmax_forward"
    m = _module_for(op)
    dx = _Dev(op, "x", x)
    outer, n, inner = _axes(op, dx.shape, dim)
    o = _out(op, out, dx.shape)
    m.softmax_forward(outer, n, inner, log, dx.ptr, o.ptr, _stream(op))
    return o.array


def softmax_backward(dy, y, dim=-1, *, log=False, out=None):
    op = "log_softmax_backward" if log else "softmax_backward"
    m = _module_for(op)
    ddy, dy_ = _Dev(op, "dy", dy), _Dev(op, "y", y)
    if ddy.shape != dy_.shape:
        raise ValueError(f"{op}: dy {ddy.shape} and y {dy_.shape} differ in shape")
    outer, n, inner = _axes(op, dy_.shape, dim)
    o = _out(op, out, dy_.shape, alias=(("y", dy_),))
    m.softmax_backward(outer, n, inner, log, ddy.ptr, dy_.ptr, o.ptr, _stream(op))
    return o.array


def layer_norm_forward(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """fastnn.ops.layer_norm_forward on CUDA arrays: (y, mean, rstd)."""
    op = "layer_norm_forward"
    m = _module_for(op)
    dx = _Dev(op, "x", x)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or k > len(dx.shape) or dx.shape[len(dx.shape) - k :] != ns:
        raise ValueError(f"{op}: normalized_shape {ns} must be the trailing dims of x {dx.shape}")
    n = 1
    for s in ns:
        n *= s
    rows = dx.size // n if n else 0
    dw = _Dev(op, "weight", weight) if weight is not None else None
    db = _Dev(op, "bias", bias) if bias is not None else None
    for name, d in (("weight", dw), ("bias", db)):
        if d is not None and d.shape != ns:
            raise ValueError(f"{op}: {name} must have shape {ns}, got {d.shape}")
    stat = dx.shape[: len(dx.shape) - k] + (1,) * k
    y, mean, rstd = _out(op, None, dx.shape), _out(op, None, stat), _out(op, None, stat)
    m.layer_norm_forward(
        rows, n, dx.ptr, dw.ptr if dw else 0, db.ptr if db else 0, float(eps), y.ptr, mean.ptr, rstd.ptr, _stream(op)
    )
    return y.array, mean.array, rstd.array


def layer_norm_backward(dy, x, mean, rstd, weight=None):
    """fastnn.ops.layer_norm_backward on CUDA arrays: (dx, dweight, dbias)."""
    op = "layer_norm_backward"
    m = _module_for(op)
    ddy, dx_, dm, dr = (_Dev(op, nm, a) for nm, a in (("dy", dy), ("x", x), ("mean", mean), ("rstd", rstd)))
    if ddy.shape != dx_.shape:
        raise ValueError(f"{op}: dy {ddy.shape} and x {dx_.shape} differ in shape")
    rows = dm.size
    if dr.size != rows or (rows and dx_.size % rows):
        raise ValueError(f"{op}: mean/rstd ({dm.shape}, {dr.shape}) do not match x {dx_.shape}")
    n = dx_.size // rows if rows else 0
    dw = _Dev(op, "weight", weight) if weight is not None else None
    out = _out(op, None, dx_.shape)
    gw = gb = None
    if dw is not None:
        if dw.size != n and rows:
            raise ValueError(f"{op}: weight has {dw.size} elements, the rows {n}")
        n = dw.size
        gw, gb = _out(op, None, dw.shape), _out(op, None, dw.shape)
    m.layer_norm_backward(
        rows,
        n,
        ddy.ptr,
        dx_.ptr,
        dm.ptr,
        dr.ptr,
        dw.ptr if dw else 0,
        out.ptr,
        gw.ptr if gw else 0,
        gb.ptr if gb else 0,
        _stream(op),
    )
    return out.array, (gw.array if gw else None), (gb.array if gb else None)


def _check_indices(op, idx, v):
    """Indices in [0, v): one reduction on the device, read back before the launch."""
    if idx.size:
        a = idx.array
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= v:
            raise ValueError(f"{op}: indices must lie in [0, {v}), got values in [{lo}, {hi}]")


def _padding(op, padding_idx, v):
    if padding_idx is None:
        return -1
    p = int(padding_idx)
    if not -v <= p < v:
        raise ValueError(f"{op}: padding_idx must lie in [-{v}, {v}), got {p}")
    return p % v


def embedding_forward(weight, indices, padding_idx=None, *, out=None):
    """fastnn.ops.embedding_forward on CUDA arrays (int64 indices)."""
    op = "embedding_forward"
    m = _module_for(op)
    w, idx = _Dev(op, "weight", weight), _Dev(op, "indices", indices, typestr="<i8")
    if len(w.shape) != 2:
        raise ValueError(f"{op}: weight must be 2-D, got shape {w.shape}")
    _padding(op, padding_idx, w.shape[0])
    _check_indices(op, idx, w.shape[0])
    o = _out(op, out, idx.shape + (w.shape[1],), alias=(("weight", w),))
    m.embedding_forward(idx.size, w.shape[1], w.ptr, idx.ptr, o.ptr, _stream(op))
    return o.array


def embedding_backward(dy, indices, num_embeddings, padding_idx=None, *, out=None):
    """fastnn.ops.embedding_backward on CUDA arrays: the dense (num_embeddings, D) gradient."""
    op = "embedding_backward"
    m = _module_for(op)
    g, idx = _Dev(op, "dy", dy), _Dev(op, "indices", indices, typestr="<i8")
    v = int(num_embeddings)
    if len(g.shape) != len(idx.shape) + 1 or g.shape[:-1] != idx.shape:
        raise ValueError(f"{op}: dy must have shape indices.shape + (D,) = {idx.shape} + (D,), got {g.shape}")
    pad = _padding(op, padding_idx, v)
    _check_indices(op, idx, v)
    d = g.shape[-1]
    o = _out(op, out, (v, d), alias=(("dy", g),))
    m.embedding_backward(v, idx.size, d, pad, g.ptr, idx.ptr, o.ptr, _stream(op))
    return o.array


def _same_lists(op, names, lists):
    n = len(lists[0])
    for name, lst in zip(names, lists):
        if lst is not None and len(lst) != n:
            raise ValueError(f"{op}: {names[0]} has {n} arrays but {name} has {len(lst)}")
    return n


def _state(op, name, lst, i, shape):
    d = _Dev(op, f"{name}[{i}]", lst[i], writable=True)
    if d.shape != shape:
        raise ValueError(f"{op}: {name}[{i}] has shape {d.shape}, params[{i}] {shape}")
    return d


def _param_grad(op, params, grads, i):
    p = _Dev(op, f"params[{i}]", params[i], writable=True)
    g = _Dev(op, f"grads[{i}]", grads[i])
    if g.shape != p.shape:
        raise ValueError(f"{op}: grads[{i}] has shape {g.shape}, params[{i}] {p.shape}")
    return p, g


def sgd_step(
    params,
    grads,
    momentum_buffers,
    lr,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    weight_decay=0.0,
    maximize=False,
    first_step=False,
):
    """fastnn.ops.sgd_step on CUDA arrays (every check before the first launch)."""
    op = "sgd_step"
    m = _module_for(op)
    n = _same_lists(op, ("params", "grads", "momentum_buffers"), (params, grads, momentum_buffers))
    if momentum != 0 and momentum_buffers is None:
        raise ValueError(f"{op}: momentum {momentum} needs momentum_buffers")
    jobs = []
    for i in range(n):
        p, g = _param_grad(op, params, grads, i)
        b = _state(op, "momentum_buffers", momentum_buffers, i, p.shape) if momentum != 0 else None
        jobs.append((p, g, b))
    s = _stream(op) if jobs else 0
    for p, g, b in jobs:
        m.sgd_step(
            p.ptr,
            g.ptr,
            b.ptr if b else 0,
            p.size,
            float(lr),
            float(momentum),
            float(dampening),
            bool(nesterov),
            float(weight_decay),
            bool(maximize),
            bool(first_step),
            s,
        )


def adam_step(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    max_exp_avg_sqs=None,
    decoupled_weight_decay=False,
    maximize=False,
):
    """fastnn.ops.adam_step on CUDA arrays (every check before the first launch)."""
    op = "adam_step"
    m = _module_for(op)
    n = _same_lists(
        op,
        ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"),
        (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs),
    )
    if amsgrad and max_exp_avg_sqs is None:
        raise ValueError(f"{op}: amsgrad needs max_exp_avg_sqs")
    if int(step) < 1:
        raise ValueError(f"{op}: step must be >= 1 (1-based, after incrementing), got {step}")
    jobs = []
    for i in range(n):
        p, g = _param_grad(op, params, grads, i)
        ea = _state(op, "exp_avgs", exp_avgs, i, p.shape)
        es = _state(op, "exp_avg_sqs", exp_avg_sqs, i, p.shape)
        vm = _state(op, "max_exp_avg_sqs", max_exp_avg_sqs, i, p.shape) if amsgrad else None
        jobs.append((p, g, ea, es, vm))
    s = _stream(op) if jobs else 0
    for p, g, ea, es, vm in jobs:
        m.adam_step(
            p.ptr,
            g.ptr,
            ea.ptr,
            es.ptr,
            vm.ptr if vm else 0,
            p.size,
            int(step),
            float(lr),
            float(beta1),
            float(beta2),
            float(eps),
            float(weight_decay),
            bool(decoupled_weight_decay),
            bool(maximize),
            s,
        )


def _per_channel(op, name, a, c, writable=False):
    """None, or a float32 C-contiguous (C,) device array."""
    if a is None:
        return None
    d = _Dev(op, name, a, writable=writable)
    if d.shape != (c,):
        raise ValueError(f"{op}: expected {name} of shape ({c},) (one per channel), got {d.shape}")
    return d


def _nchw(op, name, a):
    d = _Dev(op, name, a)
    if len(d.shape) != 4:
        raise ValueError(f"{op}: expected {name} to be 4-D (N, C, H, W), got shape {d.shape}")
    return d


def _not_aliased(op, name, d, others):
    for other, o in others:
        if d is not None and o is not None and d.ptr == o.ptr and d.size:
            raise ValueError(f"{op}: {name} must not alias {other}")


def batch_norm2d_forward(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5, *, out=None):
    """fastnn.ops.batch_norm2d_forward on CUDA arrays: (y, save_mean, save_invstd); running_mean /
    running_var are updated in place (training)."""
    op = "batch_norm2d_forward"
    m = _module_for(op)
    dx = _nchw(op, "x", x)
    N, C, H, W = dx.shape
    dw, db = _per_channel(op, "weight", weight, C), _per_channel(op, "bias", bias, C)
    rm = _per_channel(op, "running_mean", running_mean, C, writable=True)
    rv = _per_channel(op, "running_var", running_var, C, writable=True)
    if (rm is None) != (rv is None):
        raise ValueError(
            f"{op}: expected running_mean and running_var both given or both None, got "
            + ("running_var only" if rm is None else "running_mean only")
        )
    if not training and rm is None:
        raise ValueError(f"{op}: expected running_mean and running_var in evaluation mode (training=False), got None")
    momentum, eps = float(momentum), float(eps)
    if not (0 <= eps < math.inf):
        raise ValueError(f"{op}: expected eps >= 0, got {eps}")
    if not math.isfinite(momentum):
        raise ValueError(f"{op}: expected a finite momentum, got {momentum}")
    if training and N * H * W == 1:
        raise ValueError(f"{op}: Expected more than 1 value per channel when training, got input size {dx.shape}")
    _not_aliased(op, "running_mean", rm, (("x", dx), ("weight", dw), ("bias", db), ("running_var", rv)))
    _not_aliased(op, "running_var", rv, (("x", dx), ("weight", dw), ("bias", db)))
    y = _out(
        op, out, dx.shape, alias=(("x", dx), ("weight", dw), ("bias", db), ("running_mean", rm), ("running_var", rv))
    )
    sm, si = _out(op, None, (C,)), _out(op, None, (C,))
    m.batch_norm2d_forward(
        N,
        C,
        H * W,
        bool(training),
        momentum,
        eps,
        dx.ptr,
        dw.ptr if dw else 0,
        db.ptr if db else 0,
        rm.ptr if rm else 0,
        rv.ptr if rv else 0,
        y.ptr,
        sm.ptr,
        si.ptr,
        _stream(op),
    )
    return y.array, sm.array, si.array


def batch_norm2d_backward(dy, x, weight, save_mean, save_invstd, training=True, *, out=None):
    """fastnn.ops.batch_norm2d_backward on CUDA arrays: (dx, dweight, dbias), None, None without
    weight."""
    op = "batch_norm2d_backward"
    m = _module_for(op)
    ddy, dx_ = _nchw(op, "dy", dy), _nchw(op, "x", x)
    if ddy.shape != dx_.shape:
        raise ValueError(f"{op}: expected dy and x of the same shape, got dy {ddy.shape} and x {dx_.shape}")
    N, C, H, W = dx_.shape
    dw = _per_channel(op, "weight", weight, C)
    if save_mean is None or save_invstd is None:
        raise ValueError(f"{op}: expected save_mean and save_invstd (from batch_norm2d_forward), got None")
    sm, si = _per_channel(op, "save_mean", save_mean, C), _per_channel(op, "save_invstd", save_invstd, C)
    o = _out(
        op, out, dx_.shape, alias=(("dy", ddy), ("x", dx_), ("weight", dw), ("save_mean", sm), ("save_invstd", si))
    )
    gw, gb = (_out(op, None, (C,)), _out(op, None, (C,))) if dw else (None, None)
    m.batch_norm2d_backward(
        N,
        C,
        H * W,
        bool(training),
        ddy.ptr,
        dx_.ptr,
        dw.ptr if dw else 0,
        sm.ptr,
        si.ptr,
        o.ptr,
        gw.ptr if gw else 0,
        gb.ptr if gb else 0,
        _stream(op),
    )
    return o.array, (gw.array if gw else None), (gb.array if gb else None)


def grad_norm(arrays, norm_type=2.0):
    """fastnn.ops.grad_norm on CUDA arrays: a Python float. The kernels run on CuPy's current
    stream and the result is copied back to the host, so the call waits for that stream (all
    the work queued on it before, too), as torch's .item() does."""
    op = "grad_norm"
    m = _module_for(op)
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{op}: expected arrays to be a list of CUDA arrays, got {type(arrays).__name__}")
    p = float(norm_type)
    if not p > 0:
        raise ValueError(f"{op}: expected norm_type > 0 (2.0, 1.0, inf or another positive order), got {p}")
    devs = [_Dev(op, f"arrays[{i}]", a) for i, a in enumerate(arrays)]
    if not devs:
        return 0.0
    cp = _cupy(op)
    slots = sum(m.grad_norm_partials(d.size) for d in devs)
    buf = cp.empty(slots + 1, dtype=cp.float64)  # the partial sums, then the norm
    m.grad_norm([d.ptr for d in devs], [d.size for d in devs], p, buf.data.ptr, buf.data.ptr + 8 * slots, _stream(op))
    return float(buf[slots:].get()[0])  # a blocking copy on the current stream


_REDUCTIONS = ("none", "mean", "sum")


def _ce_rows(op, logits, target, weight, ignore_index, reduction):
    """(rows (M, C) device array, targets (M,), the loss shape, weight _Dev or None), checked."""
    cp = _cupy(op)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
    x = _Dev(op, "logits", logits)
    t = _Dev(op, "target", target, typestr="<i8")
    if len(x.shape) == 1:
        rows, tt, tshape = logits.reshape(1, -1), target.reshape(1), tuple(t.shape)
    else:
        want = (x.shape[0],) + x.shape[2:]
        if t.shape != want:
            raise ValueError(f"{op}: expected target of shape {want} for logits of shape {x.shape}, got {t.shape}")
        if len(x.shape) == 2:
            rows, tt = logits, target
        else:
            rows = cp.ascontiguousarray(cp.moveaxis(logits, 1, -1)).reshape(-1, x.shape[1])
            tt = target.reshape(-1)
        tshape = t.shape
    C = rows.shape[1]
    if tt.size:
        bad = (tt != ignore_index) & ((tt < 0) | (tt >= C))
        if bool(bad.any()):
            raise ValueError(f"{op}: targets must lie in [0, {C}) or equal ignore_index {ignore_index}")
    w = _Dev(op, "weight", weight) if weight is not None else None
    if w is not None and w.shape != (C,):
        raise ValueError(f"{op}: weight must have shape {(C,)}, got {w.shape}")
    return rows, tt, tshape, w


def cross_entropy_forward(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """fastnn.ops.cross_entropy_forward on CUDA arrays (a CuPy 0-d or target-shaped loss)."""
    op = "cross_entropy_forward"
    m = _module_for(op)
    cp = _cupy(op)
    rows, t, tshape, w = _ce_rows(op, logits, target, weight, ignore_index, reduction)
    M, C = rows.shape
    loss, wt = cp.empty(M, cp.float32), cp.empty(M, cp.float32)
    m.cross_entropy_forward(
        M,
        C,
        _Dev(op, "logits", rows).ptr,
        _Dev(op, "target", t, typestr="<i8").ptr,
        w.ptr if w else 0,
        int(ignore_index),
        float(label_smoothing),
        loss.data.ptr,
        wt.data.ptr,
        _stream(op),
    )
    if reduction == "none":
        return loss.reshape(tshape)
    total = loss.sum(dtype=cp.float64)
    if reduction == "sum":
        return total.astype(cp.float32)
    return (total / wt.sum(dtype=cp.float64)).astype(cp.float32)  # all ignored: nan, as torch


def cross_entropy_backward(
    grad, logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean", *, out=None
):
    """fastnn.ops.cross_entropy_backward on CUDA arrays: dlogits of logits' shape."""
    op = "cross_entropy_backward"
    m = _module_for(op)
    cp = _cupy(op)
    rows, t, tshape, w = _ce_rows(op, logits, target, weight, ignore_index, reduction)
    M, C = rows.shape
    g = cp.asarray(grad, dtype=cp.float64)
    if reduction == "none":
        if g.shape != tuple(tshape):
            raise ValueError(f"{op}: expected grad of shape {tuple(tshape)}, got {g.shape}")
        scale = cp.ascontiguousarray(g.reshape(-1).astype(cp.float32))
    else:
        if g.size != 1:
            raise ValueError(f"{op}: expected a scalar grad for reduction {reduction!r}, got shape {g.shape}")
        s = g.reshape(())
        if reduction == "mean":
            keep = t != ignore_index
            wv = cp.ones(C, cp.float64) if weight is None else cp.asarray(weight, cp.float64)
            s = s / wv[cp.where(keep, t, 0)][keep].sum()
        scale = cp.full(M, s, dtype=cp.float32) if M else cp.empty(0, cp.float32)
    d = cp.empty((M, C), cp.float32)
    m.cross_entropy_backward(
        M,
        C,
        _Dev(op, "logits", rows).ptr,
        _Dev(op, "target", t, typestr="<i8").ptr,
        w.ptr if w else 0,
        int(ignore_index),
        float(label_smoothing),
        scale.data.ptr,
        d.data.ptr,
        _stream(op),
    )
    x_shape = _Dev(op, "logits", logits).shape
    if len(x_shape) == 1:
        d = d.reshape(x_shape)
    elif len(x_shape) > 2:
        d = cp.ascontiguousarray(cp.moveaxis(d.reshape((x_shape[0],) + x_shape[2:] + (C,)), -1, 1))
    if out is not None:
        o = _out(op, out, x_shape)
        o.array[...] = d
        return o.array
    return d


# ---- recurrent layers ----
# The ops themselves are fastnn._cuda's entries (fastnn.cuda.run); the cell ops give them x as
# one step, a view that costs no copy.


class _Step:
    """A (B, I) CUDA array seen as (1, B, I), the one step of a cell op (no copy)."""

    def __init__(self, a):
        cai = dict(a.__cuda_array_interface__)
        shape = tuple(cai["shape"])
        cai["shape"] = (1,) + shape
        if cai.get("strides") is not None:
            cai["strides"] = (int(cai["strides"][0]) * shape[0],) + tuple(cai["strides"])
        self.__cuda_array_interface__ = cai
        self.base = a


def step_view(x):
    """x (B, I) as (1, B, I) for the cell ops; other shapes unchanged (the checks report them)."""
    return _Step(x) if len(x.__cuda_array_interface__["shape"]) == 2 else x
