"""An MNIST-style sequence classifier reading each 28x28 image row by row: nn.LSTM and nn.GRU with
batch_first=True, initial states from torch.zeros(num_layers, x.size(0), hidden).to(device), the
last time step out[:, -1, :] into a Linear, CrossEntropyLoss, Adam, gradient clipping by value,
and accuracy from `_, predicted = torch.max(outputs.data, 1)`."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

sequence_length = 28
input_size = 28
hidden_size = 20
num_layers = 2
num_classes = 5


def make_data(n=60, seed=13):
    """Images whose bright band sits at one of 5 heights (class) and drifts, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    rows, cols = np.mgrid[0:28, 0:28]
    centre = 3 + 5.5 * labels[:, None, None] + 0.08 * cols
    images = np.exp(-((rows - centre) ** 2) / 6.0) + 0.2 * rng.standard_normal((n, 28, 28))
    return torch.from_numpy(images[:, None].astype(np.float32)), torch.from_numpy(labels)


class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, num_classes, cell="LSTM"):
        super(RNN, self).__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        if cell == "LSTM":
            self.rnn = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        else:
            self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(device)
        if self.cell == "LSTM":
            c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(device)
            out, _ = self.rnn(x, (h0, c0))  # out: (batch, seq_length, hidden_size)
        else:
            out, _ = self.rnn(x, h0)
        out = self.fc(out[:, -1, :])
        return out


def build_model(cell="LSTM"):
    torch.manual_seed(0)
    return RNN(input_size, hidden_size, num_layers, num_classes, cell).to(device)


def train(model, steps=10, batch_size=20, learning_rate=0.01):
    images_all, labels_all = make_data()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    total_step = len(images_all) // batch_size
    losses = []
    for step in range(steps):
        i = step % total_step
        images = images_all[i * batch_size : (i + 1) * batch_size]
        labels = labels_all[i * batch_size : (i + 1) * batch_size]
        images = images.reshape(-1, sequence_length, input_size).to(device)
        labels = labels.to(device)

        outputs = model(images)
        loss = criterion(outputs, labels)

        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_value_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    mean_losses = None
    for cell in ("LSTM", "GRU"):
        model = build_model(cell)
        losses, _ = train(model, 30)
        model.eval()
        images, labels = make_data(40, seed=14)
        with torch.no_grad():
            correct = 0
            total = 0
            outputs = model(images.squeeze(1).to(device))
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels.to(device)).sum().item()
        print(f"{cell}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, test accuracy {100 * correct / total:.1f} %")
        mean_losses = losses if mean_losses is None else [(a + b) / 2 for a, b in zip(mean_losses, losses)]
    return mean_losses


if __name__ == "__main__":
    main()
