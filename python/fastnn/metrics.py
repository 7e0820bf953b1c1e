"""fastnn.metrics: scores for generated images of digits.

The Fréchet distance between two sets of feature vectors (frechet_distance,
frechet_distance_from_stats), and scores for 28 x 28 digit images in [0, 1] built on a small
digit classifier bundled with the package (fastnn/data/digit_classifier.npz):

* digit_fid(images, reference): the Fréchet distance between the classifier's hidden features of
  two image sets, the FID of Heusel et al. with this classifier in place of Inception-v3 (so its
  values are comparable only with other digit_fid values, never with published FIDs);
* digit_confidence(images): the fraction of images the classifier puts in one class with
  probability above a threshold (a "classifier-confidence score"). Read it next to digit_fid,
  not alone: like any classifier trained on digits only, this one is overconfident on some
  inputs far from digits (see digit_confidence);
* digit_features, digit_probabilities: the classifier's 128 hidden features and class
  probabilities, for scores of one's own;
* heldout_digits(): the 1,000 bundled images the classifier was not trained on, to score against.

The classifier is fastnn.demo.MnistCNN trained by fastnn.demo.cnn (seed 0, its default epochs)
on the 4,000 training images of fastnn.demo.mnist_splits(0); scripts/make_digit_classifier.py
makes the file (weights stored as float16; held-out accuracy 0.975 either way). It is loaded on
first use, not at import.
"""

import functools
import numbers
import os

import numpy as np

from .data import load_mnist_5k
from .demo import MnistCNN
from .nn import functional as F
from .tensor import Tensor, no_grad

__all__ = [
    "frechet_distance",
    "frechet_distance_from_stats",
    "digit_classifier",
    "digit_features",
    "digit_probabilities",
    "digit_confidence",
    "digit_fid",
    "heldout_digits",
]

CLASSIFIER_PATH = os.path.join(os.path.dirname(__file__), "data", "digit_classifier.npz")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the normalisation the classifier was trained with
BATCH = 500  # images per forward pass

# A covariance may be asymmetric by rounding (np.cov's products), by no more than this relative to
# its largest entry.
_SYMMETRY_RTOL = 1e-6


# -- the Fréchet distance ----------------------------------------------------------------------


def _float64(x, who, name):
    """x (an array-like or a fastnn Tensor) as a float64 NumPy array; ValueError if it is not
    real numbers."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
        if np.iscomplexobj(a):
            raise TypeError("complex values")
        return a.astype(np.float64, copy=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}: expected {name} as an array of real numbers, got {type(x).__name__} ({e})") from None


def _check_finite(a, who, name):
    if not np.isfinite(a).all():
        bad = int(a.size - np.isfinite(a).sum())
        raise ValueError(f"{who}: expected finite values in {name}, got {bad} NaN or infinite")


def _trace_sqrt_product(sigma1, sigma2):
    """tr(sqrtm(sigma1 @ sigma2)) for symmetric positive semi-definite sigma1, sigma2.

    With A = sqrtm(sigma1) (symmetric), sigma1 sigma2 = A (A sigma2 A) A^-1 when A is invertible,
    so sigma1 sigma2 has the eigenvalues of the symmetric PSD matrix A sigma2 A, and tr sqrtm of it
    is the sum of their square roots (a limit argument gives the same for singular sigma1). Both
    steps are symmetric eigenproblems (eigh, eigvalsh): stable, real, no complex round-off as a
    general sqrtm of the non-symmetric product has. Eigenvalues below 0 (rounding) count as 0.

    Near-zero eigenvalues (singular covariances) carry rounding errors of order eps times the
    largest, which their square roots turn into errors of order sqrt(eps): for such inputs the
    result is good to about 1e-8 relative to the covariances' scale, not to full precision."""
    w, v = np.linalg.eigh(sigma1)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = a @ sigma2 @ a
    m = (m + m.T) / 2
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2):
    """The Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2):

        d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2))

    (the squared 2-Wasserstein distance between them; Heusel et al. 2017, "GANs trained by a two
    time-scale update rule converge to a local Nash equilibrium", which uses it on Inception
    features as the FID). Computed in float64; tr(sqrtm(sigma1 sigma2)) by two symmetric eigen-
    decompositions (A = sqrtm(sigma1) by eigh, then the eigenvalues of A sigma2 A), so singular
    covariances (fewer samples than dimensions) give a finite result, good to about 1e-8 relative
    to the covariances' scale (full float64 precision for well-conditioned ones). The result is
    clipped at 0 (rounding can make identical statistics give a tiny negative value).

    mu1, mu2: (D,) means; sigma1, sigma2: (D, D) symmetric covariances. Returns a float."""
    who = "frechet_distance_from_stats"
    mu1, mu2 = _float64(mu1, who, "mu1"), _float64(mu2, who, "mu2")
    sigma1, sigma2 = _float64(sigma1, who, "sigma1"), _float64(sigma2, who, "sigma2")
    for name, mu in (("mu1", mu1), ("mu2", mu2)):
        if mu.ndim != 1 or mu.size == 0:
            raise ValueError(f"{who}: expected {name} as a 1-D (D,) mean with D >= 1, got shape {mu.shape}")
    if mu1.shape != mu2.shape:
        raise ValueError(f"{who}: expected mu1 and mu2 of the same shape, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{who}: expected {name} of shape ({d}, {d}) to match the means, got {s.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        _check_finite(a, who, name)
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        asym = float(np.abs(s - s.T).max())
        scale = float(np.abs(s).max())
        if asym > _SYMMETRY_RTOL * scale:
            raise ValueError(
                f"{who}: expected {name} to be a symmetric covariance, got max |{name} - {name}.T| = {asym:.3g} "
                f"(largest entry {scale:.3g})"
            )
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2)
    return max(float(d2), 0.0)


