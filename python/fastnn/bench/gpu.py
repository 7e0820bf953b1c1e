"""`fastnn bench --device cuda`: fastnn's CUDA kernels on CuPy arrays, validated against the float64
references, then timed against CuPy (cuBLAS / its elementwise kernels) and torch on the GPU when
its CUDA build is installed.

Every timed call ends with a synchronisation of the current stream (a launch alone returns at
once), so a sample is the kernel's time plus one launch and one synchronisation: a few
microseconds, which the small quick shapes show. The validators copy results to the host.
The cases are those of the ops with a CUDA kernel; each op is one function of this module."""

import numpy as np

from fastnn import ops, ref

from ..ref.rounding import U32
from .act import ACTS
from .gemm import _check as gemm_check
from .harness import Case, optional, within
from .softmax import cross_entropy_check


def _cupy():
    import cupy

    return cupy


def _torch_cuda():
    torch = optional("torch")
    return torch if torch is not None and torch.cuda.is_available() else None


def _synced(cp, fn):
    def call():
        r = fn()
        cp.cuda.get_current_stream().synchronize()
        return r

    return call


def _host(check):
    """A validator of device results (CuPy arrays, torch CUDA tensors, tuples of them)."""

    def to_host(r):
        if isinstance(r, tuple):
            return tuple(to_host(v) for v in r)
        if hasattr(r, "detach"):
            return r.detach().cpu().numpy()
        return _cupy().asnumpy(r)

    return lambda got: check(to_host(got))


def _case(name, impls, check, **size):
    cp = _cupy()
    return Case(f"{name} (cuda)", {k: _synced(cp, f) for k, f in impls.items()}, _host(check), **size)


def gemm_cases(quick):
    cp, torch = _cupy(), _torch_cuda()
    out = []
    for m, k, n in [(64, 64, 64), (97, 33, 65)] if quick else [(1024, 1024, 1024), (4096, 4096, 4096), (64, 4096, 128)]:
        rng = np.random.default_rng([m, k, n])
        a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
        ad, bd = cp.asarray(a), cp.asarray(b)
        od, oc = cp.empty((m, n), cp.float32), cp.empty((m, n), cp.float32)
        impls = {
            "fastnn": lambda ad=ad, bd=bd, od=od: ops.gemm(ad, bd, out=od),
            "cupy": lambda ad=ad, bd=bd, oc=oc: cp.matmul(ad, bd, out=oc),
        }
        if torch:
            at, bt = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            impls["torch"] = lambda at=at, bt=bt: torch.mm(at, bt)
        out.append(_case(f"gemm {m}x{k}x{n}", impls, gemm_check(a, b), flops=2.0 * m * k * n))
    return out


def act_cases(quick):
    cp, torch = _cupy(), _torch_cuda()
    n = 4096 if quick else 16 * 1024 * 1024
    x = np.random.default_rng(n).standard_normal(n, dtype=np.float32)
    xd, od = cp.asarray(x), cp.empty(n, cp.float32)
    out = []
    for name in ("relu", "tanh", "gelu"):
        f, r, _, rtol = ACTS[name]
        impls = {"fastnn": lambda f=f: f(xd, od)}
        if torch:
            xt = torch.from_numpy(x).cuda()
            impls["torch"] = {
                "relu": lambda xt=xt: torch.relu(xt),
                "tanh": lambda xt=xt: torch.tanh(xt),
                "gelu": lambda xt=xt: torch.nn.functional.gelu(xt),
            }[name]

        def expected(r=r, name=name, rtol=rtol):  # this op's tolerance, not the last one's
            d = r(x)
            return d, rtol * np.abs(d) + (8 * U32 * np.abs(x) if name == "gelu" else 1e-37)

        out.append(_case(f"{name} {n * 4 // 1024} KiB", impls, within(expected), bytes=2.0 * x.nbytes))
    return out


