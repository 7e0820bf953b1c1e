"""fastnn.metrics: the Fréchet distance against its formula and known cases, its input checks, and
the bundled digit classifier (held-out accuracy, confidence and FID of digits against noise)."""

import pathlib
import zipfile

import fastnn
import numpy as np
import pytest
from conftest import num_threads, run_python
from fastnn import demo, metrics
from fastnn.data import load_mnist_5k


def _cov(rng, d, n=None):
    """A random symmetric positive definite (D, D) matrix (rank n < D when n is given)."""
    a = rng.standard_normal((d, n or 2 * d))
    return a @ a.T / a.shape[1]


def _direct(mu1, s1, mu2, s2):
    """The formula with a general matrix square root of s1 s2 (SciPy)."""
    linalg = pytest.importorskip("scipy.linalg")
    covmean = linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# -- the Fréchet distance ----------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3, 16])
def test_from_stats_matches_the_formula_with_scipy_sqrtm(rng, d):
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _cov(rng, d), _cov(rng, d)
    got = metrics.frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert got == pytest.approx(_direct(mu1, s1, mu2, s2), rel=1e-9, abs=1e-10)


def test_frechet_distance_is_the_stats_of_mean_and_unbiased_covariance(rng):
    x1 = rng.standard_normal((50, 6)) * [1, 2, 3, 1, 1, 0.5]
    x2 = rng.standard_normal((40, 6)) + 0.3
    mu1, mu2 = x1.mean(0), x2.mean(0)
    s1 = (x1 - mu1).T @ (x1 - mu1) / (len(x1) - 1)  # divides by N - 1
    s2 = (x2 - mu2).T @ (x2 - mu2) / (len(x2) - 1)
    want = metrics.frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert metrics.frechet_distance(x1, x2) == pytest.approx(want, rel=1e-12)


def test_identical_sets_give_zero(rng):
    x = rng.standard_normal((100, 8))
    assert metrics.frechet_distance(x, x) == pytest.approx(0, abs=1e-10)
    assert metrics.frechet_distance(x, x.astype(np.float32)) == pytest.approx(0, abs=1e-5)


def test_shifted_means_with_equal_covariances_give_the_squared_shift(rng):
    x = rng.standard_normal((200, 5))
    shift = rng.standard_normal(5)
    assert metrics.frechet_distance(x, x + shift) == pytest.approx(shift @ shift, rel=1e-9)
    s = _cov(rng, 5)
    mu = rng.standard_normal(5)
    assert metrics.frechet_distance_from_stats(mu, s, mu + shift, s) == pytest.approx(shift @ shift, rel=1e-9)


def test_one_dimensional_gaussians_closed_form(rng):
    # N(m1, s1^2), N(m2, s2^2): d^2 = (m1 - m2)^2 + (s1 - s2)^2
    for m1, sd1, m2, sd2 in [(0.0, 1.0, 0.0, 1.0), (1.0, 2.0, -0.5, 0.5), (3.0, 0.1, 3.0, 4.0)]:
        got = metrics.frechet_distance_from_stats([m1], [[sd1**2]], [m2], [[sd2**2]])
        assert got == pytest.approx((m1 - m2) ** 2 + (sd1 - sd2) ** 2, rel=1e-12, abs=1e-15)
    x1, x2 = rng.standard_normal((30, 1)), 2 + 3 * rng.standard_normal((20, 1))
    m1, m2 = x1.mean(), x2.mean()
    sd1, sd2 = x1.std(ddof=1), x2.std(ddof=1)
    assert metrics.frechet_distance(x1, x2) == pytest.approx((m1 - m2) ** 2 + (sd1 - sd2) ** 2, rel=1e-12)


def test_diagonal_covariances_closed_form(rng):
    v1, v2 = rng.random(7) + 0.1, rng.random(7) + 0.1
    mu1, mu2 = rng.standard_normal(7), rng.standard_normal(7)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert metrics.frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-12)


