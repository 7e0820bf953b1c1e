"""fastnn.save / fastnn.load: state dicts and checkpoints as .npz files, without pickle.

The object (nested dicts, lists and tuples of tensors, arrays, numbers, strings, booleans and
None) is stored as its arrays plus one JSON description of the structure; loading reads them
with a parser of our own that accepts exactly that (see load()), so a file can hold data
only, never code.

Tensors and arrays on a CUDA device are written as host copies; load() gives CPU tensors
unless map_location names a device ("cuda", "cuda:0", a fastnn.device) for the tensors, as
torch.load does (bare arrays stay NumPy arrays).
"""

import json
import math
import os
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from . import _device as _dev
from . import _files
from .tensor import Tensor

_META = "__fastnn_structure__"
# The deepest nesting of JSON arrays and objects in a structure description: each Python dict
# takes 3 levels, a list or tuple 2, so a checkpoint of state dicts needs about 15.
_MAX_DEPTH = 100
_NONFINITE = ("nan", "inf", "-inf")


def _encode(obj, arrays):
    if isinstance(obj, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = _dev.to_host(obj._data)
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


class _Reader:
    """Turns the structure description back into objects, accepting only what _encode writes:
    each array referenced once, every array referenced, dict keys hashable."""

    def __init__(self, where, arrays, dev):
        self.where, self.arrays, self.dev, self.used = where, arrays, dev, set()

    def fail(self, what):
        raise ValueError(f"{self.where}: the structure description is not one fastnn.save writes ({what})")

    def array(self, key):
        if not isinstance(key, str) or key not in self.arrays:
            self.fail(f"it names an array {key!r} the file does not hold")
        if key in self.used:
            self.fail(f"it names the array {key!r} twice")
        self.used.add(key)
        return self.arrays[key]

    def items(self, node, what):
        if not isinstance(node, list):
            self.fail(f"{what} is a {type(node).__name__}, not a list")
        return node

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict):
            self.fail(f"a {type(node).__name__} where a value belongs")
        keys = set(node)
        if keys == {"tensor"}:
            a = self.array(node["tensor"])
            return Tensor(a if self.dev is None else _dev.move(a, self.dev))
        if keys == {"array"}:
            return self.array(node["array"])  # bare arrays stay NumPy (optimizers move their state)
        if keys == {"float"}:
            if node["float"] not in _NONFINITE:
                self.fail(f"float {node['float']!r}")
            return float(node["float"])
        if keys == {"dict", "ordered"} and isinstance(node["ordered"], bool):
            items = []
            for pair in self.items(node["dict"], "a dict's items"):
                if not isinstance(pair, list) or len(pair) != 2:
                    self.fail("a dict item that is not a [key, value] pair")
                key = self.decode(pair[0])
                try:
                    hash(key)
                except TypeError:
                    self.fail(f"a dict key of type {type(key).__name__}")
                items.append((key, self.decode(pair[1])))
            return OrderedDict(items) if node["ordered"] else dict(items)
        if keys == {"list"}:
            return [self.decode(v) for v in self.items(node["list"], "a list")]
        if keys == {"tuple"}:
            return tuple(self.decode(v) for v in self.items(node["tuple"], "a tuple"))
        self.fail(f"an object with keys {sorted(keys)}")


