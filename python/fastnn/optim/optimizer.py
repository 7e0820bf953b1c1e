"""Optimizers: each step() updates every parameter of a group in place through one fused kernel
call (fastnn.ops.sgd_step / adam_step), with torch.optim's formulas and defaults.

Row-sparse gradients (fastnn.sparse.RowSparse, from nn.Embedding(sparse=True)) are accepted where
torch accepts sparse gradients: SGD updates only the named rows (without momentum; with momentum
the buffer is dense, as the update then moves every row that ever had a gradient), SparseAdam
takes only them, Adam/AdamW refuse them.

Parameters may live on a CUDA device: the state (momentum buffers, moments) is created on each
parameter's device and follows it if the parameter moves; one fused call per device.

Every step(closure) calls the closure under grad mode (even inside no_grad) and returns its loss,
as torch does. load_state_dict puts each saved state array on its parameter's device, floating
ones in the parameter's dtype (torch's rule)."""

import collections
import copy
import math

import numpy as np

from .. import _device as _dev
from .. import ops
from .._device import xp as _xp
from ..ref import f64 as ref_f64
from ..sparse import RowSparse
from ..tensor import _HOST, Tensor, enable_grad


def _is_array(v):
    return isinstance(v, np.ndarray) or hasattr(v, "__cuda_array_interface__")


def _closure_loss(closure):
    """closure() under grad mode (torch.enable_grad), or None without a closure."""
    if closure is None:
        return None
    with enable_grad():
        return closure()


def _to_device(v, dev):
    """State value v with its arrays (also those in lists and tuples) on device dev."""
    if _is_array(v):
        return v if _dev.device_of(v) == dev else _dev.move(v, dev)
    if isinstance(v, (list, tuple)):
        return type(v)(_to_device(x, dev) for x in v)
    return v


def _loaded(v, p):
    """A saved state value as parameter p's state: arrays copied to p's device, floating ones in
    p's dtype when p is floating (torch.optim's rule), containers element by element."""
    if _is_array(v):
        dev = _dev.device_of(p._data)
        if v.dtype.kind == "f" and p._data.dtype.kind == "f":
            if isinstance(v, np.ndarray) and dev.type == "cpu":
                return np.array(v, dtype=p._data.dtype)
            out = _dev.move(v, dev)
            return out.astype(p._data.dtype, copy=out is v)
        return _dev.move(v, dev).copy()
    if isinstance(v, (list, tuple)):
        return type(v)(_loaded(x, p) for x in v)
    return copy.deepcopy(v)


def _check_flags(name, foreach=None, fused=None, differentiable=False, capturable=False):
    """torch's implementation flags: foreach and fused pick a code path (fastnn has one, a fused
    kernel, so both are accepted); differentiable and capturable are not supported."""
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    for flag, on in (("differentiable", differentiable), ("capturable", capturable)):
        if on:
            raise NotImplementedError(
                f"fastnn.optim.{name}: {flag}=True is not supported (the update is applied to the "
                "parameters' arrays, not recorded for autograd or captured in a graph)"
            )


def _by_device(ps):
    """The params in groups of one device and dtype each (one group, as it is, when all are
    float32 on the CPU, or all float64 there)."""
    if all(isinstance(p._data, _HOST) for p in ps) and len({p._data.dtype for p in ps}) == 1:
        return [ps]
    groups = {}
    for p in ps:
        d = _dev.device_of(p._data)
        groups.setdefault((d.type, d.index, p._data.dtype), []).append(p)
    return list(groups.values())


def _fused(group):
    """The fused updates for a group of one device and dtype: fastnn.ops' kernels (float32), or
    the same formulas in NumPy float64 (fastnn.ref.f64) for float64 parameters on the CPU, which
    write back in place and keep the state in float64."""
    p = group[0]._data
    return ref_f64 if p.dtype == np.float64 and isinstance(p, _HOST) else ops


