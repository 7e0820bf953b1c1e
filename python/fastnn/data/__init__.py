"""fastnn.data: datasets, a DataLoader, MNIST's IDX format and the bundled MNIST subset and
tinyshakespeare text."""

import bisect
import gzip
import math
import numbers
import os
import zlib

import numpy as np

from .. import _files
from .. import random as _random
from ..tensor import Tensor
from .dataloader import DataLoader, IterableDataset, default_collate, default_convert, get_worker_info
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "ConcatDataset",
    "Subset",
    "random_split",
    "DataLoader",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "read_idx",
    "load_mnist_5k",
    "load_tinyshakespeare",
]


class Dataset:
    """A map-style dataset: __getitem__(i) and __len__()."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of the given tensors (or arrays), which share their first size."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        self.tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        n = len(self.tensors[0])
        if any(len(t) != n for t in self.tensors):
            raise ValueError("Size mismatch between tensors")

    def __getitem__(self, index):
        return tuple(Tensor(t._data[index]) for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class ConcatDataset(Dataset):
    """The samples of several datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise ValueError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, i):
        n = len(self)
        if i < 0:
            if -i > n:
                raise ValueError("absolute value of index should not exceed dataset length")
            i += n
        if i >= n:
            raise IndexError(f"index {i} is out of range for a dataset of {n}")
        d = bisect.bisect_right(self.cumulative_sizes, i)
        return self.datasets[d][i - (self.cumulative_sizes[d - 1] if d else 0)]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths, or of fractions of the whole
    (summing to 1; the remainder spread one by one from the first), in a random order drawn from
    `generator` (a fastnn.Generator or numpy Generator; default fastnn's)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and abs(sum(lengths) - 1) < 1e-9 and sum(lengths) != n:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0 for k in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = _random.numpy_generator(generator).permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start : start + k].tolist()))
        start += k
    return out


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path, *, max_bytes=None):
    """An array from an IDX file (MNIST's format; gzip-compressed or raw, any rank).

    The header's dimensions are checked before anything is allocated: their data must fit the
    file (a gzip stream expands at most 1032 times) and max_bytes (default: this machine's
    physical memory). The data is then decompressed in chunks up to exactly the declared size.
    Raises ValueError naming the file on one that is not IDX: a bad magic number, an unknown type
    code, a truncated header, or data shorter or longer than the header declares."""
    where = f"read_idx: {os.fspath(path)}"
    cap = _files.byte_cap(max_bytes, "read_idx")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gz else open)(path, "rb") as fh:
            return _read_idx_stream(fh, where, _files.deflate_bound(size) if gz else size, cap)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{where}: not a readable gzip file ({e})") from None


def _read_idx_stream(fh, where, available, cap):
    head = fh.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise ValueError(f"{where}: expected the IDX magic number (0x0000 then type and rank)")
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{where}: unknown IDX element type 0x{code:02x}")
    raw_dims = fh.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(f"{where}: truncated header")
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[code])
    nbytes = math.prod(dims) * dtype.itemsize
    _files.check_claim(4 + 4 * ndim + nbytes, available, f"{where}: dimensions {dims}")
    _files.check_cap(nbytes, cap, f"{where}: dimensions {dims}")
    body = _files.read_exact(fh, nbytes, f"{where}: dimensions {dims}")
    return np.frombuffer(body, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(dims)


def load_mnist_5k():
    """(images uint8 (5000, 28, 28), labels int64 (5000,)): the bundled MNIST subset, sorted by
    class (500 per class). See fastnn/data/mnist5k/README.md for its source and licence."""
    here = os.path.join(os.path.dirname(__file__), "mnist5k")
    images = read_idx(os.path.join(here, "images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(here, "labels-idx1-ubyte.gz")).astype(np.int64)
    return images, labels


def load_tinyshakespeare():
    """The bundled tinyshakespeare text (1,115,394 characters) as a str. See
    fastnn/data/tinyshakespeare/README.md for its source."""
    path = os.path.join(os.path.dirname(__file__), "tinyshakespeare", "input.txt.gz")
    with gzip.open(path, "rb") as fh:
        return fh.read().decode("utf-8")
