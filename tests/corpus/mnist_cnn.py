"""The classic MNIST script's shape on 28x28 synthetic digit-like strokes: two Conv2d, max_pool2d,
Dropout, torch.flatten(x, 1), log_softmax + nll_loss, Adadelta with StepLR(gamma=0.7), a test
pass summing nll_loss(reduction='sum') and counting pred.eq(target.view_as(pred)), and the
state_dict saved with torch.save and loaded back with torch.load."""

import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=64, seed=5):
    """Images of one of 4 stroke kinds (row, column, diagonal, ring), noisy; (N, 1, 28, 28)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    rows, cols = np.mgrid[0:28, 0:28] / 27.0
    strokes = np.stack(
        [
            np.exp(-((rows - 0.5) ** 2) / 0.01),
            np.exp(-((cols - 0.5) ** 2) / 0.01),
            np.exp(-((rows - cols) ** 2) / 0.01),
            np.exp(-((np.hypot(rows - 0.5, cols - 0.5) - 0.3) ** 2) / 0.005),
        ]
    )
    x = strokes[y] + 0.3 * rng.standard_normal((n, 28, 28))
    x = (x - 0.1307) / 0.3081
    return torch.from_numpy(x[:, None].astype(np.float32)), torch.from_numpy(y)


class Net(nn.Module):
    def __init__(self, dropout1=0.25, dropout2=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(dropout1)
        self.dropout2 = nn.Dropout(dropout2)
        self.fc1 = nn.Linear(2304, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def build_model(dropout=0.25):
    torch.manual_seed(1)
    return Net(dropout, 2 * dropout).to(device)


def train(model, steps=10, batch_size=16, lr=1.0, gamma=0.7):
    data, target = make_data()
    optimizer = optim.Adadelta(model.parameters(), lr=lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=gamma)
    batches_per_epoch = len(data) // batch_size
    model.train()
    losses = []
    for step in range(steps):
        batch_idx = step % batches_per_epoch
        x = data[batch_idx * batch_size : (batch_idx + 1) * batch_size].to(device)
        y = target[batch_idx * batch_size : (batch_idx + 1) * batch_size].to(device)
        optimizer.zero_grad()
        output = model(x)
        loss = F.nll_loss(output, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx == batches_per_epoch - 1:
            scheduler.step()
    return losses, {name: p.grad for name, p in model.named_parameters()}


def test(model, data, target):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        data, target = data.to(device), target.to(device)
        output = model(data)
        test_loss += F.nll_loss(output, target, reduction="sum").item()
        pred = output.argmax(dim=1, keepdim=True)
        correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(data)
    print(
        f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(data)} ({100.0 * correct / len(data):.0f}%)"
    )
    return test_loss


def main():
    model = build_model()
    losses, _ = train(model, 16)
    test(model, *make_data(32, seed=6))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mnist_cnn.pt")
        torch.save(model.state_dict(), path)
        restored = build_model()
        restored.load_state_dict(torch.load(path))
    x, _ = make_data(8, seed=7)
    model.eval()
    restored.eval()
    with torch.no_grad():
        assert torch.equal(model(x), restored(x))
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return losses


if __name__ == "__main__":
    main()
