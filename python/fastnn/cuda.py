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

import numpy as np

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


def _device_memory(cp):
    """The current device's memory in bytes (None where the runtime does not say)."""
    try:
        return int(cp.cuda.runtime.memGetInfo()[1])
    except Exception:  # a stand-in without the runtime API, or a runtime error: no bound
        return None


def _stream(op):
    return _cupy(op).cuda.get_current_stream().ptr


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
        """A new device array for op: past the device's memory a ValueError, and a failed
        allocation (CuPy's OutOfMemoryError is a MemoryError) a MemoryError, each naming op."""
        cp = _cupy(self._op)
        shape = tuple(shape)
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        total = _device_memory(cp)
        if total is not None and nbytes > total:
            raise ValueError(
                f"fastnn.ops.{self._op}: expected an output that fits in the GPU's memory, got shape "
                f"{shape} ({nbytes} bytes; the device has {total})"
            )
        try:
            return cp.empty(shape, dtype=dtype)
        except MemoryError as e:
            raise MemoryError(
                f"fastnn.ops.{self._op}: cannot allocate {nbytes} bytes on the GPU for shape {shape} ({e})"
            ) from None

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
