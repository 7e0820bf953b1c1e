"""fastnn.accelerator: torch.accelerator's queries, answered truthfully by fastnn.cuda.

The one accelerator fastnn knows is CUDA (through its CUDA module and CuPy): is_available() is
fastnn.cuda.is_available(), and current_accelerator() is device("cuda") when a device is
usable, None otherwise (also for check_available=False, where torch would name the accelerator
it was built for even without a device)."""

from . import _device, cuda

__all__ = [
    "is_available",
    "current_accelerator",
    "device_count",
    "current_device_index",
    "set_device_index",
    "synchronize",
]


def is_available():
    return cuda.is_available()


def current_accelerator(check_available=False):
    return _device.device("cuda") if cuda.is_available() else None


def device_count():
    return cuda.device_count()


def _require(op):
    if not cuda.is_available():
        raise RuntimeError(
            f"fastnn.accelerator.{op}: no accelerator is available (fastnn.cuda.is_available() is False)"
        )
    return _device.require_cuda()


def current_device_index():
    return int(_require("current_device_index").cuda.Device().id)


def set_device_index(device):
    cp = _require("set_device_index")
    cp.cuda.Device(device if isinstance(device, int) else _device.as_device(device).index or 0).use()


def synchronize(device=None):
    cp = _require("synchronize")
    if device is None:
        cp.cuda.Device().synchronize()
    else:
        cp.cuda.Device(device if isinstance(device, int) else _device.as_device(device).index or 0).synchronize()
