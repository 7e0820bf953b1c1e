"""A DCGAN on MNIST written as a PyTorch program (`import torch` became `import fastnn as torch`):
the generator turns 100 numbers of noise into a 28x28 digit through transposed convolutions
(100 -> 128x7x7 -> 64x14x14 -> 1x28x28), the discriminator mirrors it with strided
convolutions, and the two are trained against each other with BCELoss and Adam (lr 2e-4,
betas (0.5, 0.999)), the recipe of the DCGAN paper. It trains on the 4,000 training digits
bundled with fastnn (the 1,000 others are held out) and, after each epoch, writes an 8x8 grid
of samples (with Pillow: pip install 'fastnn[gan]') and a checkpoint, and prints the digit FID
of 1,000 samples against the held-out digits (fastnn.metrics: lower is better) and the
fraction of samples a digit classifier is sure about.

    python examples/dcgan_mnist.py                 # 20 epochs, about 5 minutes on one core
    python examples/dcgan_mnist.py --epochs 1 --out dcgan_try

The same recipe is `fastnn demo gan` (fastnn.gan.train_gan), which adds a conditional variant.
"""

import argparse
import os
import time

import fastnn as torch
import fastnn.nn as nn
import fastnn.optim as optim
import numpy as np
from fastnn import metrics
from fastnn.data import load_mnist_5k

nz, ngf, ndf = 100, 64, 64  # noise size, generator and discriminator widths
real_label, fake_label = 1.0, 0.0


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            # input: nz x 1 x 1
            nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # (ngf*2) x 7 x 7
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # ngf x 14 x 14
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),
            nn.Tanh(),
            # 1 x 28 x 28, in [-1, 1]
        )

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            # input: 1 x 28 x 28
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # ndf x 14 x 14
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*2) x 7 x 7
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)  # the probability that each image is real


def weights_init(m):
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), bias 0."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def save_grid(images, path, nrow=8):
    """Write images (N, 1, 28, 28) in [-1, 1] as one PNG, `nrow` to a row; False without Pillow."""
    try:
        from PIL import Image
    except ImportError:
        return False
    x = ((images.numpy()[:, 0] + 1) * 127.5).clip(0, 255).round().astype(np.uint8)
    rows = -(-len(x) // nrow)
    canvas = np.zeros((rows * 30 + 2, nrow * 30 + 2), np.uint8)
    for i, im in enumerate(x):
        r, c = divmod(i, nrow)
        canvas[2 + 30 * r : 30 * r + 30, 2 + 30 * c : 30 * c + 30] = im
    Image.fromarray(canvas).save(path)
    return True


def generate(netG, z):
    netG.eval()  # BatchNorm's running statistics
    with torch.no_grad():
        images = torch.cat([netG(z[k : k + 500]) for k in range(0, len(z), 500)])
    netG.train()
    return images


def main(argv=None):
    p = argparse.ArgumentParser(description="DCGAN on the bundled MNIST digits")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="dcgan_out", help="where the grids and the checkpoint go")
    p.add_argument("--limit", type=int, help="train on the first N training digits only")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)

    # the digits, scaled to [-1, 1] (the generator's Tanh); 1,000 held out by a seeded shuffle
    images, _ = load_mnist_5k()
    perm = np.random.default_rng(args.seed).permutation(len(images))
    x = torch.tensor(images[perm[1000:]], dtype=torch.float32).reshape(-1, 1, 28, 28) / 127.5 - 1
    if args.limit:
        x = x[: args.limit]
    heldout = metrics.heldout_digits(seed=args.seed)  # in [0, 1]

    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    fixed_noise = torch.randn(64, nz, 1, 1)  # the same 64 samples after every epoch
    score_noise = torch.randn(1000, nz, 1, 1)

    history = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(x))
        for k in range(0, len(x), args.batch_size):
            real = x[order[k : k + args.batch_size]]
            b = real.size(0)
            # (1) update D: maximise log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            label = torch.full((b,), real_label)
            errD_real = criterion(netD(real), label)
            errD_real.backward()
            fake = netG(torch.randn(b, nz, 1, 1))
            label.fill_(fake_label)
            errD_fake = criterion(netD(fake.detach()), label)  # detached: no gradient into G
            errD_fake.backward()
            optimizerD.step()
            # (2) update G: maximise log(D(G(z))), through the updated D
            netG.zero_grad()
            label.fill_(real_label)  # the generator wants its fakes taken for real
            errG = criterion(netD(fake), label)
            errG.backward()
            optimizerG.step()
        seconds = time.perf_counter() - t0

        samples = (generate(netG, score_noise).numpy() + 1) / 2  # metrics take [0, 1]
        fid = metrics.digit_fid(samples, heldout)
        conf, real_conf = metrics.digit_confidence(samples), metrics.digit_confidence(heldout)
        history.append({"epoch": epoch, "loss_d": (errD_real + errD_fake).item(), "loss_g": errG.item(), "fid": fid})
        wrote = save_grid(generate(netG, fixed_noise), os.path.join(args.out, f"samples_epoch_{epoch:03d}.png"))
        torch.save(
            {
                "generator": netG.state_dict(),
                "discriminator": netD.state_dict(),
                "optimizerG": optimizerG.state_dict(),
                "optimizerD": optimizerD.state_dict(),
                "epoch": epoch,
            },
            os.path.join(args.out, "dcgan_checkpoint.npz"),
        )
        print(
            f"epoch {epoch}/{args.epochs}: loss D {history[-1]['loss_d']:.3f} G {errG.item():.3f}, "
            f"FID {fid:.1f}, confident {conf:.3f} (held-out digits {real_conf:.3f}), {seconds:.1f} s"
            + ("" if wrote else " (no grid: Pillow is not installed)")
        )
    print(f"samples and checkpoint in {args.out}")
    return history


if __name__ == "__main__":
    main()
