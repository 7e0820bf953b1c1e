"""fastnn.optim: torch.optim's optimizers and learning-rate schedulers, with its constructors,
defaults, argument errors, formulas, state names and state dicts.

- SGD, Adam, AdamW: one fused kernel call per device and step (fastnn.ops.sgd_step /
  adam_step); SparseAdam for row-sparse gradients (nn.Embedding(sparse=True)).
- Adagrad, RMSprop, Adadelta, Adamax, NAdam, RAdam (optim.adaptive): array math on each
  parameter, in its dtype and on its device, in torch's order of operations.
- LBFGS (optim.lbfgs): step(closure), with an optional strong-Wolfe line search.
- lr_scheduler: LRScheduler and torch's schedulers (StepLR ... OneCycleLR, ReduceLROnPlateau).

Every step(closure) runs the closure with grad mode on and returns its loss."""

from .. import _compat
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


def __getattr__(name):
    # a torch.optim name fastnn lacks: NotImplementedError naming it (an AttributeError too)
    return _compat.module_getattr(__name__, "torch.optim", name)
