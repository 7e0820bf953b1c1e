"""fastnn.device and the helpers behind CUDA tensors.

A Tensor holds a NumPy array (the CPU) or a CuPy array (a CUDA device). Code that works on
either takes the array's namespace from xp(a) and never applies NumPy functions to a device
array; moves between the two are explicit copies (move). Random numbers always come from
fastnn's host generator (fastnn.random) and are copied to the device, so a seeded run draws the
same initialisations and dropout masks on the CPU and on a GPU.
"""

import numpy as np

__all__ = ["device"]


class device:
    """torch.device's names: device("cpu"), device("cuda"), device("cuda:1"), device("cuda", 0).

    str() gives "cuda:0", repr() "device(type='cuda', index=0)". A device compares equal to a
    device or a string of the same type whose index is the same or not given, so a tensor's
    device cuda:0 == "cuda" == "cuda:0"."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type  # torch: an ordinal names a CUDA device
        elif isinstance(type, str):
            name, sep, num = type.partition(":")
            if sep:
                if index is not None:
                    raise RuntimeError(
                        f"type (string) must not include an index because index was passed explicitly: {type}"
                    )
                if not num.isdigit():
                    raise RuntimeError(f"Invalid device string: '{type}'")
                index = int(num)
            type = name
        else:
            raise TypeError(f"device(): expected a string, an int or a device, got {type.__class__.__name__}")
        if type not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {type}")
        if index is not None:
            index = int(index)
            if index < 0:
                raise RuntimeError(f"Device index must not be negative, got {index}")
            if type == "cpu" and index != 0:
                raise RuntimeError(f"CPU device index must be 0 or not given, got {index}")
            if type == "cpu":
                index = None
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device objects are immutable")

    def __eq__(self, other):
        if isinstance(other, (str, int)) and not isinstance(other, bool):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index is None or other.index is None or self.index == other.index)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.type)  # equal devices (cuda, cuda:0) must hash alike

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __reduce__(self):
        return device, (self.type, self.index)


CPU = device("cpu")
_CUDA = {}  # device index -> device("cuda", index)


def cupy_module():
    """CuPy (tests install a host-backed stand-in under the same name)."""
    import cupy

    return cupy


def is_cpu(a):
    return isinstance(a, (np.ndarray, np.generic))


def xp(a):
    """The namespace of array a: numpy for host arrays, cupy for device arrays."""
    return np if isinstance(a, (np.ndarray, np.generic)) else cupy_module()


def device_of(a):
    """The device an array lives on (a NumPy array: cpu; a CuPy array: cuda:<its id>)."""
    if isinstance(a, (np.ndarray, np.generic)):
        return CPU
    i = int(a.device.id)
    d = _CUDA.get(i)
    if d is None:
        d = _CUDA[i] = device("cuda", i)
    return d


def as_device(d):
    """A device from a device, a string ("cpu", "cuda", "cuda:1") or an ordinal."""
    return d if isinstance(d, device) else device(d)


_checked = None  # the fastnn._cuda module that require_cuda found a device with


def require_cuda():
    """CuPy, when CUDA tensors can exist here; else torch's kind of RuntimeError."""
    global _checked
    from . import cuda

    m = cuda._cuda()
    if m is not None and m is _checked:
        return cupy_module()
    if not cuda.is_available():
        raise RuntimeError(
            "fastnn: no CUDA device is available (fastnn.cuda.is_available() is False: this "
            "fastnn was built without CUDA, or no driver or device is visible)"
        )
    try:
        cp = cupy_module()
    except ImportError:
        raise RuntimeError("fastnn: CUDA tensors hold CuPy arrays; install CuPy (pip install cupy-cuda13x)") from None
    _checked = m
    return cp


def move(a, dev):
    """Array a on device dev: a itself when it is there already, else an explicit copy."""
    if dev.type == "cpu":
        return a if isinstance(a, (np.ndarray, np.generic)) else a.get()
    if not isinstance(a, (np.ndarray, np.generic)) and (dev.index is None or int(a.device.id) == dev.index):
        return a
    cp = require_cuda()
    if dev.index is None:
        return cp.asarray(a)  # the current device
    with cp.cuda.Device(dev.index):
        # from the host: a transfer; from another device: a peer copy
        return cp.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else cp.array(a, copy=True)


def to_host(a):
    """A NumPy copy (or a itself) of a host or device array."""
    return a if isinstance(a, (np.ndarray, np.generic)) else a.get()


def full(shape, value, dtype, dev):
    """An array of `shape` filled with value, allocated on device dev."""
    if dev.type == "cpu":
        return np.full(shape, value, dtype)
    cp = require_cuda()
    if dev.index is None:
        return cp.full(shape, value, dtype)
    with cp.cuda.Device(dev.index):
        return cp.full(shape, value, dtype)


def assign(dst, src):
    """dst[...] = src, whichever devices the two are on: a host src (e.g. random numbers from
    fastnn's host generator) is converted to dst's dtype on the host, so only dst's bytes travel."""
    if isinstance(dst, np.ndarray):
        dst[...] = to_host(src) if hasattr(src, "__cuda_array_interface__") else src
    elif hasattr(src, "__cuda_array_interface__"):
        dst[...] = move(src, device_of(dst))
    else:
        dst[...] = move(np.asarray(src, dtype=dst.dtype), device_of(dst))


def scatter_add(a, index, values):
    """a[index] += values with repeated indices adding up (numpy.add.at; on a device CuPy's
    ufunc.at, or cupyx.scatter_add where CuPy predates it)."""
    if isinstance(a, np.ndarray):
        np.add.at(a, index, values)
        return
    cp = cupy_module()
    if hasattr(cp.add, "at"):
        cp.add.at(a, index, values)
    else:
        import cupyx

        cupyx.scatter_add(a, index, values)


def check_same_device(*arrays):
    """torch's RuntimeError when the arrays (None skipped) are not all on one device."""
    first = None
    for a in arrays:
        if a is None:
            continue
        d = device_of(a)
        if first is None:
            first = d
        elif d.type != first.type or d.index != first.index:
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but found at least two devices, {first} and {d}!"
            )
