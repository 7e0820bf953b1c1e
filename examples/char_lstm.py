"""A character-level LSTM language model on tinyshakespeare (bundled with fastnn), trained with
fastnn.train.fit: Embedding -> LSTM -> Linear over the characters, cross-entropy. Truncated
backpropagation through time: the text is cut into `batch` parallel streams read in windows of
`bptt` characters, and the LSTM's state is carried (detached) from one window to the next. The
last tenth of the text is the validation set. Prints the validation loss per epoch, the training
throughput in tokens/s, and a sample drawn with a temperature.

    python examples/char_lstm.py                       # the defaults take a few minutes on one core
    python examples/char_lstm.py --chars 0 --hidden 512 --layers 2 --dropout 0.2 --epochs 10
"""
import argparse
import time

import numpy as np

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
from fastnn.data import load_tinyshakespeare
from fastnn.train import fit


class CharLSTM(nn.Module):
    def __init__(self, vocab, embed, hidden, layers, dropout):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, vocab)
        self.state = None

    def reset_state(self):
        self.state = None

    def forward(self, x):
        """x (B, T) character ids -> logits (B*T, vocab); the final state is kept for the next call."""
        out, state = self.lstm(self.embed(x), self.state)
        self.state = tuple(s.detach() for s in state)  # truncated BPTT: no gradient into the last window
        return self.head(out).reshape(-1, self.head.out_features)


class Streams:
    """(x (batch, bptt), y (batch * bptt,)) windows of `batch` parallel streams of ids, in order,
    so that each window continues the previous one in every row; y is x shifted by one character.
    on_start() runs at the start of each pass (the model's state reset)."""

    def __init__(self, ids, batch, bptt, on_start):
        n = (len(ids) - 1) // batch
        self.x = ids[:n * batch].reshape(batch, n)
        self.y = ids[1:n * batch + 1].reshape(batch, n)
        self.bptt, self.on_start, self.seconds = bptt, on_start, 0.0

    def __len__(self):
        return self.x.shape[1] // self.bptt

    def tokens(self):
        return len(self) * self.x.shape[0] * self.bptt

    def __iter__(self):
        self.on_start()
        t0 = time.perf_counter()
        for k in range(len(self)):
            s = slice(k * self.bptt, (k + 1) * self.bptt)
            yield fastnn.tensor(self.x[:, s]), fastnn.tensor(self.y[:, s].reshape(-1))
        self.seconds = time.perf_counter() - t0


def sample(model, stoi, itos, prime, length, temperature, rng):
    """`length` characters drawn one at a time from softmax(logits / temperature) after `prime`."""
    model.eval()
    model.reset_state()
    out = []
    with fastnn.no_grad():
        logits = model(fastnn.tensor([[stoi[c] for c in prime]]))[-1].numpy()
        for _ in range(length):
            z = logits.astype(np.float64) / temperature
            p = np.exp(z - z.max())
            c = int(rng.choice(len(p), p=p / p.sum()))
            out.append(itos[c])
            logits = model(fastnn.tensor([[c]]))[-1].numpy()
    model.reset_state()
    return prime + "".join(out)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", type=int, default=400_000, help="characters of the text to use (0: all 1.1M)")
    ap.add_argument("--val-frac", type=float, default=0.1, help="last fraction of those kept for validation")
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0, help="between LSTM layers (needs --layers > 1)")
    ap.add_argument("--batch", type=int, default=32, help="parallel streams")
    ap.add_argument("--bptt", type=int, default=64, help="characters per window (truncated BPTT length)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sample", type=int, default=400, help="characters to sample at the end")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--prime", default="ROMEO:\n")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fastnn.manual_seed(args.seed)
    text = load_tinyshakespeare()
    if args.chars:
        text = text[:args.chars]
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    ids = np.array([stoi[c] for c in text], np.int64)
    split = int(len(ids) * (1 - args.val_frac))

    model = CharLSTM(len(itos), args.embed, args.hidden, args.layers, args.dropout)
    train = Streams(ids[:split], args.batch, args.bptt, model.reset_state)
    val = Streams(ids[split:], args.batch, args.bptt, model.reset_state)
    for name, part in (("training", train), ("validation", val)):
        if not len(part):
            raise ValueError(f"char_lstm: the {name} text is too short for one window of --batch {args.batch} "
                             f"x --bptt {args.bptt} characters; use more --chars or smaller windows")
    print(f"{len(text):,} characters ({len(itos)} distinct): {train.tokens():,} for training, "
          f"{val.tokens():,} for validation; {sum(p.numel() for p in model.parameters()):,} parameters")

    class Throughput:
        def on_epoch_end(self, epoch, logs):
            logs["tokens_per_s"] = train.tokens() / train.seconds
            print(f"epoch {epoch + 1}: val_loss {logs['val_loss']:.4f}, train {logs['tokens_per_s']:,.0f} tokens/s")

    history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=args.lr), train, epochs=args.epochs,
                  val_loader=val, callbacks=[Throughput()], log=None)
    if args.sample:
        prime = "".join(c for c in args.prime if c in stoi) or itos[0]
        print("--- sample (temperature %.2f) ---" % args.temperature)
        print(sample(model, stoi, itos, prime, args.sample, args.temperature, np.random.default_rng(args.seed)))
    return history


if __name__ == "__main__":
    main()
