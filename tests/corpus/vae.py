"""A variational autoencoder on 8x8 blob images: encoder to (mu, logvar), the
reparameterisation mu + eps * exp(logvar / 2), a sigmoid decoder, BCE + KL loss, Adam. The noise
eps is drawn with NumPy from a seeded generator, so every run draws the same eps."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LATENT = 4


def make_data(n=64, size=8):
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[0:size, 0:size]
    centre = rng.uniform(2, size - 2, size=(n, 2, 1, 1))
    img = np.exp(-((rows - centre[:, 0]) ** 2 + (cols - centre[:, 1]) ** 2) / 4.0)
    return torch.from_numpy(img.reshape(n, size * size).astype(np.float32))


class VAE(nn.Module):
    def __init__(self, in_features=64, hidden=32, latent=LATENT):
        super().__init__()
        self.enc = nn.Linear(in_features, hidden)
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec1 = nn.Linear(latent, hidden)
        self.dec2 = nn.Linear(hidden, in_features)

    def encode(self, x):
        h = F.relu(self.enc(x))
        return self.mu(h), self.logvar(h)

    def reparameterize(self, mu, logvar, eps=None):
        std = torch.exp(0.5 * logvar)
        if eps is None:
            eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        return torch.sigmoid(self.dec2(F.relu(self.dec1(z))))

    def forward(self, x, eps=None):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar


def loss_function(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.size(0)


def build_model():
    torch.manual_seed(0)
    return VAE().to(device)


def train(model, steps=20):
    x = make_data().to(device)
    noise = np.random.default_rng(40)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        eps = torch.from_numpy(noise.standard_normal((x.shape[0], LATENT)).astype(np.float32)).to(device)
        optimizer.zero_grad()
        recon, mu, logvar = model(x, eps)
        loss = loss_function(recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 60)
    model.eval()
    with torch.no_grad():
        samples = model.decode(torch.randn(5, LATENT, device=device))
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, samples {tuple(samples.shape)}")
    return losses


if __name__ == "__main__":
    main()
