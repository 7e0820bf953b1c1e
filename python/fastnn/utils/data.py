"""fastnn.utils.data: the names of torch.utils.data (Dataset, TensorDataset, DataLoader, Subset,
random_split), from fastnn.data, so `import torch.utils.data` ports by changing its import."""

from ..data import DataLoader, Dataset, Subset, TensorDataset, random_split

__all__ = ["Dataset", "TensorDataset", "DataLoader", "Subset", "random_split"]
