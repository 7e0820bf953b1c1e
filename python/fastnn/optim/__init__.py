"""fastnn.optim: SGD, Adam and AdamW with torch.optim's semantics, and learning-rate schedulers."""
from . import lr_scheduler
from .optimizer import Adam, AdamW, Optimizer, SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
