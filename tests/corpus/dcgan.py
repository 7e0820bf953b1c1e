"""The DCGAN example's training step on 16x16 synthetic images, with a generator of Linear +
BatchNorm1d layers reshaped to an image (ConvTranspose2d left out) and a strided Conv2d
discriminator with LeakyReLU and BatchNorm2d: weights_init through model.apply (m.weight.data
.normal_(0.0, 0.02), nn.init.constant_(m.bias.data, 0)), BCELoss, labels from
torch.full((b,), real_label, dtype=torch.float) and label.fill_(fake_label), netD.zero_grad(),
errD_real.backward() and errD_fake.backward() accumulating, D_x = output.mean().item(),
fake.detach(), Adam with betas=(0.5, 0.999). The noise is drawn with NumPy."""

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
nz, ngf, ndf, nc = 8, 32, 8, 1
real_label = 1.0
fake_label = 0.0


def real_batch(rng, n, size=16):
    rows, cols = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(1, 3, (n, 1, 1))
    img = np.tanh(2 * np.sin(2 * np.pi * f * (rows + cols)))
    return torch.from_numpy(img[:, None].astype(np.float32))


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1 or classname.find("Linear") != -1:
        m.weight.data.normal_(0.0, 0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias.data, 0)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.main = nn.Sequential(
            nn.Linear(nz, ngf, bias=False),
            nn.BatchNorm1d(ngf),
            nn.ReLU(True),
            nn.Linear(ngf, ngf * 2, bias=False),
            nn.BatchNorm1d(ngf * 2),
            nn.ReLU(True),
            nn.Linear(ngf * 2, nc * 16 * 16),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input.view(input.size(0), nz)).view(-1, nc, 16, 16)


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.main = nn.Sequential(
            # input is (nc) x 16 x 16
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 8 x 8
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 4 x 4
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        output = self.main(input)
        return output.view(-1, 1).squeeze(1)


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.netG = Generator()
        self.netG.apply(weights_init)
        self.netD = Discriminator()
        self.netD.apply(weights_init)


def build_model():
    torch.manual_seed(999)
    return GAN().to(device)


def train(model, steps=5, batch_size=16, lr=2e-4):
    netG, netD = model.netG, model.netD
    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=lr, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=lr, betas=(0.5, 0.999))
    rng = np.random.default_rng(5)
    losses = []
    for _ in range(steps):
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        netD.zero_grad()
        real_cpu = real_batch(rng, batch_size).to(device)
        b_size = real_cpu.size(0)
        label = torch.full((b_size,), real_label, dtype=real_cpu.dtype, device=device)

        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        # train with fake
        noise = torch.from_numpy(rng.standard_normal((b_size, nz, 1, 1)).astype(np.float32)).to(device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        losses.append(errD.item() + errG.item())
        train.log = (D_x, D_G_z1, D_G_z2)
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 25)
    D_x, D_G_z1, D_G_z2 = train.log
    print(f"Loss_D+G: {losses[-1]:.4f} D(x): {D_x:.4f} D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}")
    with torch.no_grad():
        model.netG.eval()
        fixed_noise = torch.randn(4, nz, 1, 1, device=device)
        assert tuple(model.netG(fixed_noise).shape) == (4, nc, 16, 16)
    return losses


if __name__ == "__main__":
    main()
