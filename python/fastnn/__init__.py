"""fastnn: hand-written neural-network kernels with NumPy references, and a PyTorch-like layer over
them (fastnn.Tensor, fastnn.nn, fastnn.optim, fastnn.data, fastnn.train)."""

import builtins as _builtins
import importlib as _importlib

from . import (
    _compat,
    _core,
    _tensor_api,
    accelerator,
    backends,
    cuda,
    data,
    nn,
    onnx,
    ops,
    optim,
    ref,
    return_types,
    train,
    utils,
)
from ._config import cached_memory, empty_cache, get_num_threads, set_num_threads, show_config
from ._device import device
from ._dtypes import (
    bool,
    double,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    short,
    uint8,
)
from ._version import __version__  # checks that _core is this package's build
from .random import Generator, get_rng_state, manual_seed, seed, set_rng_state
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
    from_numpy,
    full,
    is_grad_enabled,
    log,
    log_softmax,
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
    zeros,
    zeros_like,
)

# The tensor functions of fastnn._tensor_api (fastnn.sin, fastnn.cumsum, fastnn.einsum, ...).
globals().update(_tensor_api.functions)
# out= (where torch takes it): NotImplementedError saying to use the returned tensor
_compat.refuse_out(globals())

__all__ = [
    "__version__",
    "device",
    "cuda",
    "ops",
    "ref",
    "show_config",
    "get_num_threads",
    "set_num_threads",
    "empty_cache",
    "cached_memory",
    "Tensor",
    "tensor",
    "as_tensor",
    "from_numpy",
    "zeros",
    "ones",
    "full",
    "empty",
    "zeros_like",
    "ones_like",
    "arange",
    "randn",
    "rand",
    "randint",
    "randperm",
    "cat",
    "stack",
    "where",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "manual_seed",
    "seed",
    "Generator",
    "get_rng_state",
    "set_rng_state",
    "float16",
    "float32",
    "float64",
    "half",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "short",
    "long",
    "uint8",
    "get_default_dtype",
    "set_default_dtype",
    "return_types",
    "matmul",
    "nn",
    "optim",
    "data",
    "train",
    "utils",
    "accelerator",
    "backends",
    "onnx",
    "save",
    "load",
    "metrics",
]
__all__ += sorted(n for n in _tensor_api.functions if not hasattr(_builtins, n))  # not all, any, pow, round


# fastnn's own submodules that torch lacks, imported on first use (fastnn.metrics)
_ON_FIRST_USE = ("metrics",)


def __getattr__(name):
    # a torch submodule fastnn has, or one of _ON_FIRST_USE, imported on first use; a torch name
    # fastnn lacks: NotImplementedError naming it (an AttributeError too)
    if name in _ON_FIRST_USE:
        return _importlib.import_module(f"{__name__}.{name}")
    return _compat.module_getattr(__name__, "torch", name)