def test_symmetric(rng):
    x1, x2 = rng.standard_normal((60, 10)), 0.5 + 2 * rng.standard_normal((80, 10)) @ _cov(rng, 10)
    assert metrics.frechet_distance(x1, x2) == pytest.approx(metrics.frechet_distance(x2, x1), rel=1e-10)
    s1, s2 = _cov(rng, 10, 3), _cov(rng, 10)
    mu = np.zeros(10)
    a = metrics.frechet_distance_from_stats(mu, s1, mu, s2)
    # s1 singular: good to about sqrt(eps) relative, not to full precision
    assert a == pytest.approx(metrics.frechet_distance_from_stats(mu, s2, mu, s1), rel=1e-6)


def test_singular_covariances_stay_finite_and_non_negative(rng):
    # D > N: rank-deficient covariances (the square roots of their products are not unique)
    for n1, n2, d in [(5, 7, 32), (2, 2, 128), (10, 10, 10)]:
        x1, x2 = rng.standard_normal((n1, d)), rng.standard_normal((n2, d)) + 0.1
        got = metrics.frechet_distance(x1, x2)
        assert np.isfinite(got) and got >= 0
        assert metrics.frechet_distance(x1, x1) == pytest.approx(0, abs=1e-6)
    s = np.zeros((4, 4))
    assert metrics.frechet_distance_from_stats(np.zeros(4), s, np.ones(4), s) == pytest.approx(4)
    # rank-1 covariances: one direction each; the formula with an exact square root
    u, v = rng.standard_normal(6), rng.standard_normal(6)
    s1, s2 = np.outer(u, u), np.outer(v, v)
    want = u @ u + v @ v - 2 * abs(u @ v)  # sqrtm(u u^T v v^T) has the one eigenvalue |u.v|
    got = metrics.frechet_distance_from_stats(np.zeros(6), s1, np.zeros(6), s2)
    assert got == pytest.approx(want, rel=1e-6)  # singular: about sqrt(eps) relative


def test_takes_tensors_and_integer_arrays(rng):
    x1, x2 = rng.standard_normal((20, 3)), rng.standard_normal((30, 3))
    want = metrics.frechet_distance(x1, x2)
    assert metrics.frechet_distance(fastnn.tensor(x1), fastnn.tensor(x2)) == pytest.approx(want, rel=1e-12)
    xi = rng.integers(0, 5, (20, 3))
    assert metrics.frechet_distance(xi, x2) == pytest.approx(metrics.frechet_distance(xi.astype(float), x2))


@pytest.mark.parametrize(
    "args, match",
    [
        (
            (np.zeros(5), np.zeros((5, 2))),
            r"frechet_distance: expected features1 as a 2-D \(N, D\) array, got shape \(5,\)",
        ),
        ((np.zeros((5, 2)), np.zeros((5, 2, 1))), r"features2 as a 2-D .* got shape \(5, 2, 1\)"),
        ((np.zeros((5, 2)), np.zeros((5, 3))), r"the same number of columns D, got shapes \(5, 2\) and \(5, 3\)"),
        ((np.zeros((1, 2)), np.zeros((5, 2))), r"features1 with at least 2 rows and 1 column, got shape \(1, 2\)"),
        ((np.zeros((5, 0)), np.zeros((5, 0))), r"at least 2 rows and 1 column, got shape \(5, 0\)"),
        ((np.full((5, 2), np.nan), np.zeros((5, 2))), r"expected finite values in features1, got 10 NaN or infinite"),
        ((np.zeros((5, 2)), np.array([["a", "b"]] * 3)), r"features2 as an array of real numbers, got ndarray"),
        ((np.zeros((5, 2), complex), np.zeros((5, 2))), r"features1 as an array of real numbers"),
    ],
)
def test_frechet_distance_errors(args, match):
    with pytest.raises(ValueError, match=match):
        metrics.frechet_distance(*args)


