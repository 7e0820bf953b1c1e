"""fastnn: hand-written neural-network kernels with NumPy references, and a PyTorch-like layer over
them (fastnn.Tensor, fastnn.nn, fastnn.optim, fastnn.data, fastnn.train)."""
from . import _core, cuda, data, nn, ops, optim, ref, train, utils
from ._config import cached_memory, empty_cache, get_num_threads, set_num_threads, show_config
from ._device import device
from ._version import __version__  # checks that _core is this package's build
from .random import manual_seed, seed
from .serialization import load, save
from .tensor import (
                     Tensor,
                     abs,
                     arange,
                     argmax,
                     argmin,
                     as_tensor,
                     cat,
                     clamp,
                     empty,
                     enable_grad,
                     exp,
                     flatten,
                     float32,
                     float64,
                     from_numpy,
                     full,
                     int64,
                     is_grad_enabled,
                     log,
                     log_softmax,
                     long,
                     matmul,
                     max,
                     mean,
                     min,
                     no_grad,
                     ones,
                     ones_like,
                     rand,
                     randint,
                     randn,
                     randperm,
                     relu,
                     reshape,
                     sigmoid,
                     softmax,
                     sqrt,
                     stack,
                     sum,
                     tanh,
                     tensor,
                     where,
                     zeros,
                     zeros_like,
)

__all__ = ["__version__", "device", "cuda", "ops", "ref", "show_config", "get_num_threads", "set_num_threads",
           "empty_cache", "cached_memory", "Tensor", "tensor", "as_tensor", "from_numpy", "zeros",
           "ones", "full", "empty", "zeros_like", "ones_like", "arange", "randn", "rand", "randint",
           "randperm", "cat", "stack", "where", "no_grad", "enable_grad", "is_grad_enabled",
           "manual_seed", "seed", "float32", "float64", "int64", "long", "matmul", "nn", "optim", "data",
           "train", "utils", "save", "load"]