def _stats(x, who, name):
    if x.ndim != 2:
        raise ValueError(f"{who}: expected {name} as a 2-D (N, D) array, got shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{who}: expected {name} with at least 2 rows and 1 column, got shape {x.shape}")
    _check_finite(x, who, name)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(features1, features2):
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors:
    frechet_distance_from_stats of their means and unbiased covariances (np.cov, dividing by
    N - 1, as the FID's reference implementation does), in float64.

    features1: (N1, D), features2: (N2, D), N1, N2 >= 2 (NumPy arrays or fastnn Tensors). Returns a
    float; 0 for identical sets (up to rounding), symmetric in its arguments. See
    frechet_distance_from_stats for the formula and the reference."""
    who = "frechet_distance"
    x1, x2 = _float64(features1, who, "features1"), _float64(features2, who, "features2")
    mu1, sigma1 = _stats(x1, who, "features1")
    mu2, sigma2 = _stats(x2, who, "features2")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(
            f"{who}: expected features1 and features2 with the same number of columns D, got "
            f"shapes {x1.shape} and {x2.shape}"
        )
    return frechet_distance_from_stats(mu1, sigma1, mu2, sigma2)


# -- the bundled digit classifier --------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def digit_classifier():
    """The bundled digit classifier: a fastnn.demo.MnistCNN in eval mode, on the CPU, with the
    weights of fastnn/data/digit_classifier.npz (loaded on the first call; later calls return the
    same module: do not train or modify it). It takes (N, 1, 28, 28) images normalised with
    MNIST's mean and std ((x - 0.1307) / 0.3081 for x in [0, 1]) and returns (N, 10) logits."""
    model = MnistCNN()
    with np.load(CLASSIFIER_PATH, allow_pickle=False) as f:
        state = {k: f[k].astype(np.float32) for k in f.files}
    model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _images(images, who):
    """images as float32 (N, 1, 28, 28) normalised for the classifier; ValueError for anything
    but floats in [0, 1] of shape (N, 28, 28) or (N, 1, 28, 28)."""
    if isinstance(images, Tensor):
        images = images.detach().cpu().numpy()
    a = np.asarray(images)
    if a.dtype.kind != "f":
        hint = " (uint8 pixels: divide by 255)" if a.dtype.kind in "ui" else ""
        raise ValueError(f"{who}: expected images as floats in [0, 1], got dtype {a.dtype}{hint}")
    if not (a.ndim == 3 and a.shape[1:] == (28, 28) or a.ndim == 4 and a.shape[1:] == (1, 28, 28)):
        raise ValueError(f"{who}: expected images of shape (N, 28, 28) or (N, 1, 28, 28), got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{who}: expected at least one image, got shape {a.shape}")
    _check_finite(a, who, "images")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{who}: expected images in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(tanh outputs in [-1, 1]: pass (x + 1) / 2)"
        )
    return ((a.astype(np.float32) - MNIST_MEAN) / MNIST_STD).reshape(-1, 1, 28, 28)


