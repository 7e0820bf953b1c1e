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

    def contiguous(self, a):
        return _cupy(self._op).ascontiguousarray(a)


def run(name, *args):
    """fastnn._cuda.<name>(*args, runtime): the CUDA entries that take the CPU entry's arguments
    (fastnn._core.<name> without isa) and check them by the same rules (the op's meta function
    in C++), e.g. run("conv2d_forward", x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, None, None)."""
    return getattr(_module_for(name), name)(*args, _Runtime(name))


def array_module(op):
    """CuPy, the array namespace of CUDA arrays (a TypeError naming op without it)."""
    return _cupy(op)


class _Kernels:
    """fastnn._core's entries on CUDA arrays: kernels.<name>(*args) is run(name, *args)."""

    def __getattr__(self, name):
        return lambda *args: run(name, *args)


kernels = _Kernels()


# ---- ops ----


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
