"""An LSTM predicting the next sample of sine waves (MSELoss, Adam), then generating a
continuation one step at a time, carrying the (h, c) state, under no_grad."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=32, seq_len=20):
    rng = np.random.default_rng(3)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    freq = rng.uniform(0.2, 0.4, size=(n, 1))
    t = np.arange(seq_len + 1)
    wave = np.sin(freq * t + phase).astype(np.float32)[:, :, None]  # (B, T+1, 1)
    return torch.from_numpy(wave[:, :-1]), torch.from_numpy(wave[:, 1:])


class SineLSTM(nn.Module):
    def __init__(self, hidden_size=24):
        super().__init__()
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden_size, batch_first=True)
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, x, state=None):
        out, state = self.lstm(x, state)
        return self.linear(out), state


def build_model():
    torch.manual_seed(0)
    return SineLSTM().to(device)


def train(model, steps=20):
    inputs, targets = make_data()
    inputs, targets = inputs.to(device), targets.to(device)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        prediction, _ = model(inputs)
        loss = criterion(prediction, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def generate(model, prefix, steps):
    model.eval()
    with torch.no_grad():
        out, (h, c) = model(prefix)
        x = out[:, -1:]
        samples = [x]
        for _ in range(steps - 1):
            x, (h, c) = model(x, (h, c))
            samples.append(x)
    return torch.cat(samples, dim=1)


def main():
    model = build_model()
    losses, _ = train(model, 60)
    inputs, _ = make_data()
    continuation = generate(model, inputs[:4].to(device), 10)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, continuation {tuple(continuation.shape)}")
    return losses


if __name__ == "__main__":
    main()
