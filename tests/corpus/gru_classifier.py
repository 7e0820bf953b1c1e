"""A two-layer GRU classifying sequences by the sign of their running sum: batch_first input,
the last layer's final hidden state into a Linear, CrossEntropyLoss, Adam, clip_grad_norm_."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=64, seq_len=10, features=3):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, seq_len, features)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


class GRUClassifier(nn.Module):
    def __init__(self, input_size=3, hidden_size=16, num_layers=2, num_classes=2):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, h_n = self.gru(x)  # h_n is (num_layers, B, hidden)
        return self.head(h_n[-1])


def build_model():
    torch.manual_seed(0)
    return GRUClassifier().to(device)


def train(model, steps=15):
    x, y = make_data()
    x, y = x.to(device), y.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 40)
    x, y = make_data()
    model.eval()
    with torch.no_grad():
        acc = (model(x.to(device)).argmax(dim=1) == y.to(device)).float().mean().item()
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, accuracy {acc:.3f}")
    return losses


if __name__ == "__main__":
    main()
