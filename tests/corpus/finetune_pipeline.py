"""Fine-tuning driven by torch.utils.data: a custom Dataset subclass (__getitem__/__len__
returning a dict), a DataLoader with a collate_fn, torch.utils.data.random_split, a backbone
built as nn.Sequential(OrderedDict(...)) and initialised with model.apply(init_fn), the backbone
frozen with requires_grad_(False) and later unfrozen into the optimizer with
optimizer.add_param_group, named_parameters filtering, a MultiStepLR schedule, and an eval pass
under torch.no_grad() reading torch.argmax and topk accuracies."""

from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.utils.data
from torch.utils.data import DataLoader, Dataset

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
NUM_CLASSES = 6


class ToySequences(Dataset):
    """Feature vectors of variable length (padded by the collate_fn) labelled by a hidden rule."""

    def __init__(self, n=96, dim=6, seed=17):
        rng = np.random.default_rng(seed)
        self.lengths = rng.integers(2, 6, size=n)
        self.items = [rng.standard_normal((length, dim)).astype(np.float32) for length in self.lengths]
        centres = np.random.default_rng(16).standard_normal((NUM_CLASSES, dim))
        self.labels = [int(np.argmax(centres @ x.mean(0))) for x in self.items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, idx):
        return {"x": torch.from_numpy(self.items[idx]), "label": self.labels[idx]}


def pad_collate(batch):
    """A batch of dicts -> (padded (B, T, D) tensor, (B,) mask sums, (B,) labels)."""
    longest = max(item["x"].shape[0] for item in batch)
    dim = batch[0]["x"].shape[1]
    x = torch.zeros(len(batch), longest, dim)
    mask = torch.zeros(len(batch), longest, 1)
    for i, item in enumerate(batch):
        n = item["x"].shape[0]
        x[i, :n] = item["x"]
        mask[i, :n] = 1.0
    labels = torch.tensor([item["label"] for item in batch], dtype=torch.long)
    return x, mask, labels


def init_fn(m):
    if isinstance(m, nn.Linear):
        nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class Classifier(nn.Module):
    def __init__(self, dim=6, hidden=24, dropout=0.1):
        super().__init__()
        self.backbone = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", nn.Linear(dim, hidden)),
                    ("norm1", nn.LayerNorm(hidden)),
                    ("act1", nn.ReLU()),
                    ("drop", nn.Dropout(dropout)),
                    ("fc2", nn.Linear(hidden, hidden)),
                    ("act2", nn.GELU()),
                ]
            )
        )
        self.head = nn.Linear(hidden, NUM_CLASSES)
        self.apply(init_fn)

    def forward(self, x, mask):
        h = self.backbone(x) * mask
        pooled = h.sum(dim=1) / mask.sum(dim=1)
        return self.head(pooled)


def build_model(dropout=0.1):
    torch.manual_seed(42)
    return Classifier(dropout=dropout).to(device)


def loaders(shuffle=True, batch_size=16):
    dataset = ToySequences()
    if shuffle:
        train_set, val_set = torch.utils.data.random_split(
            dataset, [80, 16], generator=torch.Generator().manual_seed(0)
        )
    else:
        train_set, val_set = (
            torch.utils.data.Subset(dataset, range(80)),
            torch.utils.data.Subset(dataset, range(80, 96)),
        )
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=shuffle, collate_fn=pad_collate, drop_last=True)
    val_loader = DataLoader(val_set, batch_size=8, shuffle=False, collate_fn=pad_collate)
    return train_loader, val_loader


def train(model, steps=10, shuffle=False, unfreeze_at=4):
    train_loader, _ = loaders(shuffle)
    # phase 1: the backbone frozen, only the head trains
    model.backbone.requires_grad_(False)
    trainable = [p for name, p in model.named_parameters() if p.requires_grad]
    assert all(name.startswith("head.") for name, p in model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[6], gamma=0.5)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)
    model.train()
    losses, step = [], 0
    while step < steps:
        for x, mask, labels in train_loader:
            if step == unfreeze_at:
                model.backbone.requires_grad_(True)
                optimizer.add_param_group({"params": model.backbone.parameters(), "lr": 0.02})
            x, mask, labels = x.to(device), mask.to(device), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x, mask), labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if step == steps:
                break
    return losses, {name: p.grad for name, p in model.named_parameters()}


def evaluate(model, loader):
    model.eval()
    top1 = top3 = total = 0
    with torch.no_grad():
        for x, mask, labels in loader:
            logits = model(x.to(device), mask.to(device))
            pred = torch.argmax(logits, dim=1)
            top1 += (pred == labels.to(device)).sum().item()
            _, top = logits.topk(3, dim=1, largest=True, sorted=True)
            top3 += (top == labels.to(device).unsqueeze(1)).any(dim=1).sum().item()
            total += labels.size(0)
    return top1 / total, top3 / total


def main():
    torch.manual_seed(0)
    model = build_model()
    losses, _ = train(model, 40, shuffle=True, unfreeze_at=10)
    _, val_loader = loaders(True)
    top1, top3 = evaluate(model, val_loader)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, val top-1 {top1:.3f}, top-3 {top3:.3f}")
    return losses


if __name__ == "__main__":
    main()
