"""Matrix factorisation of a user x item rating matrix: user and item nn.Embedding factors plus
bias embeddings, MSELoss over observed (user, item, rating) triples in mini-batches, SGD with
weight decay, and an RMSE under no_grad."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
USERS, ITEMS = 30, 40


def make_data(n=400, rank=3):
    rng = np.random.default_rng(8)
    u_true = rng.standard_normal((USERS, rank))
    v_true = rng.standard_normal((ITEMS, rank))
    users = rng.integers(0, USERS, size=n)
    items = rng.integers(0, ITEMS, size=n)
    ratings = (u_true[users] * v_true[items]).sum(axis=1) + 0.1 * rng.standard_normal(n)
    return torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(ratings.astype(np.float32))


class MatrixFactorization(nn.Module):
    def __init__(self, num_users=USERS, num_items=ITEMS, factors=8):
        super().__init__()
        self.user_factors = nn.Embedding(num_users, factors)
        self.item_factors = nn.Embedding(num_items, factors)
        self.user_bias = nn.Embedding(num_users, 1)
        self.item_bias = nn.Embedding(num_items, 1)
        nn.init.normal_(self.user_factors.weight, std=0.3)
        nn.init.normal_(self.item_factors.weight, std=0.3)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users, items):
        dot = (self.user_factors(users) * self.item_factors(items)).sum(dim=1)
        return dot + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)


def build_model():
    torch.manual_seed(0)
    return MatrixFactorization().to(device)


def train(model, steps=20, batch_size=100):
    users, items, ratings = (t.to(device) for t in make_data())
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=1e-4)
    model.train()
    losses = []
    for step in range(steps):
        start = (step * batch_size) % len(ratings)
        batch = slice(start, start + batch_size)
        optimizer.zero_grad()
        loss = criterion(model(users[batch], items[batch]), ratings[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 200)
    users, items, ratings = (t.to(device) for t in make_data())
    model.eval()
    with torch.no_grad():
        rmse = torch.sqrt(((model(users, items) - ratings) ** 2).mean()).item()
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, rmse {rmse:.4f}")
    return losses


if __name__ == "__main__":
    main()
