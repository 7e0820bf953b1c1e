"""fastnn.optim's Adagrad, RMSprop, Adadelta, Adamax, NAdam, RAdam and LBFGS against torch.optim
(skipped without torch): the same parameters and gradients give the same iterates, state and
errors; state_dict round trips; closures under grad mode; the updates on the emulated CUDA
device."""

import io

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
import numpy as np
import pytest
from fastnn import Tensor

SHAPES = [(5, 3), (17,), (1,), (4, 2, 3)]

# (class name, keyword arguments): the defaults and each option, alone and together
CASES = [
    ("Adagrad", {}),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.05, maximize=True)),
    ("RMSprop", {}),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.5, momentum=0.5, centered=True, weight_decay=0.05, maximize=True)),
    ("Adadelta", {}),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(rho=0.3, maximize=True)),
    ("Adamax", {}),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), maximize=True)),
    ("NAdam", {}),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", {}),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.9), weight_decay=0.1)),  # rho_t > 5 from step 6 on
    ("RAdam", dict(lr=0.01, betas=(0.5, 0.5), eps=1e-6, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01, betas=(0.5, 0.6), maximize=True)),
]
IDS = [f"{c}-{i}" for i, (c, _) in enumerate(CASES)]


def _data(dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _params(init, dtype):
    # nn.Parameter holds float32; a float64 leaf tensor stands for a float64 parameter
    return [Tensor(a.copy(), dtype=dtype, requires_grad=True) for a in init]


def _steps(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = Tensor(g.copy(), dtype=g.dtype)
        opt.step()


def _torch_run(torch, cls, kw, init, grads):
    pt = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    ot = getattr(torch.optim, cls)(pt, foreach=False, **kw)  # torch's single-tensor code path
    for gs in grads:
        for p, g in zip(pt, gs):
            p.grad = torch.from_numpy(g.copy())
        ot.step()
    return pt, ot


@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_matches_torch_float32(cls, kw):
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float32, 10)
    pf = _params(init, np.float32)
    of = getattr(optim, cls)(pf, **kw)
    _steps(of, pf, grads)
    pt, ot = _torch_run(torch, cls, kw, init, grads)
    for i, (a, b) in enumerate(zip(pf, pt)):
        assert a._data.dtype == np.float32
        # the same float32 operations in the same order: a few roundings apart
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=f"param {i}")
        sf, st = of.state[a], ot.state[b]
        assert set(sf) == set(st), (sorted(sf), sorted(st))
        for k, v in st.items():
            if k == "step":
                assert sf[k] == int(v.item())
            elif k == "mu_product":
                assert sf[k] == v.item()
            else:
                np.testing.assert_allclose(sf[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{k} {i}")
    assert {k: v for k, v in of.param_groups[0].items() if k != "params"} == {
        k: v for k, v in ot.param_groups[0].items() if k not in ("params", "foreach")
    } | {"foreach": None}


@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_matches_torch_float64(cls, kw):
    """Float64 parameters stay float64 and follow torch's float64 run to double precision."""
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float64, 10, seed=1)
    pf = _params(init, np.float64)
    of = getattr(optim, cls)(pf, **kw)
    _steps(of, pf, grads)
    pt, _ = _torch_run(torch, cls, kw, init, grads)
    for a, b in zip(pf, pt):
        assert a._data.dtype == np.float64
        assert all(v.dtype == np.float64 for v in of.state[a].values() if isinstance(v, np.ndarray))
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls,kw", CASES[1::2], ids=IDS[1::2])
def test_param_groups_and_missing_grads(cls, kw):
    """Two groups with their own lr, a parameter without a gradient in some steps (it neither
    moves nor gets state), as torch."""
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float32, 6, seed=2)
    for s, gs in enumerate(grads):
        if s % 2 == 0:
            gs[1] = None
    lr = kw.get("lr", 0.01)

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "lr": lr / 2}]

    pf = _params(init, np.float32)
    of = getattr(optim, cls)(groups(pf), **kw)
    pt = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    ot = getattr(torch.optim, cls)(groups(pt), foreach=False, **kw)
    for gs in grads:
        for a, b, g in zip(pf, pt, gs):
            a.grad = None if g is None else Tensor(g.copy())
            b.grad = None if g is None else torch.from_numpy(g.copy())
        of.step()
        ot.step()
    for a, b in zip(pf, pt):
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=1e-5, atol=1e-6)
        assert (a in of.state) == (b in ot.state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_state_dict_round_trip(cls, kw, dtype):
    """Save after 4 steps, load into a new optimizer (through fastnn.save / load), continue:
    the same parameters and state (in the parameters' dtype) as 8 uninterrupted steps."""
    init, grads = _data(dtype, 8, seed=3)
    whole = _params(init, dtype)
    ow = getattr(optim, cls)(whole, **kw)
    _steps(ow, whole, grads)

    first = _params(init, dtype)
    o1 = getattr(optim, cls)(first, **kw)
    _steps(o1, first, grads[:4])
    buf = io.BytesIO()
    fastnn.save(o1.state_dict(), buf)
    buf.seek(0)
    resumed = _params([p._data for p in first], dtype)
    o2 = getattr(optim, cls)(resumed, lr=123.0)  # the loaded groups bring back the options
    o2.load_state_dict(fastnn.load(buf))
    assert o2.param_groups[0]["lr"] == kw.get("lr", o1.defaults["lr"])
    _steps(o2, resumed, grads[4:])
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a._data, b._data)
        sa, sb = ow.state[a], o2.state[b]
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])
            assert not isinstance(sb[k], np.ndarray) or sb[k].dtype == dtype


