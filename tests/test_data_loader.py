"""fastnn.data's DataLoader, samplers, collate functions and datasets against torch.utils.data's:
the same batches (for the deterministic samplers), the same lengths, dtypes and argument errors."""

import collections
import warnings

import fastnn
import numpy as np
import pytest
from fastnn.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    random_split,
)


def _torch():
    return pytest.importorskip("torch")


def _plain(x):
    """Batches as nested Python/NumPy values, for either library."""
    if hasattr(x, "numpy") and hasattr(x, "shape"):
        a = x.detach().numpy() if hasattr(x, "detach") else x.numpy()
        return ("tensor", str(a.dtype), a.tolist())
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__, [_plain(v) for v in x])
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float32), "y": i * i, "w": i / 2, "name": f"s{i}"}


Point = collections.namedtuple("Point", "a b")


def test_sequential_and_batch_samplers_match_torch():
    torch = _torch()
    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (0, 2, False), (5, 7, False), (5, 7, True)]:
        ours = list(BatchSampler(SequentialSampler(range(n)), bs, drop))
        theirs = list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), bs, drop))
        assert ours == theirs and len(BatchSampler(SequentialSampler(range(n)), bs, drop)) == len(theirs)
        # a plain list as the sampler goes through the generic path
        assert list(BatchSampler([4, 2, 9, 1, 0], 2, drop)) == list(
            torch.utils.data.BatchSampler([4, 2, 9, 1, 0], 2, drop)
        )
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            BatchSampler(range(3), bad, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(3), 2, 1)


def test_random_samplers():
    g = fastnn.Generator().manual_seed(5)
    a = list(RandomSampler(range(20), generator=g))
    assert sorted(a) == list(range(20))
    assert list(RandomSampler(range(20), generator=fastnn.Generator().manual_seed(5))) == a  # seeded: repeats
    fastnn.manual_seed(1)
    b = list(RandomSampler(range(20)))
    fastnn.manual_seed(1)
    assert list(RandomSampler(range(20))) == b  # the global generator, seeded
    # without replacement past n: whole permutations, then part of one (as torch)
    c = list(RandomSampler(range(4), num_samples=10))
    assert len(c) == 10 and sorted(c[:4]) == sorted(c[4:8]) == [0, 1, 2, 3] and len(set(c[8:])) == 2
    d = list(RandomSampler(range(3), replacement=True, num_samples=50))
    assert len(d) == 50 and set(d) <= {0, 1, 2}
    assert len(RandomSampler(range(3), replacement=True, num_samples=50)) == 50
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(range(3), replacement=1)
    s = list(SubsetRandomSampler([7, 3, 11], generator=g))
    assert sorted(s) == [3, 7, 11] and len(SubsetRandomSampler([7, 3, 11])) == 3
    w = list(WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=g))
    assert 0 not in w and 0.2 < w.count(1) / 4000 < 0.3
    assert sorted(WeightedRandomSampler([1, 1, 0, 1], 3, replacement=False, generator=g)) == [0, 1, 3]
    with pytest.raises(RuntimeError):
        WeightedRandomSampler([1, 0, 0], 2, replacement=False)
    for bad in ([], [-1, 2], [float("nan")], [0, 0]):
        with pytest.raises(ValueError, match="weights"):
            WeightedRandomSampler(bad, 2)
    with pytest.raises(TypeError, match="fastnn.Generator"):
        list(RandomSampler(range(3), generator=42))


def test_default_collate_matches_torch():
    torch = _torch()
    from torch.utils.data import default_collate as torch_collate

    batches = [
        [Squares(5)[i] for i in range(3)],
        [(np.arange(3, dtype=np.int32), 1.5, True), (np.arange(3, dtype=np.int32), 2.5, False)],
        [Point(np.float64(1), [1, 2]), Point(np.float64(2), [3, 4])],
        [np.array([1.0, 2.0]), np.array([3.0, 4.0])],  # float64 arrays stay float64
        [np.float32(1), np.float32(2)],
        [[1, "a"], [2, "b"]],
    ]
    for batch in batches:
        assert _plain(default_collate(batch)) == _plain(torch_collate(batch)), batch
    tb = [torch.ones(2), torch.zeros(2)]
    fb = [fastnn.ones(2), fastnn.zeros(2)]
    assert _plain(default_collate(fb)) == _plain(torch_collate(tb))
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([fastnn.ones(2), fastnn.ones(3)])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object(), object()])


def test_default_convert_matches_torch():
    _torch()
    from torch.utils.data import default_convert as torch_convert

    for sample in [np.arange(3), {"a": np.float32(2), "b": "x"}, (np.ones(2), 3), Point(np.zeros(1), "q")]:
        assert _plain(default_convert(sample)) == _plain(torch_convert(sample)), sample


