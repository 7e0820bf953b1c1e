"""A GAN learning a 2-D ring of points: generator and discriminator MLPs, BCEWithLogitsLoss, two
Adam optimizers, the discriminator step on fake.detach(). The latent codes are drawn with NumPy
from a seeded generator, so every run draws the same ones."""

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LATENT = 4


def real_batch(rng, n):
    angle = rng.uniform(0, 2 * np.pi, size=n)
    radius = 2.0 + 0.1 * rng.standard_normal(n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)


class Generator(nn.Module):
    def __init__(self, latent=LATENT, hidden=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2),
        )

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = Generator()
        self.discriminator = Discriminator()


def build_model():
    torch.manual_seed(0)
    return GAN().to(device)


def train(model, steps=15, batch_size=64):
    G, D = model.generator, model.discriminator
    rng = np.random.default_rng(5)
    criterion = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    ones = torch.ones(batch_size, 1, device=device)
    zeros = torch.zeros(batch_size, 1, device=device)
    losses = []
    for _ in range(steps):
        real = torch.from_numpy(real_batch(rng, batch_size)).to(device)
        z = torch.from_numpy(rng.standard_normal((batch_size, LATENT)).astype(np.float32)).to(device)
        fake = G(z)

        opt_d.zero_grad()
        loss_d = criterion(D(real), ones) + criterion(D(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad()
        loss_g = criterion(D(fake), ones)
        loss_g.backward()
        opt_g.step()
        losses.append(loss_d.item())
        losses.append(loss_g.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 60)
    with torch.no_grad():
        samples = model.generator(torch.randn(256, LATENT, device=device))
    radius = samples.norm(dim=1).mean().item()
    print(f"discriminator loss {losses[-2]:.4f}, generator loss {losses[-1]:.4f}, mean radius {radius:.3f}")
    return losses


if __name__ == "__main__":
    main()