class Optimizer:
    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        self.state = collections.defaultdict(dict)
        for g in params:
            self.add_param_group(g)

    def __getstate__(self):
        # a scheduler's wrapper of step() (lr_scheduler) calls this very object: a copy goes
        # without it, its step() being the class's
        state = dict(self.__dict__)
        state.pop("step", None)
        return state

    def add_param_group(self, group):
        if not isinstance(group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(group)}")
        group = dict(group)
        ps = group["params"]
        if isinstance(ps, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets will change between runs. Please use a list instead."
            )
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()  # a RowSparse gradient becomes empty

    def _params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]

    def _state(self, p):
        """p's state, its arrays moved to p's device first if p moved since they were made."""
        st = self.state[p]
        if not isinstance(p._data, _HOST) or any(not isinstance(v, (np.ndarray, int, float)) for v in st.values()):
            dev = _dev.device_of(p._data)
            for k, v in st.items():
                st[k] = _to_device(v, dev)
        return st

    # -- state: numbered parameters, plain arrays and numbers (saved as .npz by fastnn.save) --
    def state_dict(self):
        index, groups = {}, []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.copy() if _is_array(v) else v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, groups):
            if len(g["params"]) != len(saved["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
                )
            for k, v in saved.items():
                if k != "params":
                    g[k] = v
        self.state = collections.defaultdict(dict)
        for i, st in state_dict["state"].items():
            p = params[int(i)]  # the state goes to its parameter's device, as torch's
            self.state[p] = {k: _loaded(v, p) for k, v in st.items()}


class SGD(Optimizer):
    """torch.optim.SGD: momentum (buffer = gradient on the first step), dampening, Nesterov,
    weight decay, maximize."""

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        maximize=False,
        foreach=None,
        differentiable=False,
        fused=None,
    ):
        _check_flags("SGD", foreach, fused, differentiable)
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
                foreach=foreach,
                differentiable=differentiable,
                fused=fused,
            ),
        )

    def step(self, closure=None):
        loss = _closure_loss(closure)
        for g in self.param_groups:
            ps = self._params_with_grad(g)
            if not ps:
                continue
            kw = dict(
                lr=g["lr"],
                momentum=g["momentum"],
                dampening=g["dampening"],
                nesterov=g["nesterov"],
                weight_decay=g["weight_decay"],
                maximize=g["maximize"],
            )
            grads = {id(p): self._sparse_grad(p, g) for p in ps}
            if not g["momentum"]:
                dense = [p for p in ps if grads[id(p)] is None]
                for p in ps:
                    if grads[id(p)] is not None:  # only the rows the gradient names move
                        c = grads[id(p)].coalesce()
                        step = c.values.dtype.type(g["lr"]) * c.values
                        p._data[c.indices] = p._data[c.indices] + step if g["maximize"] else p._data[c.indices] - step
                for group in _by_device(dense) if dense else ():
                    _fused(group).sgd_step([p._data for p in group], [p.grad._data for p in group], None, **kw)
                continue
            # one fused call (per device) for the params whose buffers exist, one for those starting them
            sts = {id(p): self._state(p) for p in ps}
            fresh = [p for p in ps if sts[id(p)].get("momentum_buffer") is None]
            started = [p for p in ps if sts[id(p)].get("momentum_buffer") is not None]
            for p in fresh:
                sts[id(p)]["momentum_buffer"] = _xp(p._data).empty_like(p._data)
            for params, first in ((started, False), (fresh, True)):
                for group in _by_device(params) if params else ():
                    _fused(group).sgd_step(
                        [p._data for p in group],
                        [_dense(p, grads[id(p)]) for p in group],
                        [sts[id(p)]["momentum_buffer"] for p in group],
                        first_step=first,
                        **kw,
                    )
        return loss

    @staticmethod
    def _sparse_grad(p, group):
        if not isinstance(p.grad, RowSparse):
            return None
        if group["weight_decay"]:
            raise RuntimeError(
                "fastnn.optim.SGD: weight_decay is not supported with a sparse gradient (torch "
                f"refuses it too); got weight_decay={group['weight_decay']}"
            )
        return p.grad


