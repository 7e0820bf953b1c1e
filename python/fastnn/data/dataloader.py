"""DataLoader, default_collate and default_convert with torch.utils.data's arguments and rules.

Batches are built in the calling process: num_workers, pin_memory, timeout and the other
worker options are accepted (and checked as torch checks them) but change nothing, since the
batches and their order would be the same. A TensorDataset batched with the default collate is
sliced as whole arrays, one fancy index per tensor and batch, with no per-sample Python work."""

import collections.abc
import numbers

import numpy as np

from ..tensor import Tensor
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info", "IterableDataset"]


class IterableDataset:
    """A dataset that is a stream: __iter__ yields samples (no indices, no sampler)."""

    def __iter__(self):
        raise NotImplementedError


def get_worker_info():
    """None: batches are made in the calling process (torch's answer outside a worker)."""
    return None


def _tensor_of(a):
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(
            f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {a.dtype}"
        )
    return Tensor(a, dtype=a.dtype)  # the samples' dtype, as torch keeps it


def default_collate(batch):
    """A list of samples -> a batch: tensors and arrays stacked (dtype kept), Python floats a
    float64 tensor, ints an int64 one, bools a bool one, strings a list, and dicts, tuples and
    lists collated field by field (a tuple of fields comes back as a list, as in torch)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(b.shape) for b in batch}
        if len(shapes) > 1:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {sorted(shapes)}")
        return Tensor(np.stack([b._data for b in batch]), dtype=elem._data.dtype)
    if isinstance(elem, np.ndarray):
        return _tensor_of(np.stack(batch))
    if isinstance(elem, np.generic):
        return _tensor_of(np.array(batch))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=bool))
    if isinstance(elem, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float64), dtype=np.float64)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(
        f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {type(elem)}"
    )


def default_convert(data):
    """One sample as a DataLoader without automatic batching gives it: arrays and NumPy scalars
    become tensors (dtype kept), containers are converted element by element."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "fiub":
        return Tensor(data, dtype=data.dtype)
    if isinstance(data, np.generic) and np.asarray(data).dtype.kind in "fiub":
        return Tensor(np.asarray(data), dtype=np.asarray(data).dtype)
    if isinstance(data, collections.abc.Mapping):
        return type(data)({k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (list, tuple)):
        return type(data)(default_convert(d) for d in data)
    return data


class DataLoader:
    """Batches of a dataset, as torch.utils.data.DataLoader makes them.

    dataset: map-style (__getitem__, __len__) or an IterableDataset. batch_size (None: no
    automatic batching, each sample converted alone), shuffle (a RandomSampler), sampler (an
    iterable of indices), batch_sampler (an iterable of index lists; excludes batch_size,
    shuffle, sampler and drop_last), collate_fn (default_collate, or default_convert without
    batching), drop_last, generator (a fastnn.Generator or numpy Generator for the shuffle)."""

    def __init__(
        self,
        dataset,
        batch_size=1,
        shuffle=None,
        sampler=None,
        batch_sampler=None,
        num_workers=0,
        collate_fn=None,
        pin_memory=False,
        drop_last=False,
        timeout=0,
        worker_init_fn=None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor=None,
        persistent_workers=False,
        pin_memory_device="",
        in_order=True,
    ):
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing."
                "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
            )
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(
                        f"DataLoader with IterableDataset: expected unspecified {name} option, but got {name}={value!r}"
                    )
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if iterable and batch_size is not None:
            BatchSampler(SequentialSampler(()), batch_size, drop_last)  # torch's checks of the two
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.worker_init_fn, self.prefetch_factor, self.persistent_workers = (
            worker_init_fn,
            prefetch_factor,
            persistent_workers,
        )
        self._auto_collation = batch_sampler is not None or (iterable and batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._iterable = iterable

    def __iter__(self):
        if self._iterable:
            return self._iter_stream()
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        from . import TensorDataset  # the package imports this module

        if (
            isinstance(self.dataset, TensorDataset)
            and self.collate_fn is default_collate
            and isinstance(self.batch_sampler, BatchSampler)
        ):
            tensors = self.dataset.tensors
            return ([Tensor(t._data[idx]) for t in tensors] for idx in self.batch_sampler._index_arrays())
        return (self.collate_fn([self.dataset[i] for i in idx]) for idx in self.batch_sampler)

    def _iter_stream(self):
        if not self._auto_collation:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)  # a TypeError when the stream has no length, as in torch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)
