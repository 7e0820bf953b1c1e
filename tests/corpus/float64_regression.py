"""Regression in double precision: a Tanh MLP made float64 with .double(), float64 inputs from
NumPy, MSELoss, SGD with Nesterov momentum, and a held-out MSE under no_grad."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=128):
    rng = np.random.default_rng(9)
    x = rng.uniform(-2, 2, size=(n, 3))
    y = np.sin(x[:, :1]) * x[:, 1:2] + 0.5 * x[:, 2:] ** 2 + 0.01 * rng.standard_normal((n, 1))
    return torch.from_numpy(x), torch.from_numpy(y)  # float64 arrays give float64 tensors


def build_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    return model.double().to(device)


def train(model, steps=30):
    x, y = make_data()
    x, y = x.to(device), y.to(device)
    assert x.dtype == torch.float64 and next(model.parameters()).dtype == torch.float64
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 200)
    x, y = make_data()
    model.eval()
    with torch.no_grad():
        mse = nn.functional.mse_loss(model(x[:32].to(device)), y[:32].to(device)).item()
    print(f"loss {losses[0]:.6f} -> {losses[-1]:.6f}, mse {mse:.6f}")
    return losses


if __name__ == "__main__":
    main()
