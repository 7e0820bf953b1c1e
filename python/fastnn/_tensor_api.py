"""The Tensor methods and module-level functions beyond tensor.py's core, in one place.

The method classes of the fastnn._tensor_* modules are attached to Tensor here (fastnn imports
this module, so every Tensor has them); a name that Tensor already defines is an error, so each
method has one definition. The module-level forms (fastnn.sin(t), fastnn.cumsum(t, 0), ...) are
made from the methods below and exported by fastnn/__init__.py. out= is not supported: passing
it is a NotImplementedError that says so.
"""

from . import _compat, _quiet
from ._tensor_factory import (
    FactoryMethods,
    bernoulli,
    empty_like,
    eye,
    full_like,
    is_floating_point,
    is_tensor,
    linspace,
    logspace,
    multinomial,
    numel,
    rand_like,
    randint_like,
    randn_like,
)
from ._tensor_math import (
    CompareMethods,
    ElementwiseMethods,
    InplaceMethods,
    function,
    tensor_of,
)
from ._tensor_reduce import ReductionMethods
from ._tensor_shape import ShapeMethods, einsum, where
from .tensor import Tensor

__all__ = [
    "bernoulli",
    "einsum",
    "empty_like",
    "eye",
    "full_like",
    "is_floating_point",
    "is_tensor",
    "linspace",
    "logspace",
    "multinomial",
    "numel",
    "rand_like",
    "randint_like",
    "randn_like",
    "where",
]


# -- attached to Tensor ---------------------------------------------------------------------------
_CLASS_MACHINERY = {
    "__module__",
    "__qualname__",
    "__doc__",
    "__dict__",
    "__weakref__",
    "__firstlineno__",
    "__static_attributes__",
}


# the method classes that compute: NumPy's floating-point warnings off in their methods (torch
# is silent on inf, nan and division by zero)
_COMPUTING = (ElementwiseMethods, InplaceMethods, ReductionMethods)


def _attach(cls, *method_classes):
    for mc in method_classes:
        for name, value in vars(mc).items():
            if name in _CLASS_MACHINERY:
                continue
            if name in vars(cls):
                raise RuntimeError(f"fastnn._tensor_api: Tensor.{name} is defined twice")
            if mc in _COMPUTING and callable(value) and not getattr(value, "_quiet", False):
                value = _quiet.quietly(value)
            setattr(cls, name, value)


_attach(
    Tensor,
    ElementwiseMethods,
    CompareMethods,
    InplaceMethods,
    ReductionMethods,
    ShapeMethods,
    FactoryMethods,
)


# -- module-level functions -----------------------------------------------------------------------
_FUNCTIONS = (
    # elementwise
    "sin cos tan asin acos atan sinh cosh asinh acosh atanh exp2 expm1 log1p log2 log10 rsqrt reciprocal "
    "neg negative sign floor ceil round trunc fix frac square erf lerp addcmul addcdiv atan2 arctan2 maximum "
    "minimum fmod remainder floor_divide div divide true_divide add sub subtract mul multiply nan_to_num logit "
    # comparisons and logic
    "eq ne lt le gt ge greater greater_equal less less_equal not_equal isnan isinf isfinite logical_and "
    "logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not equal isclose allclose "
    # reductions
    "prod std var amax amin norm logsumexp cumsum cumprod all any count_nonzero sort argsort topk median "
    # shape and indexing
    "split chunk narrow unbind gather scatter scatter_add index_select index_fill masked_fill masked_select "
    "nonzero argwhere tril triu roll repeat_interleave movedim moveaxis swapaxes swapdims unflatten diag "
    "diagonal trace outer ger dot mm bmm transpose permute squeeze unsqueeze t clone detach clip"
).split()

# name -> function, for fastnn/__init__.py
functions = {name: function(getattr(Tensor, name), name) for name in _FUNCTIONS}


def pow(input, exponent, *, out=None):
    """input ** exponent; input may be a number when exponent is a tensor (torch.pow(2, t))."""
    if out is not None:
        raise _compat.out_unsupported("pow")
    if not isinstance(input, Tensor) and isinstance(exponent, Tensor):
        return exponent.__rpow__(input)
    return tensor_of(input).pow(exponent)


functions.update(pow=pow)


def flip(input, dims):
    """input reversed along dims (a sequence of ints, as torch.flip)."""
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"flip(): argument 'dims' must be tuple of ints, not {type(dims).__name__}")
    return tensor_of(input).flip(*dims)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """input's elements repeated (Tensor.repeat_interleave); repeat_interleave(repeats) alone: the
    indices 0, 1, ... each repeated repeats[i] times."""
    if repeats is None:
        from .tensor import arange

        reps = tensor_of(input)
        return arange(reps.shape[0], device=reps.device).repeat_interleave(reps, 0, output_size=output_size)
    return tensor_of(input).repeat_interleave(repeats, dim, output_size=output_size)


def split(tensor, split_size_or_sections, dim=0):
    """tensor in pieces along dim (Tensor.split under torch.split's argument names)."""
    return tensor_of(tensor).split(split_size_or_sections, dim)


functions.update(flip=flip, repeat_interleave=repeat_interleave, split=split)
functions.update({name: globals()[name] for name in __all__})

# a torch.Tensor attribute fastnn lacks: NotImplementedError naming it (an AttributeError too)
Tensor.__getattr__ = _compat.tensor_getattr
