"""Optimizers whose updates are elementwise array math on each parameter (no fused kernel):
Adagrad, RMSprop, Adadelta, Adamax, NAdam and RAdam, with torch.optim's constructors, defaults,
argument checks, formulas and state names.

Each update runs on the parameter's own array module (NumPy, or CuPy for a parameter on a CUDA
device) in the parameter's dtype: Python numbers enter the arithmetic as scalars of that dtype,
as torch's kernels convert them, and the operations follow the order of torch's single-tensor
code path, so a float32 run follows torch's float32 run to within a few roundings per step.

`foreach` and `fused` are accepted (and kept in the param groups, as torch keeps them) but
change nothing: there is one code path. `differentiable=True` and `capturable=True` are refused
(NotImplementedError): the update is not recorded for autograd nor captured in a graph."""

import numpy as np

from .._device import xp as _xp
from ..sparse import RowSparse
from .optimizer import Optimizer, _check_flags, _closure_loss


def _check(ok, message):
    if not ok:
        raise ValueError(message)


def _check_betas(betas):
    _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")


def _lerp_(a, b, w):
    """a <- torch.lerp(a, b, w) in place, for a scalar weight w, computed as torch computes it:
    a + w (b - a) when |w| < 0.5, else b - (b - a)(1 - w)."""
    t = a.dtype.type
    w = t(w)
    diff = b - a
    if abs(w) < 0.5:
        a += w * diff
    else:
        _xp(a).subtract(b, diff * (t(1) - w), out=a)


def _effective_grad(p, group):
    """p's gradient, negated under maximize, plus weight_decay * p (a new array when changed)."""
    g = p.grad._data
    if group["maximize"]:
        g = -g
    wd = group["weight_decay"]
    if wd != 0:
        g = g + p._data.dtype.type(wd) * p._data
    return g


class _Elementwise(Optimizer):
    """A per-parameter update: _init(state, p, group) makes the state (step 0 and zeroed
    buffers), _update(p, state, group) applies one step to the parameter's array (p._data) in
    place."""

    _sparse = False  # whether a RowSparse gradient is accepted (_update_sparse)

    def __init__(self, params, defaults):
        _check_flags(
            type(self).__name__,
            defaults.get("foreach"),
            defaults.get("fused"),
            defaults.get("differentiable", False),
            defaults.get("capturable", False),
        )
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = _closure_loss(closure)
        for group in self.param_groups:
            ps = self._params_with_grad(group)
            if not self._sparse and any(isinstance(p.grad, RowSparse) for p in ps):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            for p in ps:
                st = self._state(p)
                if not st:
                    self._init(st, p, group)
                # as torch's: an inf or nan that the arithmetic makes (eps=0 with a zero
                # gradient, say) lands in the parameter without a warning
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    if isinstance(p.grad, RowSparse):
                        self._update_sparse(p, st, group)
                    else:
                        self._update(p, st, group)
        return loss

    def _zeros(self, st, p, *names):
        xp = _xp(p._data)
        st["step"] = 0
        for name in names:
            st[name] = xp.zeros_like(p._data)


