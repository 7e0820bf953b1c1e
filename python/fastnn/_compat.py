"""fastnn's coverage of PyTorch's public names, declared once for docs/torch-compat.md and for
the error a torch name fastnn lacks raises.

- torch_names(namespace): torch 2.13's public names there, read from _torch_names.txt (written
  by scripts/gen_torch_compat.py --refresh-names where torch is installed).
- PARTIAL: the names fastnn has but implements in part: {namespace: {name: what is missing}};
  passing what is missing raises NotImplementedError saying so.
- refuse_out(): fastnn's top-level functions whose torch counterpart takes out= (the
  "[torch out=]" section of _torch_names.txt) refuse it with NotImplementedError saying what to
  do instead, rather than a TypeError about an unexpected keyword.
- missing() / tensor_getattr(): a torch name fastnn lacks raises Unsupported, a
  NotImplementedError naming the torch feature (an AttributeError too, so hasattr() and getattr()
  with a default still answer "not there"); any other unknown name is a plain AttributeError."""

import functools
import importlib
import importlib.util
import pathlib
import types

__all__ = [
    "NAMESPACES",
    "PARTIAL",
    "Unsupported",
    "torch_names",
    "missing",
    "module_getattr",
    "tensor_getattr",
    "out_unsupported",
    "refuse_out",
]

# torch namespace -> the fastnn module (or class) that stands for it
NAMESPACES = {
    "torch": "fastnn",
    "torch.Tensor": "fastnn.Tensor",
    "torch.nn": "fastnn.nn",
    "torch.nn.functional": "fastnn.nn.functional",
    "torch.nn.init": "fastnn.nn.init",
    "torch.optim": "fastnn.optim",
    "torch.optim.lr_scheduler": "fastnn.optim.lr_scheduler",
    "torch.utils.data": "fastnn.utils.data",
    "torch.distributions": "fastnn.distributions",
}

_NORM_P = "p other than a number, inf, -inf or 'fro'"
# the optimizers' flags for an update recorded by autograd or captured in a CUDA graph
_DIFF = "differentiable=True"
_DIFF_CAPT = "differentiable=True, capturable=True"

PARTIAL = {
    "torch": {
        "einsum": "the sublist form (operands interleaved with lists of indices)",
        "norm": _NORM_P,
    },
    "torch.Tensor": {
        "norm": _NORM_P,
        "scatter": "reduce= (use scatter_add)",
    },
    "torch.nn": {
        "DataParallel": "splitting a batch over more than one device",
        "Embedding": "max_norm, scale_grad_by_freq",
        "Module": "backward hooks, state_dict and load_state_dict hooks, load_state_dict(assign=True)",
        "Unflatten": "a named dim (named tensors)",
        "Upsample": "modes 'bicubic' and 'lanczos'; mode 'area' on a 5-D input",
    },
    "torch.nn.functional": {
        "interpolate": "antialias=True; modes 'bicubic' and 'lanczos'; mode 'area' on a 5-D input; uint8 'bilinear'",
        "normalize": "out=",
        "scaled_dot_product_attention": "enable_gqa",
    },
    "torch.distributions": {
        "Categorical": "rsample (no reparameterised sampling), expand, cdf and icdf",
        "Distribution": "rsample (no reparameterised sampling), expand, cdf and icdf",
    },
    "torch.optim": {
        "Adadelta": _DIFF_CAPT,
        "Adagrad": _DIFF,
        "Adam": _DIFF_CAPT,
        "AdamW": _DIFF_CAPT,
        "Adamax": _DIFF_CAPT,
        "NAdam": _DIFF_CAPT,
        "RAdam": _DIFF_CAPT,
        "RMSprop": _DIFF_CAPT,
        "SGD": f"{_DIFF}; weight_decay with a sparse gradient",
    },
}

NAMES_FILE = pathlib.Path(__file__).with_name("_torch_names.txt")


class Unsupported(NotImplementedError, AttributeError):
    pass


_names = None


def read_names(path=NAMES_FILE):
    """{namespace: frozenset of names} from a names file: `[namespace]` lines, then one name a
    line; `#` starts a comment."""
    out, current = {}, None
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = out.setdefault(line[1:-1], set())
        elif current is None:
            raise ValueError(f"{path.name}: a name before the first [namespace] line: {line!r}")
        else:
            current.add(line)
    return {k: frozenset(v) for k, v in out.items()}


def torch_names(namespace):
    """torch 2.13's public names in namespace ("torch", "torch.Tensor", "torch.nn", ...)."""
    global _names
    if _names is None:
        _names = read_names()
    return _names.get(namespace, frozenset())


def missing(module, namespace, name):
    """The error for module.<name>: Unsupported when torch's namespace has it, else AttributeError."""
    if name in torch_names(namespace):
        return Unsupported(f"fastnn has no {namespace}.{name}: {module}.{name} is not implemented")
    return AttributeError(f"module '{module}' has no attribute '{name}'")


def module_getattr(module, namespace, name):
    """A package's __getattr__: its submodule `name` (one torch has too), imported on first use;
    otherwise missing()'s error."""
    if name in torch_names(namespace) and importlib.util.find_spec(f"{module}.{name}") is not None:
        return importlib.import_module(f"{module}.{name}")
    raise missing(module, namespace, name)


def tensor_getattr(self, name):
    """Tensor.__getattr__ (reached only when normal lookup fails)."""
    # an unset slot (grad before backward) also lands here: that is not a missing feature
    if name in torch_names("torch.Tensor") and not hasattr(type(self), name):
        raise Unsupported(f"fastnn has no torch.Tensor.{name}: fastnn.Tensor.{name} is not implemented")
    raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


def out_unsupported(name):
    """The error for out= passed to fastnn.<name>."""
    return NotImplementedError(
        f"fastnn.{name}: out= is not supported; use the returned tensor (y = fastnn.{name}(...)), or copy "
        f"it into yours: out.copy_(fastnn.{name}(...))"
    )


def _takes_out(f):
    code = f.__code__
    return "out" in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]


def refuse_out(namespace):
    """Wrap each function in namespace (a module's globals) whose torch counterpart takes out=,
    and that does not take out= itself, so that out= raises out_unsupported() (out=None, as
    torch, is accepted)."""
    for name in torch_names("torch out="):
        f = namespace.get(name)
        if not isinstance(f, types.FunctionType) or _takes_out(f):
            continue
        namespace[name] = _refusing_out(f, name)


def _refusing_out(f, name):
    @functools.wraps(f)
    def g(*args, out=None, **kwargs):
        if out is not None:
            raise out_unsupported(name)
        return f(*args, **kwargs)

    return g
