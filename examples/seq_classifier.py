"""The seed's sequence classifier: an LSTM with hidden size 128 over sequences of 10-dimensional
inputs, followed by a dense softmax layer over 2 classes (a Linear layer whose logits go through
the softmax inside nn.CrossEntropyLoss), trained with fastnn.train.fit.

The task is synthetic and needs memory: each sequence is 20 steps of 10 standard-normal
features, and its class is 1 when the sum of the first feature over the whole sequence is
positive (the sign of a running sum), else 0. Accuracy is measured on held-out sequences.

    python examples/seq_classifier.py
"""
import argparse

import numpy as np

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
from fastnn.train import evaluate, fit
from fastnn.utils.data import DataLoader, TensorDataset


class SeqClassifier(nn.Module):
    def __init__(self, input_size=10, hidden_size=128, classes=2):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, classes)

    def forward(self, x):
        """x (B, T, input_size) -> class logits (B, classes), from the LSTM's last hidden state."""
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def make_data(n, steps, features, rng):
    x = rng.standard_normal((n, steps, features)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return fastnn.tensor(x), fastnn.tensor(y)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=4000, help="training sequences")
    ap.add_argument("--test", type=int, default=1000, help="held-out sequences")
    ap.add_argument("--steps", type=int, default=20, help="sequence length")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fastnn.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(args.train, args.steps, 10, rng)
    x_test, y_test = make_data(args.test, args.steps, 10, rng)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch, shuffle=True)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=500)

    model = SeqClassifier(10, args.hidden, 2)
    loss_fn = nn.CrossEntropyLoss()
    history = fit(model, loss_fn, optim.Adam(model.parameters(), lr=args.lr), train_loader, epochs=args.epochs,
                  val_loader=test_loader)
    result = evaluate(model, test_loader, loss_fn)
    print(f"held-out accuracy {result['accuracy']:.3f} on {args.test} sequences (loss {result['loss']:.4f})")
    return history


if __name__ == "__main__":
    main()
