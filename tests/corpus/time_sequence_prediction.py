"""The time-sequence-prediction example's shape: two stacked nn.LSTMCell and a Linear, the model
made float64 with .double(), hidden states from torch.zeros(..., dtype=torch.double), outputs
gathered with torch.cat(outputs, dim=1) over steps, a future-prediction loop feeding the output
back in, LBFGS(lr=0.8) driven by a closure, and predictions read out with .detach().numpy()."""

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

device = torch.device("cpu")


def make_data(n=12, length=60, period=20):
    rng = np.random.default_rng(2)
    x = np.empty((n, length), np.int64)
    x[:] = np.arange(length) + rng.integers(-4 * period, 4 * period, n).reshape(n, 1)
    return np.sin(x / 1.0 / period).astype("float64")


class Sequence(nn.Module):
    def __init__(self, hidden=24):
        super(Sequence, self).__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.lstm2 = nn.LSTMCell(hidden, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):  # if we should predict the future
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        outputs = torch.cat(outputs, dim=1)
        return outputs


def build_model():
    torch.manual_seed(0)
    seq = Sequence()
    seq.double()
    return seq


def train(model, steps=3):
    data = make_data()
    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(model.parameters(), lr=0.8, max_iter=4)
    losses = []
    for _ in range(steps):

        def closure():
            optimizer.zero_grad()
            out = model(input)
            loss = criterion(out, target)
            loss.backward()
            return loss

        loss = optimizer.step(closure)
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 4)
    data = make_data()
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])
    criterion = nn.MSELoss()
    future = 20
    with torch.no_grad():
        pred = model(test_input, future=future)
        loss = criterion(pred[:, :-future], test_target)
        y = pred.detach().numpy()
    assert y.shape == (3, data.shape[1] - 1 + future) and y.dtype == np.float64
    # the per-step outputs stacked another way: (steps, B, 1) -> (B, steps)
    with torch.no_grad():
        steps = [model.linear(torch.zeros(3, model.hidden, dtype=torch.double)) for _ in range(4)]
        stacked = torch.stack(steps, 1).squeeze(2)
    assert tuple(stacked.shape) == (3, 4)
    print(f"loss {losses[0]:.6f} -> {losses[-1]:.6f}, test loss {loss.item():.6f}")
    return losses


if __name__ == "__main__":
    main()
