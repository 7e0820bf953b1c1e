"""Optimizers: each step() updates every parameter of a group in one pass per parameter over
float32 arrays, in place, with torch.optim's formulas and defaults."""
import copy

import numpy as np

from ..tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        self.state = {}
        for g in params:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def _params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]

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
                if id(p) in self.state:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[id(p)].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, groups):
            if len(g["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
            for k, v in saved.items():
                if k != "params":
                    g[k] = v
        self.state = {}
        for i, st in state_dict["state"].items():
            p = params[int(i)]
            self.state[id(p)] = {k: (np.array(v, dtype=np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                                     else copy.deepcopy(v)) for k, v in st.items()}


class SGD(Optimizer):
    """torch.optim.SGD: momentum (buffer = gradient on the first step), dampening, Nesterov,
    weight decay, maximize."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            lr, mom, damp, wd = (np.float32(g[k]) for k in ("lr", "momentum", "dampening", "weight_decay"))
            for p in self._params_with_grad(g):
                d = p.grad.data
                if g["maximize"]:
                    d = -d
                if wd:
                    d = d + wd * p.data
                if mom:
                    st = self.state.setdefault(id(p), {})
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = np.array(d, dtype=np.float32, copy=True)
                    else:
                        buf *= mom
                        buf += (1 - damp) * d
                    d = d + mom * buf if g["nesterov"] else buf
                p.data -= lr * d
        return loss


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient) and, with decoupled weight decay,
    AdamW; amsgrad; maximize."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        if eps < 0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            lr, wd, eps = g["lr"], g["weight_decay"], g["eps"]
            b1, b2 = g["betas"]
            for p in self._params_with_grad(g):
                d = p.grad.data
                if g["maximize"]:
                    d = -d
                st = self.state.setdefault(id(p), {})
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = np.zeros_like(p.data)
                    st["exp_avg_sq"] = np.zeros_like(p.data)
                    if g["amsgrad"]:
                        st["max_exp_avg_sq"] = np.zeros_like(p.data)
                st["step"] += 1
                t = st["step"]
                if wd:
                    if self._decoupled:
                        p.data *= np.float32(1 - lr * wd)
                    else:
                        d = d + np.float32(wd) * p.data
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m += (d - m) * np.float32(1 - b1)           # torch: exp_avg.lerp_(grad, 1 - beta1)
                v *= np.float32(b2)
                v += np.float32(1 - b2) * d * d
                bc1 = 1 - b1 ** t
                bc2 = 1 - b2 ** t
                step_size = lr / bc1
                if g["amsgrad"]:
                    np.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
                    vv = st["max_exp_avg_sq"]
                else:
                    vv = v
                denom = np.sqrt(vv) / np.float32(np.sqrt(bc2)) + np.float32(eps)
                p.data -= np.float32(step_size) * (m / denom)
        return loss


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
