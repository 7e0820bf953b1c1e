"""References of the fused optimizer updates (fastnn.ops' names and signatures): the same
formulas evaluated in float64 on float64 copies; the given arrays are updated in place (rounded
to their dtype) and the float64 results are returned as a list of (param, state...) tuples."""
import numpy as np


def sgd_step(params, grads, momentum_buffers, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, maximize=False, first_step=False):
    out = []
    for i, (p, g) in enumerate(zip(params, grads)):
        p64, d = np.asarray(p, np.float64), np.asarray(g, np.float64) * (-1 if maximize else 1)
        d = d + weight_decay * p64
        buf = None
        if momentum:
            buf = d.copy() if first_step else momentum * np.asarray(momentum_buffers[i], np.float64) + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
            momentum_buffers[i][...] = buf
        p64 = p64 - lr * d
        p[...] = p64
        out.append((p64, buf))
    return out


def adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, amsgrad=False, max_exp_avg_sqs=None, decoupled_weight_decay=False,
              maximize=False):
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
        p64 = p64 - lr / (1 - beta1 ** step) * m / (np.sqrt(vu) / np.sqrt(1 - beta2 ** step) + eps)
        exp_avgs[i][...], exp_avg_sqs[i][...], p[...] = m, v, p64
        out.append((p64, m, v))
    return out
