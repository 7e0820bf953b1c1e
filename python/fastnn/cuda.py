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


# ---- recurrent layers ----
# The whole-sequence ops of fastnn.ops (lstm/gru/rnn_forward and _backward; the cell ops are
# their T = 1 calls) with the CPU ops' checks and workspace layout (csrc/ops/rnn.h), so a ws from
# either device's forward is what that device's backward reads. Every call takes one scratch
# buffer from CuPy's pool on the current stream (freed on return; CuPy reuses it only in stream
# order) for the kernels' intermediates.

_RNN_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _rnn_cell(op, kind, nonlinearity):
    """The kernel's cell code (fastnn::RnnCell): 0 tanh RNN, 1 relu RNN, 2 LSTM, 3 GRU."""
    if kind == "lstm":
        return 2
    if kind == "gru":
        return 3
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{op}: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
    return 0 if nonlinearity == "tanh" else 1


def _shape_str(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _rnn_arg(op, name, a, shape, what, optional=True):
    """A float32 C-contiguous device array of exactly `shape`, or None where optional."""
    if a is None:
        if optional:
            return None
        raise TypeError(f"{op}: expected {name} to be a CUDA array of float32 {what}, got None")
    d = _Dev(op, name, a)
    if d.shape != tuple(shape):
        raise ValueError(f"{op}: expected {name} of shape {_shape_str(shape)} {what}, got {_shape_str(d.shape)}")
    return d


def _rnn_inputs(op, kind, x, h0, c0, w_ih, w_hh):
    """(T, B, I, H, {x, w_ih, w_hh, h0, c0}) checked as the CPU op checks them."""
    G = _RNN_GATES[kind]
    gh = "H" if G == 1 else f"{G}*H"
    dx = _Dev(op, "x", x)
    if len(dx.shape) != 3:
        raise ValueError(f"{op}: expected x of 3 dimensions (T, B, I), got shape {_shape_str(dx.shape)}")
    dwh = _Dev(op, "w_hh", w_hh)
    if len(dwh.shape) != 2 or dwh.shape[0] != G * dwh.shape[1]:
        raise ValueError(f"{op}: expected w_hh of shape ({gh}, H), got {_shape_str(dwh.shape)}")
    (T, B, I), H = dx.shape, dwh.shape[1]
    if T <= 0:
        raise ValueError(f"{op}: expected a sequence length T > 0, got T={T}")
    if H <= 0:
        raise ValueError(f"{op}: expected a hidden size H > 0, got H={H}")
    lim = 2**31 - 1
    if T * B * 6 * H > lim or T * B * I > lim or 6 * H * max(I, H) > lim:
        raise ValueError(f"{op}: expected every matrix to have at most 2^31-1 elements, got T={T} B={B} I={I} H={H}")
    d = dict(x=dx, w_hh=dwh)
    d["w_ih"] = _rnn_arg(op, "w_ih", w_ih, (G * H, I), f"({gh}, I) with I = x.shape[2]", optional=False)
    d["h0"] = _rnn_arg(op, "h0", h0, (B, H), "(B, H) or None")
    d["c0"] = _rnn_arg(op, "c0", c0, (B, H), "(B, H) or None") if kind == "lstm" else None
    return T, B, I, H, d


def _ptr(d):
    return d.ptr if d is not None else 0


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


def _rnn_ws_floats(kind, T, B, H):
    return T * B * H * {"lstm": 6, "gru": 4, "rnn": 0}[kind]


def _rnn_forward(op, kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, nonlinearity, reverse):
    m = _module_for(op)
    cell = _rnn_cell(op, kind, nonlinearity)
    T, B, I, H, d = _rnn_inputs(op, kind, x, h0, c0, w_ih, w_hh)
    GH = _RNN_GATES[kind] * H
    bi = _rnn_arg(op, "b_ih", b_ih, (GH,), "(G*H,) or None")
    bh = _rnn_arg(op, "b_hh", b_hh, (GH,), "(G*H,) or None")
    cp = _cupy(op)
    lstm = kind == "lstm"
    y, h_n = cp.empty((T, B, H), cp.float32), cp.empty((B, H), cp.float32)
    c_n = cp.empty((B, H), cp.float32) if lstm else None
    ws = cp.empty(_rnn_ws_floats(kind, T, B, H), cp.float32)
    scratch = cp.empty(max(1, m.rnn_scratch_floats(cell, T, B, I, H, False)), cp.float32)
    m.rnn_forward(
        cell,
        bool(reverse),
        T,
        B,
        I,
        H,
        d["x"].ptr,
        _ptr(d["h0"]),
        _ptr(d["c0"]),
        d["w_ih"].ptr,
        d["w_hh"].ptr,
        _ptr(bi),
        _ptr(bh),
        y.data.ptr,
        h_n.data.ptr,
        c_n.data.ptr if lstm else 0,
        ws.data.ptr,
        scratch.data.ptr,
        _stream(op),
    )
    return (y, h_n, c_n, ws) if lstm else (y, h_n, ws)


def _rnn_backward(op, kind, dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, nonlinearity, reverse):
    m = _module_for(op)
    cell = _rnn_cell(op, kind, nonlinearity)
    T, B, I, H, d = _rnn_inputs(op, kind, x, h0, c0, w_ih, w_hh)
    GH = _RNN_GATES[kind] * H
    lstm = kind == "lstm"
    ddy = _rnn_arg(op, "dy", dy, (T, B, H), "(T, B, H) or None")
    dhn = _rnn_arg(op, "dh_n", dh_n, (B, H), "(B, H) or None")
    dcn = _rnn_arg(op, "dc_n", dc_n, (B, H), "(B, H) or None") if lstm else None
    # y is read as h_{t-1} of steps after the first, and by the RNN's activation gradient.
    dyo = _rnn_arg(op, "y", y, (T, B, H), "(T, B, H) (the forward's output)", optional=T == 1 and kind != "rnn")
    n = _rnn_ws_floats(kind, T, B, H)
    dws = _rnn_arg(op, "ws", ws, (n,), f"(the workspace of {kind}_forward for these shapes)", optional=n == 0)
    cp = _cupy(op)
    f32 = cp.float32
    dx, dh0 = cp.empty((T, B, I), f32), cp.empty((B, H), f32)
    dc0 = cp.empty((B, H), f32) if lstm else None
    dw_ih, dw_hh, db_ih, db_hh = cp.empty((GH, I), f32), cp.empty((GH, H), f32), cp.empty(GH, f32), cp.empty(GH, f32)
    scratch = cp.empty(max(1, m.rnn_scratch_floats(cell, T, B, I, H, True)), f32)
    m.rnn_backward(
        cell,
        bool(reverse),
        T,
        B,
        I,
        H,
        _ptr(ddy),
        _ptr(dhn),
        _ptr(dcn),
        d["x"].ptr,
        _ptr(d["h0"]),
        _ptr(d["c0"]),
        d["w_ih"].ptr,
        d["w_hh"].ptr,
        _ptr(dyo),
        _ptr(dws),
        dx.data.ptr,
        dh0.data.ptr,
        dc0.data.ptr if lstm else 0,
        dw_ih.data.ptr,
        dw_hh.data.ptr,
        db_ih.data.ptr,
        db_hh.data.ptr,
        scratch.data.ptr,
        _stream(op),
    )
    if lstm:
        return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """fastnn.ops.lstm_forward on CUDA arrays: (y, h_n, c_n, ws)."""
    return _rnn_forward("lstm_forward", "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, reverse)


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, reverse=False):
    """fastnn.ops.lstm_backward on CUDA arrays: (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)."""
    return _rnn_backward("lstm_backward", "lstm", dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, None, reverse)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """fastnn.ops.gru_forward on CUDA arrays: (y, h_n, ws)."""
    return _rnn_forward("gru_forward", "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, None, reverse)


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, reverse=False):
    """fastnn.ops.gru_backward on CUDA arrays: (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
    return _rnn_backward("gru_backward", "gru", dy, dh_n, None, x, h0, None, w_ih, w_hh, y, ws, None, reverse)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", reverse=False):
    """fastnn.ops.rnn_forward on CUDA arrays: (y, h_n, ws); ws is empty."""
    return _rnn_forward("rnn_forward", "rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, nonlinearity, reverse)


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, y, ws, nonlinearity="tanh", reverse=False):
    """fastnn.ops.rnn_backward on CUDA arrays: (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); ws may be None."""
    return _rnn_backward("rnn_backward", "rnn", dy, dh_n, None, x, h0, None, w_ih, w_hh, y, ws, nonlinearity, reverse)


# ---- scaled dot-product attention ----
# The contract and the argument checks of csrc/bind/attention.cpp (the CPU op's), plus one limit:
# the kernels keep head dims in register and shared-memory tiles, so HD and DV are at most
# ATTENTION_MAX_HEAD_DIM (kAttnMaxHeadDim in csrc/cuda/kernels.h).

ATTENTION_MAX_HEAD_DIM = 128
_ATTN_MASK_KIND = {"|b1": 1, "<f4": 2}  # fastnn::AttnMask: bool, float32


def _attn_mask_strides(op, shape, strides, itemsize, target):
    """Element strides (b, h, i, j) of a mask of this shape and these byte strides, right-aligned
    against target ((B, NH, L, S), or (B, L, S) for 3-D q): each dim 1 (stride 0) or equal (its
    own stride), as csrc/bind/attention.cpp reads a NumPy mask."""
    nd, mnd = len(target), len(shape)
    out = [0, 0, 0, 0]
    fits = mnd <= nd
    for d in range(mnd if fits else 0):
        td, n, s = nd - mnd + d, shape[d], strides[d]
        if n != 1 and (n != target[td] or s % itemsize):
            fits = False
            break
        out[td if nd == 4 else (0 if td == 0 else td + 1)] = 0 if n == 1 else s // itemsize
    if not fits:
        raise ValueError(f"{op}: expected attn_mask broadcastable to {tuple(target)}, got shape {tuple(shape)}")
    return tuple(out)


def _attn_inputs(op, q, k, v, attn_mask, is_causal, scale):
    """(dims (B, NH, L, S, HD, DV), q's leading dims, (q, k, v), (mask kind, pointer, element
    strides), scale), checked before any launch."""
    dq_, dk_, dv_ = _Dev(op, "q", q), _Dev(op, "k", k), _Dev(op, "v", v)
    qs, ks, vs = dq_.shape, dk_.shape, dv_.shape
    nd = len(qs)
    if nd not in (3, 4):
        raise ValueError(f"{op}: expected q of shape (B, NH, L, HD) or (N, L, HD), got {qs}")
    if len(ks) != nd or len(vs) != nd:
        raise ValueError(f"{op}: expected q, k and v of the same rank, got q {qs}, k {ks}, v {vs}")
    lead = qs[:-2]
    if ks[:-2] != lead or vs[:-2] != lead or ks[-1] != qs[-1] or vs[-2] != ks[-2]:
        raise ValueError(
            f"{op}: expected k of shape (..., S, HD) and v of shape (..., S, DV) matching "
            f"q (..., L, HD), got q {qs}, k {ks}, v {vs}"
        )
    B, NH, L, S, HD, DV = lead[0], (lead[1] if nd == 4 else 1), qs[-2], ks[-2], qs[-1], vs[-1]
    if HD < 1 or DV < 1:
        raise ValueError(f"{op}: expected head dims of at least 1, got q {qs} and v {vs}")
    if max(HD, DV) > ATTENTION_MAX_HEAD_DIM:
        raise ValueError(
            f"{op}: the CUDA kernels take head dims up to {ATTENTION_MAX_HEAD_DIM}, got HD {HD} "
            f"and DV {DV} (the CPU op has no such limit)"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(HD)
    elif not isinstance(scale, (float, int)):
        raise TypeError(f"{op}: expected scale to be None or a float, got {type(scale).__name__}")
    elif not math.isfinite(scale):
        raise ValueError(f"{op}: expected a finite scale, got {scale}")
    mask = (0, 0, (0, 0, 0, 0))
    if attn_mask is not None:
        if is_causal:
            raise ValueError(
                f"{op}: expected attn_mask=None with is_causal=True (they cannot be combined, as in torch), got a mask"
            )
        if not is_cuda_array(attn_mask):
            raise TypeError(
                f"{op}: attn_mask must be None or a CUDA array like q, k and v, got "
                f"{type(attn_mask).__name__} (NumPy and CUDA arrays cannot be mixed)"
            )
        cai = attn_mask.__cuda_array_interface__
        kind = _ATTN_MASK_KIND.get(cai["typestr"])
        if kind is None:
            raise TypeError(f"{op}: expected attn_mask of dtype bool or float32, got typestr {cai['typestr']!r}")
        shape, item = tuple(int(s) for s in cai["shape"]), (1 if kind == 1 else 4)
        strides = cai.get("strides")
        if strides is None:  # C-contiguous
            strides, step = [], item
            for s in reversed(shape):
                strides.insert(0, step)
                step *= max(s, 1)
        target = (B, NH, L, S) if nd == 4 else (B, L, S)
        mask = (kind, cai["data"][0], _attn_mask_strides(op, shape, tuple(int(s) for s in strides), item, target))
    return (B, NH, L, S, HD, DV), lead, (dq_, dk_, dv_), mask, float(scale)


def scaled_dot_product_attention_forward(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """fastnn.ops.scaled_dot_product_attention_forward on CUDA arrays: (out, lse)."""
    op = "scaled_dot_product_attention_forward"
    m = _module_for(op)
    dims, lead, (dq_, dk_, dv_), (kind, mptr, mst), scale = _attn_inputs(op, q, k, v, attn_mask, is_causal, scale)
    out, lse = _out(op, None, lead + (dims[2], dims[5])), _out(op, None, lead + (dims[2],))
    m.scaled_dot_product_attention_forward(
        dims, dq_.ptr, dk_.ptr, dv_.ptr, kind, mptr, mst, bool(is_causal), scale, out.ptr, lse.ptr, _stream(op)
    )
    return out.array, lse.array


def scaled_dot_product_attention_backward(dout, q, k, v, out, lse, attn_mask=None, is_causal=False, scale=None):
    """fastnn.ops.scaled_dot_product_attention_backward on CUDA arrays: (dq, dk, dv)."""
    op = "scaled_dot_product_attention_backward"
    m = _module_for(op)
    dims, lead, (dq_, dk_, dv_), (kind, mptr, mst), scale = _attn_inputs(op, q, k, v, attn_mask, is_causal, scale)
    g, o, l = _Dev(op, "dout", dout), _Dev(op, "out", out), _Dev(op, "lse", lse)
    oshape, lshape = lead + (dims[2], dims[5]), lead + (dims[2],)
    if g.shape != oshape or o.shape != oshape:
        raise ValueError(f"{op}: expected dout and out of shape {oshape}, got dout {g.shape} and out {o.shape}")
    if l.shape != lshape:
        raise ValueError(f"{op}: expected lse of shape {lshape}, got {l.shape}")
    gq, gk, gv = (_out(op, None, d.shape) for d in (dq_, dk_, dv_))
    delta = _out(op, None, (dims[0] * dims[1] * dims[2],))  # scratch: dout_i . out_i
    m.scaled_dot_product_attention_backward(
        dims,
        dq_.ptr,
        dk_.ptr,
        dv_.ptr,
        kind,
        mptr,
        mst,
        bool(is_causal),
        scale,
        g.ptr,
        o.ptr,
        l.ptr,
        gq.ptr,
        gk.ptr,
        gv.ptr,
        delta.ptr,
        _stream(op),
    )
    return gq.array, gk.array, gv.array
