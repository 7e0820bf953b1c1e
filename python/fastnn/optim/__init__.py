"""fastnn.optim: SGD, Adam, AdamW and SparseAdam with torch.optim's semantics, and learning-rate schedulers."""

from . import lr_scheduler
from .optimizer import SGD, Adam, AdamW, Optimizer, SparseAdam

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "SparseAdam", "lr_scheduler"]