def test_state_dict_layout():
    """torch's state names, the step count, every option in the saved groups."""
    torch = pytest.importorskip("torch")
    for cls, kw in [
        ("Adagrad", {}),
        ("RMSprop", dict(momentum=0.9, centered=True)),
        ("Adadelta", {}),
        ("Adamax", {}),
        ("NAdam", {}),
        ("RAdam", {}),
    ]:
        pf = [nn.Parameter(np.ones(3, np.float32))]
        pt = [torch.nn.Parameter(torch.ones(3))]
        of, ot = getattr(optim, cls)(pf, **kw), getattr(torch.optim, cls)(pt, **kw)
        if cls != "Adagrad":  # Adagrad's state exists from construction on
            assert of.state_dict()["state"] == {} and ot.state_dict()["state"] == {}
        pf[0].grad, pt[0].grad = Tensor(np.ones(3, np.float32)), torch.ones(3)
        of.step()
        ot.step()
        sf, st = of.state_dict(), ot.state_dict()
        assert list(sf["state"]) == list(st["state"]) == [0]
        assert sorted(sf["state"][0]) == sorted(st["state"][0]), cls
        assert sf["state"][0]["step"] == 1
        assert sorted(sf["param_groups"][0]) == sorted(st["param_groups"][0]), cls


