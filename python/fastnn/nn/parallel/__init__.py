"""fastnn.nn.parallel: torch.nn.parallel's names for scripts that wrap their model.

DataParallel runs the wrapped module on one device: forward calls it (tensor arguments are
first moved to device_ids[0] when CUDA devices are listed, as torch's scatter does for one
device), `.module` is the wrapped module and the state_dict keys carry torch's "module." prefix.
Splitting a batch over several devices is not supported: more than one device id raises
NotImplementedError, and device_ids=None means one device (torch would take all visible
ones). DistributedDataParallel raises NotImplementedError (fastnn has no distributed training).
"""

from ... import _device as _dev
from ... import cuda as _cuda
from ...tensor import Tensor
from ..modules import Module

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]


def _moved(obj, dev):
    """Tensors in obj (nested in tuples, lists and dicts) on device dev."""
    if isinstance(obj, Tensor):
        return obj.to(dev)
    if isinstance(obj, tuple):
        return tuple(_moved(v, dev) for v in obj)
    if isinstance(obj, list):
        return [_moved(v, dev) for v in obj]
    if isinstance(obj, dict):
        return {k: _moved(v, dev) for k, v in obj.items()}
    return obj


def _device_ids(device_ids):
    if not _cuda.is_available():
        return []  # as torch without a device: the wrapper only calls the module
    if device_ids is None:
        return [0]
    ids = [d if isinstance(d, int) else _dev.as_device(d).index or 0 for d in device_ids]
    if len(ids) > 1:
        raise NotImplementedError(
            f"fastnn.nn.DataParallel runs the module on one device; torch.nn.DataParallel's splitting of each "
            f"batch over several devices (device_ids={list(device_ids)}) is not supported"
        )
    return ids


class DataParallel(Module):
    """torch.nn.DataParallel on one device: a pass-through wrapper (see the module's docstring)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.device_ids = _device_ids(device_ids)
        self.output_device = output_device if output_device is not None else (self.device_ids or [None])[0]
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        if self.device_ids:
            dev = _dev.device("cuda", self.device_ids[0])
            inputs, kwargs = _moved(inputs, dev), _moved(kwargs, dev)
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0, module_kwargs=None):
    """torch.nn.parallel.data_parallel on one device: module(*inputs, **module_kwargs)."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return DataParallel(module, device_ids, output_device, dim)(*inputs, **(module_kwargs or {}))


class DistributedDataParallel(Module):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "fastnn has no torch.nn.parallel.DistributedDataParallel: distributed (multi-process) training is not "
            "supported; train the module directly"
        )
