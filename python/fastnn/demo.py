"""`fastnn demo cnn`: the classic MNIST CNN trained offline on the bundled 5,000 images.

conv 1->32 k3 p1, ReLU, maxpool 2, conv 32->64 k3 p1, ReLU, maxpool 2, Linear 3136->128, ReLU,
Linear 128->10; cross-entropy; SGD lr 0.01 momentum 0.9, batch 64, the learning rate annealed to
0 over the epochs (cosine), the training images shifted by up to 2 pixels each epoch (4,000
images are few). A fifth of the images (1,000, picked by a seeded shuffle) is held out for the
test accuracy printed at the end.
"""

import time

import numpy as np

from . import nn, optim
from . import random as _random
from .data import DataLoader, TensorDataset, load_mnist_5k
from .nn import functional as F
from .tensor import Tensor
from .train import evaluate, fit


class MnistCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def mnist_splits(seed=0, test=1000):
    """(train TensorDataset, test TensorDataset): the bundled images scaled to [0, 1] and
    normalised with MNIST's mean and std, split by a seeded shuffle."""
    images, labels = load_mnist_5k()
    x = ((images.astype(np.float32) / 255 - 0.1307) / 0.3081).reshape(-1, 1, 28, 28)
    perm = np.random.default_rng(seed).permutation(len(labels))
    te, tr = perm[:test], perm[test:]
    return TensorDataset(Tensor(x[tr]), Tensor(labels[tr])), TensorDataset(Tensor(x[te]), Tensor(labels[te]))


class ShiftedLoader:
    """Batches of a TensorDataset of images, each epoch every image shifted by a random offset of
    up to `shift` pixels in each direction (zero fill): augmentation for a small training set."""

    def __init__(self, dataset, batch_size, shift=2):
        self.x, self.y = dataset.tensors[0]._data, dataset.tensors[1]._data
        self.batch_size, self.shift = batch_size, shift

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        rng = _random.generator()
        n, s = len(self.y), self.shift
        H, W = self.x.shape[-2:]
        pad = np.pad(self.x, ((0, 0), (0, 0), (s, s), (s, s)), constant_values=self.x.min())
        dy, dx = rng.integers(0, 2 * s + 1, n), rng.integers(0, 2 * s + 1, n)
        shifted = np.empty_like(self.x)
        for i in range(n):
            shifted[i] = pad[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W]
        order = rng.permutation(n)
        for k in range(0, n, self.batch_size):
            idx = order[k : k + self.batch_size]
            yield Tensor(shifted[idx]), Tensor(self.y[idx])


def cnn(epochs=10, seed=0, progress=None, log=print, shift=2):
    """Train the CNN; returns (test accuracy, history)."""
    _random.manual_seed(seed)
    train_set, test_set = mnist_splits(seed)
    train_loader = ShiftedLoader(train_set, 64, shift) if shift else DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=500)
    model = MnistCNN()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    t0 = time.perf_counter()
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, epochs)  # lr 0.01 decayed to 0 by the end
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        train_loader,
        epochs=epochs,
        val_loader=test_loader,
        scheduler=sched,
        progress=progress,
        log=log,
    )
    acc = evaluate(model, test_loader, None, ("accuracy",))["accuracy"]
    if log is not None:
        n = epochs * len(train_set)
        log(
            f"test accuracy {acc:.4f} on {len(test_set)} held-out images "
            f"({epochs} epochs, {n / (time.perf_counter() - t0):.0f} training images/s incl. evaluation)"
        )
    return acc, history