def save(obj, f, pickle_module=None, pickle_protocol=2):
    """Write obj (a state_dict, or a checkpoint dict of them) to the .npz file or stream f. torch's
    pickle_module and pickle_protocol are accepted and change nothing: nothing is pickled."""
    arrays = {}
    text = json.dumps(_encode(obj, arrays), allow_nan=False)
    if _files.json_depth(text) > _MAX_DEPTH:
        raise ValueError(f"fastnn.save: the object is nested too deeply to load back (over {_MAX_DEPTH} JSON levels)")
    arrays[_META] = np.frombuffer(text.encode(), dtype=np.uint8)
    if isinstance(f, (str, os.PathLike)):
        # the file at exactly this path, as torch.save writes it (np.savez would add ".npz" to a
        # name without it, and load(path) would then miss the file)
        with open(f, "wb") as stream:
            np.savez(stream, **arrays)
    else:
        np.savez(f, **arrays)


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, max_bytes=None):
    """Read what save() wrote (arrays come back as fastnn tensors where tensors were saved), on the
    CPU, or on the device map_location names. torch's pickle_module, weights_only and mmap are
    accepted and change nothing: the file is never unpickled, and is read whole.

    The file is checked before anything is allocated for it: each array's declared size must fit
    the data the archive holds and, all arrays together, max_bytes (default: this machine's
    physical memory); the structure description must be JSON of at most 100 levels, of the form
    save() writes. A file that fails a check raises ValueError naming the file and the reason;
    nothing in it is ever unpickled or executed."""
    dev = None if map_location is None else _dev.as_device(map_location)
    if dev is not None and dev.type == "cpu":
        dev = None
    where = f"fastnn.load: {_name_of(f)}"
    cap = _files.byte_cap(max_bytes, "fastnn.load")
    try:
        arrays = _read_npz(f, where, cap)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(f"{where}: not a readable .npz archive ({e})") from None
    if _META not in arrays:
        raise ValueError(f"{where}: not a file written by fastnn.save (no structure entry)")
    meta = arrays.pop(_META)
    if meta.dtype != np.uint8 or meta.ndim != 1:
        raise ValueError(f"{where}: the structure entry is not a 1-d uint8 array")
    try:
        text = bytes(meta).decode()
        if _files.json_depth(text) > _MAX_DEPTH:
            raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
        structure = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:  # UnicodeDecodeError, JSONDecodeError, an int of too many digits
        raise ValueError(f"{where}: the structure entry is not valid JSON ({e})") from None
    reader = _Reader(where, arrays, dev)
    obj = reader.decode(structure)
    if len(reader.used) != len(arrays):
        reader.fail(f"it leaves out the arrays {sorted(set(arrays) - reader.used)}")
    return obj


def _name_of(f):
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    return str(getattr(f, "name", "<stream>"))


def _no_constant(name):
    raise ValueError(f"{name} is not JSON (save writes non-finite floats as {{'float': ...}})")


def _read_npz(f, where, cap):
    """{name: array} of every member of the .npz archive f, each checked before it is read."""
    arrays, total = {}, 0
    with zipfile.ZipFile(f) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: the archive holds a member name twice")
        for info in infos:
            member = f"{where}: member {info.filename!r}"
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{member}: not a .npy array")
            if info.compress_type == zipfile.ZIP_STORED:
                available = info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                available = _files.deflate_bound(info.compress_size)
            else:
                raise ValueError(f"{member}: compression method {info.compress_type} (expected stored or deflate)")
            available = min(available, info.file_size)
            with z.open(info) as fh:
                dtype, shape, fortran, header = _npy_header(fh, member)
                nbytes = math.prod(shape) * dtype.itemsize
                _files.check_claim(header + nbytes, available, member)
                total += nbytes
                _files.check_cap(total, cap, f"{where}: its arrays")
                buf = _files.read_exact(fh, nbytes, member)
            a = np.frombuffer(buf, dtype=dtype)
            arrays[info.filename[:-4]] = a.reshape(shape[::-1]).T if fortran else a.reshape(shape)
    return arrays


def _npy_header(fh, member):
    """(dtype, shape, fortran_order, header bytes) of the .npy stream fh, positioned at its data."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"format version {version}")
    except (ValueError, TypeError, SyntaxError) as e:
        raise ValueError(f"{member}: not a valid .npy header ({e})") from None
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"{member}: not a valid .npy header (shape {shape})")
    if dtype.hasobject:
        raise ValueError(f"{member}: holds Python objects ({dtype}), which only pickle could read; refused")
    if dtype.itemsize == 0:
        raise ValueError(f"{member}: a dtype of no size ({dtype})")
    return dtype, shape, fortran, fh.tell()
