"""The super-resolution example's shape: a sub-pixel convolution net (Conv2d layers, then
nn.PixelShuffle(upscale_factor)), weights set with init.orthogonal_(w, init.calculate_gain('relu')),
low-resolution inputs made by average pooling, MSELoss, Adam, and PSNR as
10 * log10(1 / mse.item()) in an evaluation pass."""

from math import log10

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.init as init
import torch.optim as optim

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
UPSCALE = 2


def make_data(n=16, size=16, seed=30):
    """Smooth random images in [0, 1] (sums of a few sinusoids): the target, and its 2x
    average-pooled low-resolution input."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / size
    imgs = np.zeros((n, 1, size, size))
    for _ in range(3):
        fr, fc, ph = (
            rng.uniform(0.5, 3, (n, 1, 1, 1)),
            rng.uniform(0.5, 3, (n, 1, 1, 1)),
            rng.uniform(0, 6, (n, 1, 1, 1)),
        )
        imgs += np.sin(2 * np.pi * (fr * rows + fc * cols) + ph) / 3
    target = torch.from_numpy(((imgs + 1) / 2).astype(np.float32))
    return F.avg_pool2d(target, UPSCALE), target


class Net(nn.Module):
    def __init__(self, upscale_factor):
        super(Net, self).__init__()

        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 16, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(16, 16, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(16, 8, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(8, upscale_factor**2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

        self._initialize_weights()

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        x = self.pixel_shuffle(self.conv4(x))
        return x

    def _initialize_weights(self):
        init.orthogonal_(self.conv1.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv2.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv3.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv4.weight)


def build_model():
    torch.manual_seed(123)
    return Net(upscale_factor=UPSCALE).to(device)


def train(model, steps=10, batch_size=8, lr=1e-3):
    inputs, targets = make_data()
    criterion = nn.MSELoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        start = (step * batch_size) % len(inputs)
        input, target = inputs[start : start + batch_size].to(device), targets[start : start + batch_size].to(device)
        optimizer.zero_grad()
        loss = criterion(model(input), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def test(model):
    criterion = nn.MSELoss()
    avg_psnr = 0
    inputs, targets = make_data(8, seed=31)
    model.eval()
    with torch.no_grad():
        for input, target in zip(inputs.split(4), targets.split(4)):
            prediction = model(input.to(device))
            mse = criterion(prediction, target.to(device))
            psnr = 10 * log10(1 / mse.item())
            avg_psnr += psnr
    return avg_psnr / 2


def main():
    model = build_model()
    losses, _ = train(model, 60)
    print(f"loss {losses[0]:.5f} -> {losses[-1]:.5f}, Avg. PSNR: {test(model):.4f} dB")
    return losses


if __name__ == "__main__":
    main()
