"""A CNN classifying 12x12 stripe images (horizontal, vertical, diagonal): Conv2d, BatchNorm2d,
MaxPool2d, Dropout, CrossEntropyLoss and Adam over mini-batches, evaluated in eval mode."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=96, size=12):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=n)
    rows, cols = np.mgrid[0:size, 0:size]
    patterns = np.stack([np.sin(rows * 1.3), np.sin(cols * 1.3), np.sin((rows + cols) * 0.9)])
    x = patterns[y] + 0.5 * rng.standard_normal((n, size, size))
    return torch.from_numpy(x[:, None].astype(np.float32)), torch.from_numpy(y)


class ConvNet(nn.Module):
    def __init__(self, num_classes=3, dropout=0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(16 * 3 * 3, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        return self.fc(self.dropout(x))


def build_model(dropout=0.25):
    torch.manual_seed(0)
    return ConvNet(dropout=dropout).to(device)


def train(model, steps=12, batch_size=32):
    x, y = make_data()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for step in range(steps):
        start = (step * batch_size) % len(x)
        inputs, targets = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 30)
    x, y = make_data()
    model.eval()
    with torch.no_grad():
        correct = (model(x.to(device)).argmax(dim=1) == y.to(device)).sum().item()
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, accuracy {correct / len(y):.3f}")
    return losses


if __name__ == "__main__":
    main()
