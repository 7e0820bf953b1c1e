"""softmax / log_softmax forward and the fused cross-entropy forward + backward on 4096 x 1000
float32 logits (int64 targets) against the NumPy reference and torch (F.softmax into a
preallocated output; cross-entropy through autograd, as a training step runs it)."""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import U32
from .harness import Case, optional, within

torch = optional("torch")
ROWS, COLS = 4096, 1000


def cross_entropy_check(x, t):
    """A validator of (mean loss, dlogits) of cross-entropy on logits x (n, C), targets t."""
    want = ref.cross_entropy_forward(x, t), ref.cross_entropy_backward(1.0, x, t)

    def check(got):
        loss, grad = got
        assert abs(float(loss) - float(want[0])) <= 1e-5 * abs(float(want[0])), (loss, want[0])
        np.testing.assert_allclose(grad, want[1], rtol=1e-4, atol=1e-4 / len(x))

    return check


def cases(quick=False):
    n, c = (256, 100) if quick else (ROWS, COLS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c), dtype=np.float32) * 3
    t = rng.integers(0, c, n)
    out = np.empty_like(x)
    res = []
    for name, f, r, tf in (
        ("softmax", ops.softmax_forward, ref.softmax_forward, "softmax"),
        ("log_softmax", ops.log_softmax_forward, ref.log_softmax_forward, "log_softmax"),
    ):
        impls = {"fastnn": lambda f=f: f(x, out=out), "numpy": lambda r=r: r(x)}
        if torch:
            xt, ot = torch.from_numpy(x), torch.empty(n, c)
            impls["torch"] = lambda tf=tf, xt=xt, ot=ot: getattr(torch, tf)(xt, 1, out=ot).numpy()

        def expected(r=r):
            d = r(x)
            return d, 64 * U32 * (np.abs(d) + (np.abs(x) + 10 if r is ref.log_softmax_forward else 0))

        res.append(Case(f"{name} {n}x{c}", impls, within(expected), bytes=2.0 * x.nbytes))

    def fastnn_ce():
        loss = ops.cross_entropy_forward(x, t)
        return loss, ops.cross_entropy_backward(np.float32(1), x, t)

    def numpy_ce():
        return ref.cross_entropy_forward(x, t), ref.cross_entropy_backward(1.0, x, t)

    impls = {"fastnn": fastnn_ce, "numpy": numpy_ce}
    if torch:
        tt = torch.from_numpy(t)

        def torch_ce():
            xt = torch.from_numpy(x).requires_grad_()
            loss = torch.nn.functional.cross_entropy(xt, tt)
            loss.backward()
            return loss.detach().numpy(), xt.grad.numpy()

        impls["torch"] = torch_ce
    res.append(Case(f"cross_entropy fwd+bwd {n}x{c}", impls, cross_entropy_check(x, t), bytes=3.0 * x.nbytes))
    return res
