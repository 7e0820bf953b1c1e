"""fastnn.optim: SGD, Adam, AdamW and SparseAdam with torch.optim's semantics, and learning-rate schedulers."""

from . import lr_scheduler
from .adaptive import Adadelta, Adagrad, Adamax, NAdam, RAdam, RMSprop
from .lbfgs import LBFGS
from .optimizer import SGD, Adam, AdamW, Optimizer, SparseAdam

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "SparseAdam",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
    "LBFGS",
    "lr_scheduler",
]
