"""torch.optim.LBFGS: limited-memory BFGS over all parameters as one flat vector, with an
optional strong-Wolfe line search (cubic interpolation, bracketing then zoom).

The flat vectors (gradient, direction, the curvature pairs) are arrays of the parameters' array
module and dtype; the scalars derived from them (dot products, the step t, ro, H_diag) are
scalars of that dtype, as torch's 0-d tensors are, while losses are Python floats, as torch's
float(closure()) are. All parameters must be on one device and of one dtype."""

import numpy as np

from .._device import xp as _xp
from ..sparse import RowSparse
from ..tensor import enable_grad
from .optimizer import Optimizer


def _scalar(v):
    """A host scalar of v's dtype from a reduction's result (a NumPy scalar, or a 0-d device
    array copied to the host)."""
    return v if isinstance(v, np.generic) else v.get()[()]


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clamped to
    bounds (default: the interval between x1 and x2); their midpoint when the cubic has none."""
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    # (a linear slice makes a 0 / 0 here, a nan in torch's tensors too: no warning)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = d1 * d1 - g1 * g2
        if d2_square >= 0:
            d2 = np.sqrt(d2_square)
            if x1 <= x2:
                at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            return min(max(at, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step t along d satisfying the strong Wolfe conditions (sufficient decrease c1,
    curvature c2): grow t until a bracket holds a minimum, then shrink the bracket by cubic
    interpolation. Returns (f_new, g_new, t, function evaluations)."""
    xp = _xp(d)
    d_norm = _scalar(xp.abs(d).max())
    f_new, g_new = obj_func(x, t, d)
    evals = 1
    gtd_new = _scalar(xp.dot(g_new, d))

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    # bracketing: the interval [t_prev, t] holds a point satisfying the conditions
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate, between 1.01 t and 10 t
        lo, hi = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(lo, hi))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = _scalar(xp.dot(g_new, d))
        ls_iter += 1
    if ls_iter == max_ls:  # no bracket within max_ls evaluations
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom: shrink the bracket until a point satisfies the conditions
    insufficient = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break  # the bracket is too small to matter
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # a point too close to an end of the bracket: once allowed, then moved 10% inside
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:
            if insufficient or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = _scalar(xp.dot(g_new, d))
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            # not enough decrease: t is the new high end
            bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                # the old low end becomes the high end
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


class LBFGS(Optimizer):
    """torch.optim.LBFGS(params, lr=1, max_iter=20, max_eval=max_iter * 5 // 4,
    tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None).

    step(closure) runs up to max_iter iterations, re-evaluating the closure (which must zero the
    gradients, compute the loss, call backward and return the loss) as it needs, and returns the
    closure's first loss. line_search_fn="strong_wolfe" picks each step length by a strong-Wolfe
    line search; None takes fixed steps of lr (the first one scaled by min(1, 1 / |g|_1)). One
    parameter group only. The state (under the first parameter, as torch's) keeps the curvature
    pairs, the last direction and step between calls."""

    def __init__(
        self,
        params,
        lr=1,
        max_iter=20,
        max_eval=None,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        history_size=100,
        line_search_fn=None,
    ):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _gather_flat_grad(self):
        xp = _xp(self._params[0]._data)
        views = []
        for p in self._params:
            if p.grad is None:
                views.append(xp.zeros(p._data.size, p._data.dtype))
            elif isinstance(p.grad, RowSparse):
                views.append(p.grad.to_dense().astype(p._data.dtype, copy=False).reshape(-1))
            else:
                views.append(p.grad._data.reshape(-1))
        return xp.concatenate(views)

    def _add_grad(self, step, update):
        """params += step * update (update flat)."""
        offset = 0
        for p in self._params:
            n = p._data.size
            p._data += p._data.dtype.type(step) * update[offset : offset + n].reshape(p._data.shape)
            offset += n

    def _set_param(self, values):
        for p, v in zip(self._params, values):
            p._data[...] = v

    def _directional_evaluate(self, closure, x, t, d):
        """The loss and flat gradient at x + t d; the parameters are restored to x after."""
        self._add_grad(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    def step(self, closure):
        """One call: up to max_iter L-BFGS iterations; returns the closure's first loss."""
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        xp = _xp(self._params[0]._data)
        dtype = self._params[0]._data.dtype.type

        def evaluate():
            with enable_grad():
                return closure()

        state = self._state(self._params[0])
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = evaluate()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        if _scalar(xp.abs(flat_grad).max()) <= tolerance_grad:
            return orig_loss  # already optimal

        d, t = state.get("d"), _as_scalar(state.get("t"), dtype)
        old_dirs, old_stps = state.get("old_dirs"), state.get("old_stps")
        ro = None if state.get("ro") is None else [_as_scalar(r, dtype) for r in state["ro"]]
        H_diag = _as_scalar(state.get("H_diag"), dtype)
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the direction: steepest descent first, then the two-loop recursion over the history
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * dtype(t)
                ys = _scalar(xp.dot(y, s))
                if ys > 1e-10:  # keep the pair only while the curvature is positive
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / _scalar(xp.dot(y, y))
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = _scalar(xp.dot(old_stps[i], q)) * ro[i]
                    q += dtype(-al[i]) * old_dirs[i]
                d = r = q * dtype(H_diag)
                for i in range(num_old):
                    be_i = _scalar(xp.dot(old_dirs[i], r)) * ro[i]
                    r += dtype(al[i] - be_i) * old_stps[i]

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss

            # the step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / _scalar(xp.abs(flat_grad).sum())) * lr
            else:
                t = lr
            gtd = _scalar(xp.dot(flat_grad, d))
            if gtd > -tolerance_change:
                break  # not a descent direction

            evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = [p._data.copy() for p in self._params]

                def obj_func(x, t, d):
                    return self._directional_evaluate(evaluate, x, t, d)

                loss, flat_grad, t, evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                )
                self._add_grad(t, d)
                opt_cond = _scalar(xp.abs(flat_grad).max()) <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    # the loss and gradient at the new point (not on the last iteration: the
                    # next step's first evaluation gives them)
                    loss = float(evaluate())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = _scalar(xp.abs(flat_grad).max()) <= tolerance_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if _scalar(xp.abs(d * dtype(t)).max()) <= tolerance_change:
                break  # the parameters barely move
            if abs(loss - prev_loss) < tolerance_change:
                break  # the loss barely moves

        state.update(
            d=d,
            t=t,
            old_dirs=old_dirs,
            old_stps=old_stps,
            ro=ro,
            H_diag=H_diag,
            prev_flat_grad=prev_flat_grad,
            prev_loss=prev_loss,
        )
        return orig_loss


def _as_scalar(v, dtype):
    """A number kept in the state (a Python float after a save and load) back as a scalar of the
    parameters' dtype; None and ints as they are."""
    return dtype(v) if isinstance(v, float) else v