def test_dataloader_over_a_map_dataset_matches_torch():
    torch = _torch()
    ds = Squares(7)
    for kw in [
        {"batch_size": 3},
        {"batch_size": 3, "drop_last": True},
        {"batch_size": None},
        {"batch_size": 2, "sampler": [6, 0, 3, 3, 1]},
        {"batch_sampler": [[0, 1], [5], [2, 3, 4]]},
        {"batch_size": 4, "collate_fn": lambda b: [s["y"] for s in b]},
        {"batch_size": 2, "num_workers": 2, "pin_memory": True},  # ours only: made in-process
    ]:
        ours = DataLoader(ds, **kw)
        kw = {k: v for k, v in kw.items() if k not in ("num_workers", "pin_memory")}
        theirs = torch.utils.data.DataLoader(ds, **kw)
        assert [_plain(b) for b in ours] == [_plain(b) for b in theirs], kw
        assert len(ours) == len(theirs), kw


def test_dataloader_argument_errors_match_torch():
    torch = _torch()
    ds = Squares(4)
    cases = [
        {"sampler": [0, 1], "shuffle": True},
        {"batch_sampler": [[0]], "batch_size": 2},
        {"batch_sampler": [[0]], "drop_last": True},
        {"batch_sampler": [[0]], "shuffle": True},
        {"batch_size": None, "drop_last": True},
        {"num_workers": -1},
        {"timeout": -1},
        {"prefetch_factor": 2},
        {"persistent_workers": True},
        {"batch_size": 0},
    ]
    for kw in cases:
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.DataLoader(ds, **kw)
        with pytest.raises(ValueError) as ours:
            DataLoader(ds, **kw)
        assert str(ours.value) == str(theirs.value), kw


class Stream(IterableDataset):
    def __init__(self, n, sized=True):
        self.n, self.sized = n, sized

    def __iter__(self):
        return iter((np.float32(i), i) for i in range(self.n))

    def __len__(self):
        if not self.sized:
            raise TypeError("no length")
        return self.n


def test_dataloader_over_an_iterable_dataset_matches_torch():
    torch = _torch()

    class TorchStream(torch.utils.data.IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter((np.float32(i), i) for i in range(self.n))

        def __len__(self):
            return self.n

    for kw in [{"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}]:
        ours, theirs = DataLoader(Stream(8), **kw), torch.utils.data.DataLoader(TorchStream(8), **kw)
        assert [_plain(b) for b in ours] == [_plain(b) for b in theirs], kw
        assert len(ours) == len(theirs)
    for kw in [{"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}]:
        with pytest.raises(ValueError, match="IterableDataset"):
            DataLoader(Stream(3), **kw)
    with pytest.raises(TypeError):
        len(DataLoader(Stream(3, sized=False)))


def test_tensor_dataset_fast_path_gives_what_collating_samples_gives():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    ds = TensorDataset(x, y)
    for kw in [{"batch_size": 4}, {"batch_size": 4, "shuffle": True}, {"batch_size": 3, "drop_last": True}]:
        fastnn.manual_seed(3)
        fast = [[t.numpy() for t in b] for b in DataLoader(ds, **kw)]
        fastnn.manual_seed(3)
        slow = [[t.numpy() for t in b] for b in DataLoader(ds, collate_fn=lambda s: default_collate(s), **kw)]
        assert len(fast) == len(slow)
        for f, s in zip(fast, slow):
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(f, s))
    g1, g2 = fastnn.Generator().manual_seed(9), fastnn.Generator().manual_seed(9)
    a = [b[1].numpy() for b in DataLoader(ds, batch_size=5, shuffle=True, generator=g1)]
    b = [b[1].numpy() for b in DataLoader(ds, batch_size=5, shuffle=True, generator=g2)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_random_split_and_concat_dataset_match_torch():
    torch = _torch()
    for n, lengths in [(10, [3, 7]), (10, [0.3, 0.7]), (11, [0.5, 0.5]), (7, [0.2, 0.2, 0.6]), (5, [1, 0.0])]:
        ours = random_split(range(n), lengths, generator=fastnn.Generator().manual_seed(0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns of an empty split
            theirs = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(s) for s in ours] == [len(s) for s in theirs], (n, lengths)
        assert sorted(i for s in ours for i in s) == list(range(n))
    for lengths in ([3, 3], [-1, 11], [0.5, 0.6]):
        with pytest.raises(ValueError):
            random_split(range(10), lengths)
    parts = [range(3), range(10, 12), range(0), range(20, 24)]
    ours, theirs = ConcatDataset(parts), torch.utils.data.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 9
    assert [ours[i] for i in range(-9, 9)] == [theirs[i] for i in range(-9, 9)]
    with pytest.raises(IndexError):
        ours[9]
    with pytest.raises(ValueError):
        ours[-10]
    with pytest.raises(ValueError):
        ConcatDataset([])


def test_generator_state_round_trip():
    g = fastnn.Generator().manual_seed(123)
    assert g.initial_seed() == 123
    state = g.get_state()
    a = list(RandomSampler(range(50), generator=g))
    g.set_state(state)
    assert list(RandomSampler(range(50), generator=g)) == a
    with pytest.raises(ValueError, match="Generator.set_state"):
        g.set_state(np.frombuffer(b"{}", np.uint8))
    assert isinstance(g.seed(), int)


def test_torch_utils_data_names_all_exist():
    torch = _torch()
    import fastnn.utils.data as ours

    wanted = [
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
    ]
    assert all(hasattr(torch.utils.data, n) for n in wanted)
    assert [n for n in wanted if not hasattr(ours, n)] == []
    assert ours.get_worker_info() is None