@pytest.mark.parametrize(
    "args, match",
    [
        (
            (np.zeros((2, 2)), np.eye(2), np.zeros(2), np.eye(2)),
            r"mu1 as a 1-D \(D,\) mean with D >= 1, got shape \(2, 2\)",
        ),
        ((np.zeros(0), np.eye(0), np.zeros(0), np.eye(0)), r"mu1 as a 1-D .* got shape \(0,\)"),
        ((np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), r"mu1 and mu2 of the same shape, got \(2,\) and \(3,\)"),
        (
            (np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)),
            r"sigma1 of shape \(2, 2\) to match the means, got \(3, 3\)",
        ),
        ((np.zeros(2), np.eye(2), np.zeros(2), np.zeros(2)), r"sigma2 of shape \(2, 2\) .* got \(2,\)"),
        ((np.zeros(2), np.eye(2), np.zeros(2), [[1, 0.5], [0, 1]]), r"sigma2 to be a symmetric covariance"),
        ((np.zeros(2), np.full((2, 2), np.inf), np.zeros(2), np.eye(2)), r"finite values in sigma1"),
        (([np.nan, 0], np.eye(2), np.zeros(2), np.eye(2)), r"finite values in mu1, got 1 NaN or infinite"),
    ],
)
def test_frechet_distance_from_stats_errors(args, match):
    with pytest.raises(ValueError, match="frechet_distance_from_stats: expected " + match):
        metrics.frechet_distance_from_stats(*args)


def test_rounding_asymmetry_is_accepted(rng):
    s = _cov(rng, 4)
    s_asym = s.copy()
    s_asym[0, 1] += 1e-12
    mu = np.zeros(4)
    got = metrics.frechet_distance_from_stats(mu, s_asym, mu, s)
    assert got == pytest.approx(0, abs=1e-9)


# -- the bundled digit classifier --------------------------------------------------------------


@pytest.fixture(scope="module")
def heldout():
    with num_threads(1):
        x, y = metrics.heldout_digits(labels=True)
        probs = metrics.digit_probabilities(x)
    return x, y, probs


@pytest.fixture(scope="module")
def train_digits():
    """The 4,000 training images of mnist_splits(0) in [0, 1]."""
    images, _ = load_mnist_5k()
    perm = np.random.default_rng(0).permutation(len(images))
    return (images[perm[1000:]].astype(np.float32) / 255)[:, None]


def test_the_npz_is_plain_arrays_loaded_without_pickle():
    path = pathlib.Path(metrics.CLASSIFIER_PATH)
    # package data of fastnn.data, in the source tree or an installed wheel
    assert path.parent == pathlib.Path(fastnn.data.__file__).parent and path.name == "digit_classifier.npz"
    assert path.stat().st_size < 2_000_000
    with np.load(path, allow_pickle=False) as f:
        state = {k: f[k] for k in f.files}
    assert set(state) == set(demo.MnistCNN().state_dict())
    assert all(a.dtype == np.float16 for a in state.values())
    assert sum(a.size for a in state.values()) == 421_642
    with zipfile.ZipFile(path) as zf:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())  # reproducible bytes


def test_classifier_is_cached_in_eval_mode():
    model = metrics.digit_classifier()
    assert isinstance(model, demo.MnistCNN) and not model.training
    assert metrics.digit_classifier() is model
    assert not any(p.requires_grad for p in model.parameters())


def test_heldout_digits_are_mnist_splits_test_set(heldout):
    x, y, _ = heldout
    assert x.dtype == np.float32 and x.shape == (1000, 1, 28, 28) and x.min() == 0 and x.max() == 1
    _, test = demo.mnist_splits(0)
    np.testing.assert_allclose((x - 0.1307) / 0.3081, test.tensors[0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y, test.tensors[1].numpy())
    np.testing.assert_array_equal(metrics.heldout_digits(), x)
    assert metrics.heldout_digits(seed=3, test=10).shape == (10, 1, 28, 28)
    with pytest.raises(ValueError, match=r"heldout_digits: expected test as an int in \[1, 5000\], got 0"):
        metrics.heldout_digits(test=0)


def test_classifier_heldout_accuracy(heldout):
    _, y, probs = heldout
    assert probs.shape == (1000, 10) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-12)
    acc = (probs.argmax(1) == y).mean()
    assert acc >= 0.97  # 0.975 (scripts/make_digit_classifier.py)