def _dense(p, sparse):
    return p.grad._data if sparse is None else sparse.to_dense()


def _refuse_sparse(name, ps):
    if any(isinstance(p.grad, RowSparse) for p in ps):
        raise RuntimeError(f"{name} does not support sparse gradients, please consider SparseAdam instead")


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient) and, with decoupled weight decay,
    AdamW; amsgrad; maximize."""

    _decoupled = False

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        fused=None,
        decoupled_weight_decay=False,
    ):
        _check_flags(type(self).__name__, foreach, fused, differentiable, capturable)
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        if eps < 0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas),
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
                maximize=maximize,
                foreach=foreach,
                capturable=capturable,
                differentiable=differentiable,
                fused=fused,
                decoupled_weight_decay=decoupled_weight_decay or self._decoupled,
            ),
        )

    def step(self, closure=None):
        loss = _closure_loss(closure)
        for g in self.param_groups:
            ps = self._params_with_grad(g)
            _refuse_sparse(type(self).__name__, ps)
            by_step = {}  # params at the same step count (and device) share one fused call
            for p in ps:
                st = self._state(p)
                if not st:
                    xp = _xp(p._data)
                    st["step"] = 0
                    st["exp_avg"] = xp.zeros_like(p._data)
                    st["exp_avg_sq"] = xp.zeros_like(p._data)
                    if g["amsgrad"]:
                        st["max_exp_avg_sq"] = xp.zeros_like(p._data)
                st["step"] += 1
                d = _dev.device_of(p._data)
                by_step.setdefault((st["step"], d.type, d.index, p._data.dtype), []).append(p)
            b1, b2 = g["betas"]
            for (step, *_), group in by_step.items():
                sts = [self.state[p] for p in group]
                _fused(group).adam_step(
                    [p._data for p in group],
                    [p.grad._data for p in group],
                    [s["exp_avg"] for s in sts],
                    [s["exp_avg_sq"] for s in sts],
                    step,
                    g["lr"],
                    b1,
                    b2,
                    g["eps"],
                    g["weight_decay"],
                    g["amsgrad"],
                    [s["max_exp_avg_sq"] for s in sts] if g["amsgrad"] else None,
                    g.get("decoupled_weight_decay", self._decoupled),
                    g["maximize"],
                )
        return loss


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2)."""

    _decoupled = True

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
        foreach=None,
        capturable=False,
        differentiable=False,
        fused=None,
    ):
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
        )


class SparseAdam(Optimizer):
    """torch.optim.SparseAdam: Adam over row-sparse gradients (nn.Embedding(sparse=True)); only the
    rows a step's gradient names have their moments and values updated (lazy Adam). The moment
    buffers are dense (V, D) state; no dense gradient is formed."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, maximize=maximize))

    def step(self, closure=None):
        loss = _closure_loss(closure)
        f32 = np.float32
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in self._params_with_grad(g):
                if not isinstance(p.grad, RowSparse):
                    raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")
                st = self._state(p)
                xp = _xp(p._data)
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = xp.zeros_like(p._data)
                    st["exp_avg_sq"] = xp.zeros_like(p._data)
                st["step"] += 1
                c = p.grad.coalesce()  # the update is not linear in the gradient: rows must be unique
                if not len(c.indices):
                    continue
                rows, grad = c.indices, (-c.values if g["maximize"] else c.values)
                m, v = st["exp_avg"], st["exp_avg_sq"]
                # torch's order of float32 operations: old += (1 - b) * (new - old)
                old_m, old_v = m[rows], v[rows]
                dm = (grad - old_m) * f32(1 - b1)
                dv = (grad * grad - old_v) * f32(1 - b2)
                m[rows] = old_m + dm
                v[rows] = old_v + dv
                numer = dm + old_m
                denom = xp.sqrt(dv + old_v) + f32(g["eps"])
                step = st["step"]
                step_size = g["lr"] * math.sqrt(1 - b2**step) / (1 - b1**step)
                p._data[rows] = p._data[rows] + f32(-step_size) * (numer / denom)
        return loss
