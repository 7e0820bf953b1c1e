"""Optimizer-step benchmark: one SGD (momentum 0.9) and one Adam step over the parameters of the
classic MNIST CNN (conv 1->32 k3, conv 32->64 k3, Linear 3136->128, Linear 128->10, with their
biases: 421,642 floats in 8 arrays), every implementation updating its own copy in place:
fastnn.ops (one fused call), torch.optim with foreach=True, its single-tensor loop (the CPU
default), Adam's fused=True, and the float64 NumPy reference. Each implementation's first call
(one step from the same initial state) is validated against the reference."""

import numpy as np

import fastnn
from fastnn import ops, ref

from ..ref.rounding import U32
from .harness import Case, optional

torch = optional("torch")
CNN_SHAPES = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 3136), (128,), (10, 128), (10,)]
QUICK_SHAPES = [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (32, 100), (32,), (10, 32), (10,)]
LR, MOMENTUM = 0.01, 0.9


def _state(shapes):
    rng = np.random.default_rng(0)
    p0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    g = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return p0, g


def _check(want, bound):
    """Validator of a list of float32 params against float64 ones, elementwise within bound."""

    def check(got):
        for i, (a, d, b) in enumerate(zip(got, want, bound)):
            err = np.abs(np.asarray(a, np.float64) - d)
            if not (err <= b).all():
                j = int(np.argmax(err - b))
                raise AssertionError(
                    f"param {i}: {int((err > b).sum())} elements off; worst flat {j}: "
                    f"got {a.flat[j]:.9g}, want {d.flat[j]:.9g} (bound {b.flat[j]:.3g})"
                )

    return check


def _per_run(make):
    """An impl whose state starts afresh (make() builds its step function from the initial state)
    at each thread count the harness runs, so that the first call there, the one validated, is
    one step from the initial state."""
    cur = {"threads": None, "step": None}

    def call():
        n = fastnn.get_num_threads()
        if cur["threads"] != n:
            cur["threads"], cur["step"] = n, make()
        return cur["step"]()

    return call


def _torch_params(p0, g):
    ps = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in p0]
    for t, a in zip(ps, g):
        t.grad = torch.from_numpy(a.copy())
    return ps, [t.detach().numpy() for t in ps]  # numpy views: returned without a copy


def _sgd_case(shapes, label):
    p0, g = _state(shapes)
    n = sum(a.size for a in p0)

    def fastnn_make():
        p, buf, first = [a.copy() for a in p0], [np.zeros_like(a) for a in p0], [True]

        def step():
            ops.sgd_step(p, g, buf, LR, momentum=MOMENTUM, first_step=first[0])
            first[0] = False
            return p

        return step

    def numpy_make():
        p, buf, first = [a.astype(np.float64) for a in p0], [np.zeros(a.shape) for a in p0], [True]

        def step():
            ref.sgd_step(p, g, buf, LR, momentum=MOMENTUM, first_step=first[0])
            first[0] = False
            return p

        return step

    impls = {"fastnn": _per_run(fastnn_make), "numpy": _per_run(numpy_make)}
    if torch:
        for tag, kw in (("torch_foreach", dict(foreach=True)), ("torch_loop", dict(foreach=False))):

            def torch_make(kw=kw):
                ps, views = _torch_params(p0, g)
                opt = torch.optim.SGD(ps, lr=LR, momentum=MOMENTUM, **kw)
                return lambda: (opt.step(), views)[1]

            impls[tag] = _per_run(torch_make)
    # one step from p0: p = p0 - lr * g; a rounding of the product and one of the sum
    want = [a - LR * b.astype(np.float64) for a, b in zip(p0, g)]
    bound = [2 * U32 * (np.abs(a) + LR * np.abs(b)) for a, b in zip(p0, g)]
    return Case(f"sgd_step momentum {label} ({n} floats)", impls, _check(want, bound), bytes=5.0 * 4 * n)


def _adam_case(shapes, label):
    p0, g = _state(shapes)
    n = sum(a.size for a in p0)

    def fastnn_make():
        p, m, v, t = [a.copy() for a in p0], [np.zeros_like(a) for a in p0], [np.zeros_like(a) for a in p0], [0]

        def step():
            t[0] += 1
            ops.adam_step(p, g, m, v, t[0], lr=LR)
            return p

        return step

    def numpy_make():
        p, m, v, t = (
            [a.astype(np.float64) for a in p0],
            [np.zeros(a.shape) for a in p0],
            [np.zeros(a.shape) for a in p0],
            [0],
        )

        def step():
            t[0] += 1
            ref.adam_step(p, g, m, v, t[0], lr=LR)
            return p

        return step

    impls = {"fastnn": _per_run(fastnn_make), "numpy": _per_run(numpy_make)}
    if torch:
        for tag, kw in (
            ("torch_foreach", dict(foreach=True)),
            ("torch_loop", dict(foreach=False)),
            ("torch_fused", dict(fused=True)),
        ):

            def torch_make(kw=kw):
                ps, views = _torch_params(p0, g)
                opt = torch.optim.Adam(ps, lr=LR, **kw)
                return lambda: (opt.step(), views)[1]

            impls[tag] = _per_run(torch_make)
    # step 1 moves every element by lr * g / (|g| + eps / sqrt(1 - beta2)): lr * sign(g) but for
    # tiny g; float32 roundings of that step (a few) and of the sum with p
    want = [
        ref.adam_step([a.astype(np.float64)], [b], [np.zeros(a.shape)], [np.zeros(a.shape)], 1, lr=LR)[0][0]
        for a, b in zip(p0, g)
    ]
    bound = [U32 * (2 * np.abs(a) + 8 * LR) for a in p0]
    return Case(f"adam_step {label} ({n} floats)", impls, _check(want, bound), bytes=7.0 * 4 * n)


def cases(quick=False):
    shapes, label = (QUICK_SHAPES, "small cnn params") if quick else (CNN_SHAPES, "mnist cnn params")
    return [_sgd_case(shapes, label), _adam_case(shapes, label)]
