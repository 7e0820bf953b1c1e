"""A small Transformer language model on counting sequences: Embedding, a sinusoidal positional
encoding buffer, nn.TransformerEncoder with the causal mask from
nn.Transformer.generate_square_subsequent_mask, CrossEntropyLoss, AdamW, clip_grad_norm_, and
greedy decoding under no_grad."""

import math

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
VOCAB = 16


def make_data(n=32, seq_len=12):
    rng = np.random.default_rng(6)
    start = rng.integers(0, VOCAB, size=(n, 1))
    step = rng.integers(1, 3, size=(n, 1))
    tokens = (start + step * np.arange(seq_len + 1)) % VOCAB
    tokens = torch.from_numpy(tokens)
    return tokens[:, :-1], tokens[:, 1:]


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=64):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):  # x is (B, T, d_model)
        return x + self.pe[: x.size(1)]


class TransformerLM(nn.Module):
    def __init__(self, vocab=VOCAB, d_model=32, nhead=4, num_layers=2, dropout=0.1):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab, d_model)
        self.pos_encoder = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=64, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.size(1), device=tokens.device)
        x = self.pos_encoder(self.embedding(tokens) * math.sqrt(self.d_model))
        return self.head(self.encoder(x, mask=mask))


def build_model(dropout=0.1):
    torch.manual_seed(0)
    return TransformerLM(dropout=dropout).to(device)


def train(model, steps=10):
    inputs, targets = make_data()
    inputs, targets = inputs.to(device), targets.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        logits = model(inputs)
        loss = criterion(logits.view(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def generate(model, prompt, new_tokens):
    model.eval()
    tokens = prompt
    with torch.no_grad():
        for _ in range(new_tokens):
            next_token = model(tokens)[:, -1].argmax(dim=-1, keepdim=True)
            tokens = torch.cat([tokens, next_token], dim=1)
    return tokens


def main():
    model = build_model()
    losses, _ = train(model, 40)
    out = generate(model, torch.tensor([[1, 3, 5]], device=device), 5)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, continuation {out.tolist()}")
    return losses


if __name__ == "__main__":
    main()
