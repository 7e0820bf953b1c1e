"""fastnn.nn's losses against torch.nn's (forward, input and target gradients, every reduction,
the deprecated size_average / reduce, error types; skipped without torch), float64 finite
differences of the losses computed in fastnn's own array math, and the CrossEntropyLoss /
NLLLoss options audit (weights, ignore_index, label smoothing, class-probability targets)."""

import warnings

import fastnn.nn as nn
import fastnn.nn.functional as F
import numpy as np
import pytest
from fastnn import Tensor
from nn_parity import away_from, fd_check, raises_like, run_both, torch_or_skip

REDUCTIONS = ["mean", "sum", "none"]


def _pair(rng, shape=(4, 5), target_shape=None):
    x = rng.standard_normal(shape).astype(np.float32) * 2
    y = rng.standard_normal(target_shape or shape).astype(np.float32) * 2
    return x, y


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "name,kw",
    [
        ("L1Loss", {}),
        ("SmoothL1Loss", {}),
        ("SmoothL1Loss", {"beta": 0.5}),
        ("SmoothL1Loss", {"beta": 0.0}),
        ("HuberLoss", {}),
        ("HuberLoss", {"delta": 2.5}),
        ("MSELoss", {}),
    ],
)
def test_regression_losses_match_torch(rng, name, kw, reduction):
    torch = torch_or_skip()
    ours, theirs = getattr(nn, name)(reduction=reduction, **kw), getattr(torch.nn, name)(reduction=reduction, **kw)
    assert repr(ours) == repr(theirs)
    x, y = _pair(rng, (3, 4, 5))
    y.flat[:3] = x.flat[:3]  # d = 0, where the L1 gradient's sign is 0
    y.flat[3] = x.flat[3] - kw.get("beta", kw.get("delta", 1.0))  # |d| at the switch between the pieces
    run_both(torch, ours, theirs, [x, y], rng=rng, what=name)


@pytest.mark.parametrize("name", ["l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss"])
def test_regression_losses_broadcast_with_torchs_warning(rng, name):
    torch = torch_or_skip()
    x, y = _pair(rng, (3, 4), (4,))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_both(torch, getattr(F, name), getattr(torch.nn.functional, name), [x, y], rng=rng, what=name)
    assert len(seen) == 2 and all(str(w.message).startswith("Using a target size (") for w in seen)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "huber_loss"])
def test_weighted_regression_losses_match_torch(rng, name, reduction):
    torch = torch_or_skip()
    x, y = _pair(rng)
    w = rng.random(x.shape).astype(np.float32) + 0.1
    run_both(
        torch,
        lambda a, b, c: getattr(F, name)(a, b, reduction=reduction, weight=c),
        lambda a, b, c: getattr(torch.nn.functional, name)(a, b, reduction=reduction, weight=c),
        [x, y, w],
        rng=rng,
        what=name,
    )
    raises_like(
        lambda: getattr(F, name)(Tensor(x), Tensor(y), weight=Tensor(w[0])),
        lambda: getattr(torch.nn.functional, name)(
            torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w[0])
        ),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_loss_matches_torch(rng, reduction, weighted):
    torch = torch_or_skip()
    p = rng.random((4, 5)).astype(np.float32)
    p.flat[:2] = [0.0, 1.0]  # log clamped at -100, as torch
    t = rng.random((4, 5)).astype(np.float32)
    t.flat[5:8] = [0.0, 1.0, 0.5]
    w = rng.random(5).astype(np.float32) + 0.5
    ours = nn.BCELoss(Tensor(w) if weighted else None, reduction=reduction)
    theirs = torch.nn.BCELoss(torch.from_numpy(w) if weighted else None, reduction=reduction)
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    run_both(torch, ours, theirs, [p, t], rng=rng, what="bce")


