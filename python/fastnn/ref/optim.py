"""References of the fused optimizer updates and grad_norm (fastnn.ops' names and signatures):
the same formulas evaluated in float64. The updates read the given arrays, compute in float64,
write the results back into them in place (rounded to their dtype: pass float64 arrays for a
float64 trajectory over several steps) and also return the float64 results as a list of
(param, state...) tuples."""

import numpy as np


def sgd_step(
    params,
    grads,
    momentum_buffers,
    lr,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    weight_decay=0.0,
    maximize=False,
    first_step=False,
):
    out = []
    for i, (p, g) in enumerate(zip(params, grads)):
        p64, d = np.asarray(p, np.float64), np.asarray(g, np.float64) * (-1 if maximize else 1)
        d = d + weight_decay * p64
        buf = None
        if momentum:
            buf = (
                d.copy() if first_step else momentum * np.asarray(momentum_buffers[i], np.float64) + (1 - dampening) * d
            )
            d = d + momentum * buf if nesterov else buf
            momentum_buffers[i][...] = buf
        p64 = p64 - lr * d
        p[...] = p64
        out.append((p64, buf))
    return out


def adam_step(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    max_exp_avg_sqs=None,
    decoupled_weight_decay=False,
    maximize=False,
):
    out = []
    for i, (p, g) in enumerate(zip(params, grads)):
        p64, g64 = np.asarray(p, np.float64), np.asarray(g, np.float64) * (-1 if maximize else 1)
        if decoupled_weight_decay:
            p64 = p64 * (1 - lr * weight_decay)
        else:
            g64 = g64 + weight_decay * p64
        m = np.asarray(exp_avgs[i], np.float64) * beta1 + (1 - beta1) * g64
        v = np.asarray(exp_avg_sqs[i], np.float64) * beta2 + (1 - beta2) * g64 * g64
        vu = v
        if amsgrad:
            vu = np.maximum(np.asarray(max_exp_avg_sqs[i], np.float64), v)
            max_exp_avg_sqs[i][...] = vu
        p64 = p64 - lr / (1 - beta1**step) * m / (np.sqrt(vu) / np.sqrt(1 - beta2**step) + eps)
        exp_avgs[i][...], exp_avg_sqs[i][...], p[...] = m, v, p64
        out.append((p64, m, v))
    return out


def grad_norm(arrays, norm_type=2.0):
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"fastnn.ref.grad_norm: expected norm_type > 0, got {norm_type}")
    v = np.concatenate([np.abs(np.asarray(a, np.float64)).ravel() for a in arrays]) if arrays else np.zeros(0)
    if v.size == 0:
        return 0.0
    if np.isinf(norm_type):
        return float(np.max(v))
    return float(np.sum(v**norm_type) ** (1.0 / norm_type))