def softmax_cases(quick):
    cp, torch = _cupy(), _torch_cuda()
    n, c = (64, 100) if quick else (4096, 1000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c), dtype=np.float32) * 3
    t = rng.integers(0, c, n)
    xd, td, od = cp.asarray(x), cp.asarray(t), cp.empty((n, c), cp.float32)
    impls = {"fastnn": lambda: ops.softmax_forward(xd, out=od)}
    if torch:
        xt, tt = torch.from_numpy(x).cuda(), torch.from_numpy(t).cuda()
        impls["torch"] = lambda: torch.softmax(xt, 1)

    def expected():
        d = ref.softmax_forward(x)
        return d, 64 * U32 * np.abs(d)

    out = [_case(f"softmax {n}x{c}", impls, within(expected), bytes=2.0 * x.nbytes)]

    one = cp.asarray(np.float32(1))
    impls = {"fastnn": lambda: (ops.cross_entropy_forward(xd, td), ops.cross_entropy_backward(one, xd, td))}
    if torch:

        def torch_ce():
            xg = xt.detach().requires_grad_()
            loss = torch.nn.functional.cross_entropy(xg, tt)
            loss.backward()
            return loss.detach(), xg.grad

        impls["torch"] = torch_ce
    out.append(_case(f"cross_entropy fwd+bwd {n}x{c}", impls, cross_entropy_check(x, t), bytes=3.0 * x.nbytes))
    return out


def layernorm_cases(quick):
    cp, torch = _cupy(), _torch_cuda()
    m, n = (16, 96) if quick else (8192, 1024)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((m, n), dtype=np.float32)
    w, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    xd, wd, bd = cp.asarray(x), cp.asarray(w), cp.asarray(b)
    impls = {"fastnn": lambda: ops.layer_norm_forward(xd, (n,), wd, bd)[0]}
    if torch:
        xt, wt, bt = (torch.from_numpy(v).cuda() for v in (x, w, b))
        impls["torch"] = lambda: torch.nn.functional.layer_norm(xt, (n,), wt, bt)

    def expected():
        d = ref.layer_norm_forward(x, (n,), w, b)[0]
        xh = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
        return d, 8 * n * U32 * (np.abs(xh * w) + np.abs(b)) + 1e-6

    return [_case(f"layer_norm {m}x{n}", impls, within(expected), bytes=2.0 * x.nbytes)]


def pool2d_cases(quick):
    cp, torch = _cupy(), _torch_cuda()
    shape = (2, 4, 8, 8) if quick else (64, 32, 32, 32)
    x = np.random.default_rng(2).standard_normal(shape, dtype=np.float32)
    xd = cp.asarray(x)
    impls = {"fastnn": lambda: ops.max_pool2d_forward(xd, 2)[0]}
    if torch:
        xt = torch.from_numpy(x).cuda()
        impls["torch"] = lambda: torch.nn.functional.max_pool2d(xt, 2)
    want = ref.max_pool2d_forward(x, 2)[0]
    return [
        _case(
            f"max_pool2d 2x2 {'x'.join(map(str, shape))}",
            impls,
            within(lambda: (want, np.zeros_like(want))),
            bytes=1.25 * x.nbytes,
        )
    ]


def optim_cases(quick):
    cp = _cupy()
    n = 4096 if quick else 10_000_000
    rng = np.random.default_rng(3)
    p0, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    p0d, p, gd = cp.asarray(p0), cp.asarray(p0), cp.asarray(g)
    m, v = cp.zeros(n, cp.float32), cp.zeros(n, cp.float32)

    def fastnn_adam():
        p[...] = p0d
        m[...] = 0
        v[...] = 0
        ops.adam_step([p], [gd], [m], [v], 1, lr=1e-3)
        return p

    def expected():
        pr = [p0.astype(np.float64)]
        ref.adam_step(pr, [g.astype(np.float64)], [np.zeros(n)], [np.zeros(n)], 1, lr=1e-3)
        return pr[0], 8 * U32 * np.abs(pr[0]) + 1e-7

    return [
        _case(f"adam step {n} params (incl. a reset)", {"fastnn": fastnn_adam}, within(expected), bytes=7.0 * 4 * n)
    ]


# op name (as `fastnn bench` names them) -> the function giving its CUDA cases
GPU_OPS = {
    "gemm": gemm_cases,
    "act": act_cases,
    "softmax": softmax_cases,
    "layernorm": layernorm_cases,
    "pool2d": pool2d_cases,
    "optim": optim_cases,
}


def cases(ops_=None, quick=False):
    """The CUDA cases of the named ops (all with a CUDA kernel when None)."""
    return [c for op in (ops_ or GPU_OPS) if op in GPU_OPS for c in GPU_OPS[op](quick)]
