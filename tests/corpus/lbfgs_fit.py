"""A damped oscillation fitted with LBFGS: a module whose parameters are nn.Parameter scalars,
optimizer.step(closure) with the strong-Wolfe line search, the closure returning the loss."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=100):
    rng = np.random.default_rng(10)
    t = np.linspace(0, 4, n, dtype=np.float32)
    y = 1.5 * np.exp(-0.4 * t) * np.cos(2.2 * t + 0.3) + 0.02 * rng.standard_normal(n).astype(np.float32)
    return torch.from_numpy(t), torch.from_numpy(y)


class DampedOscillator(nn.Module):
    def __init__(self):
        super().__init__()
        self.amplitude = nn.Parameter(torch.tensor(1.0))
        self.decay = nn.Parameter(torch.tensor(0.1))
        self.frequency = nn.Parameter(torch.tensor(2.0))
        self.phase = nn.Parameter(torch.tensor(0.0))

    def forward(self, t):
        return self.amplitude * torch.exp(-self.decay * t) * torch.cos(self.frequency * t + self.phase)


def build_model():
    torch.manual_seed(0)
    return DampedOscillator().to(device)


def train(model, steps=4):
    t, y = make_data()
    t, y = t.to(device), y.to(device)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=5, history_size=10, line_search_fn="strong_wolfe")
    losses = []

    def closure():
        optimizer.zero_grad()
        loss = torch.mean((model(t) - y) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        loss = optimizer.step(closure)
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 10)
    fitted = {name: round(p.item(), 3) for name, p in model.named_parameters()}
    print(f"loss {losses[0]:.5f} -> {losses[-1]:.5f}, parameters {fitted}")
    return losses


if __name__ == "__main__":
    main()