def test_bce_errors_match_torch():
    torch = torch_or_skip()
    p, t = np.full((3, 4), 0.5, np.float32), np.full((3, 4), 0.5, np.float32)
    tF = torch.nn.functional
    raises_like(
        lambda: F.binary_cross_entropy(Tensor(p), Tensor(t[0])),
        lambda: tF.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(t[0])),
    )
    raises_like(
        lambda: F.binary_cross_entropy(Tensor(p + 1), Tensor(t)),
        lambda: tF.binary_cross_entropy(torch.from_numpy(p + 1), torch.from_numpy(t)),
    )
    nan = p.copy()
    nan[0, 0] = np.nan
    raises_like(
        lambda: F.binary_cross_entropy(Tensor(nan), Tensor(t)),
        lambda: tF.binary_cross_entropy(torch.from_numpy(nan), torch.from_numpy(t)),
    )


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(rng, reduction, log_target):
    torch = torch_or_skip()
    logits = rng.standard_normal((4, 6)).astype(np.float32)
    x = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
    q = rng.random((4, 6)).astype(np.float32) + 0.05
    q /= q.sum(1, keepdims=True)
    y = np.log(q).astype(np.float32) if log_target else q
    if not log_target:
        y[0, 0] = 0.0  # 0 log 0 = 0
    ours = nn.KLDivLoss(reduction=reduction, log_target=log_target)
    theirs = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)
    assert repr(ours) == repr(theirs)
    grad = [True, log_target]  # the target's gradient at 0 is -inf here, nan in torch
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_both(torch, ours, theirs, [x, y], grad=grad, rng=rng, what="kl_div")
    assert sum("'batchmean'" in str(w.message) for w in seen) == (2 if reduction == "mean" else 0)
    if not log_target:
        y[0, 0] = 0.3
        run_both(
            torch,
            lambda a, b: F.kl_div(a, b, reduction="sum"),
            lambda a, b: torch.nn.functional.kl_div(a, b, reduction="sum"),
            [x, y],
            rng=rng,
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_float64_finite_differences(rng, reduction):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y = x + away_from(rng, (3, 4), (0.0, -1.0, 1.0, -0.5, 0.5), spread=1.5)  # off the kinks
    for f in (
        lambda a, b: F.l1_loss(a, b, reduction=reduction),
        lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=0.5),
        lambda a, b: F.huber_loss(a, b, reduction=reduction, delta=1.0),
        lambda a, b: F.l1_loss(a, b, reduction=reduction, weight=Tensor(np.full((3, 4), 0.5), dtype=np.float64)),
        lambda a, b: F.huber_loss(a, b, reduction=reduction, weight=Tensor(np.full((3, 4), 0.5), dtype=np.float64)),
    ):
        fd_check(f, [x, y], rng)
    p, t = rng.random((3, 4)) * 0.8 + 0.1, rng.random((3, 4))
    fd_check(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction), [p, t], rng)
    w = Tensor(rng.random(4) + 0.5, dtype=np.float64)
    fd_check(lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction), [p, t], rng)
    logq = np.log(rng.random((3, 4)) + 0.1)
    for log_target in (False, True):
        tgt = logq if log_target else np.exp(logq)
        red = "batchmean" if reduction == "mean" else reduction
        fd_check(lambda a, b, lt=log_target, r=red: F.kl_div(a, b, reduction=r, log_target=lt), [x, tgt], rng)


def test_legacy_size_average_and_reduce_match_torch(rng):
    torch = torch_or_skip()
    x, y = _pair(rng)
    for kw in ({"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True}):
        for name in (
            "L1Loss",
            "MSELoss",
            "SmoothL1Loss",
            "KLDivLoss",
            "BCELoss",
            "CrossEntropyLoss",
            "NLLLoss",
            "BCEWithLogitsLoss",
        ):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                ours, theirs = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
            assert ours.reduction == theirs.reduction, (name, kw)
            msgs = [str(w.message) for w in seen]
            assert len(msgs) == 2 and msgs[0] == msgs[1], msgs
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_both(
            torch,
            lambda a, b: F.l1_loss(a, b, size_average=False),
            lambda a, b: torch.nn.functional.l1_loss(a, b, size_average=False),
            [x, y],
            rng=rng,
        )
    assert len(seen) == 2 and all("reduction='sum'" in str(w.message) for w in seen)


def test_loss_argument_errors_match_torch():
    torch = torch_or_skip()
    a = np.ones((3, 4), np.float32)
    x, xt = Tensor(a), torch.from_numpy(a)
    tF = torch.nn.functional
    for name in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy"):
        raises_like(
            lambda n=name: getattr(F, n)(x * 0.5, x * 0.5, reduction="foo"),
            lambda n=name: getattr(tF, n)(xt * 0.5, xt * 0.5, reduction="foo"),
        )
    raises_like(lambda: F.smooth_l1_loss(x, x, beta=-1.0), lambda: tF.smooth_l1_loss(xt, xt, beta=-1.0))
    raises_like(lambda: F.huber_loss(x, x, delta=0.0), lambda: tF.huber_loss(xt, xt, delta=0.0))
    t = np.array([0, 1, 2])
    for f, g in ((F.cross_entropy, tF.cross_entropy), (F.nll_loss, tF.nll_loss)):
        raises_like(
            lambda f=f: f(x, Tensor(t), reduction="foo"), lambda g=g: g(xt, torch.from_numpy(t), reduction="foo")
        )


# -- CrossEntropyLoss / NLLLoss options ----------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"label_smoothing": 0.2},
        {"weight": True},
        {"weight": True, "label_smoothing": 0.1, "reduction": "none"},
    ],
)
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3), (4,)])
def test_cross_entropy_probability_targets_match_torch(rng, kw, shape):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(np.float32) * 2
    axis = 1 if len(shape) > 1 else 0
    t = rng.random(shape).astype(np.float32)
    t /= t.sum(axis=axis, keepdims=True)
    kw = dict(kw)
    w = rng.random(4).astype(np.float32) + 0.5
    wo = Tensor(w) if kw.pop("weight", False) else None
    ours = nn.CrossEntropyLoss(wo, **kw)
    theirs = torch.nn.CrossEntropyLoss(None if wo is None else torch.from_numpy(w), **kw)
    run_both(torch, ours, theirs, [x, t], rng=rng, what="ce probs")
    fd_check(lambda a, b: F.cross_entropy(a, b, None if wo is None else Tensor(w, dtype=np.float64), **kw), [x, t], rng)


