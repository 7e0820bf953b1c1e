"""A sequence-to-sequence nn.Transformer learning to reverse token sequences: source and target
embeddings, a learned position embedding, teacher forcing with a BOS token and the causal
tgt_mask, CrossEntropyLoss, Adam, then greedy decoding under no_grad."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
VOCAB, BOS = 12, 0


def make_data(n=32, seq_len=6):
    rng = np.random.default_rng(7)
    src = rng.integers(1, VOCAB, size=(n, seq_len))
    tgt = src[:, ::-1].copy()
    tgt_in = np.concatenate([np.full((n, 1), BOS), tgt[:, :-1]], axis=1)
    return torch.from_numpy(src), torch.from_numpy(tgt_in), torch.from_numpy(tgt)


class Seq2Seq(nn.Module):
    def __init__(self, vocab=VOCAB, d_model=32, nhead=4, dropout=0.1, max_len=16):
        super().__init__()
        self.src_embed = nn.Embedding(vocab, d_model)
        self.tgt_embed = nn.Embedding(vocab, d_model)
        self.pos_embed = nn.Embedding(max_len, d_model)
        self.transformer = nn.Transformer(
            d_model=d_model,
            nhead=nhead,
            num_encoder_layers=1,
            num_decoder_layers=1,
            dim_feedforward=64,
            dropout=dropout,
            batch_first=True,
        )
        self.out = nn.Linear(d_model, vocab)

    def embed(self, embedding, tokens):
        positions = torch.arange(tokens.size(1), device=tokens.device)
        return embedding(tokens) + self.pos_embed(positions)

    def forward(self, src, tgt):
        tgt_mask = self.transformer.generate_square_subsequent_mask(tgt.size(1), device=tgt.device)
        h = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt), tgt_mask=tgt_mask)
        return self.out(h)


def build_model(dropout=0.1):
    torch.manual_seed(0)
    return Seq2Seq(dropout=dropout).to(device)


def train(model, steps=10):
    src, tgt_in, tgt_out = (t.to(device) for t in make_data())
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        logits = model(src, tgt_in)
        loss = criterion(logits.reshape(-1, VOCAB), tgt_out.reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def greedy_decode(model, src, length):
    model.eval()
    ys = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
    with torch.no_grad():
        for _ in range(length):
            next_token = model(src, ys)[:, -1].argmax(dim=-1, keepdim=True)
            ys = torch.cat([ys, next_token], dim=1)
    return ys[:, 1:]


def main():
    model = build_model()
    losses, _ = train(model, 40)
    src, _, tgt = make_data()
    decoded = greedy_decode(model, src[:8].to(device), src.size(1))
    acc = (decoded == tgt[:8].to(device)).float().mean().item()
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, token accuracy {acc:.3f}")
    return losses


if __name__ == "__main__":
    main()
