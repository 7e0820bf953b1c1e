"""fastnn.utils.data: the names of torch.utils.data, from fastnn.data, so `import torch.utils.data`
ports by changing its import."""

from .. import _compat
from ..data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
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
]


def __getattr__(name):
    # a torch.utils.data name fastnn lacks: NotImplementedError naming it (an AttributeError too)
    raise _compat.missing(__name__, "torch.utils.data", name)