class Adagrad(_Elementwise):
    """torch.optim.Adagrad: the running sum of squared gradients divides the step; lr decays as
    lr / (1 + (step - 1) * lr_decay). Sparse (RowSparse) gradients update only their rows, as
    torch's do (without weight decay). The state (`step`, `sum`) exists from construction on, as
    in torch."""

    _sparse = True

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        foreach=None,
        *,
        maximize=False,
        differentiable=False,
        fused=None,
    ):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(
            0.0 <= initial_accumulator_value,
            f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
        )
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init(self._state(p), p, group)

    def _init(self, st, p, group):
        st["step"] = 0
        # as torch: the constructor's initial_accumulator_value, also for groups added later
        st["sum"] = _xp(p._data).full_like(p._data, self.defaults["initial_accumulator_value"])

    def _update(self, p, st, group):
        st["step"] += 1
        t = p._data.dtype.type
        g = _effective_grad(p, group)
        clr = group["lr"] / (1 + (st["step"] - 1) * group["lr_decay"])
        st["sum"] += g * g
        std = _xp(p._data).sqrt(st["sum"]) + t(group["eps"])
        p._data += (t(-clr) * g) / std

    def _update_sparse(self, p, st, group):
        if group["weight_decay"] != 0:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        st["step"] += 1
        clr = group["lr"] / (1 + (st["step"] - 1) * group["lr_decay"])
        c = p.grad.coalesce()  # the update is not linear in the gradient: rows must be unique
        if not len(c.indices):
            return
        rows, v = c.indices, c.values.astype(p._data.dtype, copy=False)
        if group["maximize"]:
            v = -v
        t = p._data.dtype.type
        s = st["sum"]
        s[rows] = s[rows] + v * v
        std = _xp(p._data).sqrt(s[rows]) + t(group["eps"])
        p._data[rows] = p._data[rows] + t(-clr) * (v / std)


class RMSprop(_Elementwise):
    """torch.optim.RMSprop: square_avg = alpha * square_avg + (1 - alpha) g^2; centered
    subtracts the squared running mean of g (grad_avg); momentum keeps a momentum_buffer of the
    scaled steps."""

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        capturable=False,
        foreach=None,
        maximize=False,
        differentiable=False,
    ):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _init(self, st, p, group):
        names = ["square_avg"]
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        if group["centered"]:
            names.append("grad_avg")
        self._zeros(st, p, *names)

    def _update(self, p, st, group):
        st["step"] += 1
        xp, t = _xp(p._data), p._data.dtype.type
        g = _effective_grad(p, group)
        alpha = group["alpha"]
        sq = st["square_avg"]
        sq *= t(alpha)
        sq += (t(1 - alpha) * g) * g
        if group["centered"]:
            ga = st["grad_avg"]
            _lerp_(ga, g, 1 - alpha)
            avg = xp.sqrt(sq + (t(-1) * ga) * ga)
        else:
            avg = xp.sqrt(sq)
        avg += t(group["eps"])
        if group["momentum"] > 0:
            buf = st["momentum_buffer"]
            buf *= t(group["momentum"])
            buf += g / avg
            p._data += t(-group["lr"]) * buf
        else:
            p._data += (t(-group["lr"]) * g) / avg


class Adadelta(_Elementwise):
    """torch.optim.Adadelta: steps of sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g, both
    running averages with rate rho, scaled by lr (default 1)."""

    def __init__(
        self,
        params,
        lr=1.0,
        rho=0.9,
        eps=1e-6,
        weight_decay=0,
        foreach=None,
        *,
        capturable=False,
        maximize=False,
        differentiable=False,
    ):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            capturable=capturable,
            foreach=foreach,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _init(self, st, p, group):
        self._zeros(st, p, "square_avg", "acc_delta")

    def _update(self, p, st, group):
        st["step"] += 1
        xp, t = _xp(p._data), p._data.dtype.type
        g = _effective_grad(p, group)
        rho, eps = group["rho"], t(group["eps"])
        sq, acc = st["square_avg"], st["acc_delta"]
        sq *= t(rho)
        sq += (t(1 - rho) * g) * g
        std = xp.sqrt(sq + eps)
        delta = xp.sqrt(acc + eps)
        delta /= std
        delta *= g
        acc *= t(rho)
        acc += (t(1 - rho) * delta) * delta
        p._data += t(-group["lr"]) * delta


class Adamax(_Elementwise):
    """torch.optim.Adamax: Adam with the infinity norm, exp_inf = max(beta2 * exp_inf, |g| + eps),
    and the first moment's bias correction in the step size."""

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        foreach=None,
        *,
        maximize=False,
        differentiable=False,
        capturable=False,
    ):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check_betas(betas)
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
        )
        super().__init__(params, defaults)

    def _init(self, st, p, group):
        self._zeros(st, p, "exp_avg", "exp_inf")

    def _update(self, p, st, group):
        st["step"] += 1
        xp, t = _xp(p._data), p._data.dtype.type
        g = _effective_grad(p, group)
        b1, b2 = group["betas"]
        _lerp_(st["exp_avg"], g, 1 - b1)
        inf = st["exp_inf"]
        inf *= t(b2)
        xp.maximum(inf, xp.abs(g) + t(group["eps"]), out=inf)
        clr = group["lr"] / (1 - b1 ** st["step"])
        p._data += (t(-clr) * st["exp_avg"]) / inf


