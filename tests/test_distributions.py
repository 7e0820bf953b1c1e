"""fastnn.distributions.Categorical against torch.distributions.Categorical (log_prob, entropy,
probs/logits and their gradients, from probs and from logits, float32 and float64, batched),
its samples' frequencies, its argument errors, and the NotImplementedError of the
torch.distributions names fastnn lacks."""

import fastnn
import numpy as np
import pytest
from fastnn.distributions import Categorical


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _close(ours, theirs, dtype):
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("param", ["probs", "logits"])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_log_prob_entropy_and_gradients_match_torch(torch, param, batch, dtype):
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.05, 1.0, batch + (4,)).astype(dtype)
    if param == "logits":
        raw = np.log(raw) * 3
    value = rng.integers(0, 4, batch)
    weights = rng.standard_normal(batch).astype(dtype)
    results = {}
    for lib in (fastnn, torch):
        x = lib.tensor(raw.copy(), requires_grad=True)
        d = (Categorical if lib is fastnn else torch.distributions.Categorical)(**{param: x})
        assert tuple(d.batch_shape) == batch and tuple(d.event_shape) == ()
        lp = d.log_prob(lib.tensor(value))
        ent = d.entropy()
        ((lp * lib.tensor(weights)).sum() + ent.sum() + d.probs[..., 0].sum()).backward()
        results[lib] = lp, ent, d.probs, d.logits, x.grad
        assert str(lp.dtype).removeprefix("torch.") == str(ent.dtype).removeprefix("torch.") == np.dtype(dtype).name
    for ours, theirs in zip(results[fastnn], results[torch]):
        _close(ours, theirs, dtype)


def test_log_prob_broadcasts_values_against_the_batch(torch):
    p = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    value = np.array([[0], [1], [1]])  # (3, 1) against batch (2,): (3, 2)
    ours = Categorical(probs=fastnn.tensor(p)).log_prob(fastnn.tensor(value))
    theirs = torch.distributions.Categorical(probs=torch.tensor(p)).log_prob(torch.tensor(value))
    _close(ours, theirs, np.float32)
    assert tuple(ours.shape) == (3, 2)


def test_sample_frequencies_follow_probs():
    fastnn.manual_seed(0)
    probs = fastnn.tensor([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    d = Categorical(probs * 5)  # unnormalised probs are normalised
    s = d.sample((20000,))
    assert tuple(s.shape) == (20000, 2) and s.dtype == np.int64 and not s.requires_grad
    freq = np.bincount(s.numpy()[:, 0], minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.1, 0.6, 0.3], atol=0.015)
    assert (s.numpy()[:, 1] == 2).all()
    assert tuple(Categorical(logits=fastnn.zeros(5)).sample().shape) == ()
    fastnn.manual_seed(3)
    first = d.sample((7,)).numpy()
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(d.sample((7,)).numpy(), first)


def test_mode_support_and_repr(torch):
    p = [0.2, 0.5, 0.3]
    ours, theirs = Categorical(fastnn.tensor(p)), torch.distributions.Categorical(torch.tensor(p))
    assert ours.mode.item() == theirs.mode.item() == 1
    np.testing.assert_array_equal(ours.enumerate_support().numpy(), theirs.enumerate_support().numpy())
    assert repr(ours) == "Categorical(probs: (3,))"


def test_errors_match_torch(torch):
    for kw in ({}, {"probs": [0.5, 0.5], "logits": [0.0, 0.0]}):
        with pytest.raises(ValueError):
            torch.distributions.Categorical(**{k: torch.tensor(v) for k, v in kw.items()})
        with pytest.raises(ValueError, match="Either `probs` or `logits`"):
            Categorical(**{k: fastnn.tensor(v) for k, v in kw.items()})
    with pytest.raises(ValueError):
        torch.distributions.Categorical(torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="Simplex"):
        Categorical(fastnn.tensor([0.5, -0.1]))
    with pytest.raises(ValueError):
        torch.distributions.Categorical(torch.tensor([0.5, 0.5])).log_prob(torch.tensor(2))
    with pytest.raises(ValueError, match="within the support"):
        Categorical(fastnn.tensor([0.5, 0.5])).log_prob(fastnn.tensor(2))


def test_missing_distributions_name_the_torch_feature():
    import fastnn.distributions as D

    with pytest.raises(NotImplementedError, match=r"torch\.distributions\.Normal"):
        D.Normal  # noqa: B018
    assert not hasattr(D, "Bernoulli")
    with pytest.raises(NotImplementedError, match="rsample"):
        Categorical(fastnn.tensor([0.5, 0.5])).rsample()
    assert fastnn.distributions.Categorical is Categorical