def test_confidence_on_digits_against_noise(rng, heldout):
    x, _, _ = heldout
    noise = rng.random((1000, 28, 28), dtype=np.float32)
    with num_threads(1):
        digits = {t: metrics.digit_confidence(x, t) for t in (0.9, 0.99)}
        full = {t: metrics.digit_confidence(noise, t) for t in (0.9, 0.99)}
        half = metrics.digit_confidence(noise / 2)
    assert digits[0.9] > 0.9 and digits[0.99] > 0.7  # 0.923 and 0.766
    assert half < 0.05  # uniform noise in [0, 0.5]: 0.0
    # uniform noise in [0, 1] is taken for an 8, mostly with probability > 0.9 (0.937): a
    # classifier of digits only is overconfident far from them; at 0.99 the digits stand out
    assert full[0.99] < 0.05 < 0.7 < digits[0.99]  # 0.005
    assert full[0.9] > 0.5  # documented in digit_confidence; if this changes, update the docs


def test_fid_of_digits_against_training_digits_and_noise(rng, heldout, train_digits):
    x, _, _ = heldout
    noise = rng.random((1000, 28, 28), dtype=np.float32)
    with num_threads(1):
        f = metrics.digit_features(x)
        fid_train = metrics.digit_fid(x, train_digits)  # 2.51
        fid_noise = metrics.digit_fid(x, noise)  # about 570
    assert f.shape == (1000, 128) and f.dtype == np.float64 and f.min() >= 0
    assert fid_train < 5 and fid_noise > 100 * fid_train
    assert metrics.frechet_distance(f, f) == pytest.approx(0, abs=1e-4)  # 25 of the 128 units are 0 on all of them


def test_digit_inputs(heldout):
    x, _, probs = heldout
    with num_threads(1):
        f4 = metrics.digit_features(x[:7])
        np.testing.assert_array_equal(metrics.digit_features(x[:7, 0]), f4)  # (N, 28, 28)
        np.testing.assert_array_equal(metrics.digit_features(fastnn.tensor(x[:7])), f4)  # a Tensor
        np.testing.assert_array_equal(metrics.digit_features(x[:7].astype(np.float64)), f4)
        # batched in 500s: the same as one image at a time
        np.testing.assert_allclose(metrics.digit_probabilities(x[500:501]), probs[500:501], rtol=1e-5, atol=1e-7)
    for bad, match in [
        ((x * 255).astype(np.uint8), r"digit_features: expected images as floats in \[0, 1\], got dtype uint8 \(uint8"),
        (x * 2 - 1, r"expected images in \[0, 1\], got values in \[-1, 1\] \(tanh outputs"),
        (x[:, :, :27], r"shape \(N, 28, 28\) or \(N, 1, 28, 28\), got \(1000, 1, 27, 28\)"),
        (x[:0], r"at least one image"),
        (np.full((2, 28, 28), np.nan, np.float32), r"finite values in images"),
    ]:
        with pytest.raises(ValueError, match=match):
            metrics.digit_features(bad)
    for t in (1, -0.1, "0.9", True):
        with pytest.raises(ValueError, match=r"digit_confidence: expected threshold as a number in \[0, 1\)"):
            metrics.digit_confidence(x[:2], t)
    with pytest.raises(ValueError, match=r"frechet_distance: expected features1 with at least 2 rows"):
        metrics.digit_fid(x[:1], x[:5])


def test_lazy_import():
    # `import fastnn` imports neither fastnn.metrics nor the classifier; fastnn.metrics imports
    # the module on first use, still without loading the classifier
    run_python(
        """
        import sys, fastnn
        assert "fastnn.metrics" not in sys.modules and "fastnn.demo" not in sys.modules
        m = fastnn.metrics
        assert sys.modules["fastnn.metrics"] is m and "metrics" in fastnn.__all__
        assert m.digit_classifier.cache_info().currsize == 0
        """
    )
