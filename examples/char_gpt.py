"""A small GPT-style character model on tinyshakespeare (bundled with fastnn), trained with
fastnn.train.fit: token embedding + learned positional embedding -> pre-norm Transformer encoder
layers under a causal mask (fused causal attention) -> LayerNorm -> Linear over the characters,
cross-entropy at every position. Each training step takes `batch` random windows of `block`
characters; the last tenth of the text is the validation set (fixed windows). Prints the
validation loss per epoch, tokens/s, and a sample drawn with a temperature.

    python examples/char_gpt.py                        # the defaults take a few minutes on one core
    python examples/char_gpt.py --chars 0 --layers 4 --dim 128 --heads 4 --block 128 --epochs 10
"""
import argparse
import time

import numpy as np

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
from fastnn.data import load_tinyshakespeare
from fastnn.train import fit


class CharGPT(nn.Module):
    def __init__(self, vocab, dim, heads, layers, block, dropout):
        super().__init__()
        self.block = block
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.PositionalEmbedding(block, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, x):
        """x (B, L) character ids, L <= block -> logits (B*L, vocab)."""
        L = x.shape[1]
        causal = np.triu(np.ones((L, L), bool), 1)  # True: may not attend (a later position)
        h = self.blocks(self.pos(self.tok(x)), mask=causal, is_causal=True)
        return self.head(self.norm(h)).reshape(-1, self.head.out_features)


class Windows:
    """(x (batch, block), y (batch * block,)) pairs: `steps` batches of random windows (training)
    or, with steps=None, consecutive non-overlapping windows in order (validation)."""

    def __init__(self, ids, batch, block, steps=None, seed=0):
        self.ids, self.batch, self.block, self.steps = ids, batch, block, steps
        self.rng = np.random.default_rng(seed)
        self.seconds = 0.0

    def __len__(self):
        if self.steps is not None:
            return self.steps
        return (len(self.ids) - 1) // (self.batch * self.block)

    def tokens(self):
        return len(self) * self.batch * self.block

    def __iter__(self):
        t0 = time.perf_counter()
        for k in range(len(self)):
            if self.steps is not None:
                starts = self.rng.integers(0, len(self.ids) - self.block - 1, self.batch)
            else:
                starts = (k * self.batch + np.arange(self.batch)) * self.block
            idx = starts[:, None] + np.arange(self.block)
            yield fastnn.tensor(self.ids[idx]), fastnn.tensor(self.ids[idx + 1].reshape(-1))
        self.seconds = time.perf_counter() - t0


def sample(model, stoi, itos, prime, length, temperature, rng):
    """`length` characters drawn one at a time from softmax(logits / temperature) after `prime`,
    the context cropped to the model's block."""
    model.eval()
    ids = [stoi[c] for c in prime]
    with fastnn.no_grad():
        for _ in range(length):
            ctx = ids[-model.block:]
            logits = model(fastnn.tensor([ctx]))[-1].numpy().astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return "".join(itos[i] for i in ids)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", type=int, default=400_000, help="characters of the text to use (0: all 1.1M)")
    ap.add_argument("--val-frac", type=float, default=0.1, help="last fraction of those kept for validation")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--block", type=int, default=64, help="context length in characters")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200, help="training steps per epoch")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sample", type=int, default=300, help="characters to sample at the end")
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
    if split < args.block + 2 or len(ids) - split < args.batch * args.block + 1:
        raise ValueError(f"char_gpt: the text is too short for --block {args.block} x --batch {args.batch}; "
                         f"use more --chars or smaller windows")

    model = CharGPT(len(itos), args.dim, args.heads, args.layers, args.block, args.dropout)
    train = Windows(ids[:split], args.batch, args.block, steps=args.steps, seed=args.seed)
    val = Windows(ids[split:], args.batch, args.block)
    print(f"{len(text):,} characters ({len(itos)} distinct); {train.tokens():,} training tokens per epoch, "
          f"{val.tokens():,} for validation; {sum(p.numel() for p in model.parameters()):,} parameters")

    class Throughput:
        def on_epoch_end(self, epoch, logs):
            logs["tokens_per_s"] = train.tokens() / train.seconds
            print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}, val_loss {logs['val_loss']:.4f}, "
                  f"train {logs['tokens_per_s']:,.0f} tokens/s")

    history = fit(model, nn.CrossEntropyLoss(), optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01),
                  train, epochs=args.epochs, val_loader=val, callbacks=[Throughput()], log=None)
    if args.sample:
        prime = "".join(c for c in args.prime if c in stoi) or itos[0]
        print("--- sample (temperature %.2f) ---" % args.temperature)
        print(sample(model, stoi, itos, prime, args.sample, args.temperature, np.random.default_rng(args.seed)))
    return history


if __name__ == "__main__":
    main()
