"""An MLP classifying three Gaussian blobs: Linear/ReLU, CrossEntropyLoss, SGD with momentum,
accuracy with argmax(dim=1) under no_grad, and a state_dict round trip."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=240):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]], dtype=np.float32)
    y = rng.integers(0, 3, size=n)
    x = centres[y] + rng.standard_normal((n, 2)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


class MLP(nn.Module):
    def __init__(self, in_features=2, hidden=32, num_classes=3):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def build_model():
    torch.manual_seed(0)
    return MLP().to(device)


def train(model, steps=30):
    x, y = make_data()
    x, y = x.to(device), y.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        pred = model(x.to(device)).argmax(dim=1)
    return (pred == y.to(device)).float().mean().item()


def main():
    model = build_model()
    losses, _ = train(model, 60)
    x, y = make_data()
    acc = accuracy(model, x, y)
    restored = MLP().to(device)
    restored.load_state_dict(model.state_dict())
    assert accuracy(restored, x, y) == acc
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, accuracy {acc:.3f}")
    return losses


if __name__ == "__main__":
    main()