@pytest.mark.parametrize(
    "kw",
    [
        {"ignore_index": 2},
        {"ignore_index": 2, "reduction": "sum"},
        {"weight": True, "ignore_index": 0},
        {"weight": True, "reduction": "none"},
        {"weight": True, "label_smoothing": 0.3, "ignore_index": 1},
    ],
)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3)])
def test_cross_entropy_and_nll_index_options_match_torch(rng, kw, shape):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(np.float32) * 2
    t = rng.integers(0, 4, (shape[0],) + shape[2:])
    t.flat[0] = kw.get("ignore_index", 0)
    kw = dict(kw)
    w = rng.random(4).astype(np.float32) + 0.5
    use_w = kw.pop("weight", False)
    for name in ("CrossEntropyLoss", "NLLLoss"):
        if name == "NLLLoss" and "label_smoothing" in kw:
            continue
        ours = getattr(nn, name)(Tensor(w) if use_w else None, **kw)
        theirs = getattr(torch.nn, name)(torch.from_numpy(w) if use_w else None, **kw)
        inp = x if name == "CrossEntropyLoss" else (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float32)
        run_both(torch, ours, theirs, [inp, t], grad=[True, False], rng=rng, what=name)
        # int32 targets take the array-math path, int64 ones the fused kernel: the same results
        results = []
        for t_dtype in (np.int64, np.int32):
            xi = Tensor(inp, requires_grad=True)
            loss = ours(xi, t.astype(t_dtype))
            (
                loss * Tensor(np.linspace(0.5, 1.5, loss._data.size, dtype=np.float32).reshape(loss.shape))
            ).sum().backward()
            results.append((loss._data, xi.grad._data))
        np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5, atol=1e-7)


def test_nll_loss_checks_the_weights_size():
    x = Tensor(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="expected weight of shape \\(4,\\)"):
        F.nll_loss(x, Tensor(np.array([0, 1, 2])), weight=Tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="weight"):
        F.cross_entropy(x, Tensor(np.array([0, 1, 2])), weight=Tensor(np.ones(3, np.float32)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "kw,shape",
    [
        ({}, (6, 5)),
        ({"margin": 0.5, "p": 1.0, "swap": True}, (6, 5)),
        ({"p": 3.0, "swap": True}, (5,)),
        ({}, (2, 3, 4)),
    ],
)
def test_triplet_margin_loss_matches_torch(rng, kw, shape, reduction, dtype):
    torch = torch_or_skip()
    ours = nn.TripletMarginLoss(reduction=reduction, **kw)
    theirs = torch.nn.TripletMarginLoss(reduction=reduction, **kw)
    a, p, n = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    if len(shape) == 2:
        n[0] = a[0] + 0.1  # a hinge that is off (zero loss, zero gradient)
    run_both(torch, ours, theirs, [a, p, n], rng=rng, what="TripletMarginLoss")
    fo = lambda *t: F.triplet_margin_loss(*t, reduction=reduction, **kw)  # noqa: E731
    run_both(torch, fo, lambda *t: torch.nn.functional.triplet_margin_loss(*t, reduction=reduction, **kw), [a, p, n])


def test_triplet_margin_loss_errors_match_torch():
    torch = torch_or_skip()
    x2, x1 = np.ones((2, 3), np.float32), np.ones(3, np.float32)
    for args in [(x2, x2, x1), (x1, x2, x2)]:
        raises_like(
            lambda *a: F.triplet_margin_loss(*[Tensor(v) for v in a]),
            lambda *a: torch.nn.functional.triplet_margin_loss(*[torch.from_numpy(v) for v in a]),
            *args,
        )
    raises_like(nn.TripletMarginLoss, torch.nn.TripletMarginLoss, -1.0)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_at_exactly_0_and_1_is_torchs(reduction):
    """The log clamped at -100 (a loss of 100, not inf) and torch's gradient (x - y) / max(x (1 - x),
    1e-12): 0 where x equals y at an end, +-1e12 where it is the other end; weights too."""
    torch = torch_or_skip()
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30, 1 - 2**-24], np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 1.0, 0.0], np.float32)
    w = np.linspace(0.5, 2.0, len(x)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy(xt, torch.tensor(y), torch.tensor(w), reduction=reduction)
    lt.sum().backward()
    xf = Tensor(x, requires_grad=True)
    lf = F.binary_cross_entropy(xf, Tensor(y), Tensor(w), reduction=reduction)
    lf.sum().backward()
    np.testing.assert_allclose(lf.detach().numpy(), lt.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    assert np.isfinite(lf.detach().numpy()).all()