def _decay_or_l2(p, group):
    """The gradient for NAdam / RAdam: decoupled weight decay scales p first (AdamW's way),
    otherwise weight_decay * p is added to the gradient."""
    if group["weight_decay"] != 0 and group["decoupled_weight_decay"]:
        p._data *= p._data.dtype.type(1 - group["lr"] * group["weight_decay"])
        return _effective_grad(p, {**group, "weight_decay": 0})
    return _effective_grad(p, group)


class NAdam(_Elementwise):
    """torch.optim.NAdam: Adam with Nesterov momentum whose coefficient mu_t =
    beta1 (1 - 0.5 * 0.96^(t * momentum_decay)) warms up; the state keeps their running product
    (mu_product). decoupled_weight_decay: NAdamW."""

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
    ):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check_betas(betas)
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= momentum_decay, f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _init(self, st, p, group):
        self._zeros(st, p, "exp_avg", "exp_avg_sq")
        st["mu_product"] = 1.0

    def _update(self, p, st, group):
        st["step"] += 1
        step = st["step"]
        xp, t = _xp(p._data), p._data.dtype.type
        lr, (b1, b2), md = group["lr"], group["betas"], group["momentum_decay"]
        g = _decay_or_l2(p, group)
        bias_correction2 = 1 - b2**step
        mu = b1 * (1.0 - 0.5 * 0.96 ** (step * md))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * md))
        # torch keeps mu_product as a float32 scalar tensor (its default scalar dtype, whatever
        # the parameters' dtype): the product is rounded the same way so runs stay on torch's
        mu_product = float(np.float32(st["mu_product"]) * np.float32(mu))
        st["mu_product"] = mu_product
        _lerp_(st["exp_avg"], g, 1 - b1)
        sq = st["exp_avg_sq"]
        sq *= t(b2)
        sq += (t(1 - b2) * g) * g
        denom = xp.sqrt(sq / t(bias_correction2))
        denom += t(group["eps"])
        mu_product_next = mu_product * mu_next
        p._data += (t(-lr * (1.0 - mu) / (1.0 - mu_product)) * g) / denom
        p._data += (t((-lr * mu_next) / (1.0 - mu_product_next)) * st["exp_avg"]) / denom


class RAdam(_Elementwise):
    """torch.optim.RAdam: Adam whose adaptive term is used only once the variance of its estimate
    is tractable (rho_t > 5), scaled by the rectification term; before that, momentum SGD with
    the bias-corrected first moment. decoupled_weight_decay: AdamW-style decay."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
    ):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check_betas(betas)
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            decoupled_weight_decay=decoupled_weight_decay,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _init(self, st, p, group):
        self._zeros(st, p, "exp_avg", "exp_avg_sq")

    def _update(self, p, st, group):
        st["step"] += 1
        step = st["step"]
        xp, t = _xp(p._data), p._data.dtype.type
        lr, (b1, b2) = group["lr"], group["betas"]
        g = _decay_or_l2(p, group)
        m, sq = st["exp_avg"], st["exp_avg_sq"]
        _lerp_(m, g, 1 - b1)
        sq *= t(b2)
        sq += (t(1 - b2) * g) * g
        bias_correction1 = 1 - b1**step
        bias_correction2 = 1 - b2**step
        corrected = m / t(bias_correction1)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * (b2**step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = t(bias_correction2**0.5) / (xp.sqrt(sq) + t(group["eps"]))
            p._data -= ((corrected * t(lr)) * adaptive) * t(rect)
        else:
            p._data -= corrected * t(lr)
