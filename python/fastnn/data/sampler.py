"""Samplers: the order in which a DataLoader visits a dataset's indices, as torch.utils.data has
them (Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler,
BatchSampler). Random ones draw from `generator` (a fastnn.Generator or a numpy Generator) or,
without one, from fastnn's generator (fastnn.manual_seed), so a seeded run repeats itself; the
streams are NumPy's, not torch's, so the orders differ from torch's for the same seed."""

import numbers

import numpy as np

from .. import random as _random

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
]


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


class Sampler:
    """Base class: __iter__ yields dataset indices (or, for a batch sampler, lists of them)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)

    def _index_batches(self, batch_size, drop_last):
        return _batches(np.arange(len(self.data_source)), batch_size, drop_last)


class RandomSampler(Sampler):
    """A random permutation of the indices, or with replacement=True `num_samples` draws."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        self.data_source, self.replacement, self.generator = data_source, replacement, generator
        self._num_samples = None if num_samples is None else _count(num_samples, "num_samples")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _order(self):
        n, rng = len(self.data_source), _random.numpy_generator(self.generator)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples) if n else np.zeros(0, np.int64)
        # without replacement, num_samples past n takes further permutations (as torch does)
        k = self.num_samples
        perms = [rng.permutation(n) for _ in range(-(-k // n) if n else 0)]
        return np.concatenate(perms)[:k] if perms else np.zeros(0, np.int64)

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self):
        return self.num_samples

    def _index_batches(self, batch_size, drop_last):
        return _batches(self._order(), batch_size, drop_last)


class SubsetRandomSampler(Sampler):
    """The given indices in a random order."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = indices, generator

    def _order(self):
        idx = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        return idx[_random.numpy_generator(self.generator).permutation(len(idx))]

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self):
        return len(self.indices)

    def _index_batches(self, batch_size, drop_last):
        return _batches(self._order(), batch_size, drop_last)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices drawn with probabilities proportional to `weights`."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        w = np.asarray(getattr(weights, "data", weights), dtype=np.float64).reshape(-1)
        if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights should be a 1-d sequence of non-negative, finite numbers with a positive sum")
        self.weights, self.replacement, self.generator = w, replacement, generator
        self.num_samples = _count(num_samples, "num_samples")
        if not replacement and self.num_samples > np.count_nonzero(w):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")

    def _order(self):
        rng = _random.numpy_generator(self.generator)
        return rng.choice(
            len(self.weights), size=self.num_samples, replace=self.replacement, p=self.weights / self.weights.sum()
        )

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self):
        return self.num_samples

    def _index_batches(self, batch_size, drop_last):
        return _batches(self._order(), batch_size, drop_last)


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`; the last one shorter unless drop_last."""

    def __init__(self, sampler, batch_size, drop_last):
        self.batch_size = _count(batch_size, "batch_size")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler, self.drop_last = sampler, drop_last

    def __iter__(self):
        fast = getattr(self.sampler, "_index_batches", None)
        if fast is not None:  # our samplers: one array of indices, sliced
            for b in fast(self.batch_size, self.drop_last):
                yield b.tolist()
            return
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _index_arrays(self):
        """The batches as int64 arrays (the DataLoader's fast path for array datasets)."""
        fast = getattr(self.sampler, "_index_batches", None)
        if fast is not None:
            return fast(self.batch_size, self.drop_last)
        return (np.asarray(b, dtype=np.int64) for b in self)


def _batches(order, batch_size, drop_last):
    order = np.asarray(order, dtype=np.int64)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return (order[i : i + batch_size] for i in range(0, stop, batch_size))
