"""fastnn.optim against torch.optim over several steps (skipped without torch), schedulers, state."""

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
import numpy as np
import pytest
from fastnn import Tensor

SHAPES = [(5, 3), (17,), (1,), (4, 2, 3)]


def run(make_f, make_t, steps=5):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(steps)]
    pf = [nn.Parameter(a.copy()) for a in init]
    pt = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    of, ot = make_f(pf), make_t(torch, pt)
    for gs in grads:
        for p, g in zip(pf, gs):
            p.grad = Tensor(g.copy())
        for p, g in zip(pt, gs):
            p.grad = torch.from_numpy(g.copy())
        of.step()
        ot.step()
    for a, b in zip(pf, pt):
        # the same float32 formulas in the same order: equal up to a few roundings per step
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=2e-6, atol=2e-7)
    return of


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9, maximize=True),
    ],
)
def test_sgd_matches_torch(kw):
    run(lambda p: optim.SGD(p, **kw), lambda torch, p: torch.optim.SGD(p, **kw))


@pytest.mark.parametrize(
    "cls,kw",
    [
        ("Adam", dict(lr=0.01)),
        ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
        ("AdamW", dict(lr=0.01)),
        ("AdamW", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05, amsgrad=True)),
    ],
)
def test_adam_matches_torch(cls, kw):
    run(lambda p: getattr(optim, cls)(p, **kw), lambda torch, p: getattr(torch.optim, cls)(p, foreach=False, **kw))


def test_optimizer_state_round_trip(tmp_path):
    fastnn.manual_seed(0)
    m = nn.Linear(3, 2)
    o = optim.Adam(m.parameters(), lr=0.1)
    for _ in range(2):
        m.zero_grad()
        m(fastnn.randn(4, 3)).sum().backward()
        o.step()
    fastnn.save(o.state_dict(), tmp_path / "o.npz")
    o2 = optim.Adam(m.parameters(), lr=0.5)
    o2.load_state_dict(fastnn.load(tmp_path / "o.npz"))
    assert o2.param_groups[0]["lr"] == 0.1
    for p in m.parameters():
        for k in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(o.state[p][k], o2.state[p][k])
        assert o2.state[p]["step"] == 2


def test_schedulers_match_torch():
    torch = pytest.importorskip("torch")
    for make_f, make_t in (
        (lambda o: optim.lr_scheduler.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (
            lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01),
        ),
    ):
        of = optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=0.2)
        ot = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
        sf, st = make_f(of), make_t(ot)
        for _ in range(12):
            of.step(), ot.step(), sf.step(), st.step()
            assert abs(sf.get_last_lr()[0] - st.get_last_lr()[0]) < 1e-12


def test_bad_arguments():
    p = [nn.Parameter(np.zeros(2, np.float32))]
    with pytest.raises(ValueError):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError):
        optim.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)


def test_clip_grad_norm():
    a, b = nn.Parameter(np.zeros(3, np.float32)), nn.Parameter(np.zeros(4, np.float32))
    a.grad, b.grad = Tensor(np.full(3, 3.0, np.float32)), Tensor(np.full(4, 4.0, np.float32))
    total = nn.utils.clip_grad_norm_([a, b], 1.0)
    expect = np.sqrt(3 * 9 + 4 * 16)
    assert abs(total.item() - expect) < 1e-4
    new = np.sqrt((a.grad._data**2).sum() + (b.grad._data**2).sum())
    assert abs(new - 1.0) < 1e-4


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "SparseAdam"])
def test_step_calls_the_closure_under_grad_mode(name):
    """step(closure) evaluates the closure with grad mode on (also inside no_grad) and returns
    its loss, as torch's optimizers do."""
    sparse = name == "SparseAdam"
    emb = nn.Embedding(3, 2, sparse=sparse)
    opt = getattr(optim, name)(emb.parameters(), lr=0.1)
    before = emb.weight._data.copy()
    seen = []

    def closure():
        seen.append(fastnn.is_grad_enabled())
        opt.zero_grad()
        loss = (emb(Tensor(np.array([0, 2]))) ** 2).sum()
        loss.backward()
        return loss

    with fastnn.no_grad():
        loss = opt.step(closure)
    assert seen == [True] and fastnn.is_grad_enabled()
    assert isinstance(loss, Tensor) and loss.item() == pytest.approx(float((before[[0, 2]] ** 2).sum()))
    assert not np.array_equal(emb.weight._data, before)
    assert opt.step() is None


def test_bad_params_match_torch():
    """The parameter list's errors, with torch's exception types and messages."""
    torch = pytest.importorskip("torch")
    p, q = nn.Parameter(np.zeros(2, np.float32)), nn.Parameter(np.zeros(1, np.float32))
    tp, tq = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    for make_f, make_t in [
        (lambda O: O.SGD([], lr=0.1), lambda O: O.SGD([], lr=0.1)),
        (lambda O: O.SGD(p, lr=0.1), lambda O: O.SGD(tp, lr=0.1)),  # a tensor, not an iterable of them
        (lambda O: O.Adam([{"params": {p}}]), lambda O: O.Adam([{"params": {tp}}])),  # a set: no order
        (
            lambda O: O.Adam([{"params": [p]}, {"params": [p, q]}]),
            lambda O: O.Adam([{"params": [tp]}, {"params": [tp, tq]}]),
        ),
        (lambda O: O.AdamW([p, 1.0]), lambda O: O.AdamW([tp, 1.0])),
        (lambda O: O.SGD([p, q], lr=0.1).add_param_group([q]), lambda O: O.SGD([tp, tq], lr=0.1).add_param_group([tq])),
    ]:
        errors = []
        for make, lib in ((make_t, torch.optim), (make_f, optim)):
            try:
                make(lib)
                errors.append(None)
            except (TypeError, ValueError) as e:
                errors.append(e)
        want, got = errors
        assert want is not None and type(got) is type(want), (got, want)
        if isinstance(want, ValueError):
            assert str(got) == str(want)