def _error(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the test compares whatever each library raises
        return e
    return None


BAD = [
    ("Adagrad", dict(lr=-0.1)),
    ("Adagrad", dict(lr_decay=-1)),
    ("Adagrad", dict(weight_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)),
    ("Adagrad", dict(eps=-1)),
    ("RMSprop", dict(lr=-0.1)),
    ("RMSprop", dict(alpha=-0.5)),
    ("RMSprop", dict(eps=-1)),
    ("RMSprop", dict(momentum=-0.5)),
    ("RMSprop", dict(weight_decay=-1)),
    ("Adadelta", dict(lr=-1)),
    ("Adadelta", dict(rho=1.5)),
    ("Adadelta", dict(rho=-0.1)),
    ("Adadelta", dict(eps=-1)),
    ("Adadelta", dict(weight_decay=-1)),
    ("Adamax", dict(lr=-1)),
    ("Adamax", dict(betas=(1.0, 0.9))),
    ("Adamax", dict(betas=(0.9, -0.1))),
    ("Adamax", dict(eps=-1)),
    ("Adamax", dict(weight_decay=-1)),
    ("NAdam", dict(lr=-1)),
    ("NAdam", dict(betas=(-0.1, 0.9))),
    ("NAdam", dict(betas=(0.9, 1.0))),
    ("NAdam", dict(eps=-1)),
    ("NAdam", dict(weight_decay=-1)),
    ("NAdam", dict(momentum_decay=-1)),
    ("RAdam", dict(lr=-1)),
    ("RAdam", dict(betas=(1.5, 0.9))),
    ("RAdam", dict(betas=(0.9, 1.5))),
    ("RAdam", dict(eps=-1)),
    ("RAdam", dict(weight_decay=-1)),
    ("LBFGS", dict(lr=-1)),
    ("Adagrad", dict(bogus=1)),  # an unknown keyword: TypeError
]


@pytest.mark.parametrize("cls,kw", BAD, ids=[f"{c}-{list(k)[0]}-{i}" for i, (c, k) in enumerate(BAD)])
def test_bad_arguments_match_torch(cls, kw):
    torch = pytest.importorskip("torch")
    want = _error(lambda: getattr(torch.optim, cls)([torch.nn.Parameter(torch.zeros(2))], **kw))
    got = _error(lambda: getattr(optim, cls)([nn.Parameter(np.zeros(2, np.float32))], **kw))
    assert want is not None and type(got) is type(want), (got, want)
    if isinstance(want, ValueError):
        assert str(got) == str(want)


def test_bad_params_match_torch():
    torch = pytest.importorskip("torch")
    p, q = nn.Parameter(np.zeros(2, np.float32)), nn.Parameter(np.zeros(1, np.float32))
    tp, tq = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    for make_f, make_t in [
        (lambda O: O.RMSprop([], lr=0.1), lambda O: O.RMSprop([], lr=0.1)),
        (lambda O: O.Adagrad(p), lambda O: O.Adagrad(tp)),  # a tensor, not an iterable of them
        (lambda O: O.Adadelta([1.0]), lambda O: O.Adadelta([1.0])),
        (
            lambda O: O.LBFGS([{"params": [p]}, {"params": [q]}]),
            lambda O: O.LBFGS([{"params": [tp]}, {"params": [tq]}]),
        ),
    ]:
        want, got = _error(make_t, torch.optim), _error(make_f, optim)
        assert want is not None and type(got) is type(want), (got, want)
        if isinstance(want, ValueError):
            assert str(got) == str(want)


@pytest.mark.parametrize("cls", ["Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_zero_over_zero_is_nan_without_a_warning(cls):
    """eps=0 and a zero gradient: 0 / 0 in the update gives torch's nan, silently as torch does
    (pytest turns a NumPy RuntimeWarning into an error)."""
    torch = pytest.importorskip("torch")
    pf, pt = nn.Parameter(np.array([1.0, 2.0], np.float32)), torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    of, ot = getattr(optim, cls)([pf], eps=0.0), getattr(torch.optim, cls)([pt], eps=0.0)
    for _ in range(2):
        pf.grad, pt.grad = Tensor(np.array([0.0, 1.0], np.float32)), torch.tensor([0.0, 1.0])
        of.step()
        ot.step()
    np.testing.assert_allclose(pf._data, pt.detach().numpy(), rtol=1e-6)  # nan where torch's is


@pytest.mark.parametrize("cls", ["RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_sparse_gradients_refused(cls):
    emb = nn.Embedding(5, 2, sparse=True)
    emb(Tensor(np.array([1, 3]))).sum().backward()
    with pytest.raises(RuntimeError, match=f"^{cls} does not support sparse gradients$"):
        getattr(optim, cls)(emb.parameters()).step()


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")  # torch's, from its sparse Adagrad
@pytest.mark.parametrize("kw", [dict(lr=0.5), dict(lr=0.5, lr_decay=0.1, initial_accumulator_value=0.1, maximize=True)])
def test_adagrad_sparse_matches_torch(kw):
    """Row-sparse gradients (nn.Embedding(sparse=True), repeated rows) update only their rows,
    as torch's sparse Adagrad; weight decay is refused with them, as torch does."""
    torch = pytest.importorskip("torch")
    fastnn.manual_seed(0)
    emb = nn.Embedding(7, 3, sparse=True)
    temb = torch.nn.Embedding(7, 3, sparse=True)
    with torch.no_grad():
        temb.weight.copy_(torch.from_numpy(emb.weight._data))
    of, ot = optim.Adagrad(emb.parameters(), **kw), torch.optim.Adagrad(temb.parameters(), **kw)
    for i, idx in enumerate([[1, 3, 1], [0, 6], [3, 3, 2, 5]]):
        idx = np.array(idx)
        g = np.random.default_rng(i).standard_normal((len(idx), 3)).astype(np.float32)
        of.zero_grad()
        (emb(Tensor(idx)) * Tensor(g)).sum().backward()
        of.step()
        ot.zero_grad()
        (temb(torch.from_numpy(idx)) * torch.from_numpy(g)).sum().backward()
        ot.step()
    np.testing.assert_allclose(emb.weight._data, temb.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(of.state[emb.weight]["sum"], ot.state[temb.weight]["sum"].numpy(), rtol=1e-5)
    with pytest.raises(RuntimeError, match="weight_decay option is not compatible with sparse gradients"):
        optim.Adagrad(emb.parameters(), weight_decay=0.1).step()


def _loss_step(opt_factory, under_no_grad):
    """step(closure) of an optimizer: the closure runs with grad mode on, and its loss comes back."""
    p = nn.Parameter(np.array([1.0, -2.0], np.float32))
    opt = opt_factory([p])
    seen = []

    def closure():
        seen.append(fastnn.is_grad_enabled())
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    if under_no_grad:
        with fastnn.no_grad():
            loss = opt.step(closure)
    else:
        loss = opt.step(closure)
    return p, loss, seen


ALL = {
    "Adagrad": lambda ps: optim.Adagrad(ps),
    "RMSprop": lambda ps: optim.RMSprop(ps),
    "Adadelta": lambda ps: optim.Adadelta(ps),
    "Adamax": lambda ps: optim.Adamax(ps),
    "NAdam": lambda ps: optim.NAdam(ps),
    "RAdam": lambda ps: optim.RAdam(ps),
    "LBFGS": lambda ps: optim.LBFGS(ps, max_iter=3),
}


@pytest.mark.parametrize("name", list(ALL))
def test_step_closure_under_grad_mode(name):
    p, loss, seen = _loss_step(ALL[name], under_no_grad=True)
    assert seen and all(seen)
    assert isinstance(loss, Tensor) and loss.item() == 5.0  # the first evaluation's loss
    assert not np.array_equal(p._data, [1.0, -2.0])  # and the step was taken
    assert fastnn.is_grad_enabled()
    if name != "LBFGS":  # without a closure: no loss
        q = nn.Parameter(np.zeros(1, np.float32))
        q.grad = Tensor(np.ones(1, np.float32))
        assert ALL[name]([q]).step() is None


def test_lbfgs_needs_a_closure():
    opt = optim.LBFGS([nn.Parameter(np.zeros(1, np.float32))])
    with pytest.raises(TypeError):
        opt.step()
    opt = optim.LBFGS([nn.Parameter(np.ones(1, np.float32))], line_search_fn="backtracking")
    p = opt.param_groups[0]["params"][0]

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)


# -- LBFGS -----------------------------------------------------------------------------------------


def _rosenbrock(x):
    """The sum of 2-D Rosenbrock functions over pairs of x, and its gradient, in float64."""
    x = np.asarray(x, np.float64)
    a, b = x[0::2], x[1::2]
    f = float(((1 - a) ** 2 + 100 * (b - a * a) ** 2).sum())
    g = np.empty_like(x)
    g[0::2] = -2 * (1 - a) - 400 * a * (b - a * a)
    g[1::2] = 200 * (b - a * a)
    return f, g


def _lbfgs_pair(torch, x0, fn, dtype, **kw):
    """fastnn's and torch's LBFGS on the same start, with closures giving both the very same
    loss and gradient (fn(x) in float64, rounded to dtype), so only the optimizers can differ."""
    xf = Tensor(x0.astype(dtype), dtype=dtype, requires_grad=True)
    xt = torch.tensor(x0.astype(dtype), requires_grad=True)
    of, ot = optim.LBFGS([xf], **kw), torch.optim.LBFGS([xt], **kw)

    def closure_f():
        f, g = fn(xf._data)
        xf.grad = Tensor(g.astype(dtype), dtype=dtype)
        return Tensor(np.array(f, dtype), dtype=dtype)

    def closure_t():
        f, g = fn(xt.detach().numpy())
        xt.grad = torch.from_numpy(g.astype(dtype))
        return torch.tensor(f, dtype=xt.dtype)

    return (xf, of, closure_f), (xt, ot, closure_t)


def _compare_lbfgs(fastnn_side, torch_side, calls, atol):
    (xf, of, cf), (xt, ot, ct) = fastnn_side, torch_side
    for _ in range(calls):
        lf, lt = of.step(cf), ot.step(ct)
        assert lf.item() == pytest.approx(lt.item(), rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(xf._data, xt.detach().numpy(), rtol=0, atol=atol)
        sf, st = of.state[xf], ot.state[xt]
        assert (sf["func_evals"], sf["n_iter"]) == (st["func_evals"], st["n_iter"])
        assert len(sf["old_dirs"]) == len(st["old_dirs"])
    return xf


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_rosenbrock_float64_matches_torch(line_search_fn):
    """60 iterations on three Rosenbrock valleys: the same iterates, evaluation counts and history
    as torch (float64: the iterates' differences, a few roundings amplified by the curvature,
    stay far below 1e-5)."""
    torch = pytest.importorskip("torch")
    x0 = np.array([-1.2, 1.0, -0.5, 0.8, 0.3, 0.2])
    kw = dict(lr=0.1) if line_search_fn is None else dict(line_search_fn="strong_wolfe")
    f, t = _lbfgs_pair(torch, x0, _rosenbrock, np.float64, history_size=7, **kw)
    x = _compare_lbfgs(f, t, calls=3, atol=1e-9)
    assert _rosenbrock(x._data)[0] < 0.1 * _rosenbrock(x0)[0]  # on its way to the minimum


def _quartic(x):
    """sum x^4 - x^2 + 0.3 x: two valleys per coordinate."""
    x = np.asarray(x, np.float64)
    return float((x**4 - x**2 + 0.3 * x).sum()), 4 * x**3 - 2 * x + 0.3


def _wavy(x):
    """sum sin(3 x) + 0.1 x^2: many local minima."""
    x = np.asarray(x, np.float64)
    return float((np.sin(3 * x) + 0.1 * x * x).sum()), 3 * np.cos(3 * x) + 0.2 * x


def _cliff(x):
    """sum -x + 1e-4 x^2 with a step up of 95 at x = 50: walking down the slope from 0, the
    line search's third trial (x = 100) lies above the second (x = 10) though still below the
    start, with the slope as steep as at the start."""
    x = np.asarray(x, np.float64)
    s = 0.5 * (1 + np.tanh(x - 50.0))  # a sigmoid of width 0.5
    return float((-x + 95 * s + 1e-4 * x * x).sum()), -1 + 190 * s * (1 - s) + 2e-4 * x


# problems whose line searches take every branch: extrapolation (a short first trial), the
# evaluation limit reached while extrapolating, a cubic without a minimum (the midpoint), a
# bracket found by a rising slope, by a rising loss or by a loss above the previous trial's,
# zoom points crowding an end of the bracket (allowed once, then moved inside) and the
# bracket's low end replacing its high end
LINE_SEARCHES = [
    (_rosenbrock, [-1.2, 1.0, 2.0, 3.5], 1.0, {}),
    (_rosenbrock, [-1.2, 1.0, 2.0, 3.5], 30.0, {}),
    (_quartic, [0.3, -0.2, 1.5, -2.0], 1e-3, {}),
    (_quartic, [2.5, 2.5, -3.0, 0.1], 30.0, {}),
    (_wavy, [-1.2, 1.0, 2.0, 3.5], 1000.0, {}),
    (_cliff, [0.0], 1.0, dict(max_iter=1, max_eval=10)),
]


@pytest.mark.parametrize(
    "fn,x0,lr,kw", LINE_SEARCHES, ids=[f"{f.__name__.strip('_')}-{lr:g}" for f, _, lr, _ in LINE_SEARCHES]
)
def test_lbfgs_strong_wolfe_line_search_matches_torch(fn, x0, lr, kw):
    """Strong-Wolfe searches through every branch: the same iterates and evaluation counts as
    torch (float64)."""
    torch = pytest.importorskip("torch")
    kw = dict(dict(max_iter=6), **kw)
    f, t = _lbfgs_pair(torch, np.array(x0), fn, np.float64, lr=lr, line_search_fn="strong_wolfe", **kw)
    _compare_lbfgs(f, t, calls=3, atol=1e-9)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_rosenbrock_float32_matches_torch(line_search_fn):
    """Float32: the first 8 iterations (Rosenbrock's curvature multiplies a rounding difference
    by about 3 each iteration, so later float32 iterates of two implementations drift apart)."""
    torch = pytest.importorskip("torch")
    x0 = np.array([-1.2, 1.0, -0.5, 0.8, 0.3, 0.2])
    kw = dict(lr=0.1) if line_search_fn is None else dict(line_search_fn="strong_wolfe")
    f, t = _lbfgs_pair(torch, x0, _rosenbrock, np.float32, max_iter=4, max_eval=10, **kw)
    _compare_lbfgs(f, t, calls=2, atol=1e-5)


def _least_squares(A, b):
    def fn(x):
        r = A @ np.asarray(x, np.float64) - b
        return float(r @ r), 2 * A.T @ r

    return fn


@pytest.mark.parametrize("dtype,atol", [(np.float32, 1e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [2, 100])
def test_lbfgs_least_squares_matches_torch(dtype, atol, line_search_fn, history_size):
    """A least-squares fit, 4 calls of 5 iterations (to the minimum): the same iterates as torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    A, b, x0 = rng.standard_normal((20, 6)), rng.standard_normal(20), rng.standard_normal(6)
    kw = dict(line_search_fn=line_search_fn, history_size=history_size, max_iter=5)
    f, t = _lbfgs_pair(torch, x0, _least_squares(A, b), dtype, **kw)
    x = _compare_lbfgs(f, t, calls=4, atol=atol)
    np.testing.assert_allclose(x._data, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-4)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_autograd_closure_matches_torch(line_search_fn):
    """The closure as a program writes it, each library's own autograd computing the float32
    gradient: the same iterates as torch within 1e-5 for 8 iterations, then both at the minimum.
    (At the minimum the float32 gradients are rounding noise, which the two libraries round
    differently, so the last iterates agree only as far as the problem determines them.)"""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    A = rng.standard_normal((20, 6)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    x0 = rng.standard_normal(6).astype(np.float32)
    kw = dict(line_search_fn=line_search_fn, max_iter=4)
    xf, xt = nn.Parameter(x0.copy()), torch.nn.Parameter(torch.from_numpy(x0.copy()))
    of, ot = optim.LBFGS([xf], **kw), torch.optim.LBFGS([xt], **kw)
    Af, bf, At, bt = Tensor(A), Tensor(b), torch.from_numpy(A), torch.from_numpy(b)

    def closure_f():
        of.zero_grad()
        r = Af @ xf - bf
        loss = (r * r).sum()
        loss.backward()
        return loss

    def closure_t():
        ot.zero_grad()
        r = At @ xt - bt
        loss = (r * r).sum()
        loss.backward()
        return loss

    for _ in range(2):
        lf, lt = of.step(closure_f), ot.step(closure_t)
        assert lf.item() == pytest.approx(lt.item(), rel=1e-5)
        np.testing.assert_allclose(xf._data, xt.detach().numpy(), rtol=1e-5, atol=1e-5)
    for _ in range(4):
        of.step(closure_f)
        ot.step(closure_t)
    best = np.linalg.lstsq(A.astype(np.float64), b.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(xf._data, best, atol=1e-3)
    np.testing.assert_allclose(xt.detach().numpy(), best, atol=1e-3)


def test_lbfgs_state_dict_round_trip():
    """Save between two step() calls, load into a new LBFGS, continue: the same iterates as
    without the interruption (the curvature pairs, direction and step come back)."""
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])

    def run(interrupt):
        x = Tensor(x0.astype(np.float32), requires_grad=True)
        opt = optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=5, history_size=3)

        def closure():
            f, g = _rosenbrock(x._data)
            x.grad = Tensor(g.astype(np.float32))
            return Tensor(np.float32(f))

        for i in range(4):
            if interrupt and i == 2:
                buf = io.BytesIO()
                fastnn.save(opt.state_dict(), buf)
                buf.seek(0)
                x = Tensor(x._data.copy(), requires_grad=True)
                opt = optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=5, history_size=3)
                opt.load_state_dict(fastnn.load(buf))
                assert len(opt.state[x]["old_dirs"]) == 3
            opt.step(closure)
        return x._data, opt.state[x]["func_evals"]

    a, b = run(False), run(True)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


# -- on the emulated CUDA device -------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,kw", CASES[1::2] + [("Adagrad", dict(lr=0.1, weight_decay=0.1))], ids=IDS[1::2] + ["Adagrad-wd"]
)
def test_on_the_device(emulated_gpu, cls, kw):
    """The same update on CUDA arrays (its state on the device, in the parameter's dtype) as on
    the CPU, and the state dict travels between the devices."""
    init, grads = _data(np.float32, 4, seed=4)
    runs = []
    for dev in ("cpu", "cuda"):
        ps = [nn.Parameter(fastnn.tensor(a, device=dev)) for a in init]
        opt = getattr(optim, cls)(ps, **kw)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = fastnn.tensor(g, device=dev)
            opt.step()
        runs.append((ps, opt))
    (pc, oc), (pd, od) = runs
    for a, b in zip(pd, pc):
        assert a.is_cuda
        np.testing.assert_array_equal(a._data.get(), b._data)  # NumPy's arithmetic behind both
        for k, v in od.state[a].items():
            if k not in ("step", "mu_product"):
                assert isinstance(v, emulated_gpu.ndarray) and v.dtype == np.float32, k
    cpu_again = getattr(optim, cls)([nn.Parameter(p._data.get()) for p in pd], **kw)
    buf = io.BytesIO()
    fastnn.save(od.state_dict(), buf)
    buf.seek(0)
    cpu_again.load_state_dict(fastnn.load(buf))
    assert all(
        isinstance(v, np.ndarray)
        for st in cpu_again.state.values()
        for k, v in st.items()
        if k not in ("step", "mu_product")
    )
    gpu_again = getattr(optim, cls)([nn.Parameter(fastnn.tensor(p._data, device="cuda")) for p in pc], **kw)
    gpu_again.load_state_dict(oc.state_dict())
    assert all(
        isinstance(v, emulated_gpu.ndarray)
        for st in gpu_again.state.values()
        for k, v in st.items()
        if k not in ("step", "mu_product")
    )


def _lbfgs_two_params(dev, A, b, line_search_fn):
    """LBFGS fitting A [w; v] = b over parameters w (3,) and v (2,) on device dev: 2 calls."""
    w = nn.Parameter(fastnn.tensor(np.zeros(3, np.float32), device=dev))
    v = nn.Parameter(fastnn.tensor(np.zeros(2, np.float32), device=dev))
    Ad, bd = fastnn.tensor(A, device=dev), fastnn.tensor(b, device=dev)
    opt = optim.LBFGS([w, v], line_search_fn=line_search_fn, max_iter=6)

    def closure():
        opt.zero_grad()
        r = Ad[:, :3] @ w + Ad[:, 3:] @ v - bd
        loss = (r * r).sum()
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    return w, v, opt


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_on_the_device(emulated_gpu, line_search_fn):
    """LBFGS over two CUDA parameters: the same iterates as on the CPU; its flat vectors live on
    the device."""
    rng = np.random.default_rng(6)
    A = rng.standard_normal((10, 5)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    wc, vc, oc = _lbfgs_two_params("cpu", A, b, line_search_fn)
    wd, vd, od = _lbfgs_two_params("cuda", A, b, line_search_fn)
    np.testing.assert_allclose(wd._data.get(), wc._data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vd._data.get(), vc._data, rtol=1e-5, atol=1e-6)
    assert isinstance(od.state[wd]["d"], emulated_gpu.ndarray)
    assert all(isinstance(y, emulated_gpu.ndarray) for y in od.state[wd]["old_dirs"])
    assert od.state[wd]["func_evals"] == oc.state[wc]["func_evals"]


# -- learning-rate schedulers ----------------------------------------------------------------------


def _two_groups(lib, name="SGD"):
    """An optimizer of library lib (fastnn.optim or torch.optim) with two param groups whose
    learning rates differ."""
    if lib is optim:
        ps = [nn.Parameter(np.zeros(2, np.float32)), nn.Parameter(np.zeros(1, np.float32))]
    else:
        import torch

        ps = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))]
    groups = [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}]
    if name == "SGD":
        return lib.SGD(groups, lr=0.2, momentum=0.9)
    return getattr(lib, name)(groups, lr=0.2)


class Halving:
    """A callable object as lr_lambda: its attributes are saved in state_dict (a function is not)."""

    def __init__(self):
        self.rate = 0.5

    def __call__(self, epoch):
        return self.rate ** (epoch // 10)


# name -> (make(lr_scheduler module, optimizer), optimizer class name)
SCHEDULERS = {
    "LambdaLR": (lambda m, o: m.LambdaLR(o, [lambda e: 0.95**e, lambda e: 1 / (1 + e)]), "SGD"),
    "LambdaLR-object": (lambda m, o: m.LambdaLR(o, Halving()), "SGD"),
    "MultiplicativeLR": (lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97 if e % 3 else 0.9), "SGD"),
    "StepLR": (lambda m, o: m.StepLR(o, 7, 0.5), "SGD"),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, [5, 12, 12, 40], 0.3), "SGD"),
    "ConstantLR": (lambda m, o: m.ConstantLR(o, 0.25, 8), "SGD"),
    "LinearLR": (lambda m, o: m.LinearLR(o, 0.1, 0.9, 20), "SGD"),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, 0.93), "SGD"),
    "PolynomialLR": (lambda m, o: m.PolynomialLR(o, 30, 2.0), "SGD"),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, 10, 0.001), "SGD"),  # several periods
    "CosineAnnealingLR-long": (lambda m, o: m.CosineAnnealingLR(o, 45), "SGD"),
    "SequentialLR-warmup-cosine": (
        lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.01, 1.0, 5), m.CosineAnnealingLR(o, 20, 1e-4)], [5]),
        "SGD",
    ),
    "SequentialLR-three": (
        lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, 0.1, 3), m.ExponentialLR(o, 0.9), m.StepLR(o, 4)], [3, 10]),
        "SGD",
    ),
    "ChainedScheduler": (lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 4), m.ExponentialLR(o, 0.95)]), "SGD"),
    "CosineAnnealingWarmRestarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, 5, 2, 1e-3), "SGD"),
    "CosineAnnealingWarmRestarts-T_mult-1": (lambda m, o: m.CosineAnnealingWarmRestarts(o, 7), "SGD"),
    "CyclicLR-triangular2": (lambda m, o: m.CyclicLR(o, 0.01, [0.1, 0.2], 6, 4, "triangular2"), "SGD"),
    "CyclicLR-exp_range-betas": (
        lambda m, o: m.CyclicLR(o, [0.01, 0.02], 0.1, 5, mode="exp_range", gamma=0.97, base_momentum=0.7),
        "Adam",
    ),
    "CyclicLR-scale_fn": (
        lambda m, o: m.CyclicLR(o, 0.01, 0.1, 4, scale_fn=lambda x: 0.9**x, scale_mode="iterations"),
        "RMSprop",
    ),
    "CyclicLR-no-momentum": (lambda m, o: m.CyclicLR(o, 0.01, 0.1, 3, cycle_momentum=False), "Adagrad"),
    "OneCycleLR-cos": (lambda m, o: m.OneCycleLR(o, [0.5, 0.1], total_steps=70), "SGD"),
    "OneCycleLR-three-phase-linear-betas": (
        lambda m, o: m.OneCycleLR(o, 0.5, epochs=7, steps_per_epoch=10, three_phase=True, anneal_strategy="linear"),
        "NAdam",
    ),
}


def _run_schedulers(torch, name, steps, change_at=None):
    """fastnn's and torch's scheduler stepped in lockstep with their optimizers; yields each
    step's (fastnn lrs, torch lrs, fastnn groups, torch groups). change_at: the step at which
    both groups' lr is set by hand."""
    make, opt_name = SCHEDULERS[name]
    of, ot = _two_groups(optim, opt_name), _two_groups(torch.optim, opt_name)
    sf, st = make(optim.lr_scheduler, of), make(torch.optim.lr_scheduler, ot)
    for i in range(steps):
        yield sf.get_last_lr(), st.get_last_lr(), of.param_groups, ot.param_groups
        if i == change_at:
            for g in of.param_groups + ot.param_groups:
                g["lr"] = g["lr"] * 3
        of.step()
        ot.step()
        sf.step()
        st.step()


def _same_lrs(got, want):
    assert len(got) == len(want) == 2
    for a, b in zip(got, want):
        assert a == pytest.approx(b, rel=1e-12, abs=0), (got, want)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_matches_torch(name):
    """70 steps over two param groups: the learning rates (and cycled momentum / beta1) equal
    torch's."""
    torch = pytest.importorskip("torch")
    for lf, lt, gf, gt in _run_schedulers(torch, name, 70):
        _same_lrs(lf, lt)
        _same_lrs([g["lr"] for g in gf], lf)
        for a, b in zip(gf, gt):
            for key in ("momentum", "betas"):
                if key in b:
                    assert a[key] == pytest.approx(b[key], rel=1e-12, abs=0), key


@pytest.mark.parametrize("name", ["CosineAnnealingLR", "ExponentialLR", "StepLR", "ChainedScheduler", "LinearLR"])
def test_scheduler_follows_an_lr_changed_by_hand(name):
    """The chainable form continues from an lr set by hand (the recursive cosine then leaves its
    closed form), as torch's does."""
    torch = pytest.importorskip("torch")
    seen = []
    for lf, lt, _, _ in _run_schedulers(torch, name, 60, change_at=3):
        _same_lrs(lf, lt)
        seen.append(lf[0])
    if name == "CosineAnnealingLR":
        closed = [0.001 + (0.2 - 0.001) * (1 + np.cos(np.pi * e / 10)) / 2 for e in range(60)]
        assert abs(seen[6] - closed[6]) > 1e-2  # it is the recursion being checked


@pytest.mark.parametrize(
    "name", ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR"]
)
def test_step_with_an_epoch_uses_the_closed_form(name):
    """step(epoch): torch's deprecation warning and its closed form, at epochs out of order."""
    torch = pytest.importorskip("torch")
    make, opt_name = SCHEDULERS[name]
    of, ot = _two_groups(optim, opt_name), _two_groups(torch.optim, opt_name)
    sf, st = make(optim.lr_scheduler, of), make(torch.optim.lr_scheduler, ot)
    of.step()
    ot.step()
    for epoch in (3, 17, 5, 40, 12, 0, 25):
        with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)` was not necessary"):
            sf.step(epoch)
        with pytest.warns(UserWarning):
            st.step(epoch)
        assert sf.last_epoch == st.last_epoch == epoch
        _same_lrs(sf.get_last_lr(), st.get_last_lr())


def test_warm_restarts_fractional_epochs():
    """CosineAnnealingWarmRestarts.step(epoch) with fractional epochs (an lr per batch)."""
    torch = pytest.importorskip("torch")
    for T_mult in (1, 2, 3):
        of, ot = _two_groups(optim), _two_groups(torch.optim)
        sf = optim.lr_scheduler.CosineAnnealingWarmRestarts(of, 3, T_mult, 0.01)
        st = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(ot, 3, T_mult, 0.01)
        for k in range(120):
            epoch = k / 7
            of.step()
            ot.step()
            sf.step(epoch)
            st.step(epoch)
            _same_lrs(sf.get_last_lr(), st.get_last_lr())
            assert (sf.T_i, sf.last_epoch) == (st.T_i, st.last_epoch)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_state_dict_round_trip(name):
    """state_dict has torch's keys; after saving at step 20 (with the optimizer, through
    fastnn.save), fresh objects loading both continue exactly as the uninterrupted run."""
    torch = pytest.importorskip("torch")
    make, opt_name = SCHEDULERS[name]
    assert set(make(optim.lr_scheduler, _two_groups(optim, opt_name)).state_dict()) == set(
        make(torch.optim.lr_scheduler, _two_groups(torch.optim, opt_name)).state_dict()
    )

    def run(interrupt):
        opt = _two_groups(optim, opt_name)
        sched = make(optim.lr_scheduler, opt)
        lrs = []
        for i in range(60):
            if interrupt and i == 20:
                buf = io.BytesIO()
                fastnn.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buf)
                buf.seek(0)
                saved = fastnn.load(buf)
                opt = _two_groups(optim, opt_name)
                sched = make(optim.lr_scheduler, opt)
                opt.load_state_dict(saved["optimizer"])
                sched.load_state_dict(saved["scheduler"])
            lrs.append(list(sched.get_last_lr()) + [g.get("momentum") for g in opt.param_groups])
            opt.step()
            sched.step()
        if hasattr(sched, "_get_closed_form_lr"):  # and the closed form works after a load
            with pytest.warns(UserWarning, match="The epoch parameter"):
                sched.step(13)
            lrs.append(sched.get_last_lr())
        return lrs

    assert run(True) == run(False)


def test_lambda_state_dict():
    """A function is not stored (None), a callable object's attributes are, as torch does."""
    of = _two_groups(optim)
    fn = Halving()
    s = optim.lr_scheduler.LambdaLR(of, [lambda e: 1.0, fn])
    assert s.state_dict()["lr_lambdas"] == [None, {"rate": 0.5}]
    fn.rate = 0.1
    state = s.state_dict()
    fn.rate = 0.9
    s.load_state_dict(state)
    assert fn.rate == 0.1 and "lr_lambdas" in state


PLATEAU = [
    {},
    dict(patience=3, cooldown=2, factor=0.5),
    dict(mode="max", factor=0.5, patience=2, threshold=0.1, threshold_mode="abs", cooldown=2, min_lr=[0.01, 0.001]),
    dict(mode="min", threshold_mode="abs", threshold=0.05, patience=1, min_lr=0.02, eps=1e-3),
    dict(mode="max", patience=0, factor=0.9),
]


@pytest.mark.parametrize("kw", PLATEAU)
def test_reduce_lr_on_plateau_matches_torch(kw):
    """step(metric) over 100 noisy, slowly improving metrics: the same reductions as torch's,
    the same counters, and a state_dict round trip half-way."""
    torch = pytest.importorskip("torch")
    of, ot = _two_groups(optim), _two_groups(torch.optim)
    sf = optim.lr_scheduler.ReduceLROnPlateau(of, **kw)
    st = torch.optim.lr_scheduler.ReduceLROnPlateau(ot, **kw)
    rng = np.random.default_rng(0)
    sign = -1 if kw.get("mode") == "max" else 1
    changes = 0
    for i in range(100):
        metric = sign * (2.0 - 0.01 * i) + 0.1 * rng.standard_normal()
        if i == 50:
            buf = io.BytesIO()
            fastnn.save(sf.state_dict(), buf)
            buf.seek(0)
            sf = optim.lr_scheduler.ReduceLROnPlateau(of, mode="max" if kw.get("mode") != "max" else "min")
            sf.load_state_dict(fastnn.load(buf))
        before = sf.get_last_lr()
        sf.step(Tensor(np.float32(metric)) if i % 2 else metric)
        st.step(np.float32(metric) if i % 2 else metric)
        changes += sf.get_last_lr() != before
        assert sf.get_last_lr() == st.get_last_lr(), i
        assert (sf.best, sf.num_bad_epochs, sf.cooldown_counter, sf.last_epoch) == (
            st.best,
            st.num_bad_epochs,
            st.cooldown_counter,
            st.last_epoch,
        )
    assert changes >= 1


def test_custom_scheduler_subclass():
    """A program's own LRScheduler subclass (get_lr over base_lrs and last_epoch) runs as in torch;
    _LRScheduler is the old name."""
    torch = pytest.importorskip("torch")

    def make(m, o):
        class Warmup(m.LRScheduler):
            def get_lr(self):
                return [base * min(1.0, (self.last_epoch + 1) / 4) for base in self.base_lrs]

        return Warmup(o)

    of, ot = _two_groups(optim), _two_groups(torch.optim)
    sf, st = make(optim.lr_scheduler, of), make(torch.optim.lr_scheduler, ot)
    for _ in range(8):
        _same_lrs(sf.get_last_lr(), st.get_last_lr())
        of.step()
        ot.step()
        sf.step()
        st.step()
    assert issubclass(optim.lr_scheduler._LRScheduler, optim.lr_scheduler.LRScheduler)


def test_scheduler_warnings_as_torch():
    """Stepping the scheduler before the optimizer, and get_lr() outside step(), warn as in torch."""
    of = _two_groups(optim)
    s = optim.lr_scheduler.StepLR(of, 2)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`"):
        s.step()
    with pytest.warns(UserWarning, match=r"please use `get_last_lr\(\)`"):
        s.get_lr()
    of = _two_groups(optim)
    s = optim.lr_scheduler.ExponentialLR(of, 0.5)
    of.step()
    s.step()  # no warning: the optimizer stepped first
    s.step()
    assert s.get_last_lr() == [0.05, 0.0125]


def _sched_error(lib, make):
    try:
        make(lib)
    except Exception as e:  # noqa: BLE001 - the test compares whatever each library raises
        return e
    return None


SCHEDULER_ERRORS = [
    lambda m, o: m.ConstantLR(o, factor=1.5),
    lambda m, o: m.LinearLR(o, start_factor=0),
    lambda m, o: m.LinearLR(o, end_factor=1.5),
    lambda m, o: m.LambdaLR(o, [lambda e: 1.0]),
    lambda m, o: m.MultiplicativeLR(o, 0.5),
    lambda m, o: m.StepLR(o, 3, last_epoch=4),  # resuming needs initial_lr in the groups
    lambda m, o: m.CosineAnnealingWarmRestarts(o, 0),
    lambda m, o: m.CosineAnnealingWarmRestarts(o, 5, T_mult=0),
    lambda m, o: m.CosineAnnealingWarmRestarts(o, 5, eta_min="0"),
    lambda m, o: m.CyclicLR(o, 0.1, 1.0, mode="zigzag"),
    lambda m, o: m.CyclicLR(o, [0.1], 1.0),
    lambda m, o: m.OneCycleLR(o, 1.0),
    lambda m, o: m.OneCycleLR(o, 1.0, total_steps=0),
    lambda m, o: m.OneCycleLR(o, 1.0, epochs=0, steps_per_epoch=3),
    lambda m, o: m.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.5),
    lambda m, o: m.OneCycleLR(o, 1.0, total_steps=10, pct_start=1),
    lambda m, o: m.OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="step"),
    lambda m, o: m.ReduceLROnPlateau(o, factor=1.0),
    lambda m, o: m.ReduceLROnPlateau(o, mode="lowest"),
    lambda m, o: m.ReduceLROnPlateau(o, threshold_mode="relative"),
    lambda m, o: m.ReduceLROnPlateau(o, min_lr=[0.1]),
    lambda m, o: m.SequentialLR(o, [], []),
    lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2), m.StepLR(o, 3)], [2, 4]),
    lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2), m.ReduceLROnPlateau(o)], [2]),
    lambda m, o: m.ChainedScheduler([]),
    lambda m, o: m.StepLR(None, 3),
    lambda m, o: m.ReduceLROnPlateau("opt"),
]


