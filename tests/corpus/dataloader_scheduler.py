"""Training driven by torch.utils.data: a TensorDataset split with random_split, shuffled
DataLoader batches, OneCycleLR (learning rate and momentum) stepped per batch, clip_grad_norm_,
and a per-epoch validation pass in eval mode under no_grad."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import OneCycleLR
from torch.utils.data import DataLoader, Subset, TensorDataset, random_split

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_dataset(n=160):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5, 0.0, 3.0], dtype=np.float32)
    y = (x @ w > 0).astype(np.int64)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def make_loaders(shuffle=True, batch_size=32):
    """shuffle=False takes the first 128 samples for training, in order, instead of a random split
    and shuffled batches (runs that must see the same batches use it)."""
    dataset = make_dataset()
    if shuffle:
        train_set, val_set = random_split(dataset, [128, 32], generator=torch.Generator().manual_seed(0))
    else:
        train_set, val_set = Subset(dataset, range(128)), Subset(dataset, range(128, 160))
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=shuffle)
    val_loader = DataLoader(val_set, batch_size=batch_size)
    return train_loader, val_loader


class Net(nn.Module):
    def __init__(self, dropout=0.1):
        super().__init__()
        self.fc1 = nn.Linear(5, 32)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(32, 2)

    def forward(self, x):
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


def build_model(dropout=0.1):
    torch.manual_seed(0)
    return Net(dropout=dropout).to(device)


def evaluate(model, loader):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            total += F.cross_entropy(model(inputs), targets, reduction="sum").item()
            count += targets.size(0)
    return total / count


def train(model, steps=3, shuffle=True):
    """steps epochs; returns every batch's loss then each epoch's validation loss, and the last
    batch's gradients."""
    train_loader, val_loader = make_loaders(shuffle)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = OneCycleLR(optimizer, max_lr=0.2, epochs=steps, steps_per_epoch=len(train_loader))
    losses, val_losses = [], []
    for _ in range(steps):
        model.train()
        for inputs, targets in train_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=2.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        val_losses.append(evaluate(model, val_loader))
    return losses + val_losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 5)
    _, val_loader = make_loaders()
    print(f"first batch loss {losses[0]:.4f}, validation loss {evaluate(model, val_loader):.4f}")
    return losses


if __name__ == "__main__":
    main()
