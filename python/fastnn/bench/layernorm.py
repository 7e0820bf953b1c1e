"""Layer norm forward + backward over the last dim (a Transformer's 768 features, 64 x 128
tokens), fastnn.ops against torch.nn.functional.layer_norm with autograd and the float64 NumPy
reference; validated against the reference first."""

import numpy as np

from fastnn import ops, ref

from .harness import Case, optional, within

torch = optional("torch")


def _layernorm_case(rows, n):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, n)) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal((rows, n)).astype(np.float32)
    w, bias = (rng.random(n) + 0.5).astype(np.float32), rng.standard_normal(n).astype(np.float32)

    def fastnn_ln():
        y, m, r = ops.layer_norm_forward(x, n, w, bias)
        return (y,) + ops.layer_norm_backward(dy, x, m, r, w)

    def numpy_ln():
        y, m, r = ref.layer_norm_forward(x, n, w, bias)
        return (y,) + ref.layer_norm_backward(dy, x, m, r, w)

    impls = {"fastnn": fastnn_ln, "numpy": numpy_ln}
    if torch:
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

        def torch_ln():
            xx = xt.detach().requires_grad_()
            wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(bias).requires_grad_()
            y = torch.nn.functional.layer_norm(xx, (n,), wt, bt)
            y.backward(dyt)
            return y.detach().numpy(), xx.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()

        impls["torch"] = torch_ln
    want = numpy_ln()

    def check(got):
        for g, r, tol in zip(got, want, (1e-5, 1e-4, 1e-4 * rows**0.5, 1e-5 * rows**0.5)):
            within(lambda r=r, tol=tol: (r, tol * (1 + np.abs(r))))(g)

    return Case(f"layer_norm fwd+bwd {rows}x{n}", impls, check, bytes=6.0 * x.nbytes)


def cases(quick=False):
    return [_layernorm_case(256, 768)] if quick else [_layernorm_case(64 * 128, 768)]