@pytest.mark.parametrize("i", range(len(SCHEDULER_ERRORS)))
def test_scheduler_errors_match_torch(i):
    torch = pytest.importorskip("torch")
    make = SCHEDULER_ERRORS[i]
    want = _sched_error(torch.optim, lambda O: make(torch.optim.lr_scheduler, _two_groups(O)))
    got = _sched_error(optim, lambda O: make(optim.lr_scheduler, _two_groups(O)))
    assert want is not None and type(got) is type(want), (got, want)
    if isinstance(want, (ValueError, KeyError)):
        assert str(got) == str(want)


def test_scheduler_errors_in_use():
    """Momentum cycling needs momentum or betas; OneCycleLR past total_steps; schedulers of two
    optimizers in one SequentialLR: torch's errors."""
    torch = pytest.importorskip("torch")
    for lib, m in ((torch.optim, torch.optim.lr_scheduler), (optim, optim.lr_scheduler)):
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
            m.CyclicLR(_two_groups(lib, "Adadelta"), 0.1, 1.0)
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
            m.OneCycleLR(_two_groups(lib, "Adagrad"), 0.1, total_steps=5)
        o = _two_groups(lib)
        s = m.OneCycleLR(o, 0.1, total_steps=3)
        for _ in range(3):
            o.step()
            s.step()
        with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
            s.step()
        o1, o2 = _two_groups(lib), _two_groups(lib)
        with pytest.raises(ValueError, match="SequentialLR expects all schedulers to belong to the same optimizer"):
            m.SequentialLR(o1, [m.StepLR(o1, 2), m.StepLR(o2, 2)], [3])


def test_copy_of_an_optimizer_with_a_scheduler():
    """The scheduler wraps optimizer.step to see it called; a deep copy of the optimizer steps its
    own parameters, not the original's."""
    import copy

    p = nn.Parameter(np.ones(2, np.float32))
    opt = optim.SGD([p], lr=0.1)
    optim.lr_scheduler.StepLR(opt, 2)
    twin = copy.deepcopy(opt)
    q = twin.param_groups[0]["params"][0]
    q.grad = Tensor(np.ones(2, np.float32))
    twin.step()
    np.testing.assert_array_equal(p._data, [1.0, 1.0])
    np.testing.assert_allclose(q._data, [0.9, 0.9])