def _forward(images, who):
    """(hidden features float64 (N, 128), logits float64 (N, 10)) of the classifier."""
    x = _images(images, who)
    model = digit_classifier()
    hidden, logits = [], []
    with no_grad():
        for i in range(0, len(x), BATCH):
            h = F.max_pool2d(F.relu(model.conv1(Tensor(x[i : i + BATCH]))), 2)
            h = F.max_pool2d(F.relu(model.conv2(h)), 2)
            h = F.relu(model.fc1(h.flatten(1)))
            hidden.append(h.numpy().astype(np.float64))
            logits.append(model.fc2(h).numpy().astype(np.float64))
    return np.concatenate(hidden), np.concatenate(logits)


def digit_features(images):
    """The bundled classifier's 128 hidden features (after the ReLU of its first Linear layer) of
    each image: float64 (N, 128).

    images: floats in [0, 1] (0 background, 1 ink, as the bundled digits / 255), shape (N, 28, 28)
    or (N, 1, 28, 28), a NumPy array or a fastnn Tensor; normalised here as the classifier was
    trained, and run 500 at a time without a graph."""
    return _forward(images, "digit_features")[0]


def digit_probabilities(images):
    """The bundled classifier's class probabilities (softmax of its logits) for each image: float64
    (N, 10), rows summing to 1. images as for digit_features."""
    logits = _forward(images, "digit_probabilities")[1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def digit_confidence(images, threshold=0.9):
    """The classifier-confidence score: the fraction of images whose most likely class has a
    probability above `threshold` (in [0, 1)) under the bundled classifier. images as for
    digit_features.

    What it measures, on 1,000 images each (threshold 0.9 / 0.99): the held-out digits score
    0.923 / 0.766; blends of two held-out digits 0.31 / 0.09; uniform noise in [0, 0.5] and
    blurred noise 0 / 0. But uniform noise in [0, 1] scores 0.937 / 0.005, every image taken for
    an 8: the classifier saw only digits and is overconfident far from them, so a high score
    alone does not mean digit-like images. Use it together with digit_fid (which puts that noise
    at about 570 from the held-out digits, the training digits at about 2.5), and a high
    threshold such as 0.99 where the images may be far from digits."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold < 1:
        raise ValueError(f"digit_confidence: expected threshold as a number in [0, 1), got {threshold!r}")
    p = digit_probabilities(images)
    return float((p.max(axis=1) > threshold).mean())


def digit_fid(images, reference):
    """The Fréchet distance between the bundled classifier's hidden features (digit_features) of
    `images` and of `reference` (e.g. heldout_digits()): lower is closer. Both as for
    digit_features, at least 2 images each; the FID of Heusel et al. 2017 with this classifier's
    features in place of Inception-v3's, comparable only with other digit_fid values (computed
    with as many images: the estimate is biased upward for small sets)."""
    return frechet_distance(digit_features(images), digit_features(reference))


def heldout_digits(seed=0, test=1000, labels=False):
    """The bundled digits that fastnn.demo.mnist_splits(seed, test) holds out (the same images, in
    the same order) as float32 (N, 1, 28, 28) in [0, 1]; with labels=True, (images, int64 labels).

    With the defaults these are the 1,000 images the bundled classifier was not trained on: the
    reference to score generated digits against."""
    images, targets = load_mnist_5k()
    n = len(targets)
    if isinstance(test, bool) or not isinstance(test, numbers.Integral) or not 1 <= test <= n:
        raise ValueError(f"heldout_digits: expected test as an int in [1, {n}], got {test!r}")
    perm = np.random.default_rng(seed).permutation(n)[:test]  # as mnist_splits draws it
    x = (images[perm].astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    return (x, targets[perm]) if labels else x
