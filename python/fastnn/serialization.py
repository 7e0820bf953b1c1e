"""fastnn.save / fastnn.load: state dicts and checkpoints as .npz files, without pickle.

The object (nested dicts, lists and tuples of tensors, arrays, numbers, strings, booleans and
None) is stored as its arrays plus one JSON description of the structure; loading reads them
with allow_pickle=False, so a file can hold data only, never code.

Tensors and arrays on a CUDA device are written as host copies; load() gives CPU tensors
unless map_location names a device ("cuda", "cuda:0", a fastnn.device) for the tensors, as
torch.load does (bare arrays stay NumPy arrays).
"""

import json
from collections import OrderedDict

import numpy as np

from . import _device as _dev
from .tensor import Tensor

_META = "__fastnn_structure__"


def _encode(obj, arrays):
    if isinstance(obj, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = _dev.to_host(obj.data)
        return {"tensor": key}
    if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
        key = f"a{len(arrays)}"
        arrays[key] = _dev.to_host(obj)
        return {"array": key}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), arrays)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, float) and not np.isfinite(obj):
            return {"float": repr(obj)}
        return obj
    if isinstance(obj, dict):
        return {
            "dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()],
            "ordered": isinstance(obj, OrderedDict),
        }
    if isinstance(obj, (list, tuple)):
        return {"list" if isinstance(obj, list) else "tuple": [_encode(v, arrays) for v in obj]}
    raise TypeError(f"fastnn.save: cannot store an object of type {type(obj).__name__}")


def _decode(node, arrays, dev=None):
    if not isinstance(node, dict):
        return node
    if "tensor" in node:
        a = arrays[node["tensor"]]
        return Tensor(a if dev is None else _dev.move(a, dev))
    if "array" in node:
        return arrays[node["array"]]  # bare arrays stay NumPy (optimizers move their state)
    if "float" in node:
        return float(node["float"])
    if "dict" in node:
        items = [(_decode(k, arrays, dev), _decode(v, arrays, dev)) for k, v in node["dict"]]
        return OrderedDict(items) if node.get("ordered") else dict(items)
    if "list" in node:
        return [_decode(v, arrays, dev) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays, dev) for v in node["tuple"])
    raise ValueError("fastnn.load: the file's structure description is not one fastnn.save writes")


def save(obj, f):
    """Write obj (a state_dict, or a checkpoint dict of them) to the .npz file or stream f."""
    arrays = {}
    structure = _encode(obj, arrays)
    arrays[_META] = np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8)
    np.savez(f, **arrays)


def load(f, map_location=None, weights_only=True):
    """Read what save() wrote (arrays come back as fastnn tensors where tensors were saved), on the
    CPU, or on the device map_location names."""
    dev = None if map_location is None else _dev.as_device(map_location)
    if dev is not None and dev.type == "cpu":
        dev = None
    with np.load(f, allow_pickle=False) as z:
        if _META not in z.files:
            raise ValueError("fastnn.load: not a file written by fastnn.save (no structure entry)")
        arrays = {k: z[k] for k in z.files}
    try:
        structure = json.loads(bytes(arrays.pop(_META)).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"fastnn.load: the structure entry is not valid JSON ({e})") from None
    return _decode(structure, arrays, dev)
