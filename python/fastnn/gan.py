"""fastnn.gan: a DCGAN for 28x28 digits, trained on the bundled MNIST images (`fastnn demo gan`).

The generator maps noise (nz x 1 x 1, with ngf=64) through transposed convolutions to an image,
nz -> 128 x 7 x 7 -> 64 x 14 x 14 -> 1 x 28 x 28, BatchNorm and ReLU between them and Tanh at
the end; the discriminator mirrors it with strided convolutions, LeakyReLU(0.2) and a Sigmoid
(the probability that its input is real). No Linear layers, as in the DCGAN paper. The
conditional variant embeds the class label (nn.Embedding(10, 10)): the generator takes the
embedding beside the noise, the discriminator as 10 extra input channels (the embedding broadcast
over the image).

train_gan follows the DCGAN recipe: weights drawn from N(0, 0.02) (BatchNorm's scale from
N(1, 0.02)), Adam with lr 2e-4 and betas (0.5, 0.999) for both networks, BCELoss with real label
1 and fake label 0, images scaled to [-1, 1]. Each step first trains D on a real batch and on a
fake batch (the generator's output detached, so no gradient reaches G), then G through the
updated D with the fake batch labelled real. The 4,000 training images are those demo.cnn trains
on (the other 1,000, fastnn.metrics.heldout_digits, are the reference the samples are scored
against). After each epoch: a checkpoint (fastnn.save: no pickle), an 8x8 grid of samples from
a fixed noise batch as a PNG (with Pillow or matplotlib, the `gan` extra), and the scores of
fastnn.metrics: the Frechet distance of 1,000 generated digits to the held-out ones in a pinned
digit classifier's features, and the fraction of generated digits that classifier labels with
confidence above 0.9 (beside the same fraction for the held-out digits).

The data order, the noise of every step and the fixed noise come from NumPy generators seeded
from `seed` (DigitStream, fixed_noise, score_noise), and the initial weights from fastnn's
generator (make_models), so a run can be replayed by another framework from the same weights.
"""

import os
import time

import numpy as np

from . import nn, optim
from . import random as _random
from .data import load_mnist_5k
from .serialization import load, save
from .tensor import Tensor, cat, no_grad
from .train import _progress

__all__ = [
    "Generator",
    "Discriminator",
    "weights_init",
    "make_models",
    "DigitStream",
    "training_digits",
    "fixed_noise",
    "score_noise",
    "discriminator_step",
    "generator_step",
    "generate",
    "to_unit",
    "grid",
    "image_writer",
    "save_grid",
    "save_checkpoint",
    "load_checkpoint",
    "adam",
    "train_gan",
    "DEFAULT_EPOCHS",
]

# `fastnn demo gan`'s default: about 15 s per epoch on one core (ngf = ndf = 64, 63 steps of 64
# images), so about 5 minutes; digit shapes appear from epoch 5 and sharpen slowly after 20
DEFAULT_EPOCHS = 20
IMAGE_SIZE = 28


class Generator(nn.Module):
    """Noise (N, nz) or (N, nz, 1, 1), and for conditional=True the class labels (N,), to images
    (N, 1, 28, 28) in [-1, 1]."""

    def __init__(self, nz=100, ngf=64, conditional=False, num_classes=10):
        super().__init__()
        self.nz, self.ngf, self.conditional, self.num_classes = nz, ngf, bool(conditional), num_classes
        extra = num_classes if conditional else 0
        if conditional:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz + extra, ngf * 2, 7, 1, 0, bias=False),  # -> (ngf*2) x 7 x 7
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # -> ngf x 14 x 14
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),  # -> 1 x 28 x 28
            nn.Tanh(),
        )

    def forward(self, z, labels=None):
        n = z.shape[0]
        z = z.reshape(n, self.nz)
        if self.conditional:
            if labels is None:
                raise ValueError("fastnn.gan.Generator: a conditional generator needs the class labels")
            z = cat([z, self.label_embedding(labels)], 1)
        elif labels is not None:
            raise ValueError("fastnn.gan.Generator: labels given to an unconditional generator")
        return self.main(z.reshape(n, z.shape[1], 1, 1))


class Discriminator(nn.Module):
    """Images (N, 1, 28, 28) in [-1, 1], and for conditional=True their class labels (N,), to the
    probability (N,) that each is a real digit (of that class)."""

    def __init__(self, ndf=64, conditional=False, num_classes=10):
        super().__init__()
        self.ndf, self.conditional, self.num_classes = ndf, bool(conditional), num_classes
        extra = num_classes if conditional else 0
        if conditional:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        self.main = nn.Sequential(
            nn.Conv2d(1 + extra, ndf, 4, 2, 1, bias=False),  # -> ndf x 14 x 14
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),  # -> (ndf*2) x 7 x 7
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),  # -> 1 x 1 x 1
            nn.Sigmoid(),
        )

    def forward(self, x, labels=None):
        if self.conditional:
            if labels is None:
                raise ValueError("fastnn.gan.Discriminator: a conditional discriminator needs the class labels")
            n, _, h, w = x.shape
            maps = self.label_embedding(labels).reshape(n, self.num_classes, 1, 1).expand(n, self.num_classes, h, w)
            x = cat([x, maps], 1)
        elif labels is not None:
            raise ValueError("fastnn.gan.Discriminator: labels given to an unconditional discriminator")
        return self.main(x).reshape(-1)


def weights_init(m):
    """DCGAN's initialisation, for Module.apply: convolution weights from N(0, 0.02), BatchNorm
    scales from N(1, 0.02), biases 0. Other modules (the label embeddings) keep their own."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0.0)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.constant_(m.bias, 0.0)


def make_models(seed=0, conditional=False, nz=100, ngf=64, ndf=64):
    """(generator, discriminator), initialised by weights_init from fastnn's generator seeded
    with `seed` (the same weights for the same arguments)."""
    _random.manual_seed(seed)
    g = Generator(nz, ngf, conditional)
    d = Discriminator(ndf, conditional)
    g.apply(weights_init)
    d.apply(weights_init)
    return g, d


def training_digits(seed=0, test=1000, limit=None):
    """(images float32 (N, 1, 28, 28) in [-1, 1], labels int64 (N,)): the bundled digits that
    demo.mnist_splits(seed, test) trains on (the rest of the same seeded shuffle is held out),
    the first `limit` of them if given."""
    images, labels = load_mnist_5k()
    perm = np.random.default_rng(seed).permutation(len(labels))
    train = perm[test:] if limit is None else perm[test : test + limit]
    x = images[train].astype(np.float32).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE) / 127.5 - 1.0
    return x, labels[train].astype(np.int64)


class DigitStream:
    """The batches of train_gan as NumPy arrays: each pass (epoch) yields (real images, their
    labels, noise (B, nz, 1, 1) float32, labels for the fake images (None unless conditional)),
    the images in an order shuffled anew every epoch. Everything comes from one generator
    seeded with `seed`, so two streams built alike yield the same arrays."""

    def __init__(self, images, labels, batch_size=64, nz=100, seed=0, conditional=False, num_classes=10):
        self.images, self.labels = images, labels
        self.batch_size, self.nz, self.conditional, self.num_classes = batch_size, nz, conditional, num_classes
        self.rng = np.random.default_rng([seed, 1])

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.labels))
        for k in range(0, len(order), self.batch_size):
            idx = order[k : k + self.batch_size]
            z = self.rng.standard_normal((len(idx), self.nz, 1, 1), dtype=np.float32)
            fake_labels = self.rng.integers(0, self.num_classes, len(idx)) if self.conditional else None
            yield self.images[idx], self.labels[idx], z, fake_labels


def fixed_noise(seed=0, nz=100, conditional=False, num_classes=10):
    """(noise, labels) of the sample grids: 64 noise vectors (an 8x8 grid), or for a conditional
    model 8 noise vectors repeated for each class (one class per row, one noise per column)."""
    rng = np.random.default_rng([seed, 2])
    if not conditional:
        return rng.standard_normal((64, nz, 1, 1), dtype=np.float32), None
    z = rng.standard_normal((8, nz, 1, 1), dtype=np.float32)
    return np.tile(z, (num_classes, 1, 1, 1)), np.repeat(np.arange(num_classes), 8)


def score_noise(seed=0, n=1000, nz=100, conditional=False, num_classes=10):
    """(noise, labels) of the images scored after each epoch (the classes in turn, if conditional)."""
    rng = np.random.default_rng([seed, 3])
    z = rng.standard_normal((n, nz, 1, 1), dtype=np.float32)
    return z, (np.arange(n) % num_classes if conditional else None)


def _targets(n, value):
    return Tensor(np.full(n, value, dtype=np.float32))


def discriminator_step(netG, netD, opt_d, criterion, real, z, real_labels=None, fake_labels=None):
    """One update of D: BCE of D(real) against 1 plus BCE of D(G(z).detach()) against 0, the two
    gradients accumulated, then opt_d.step(). G's parameters get no gradient. Returns (the fake
    batch, with its graph for generator_step; D's loss; mean D(real); mean D(fake))."""
    netD.zero_grad()
    out_real = netD(real, real_labels)
    err_real = criterion(out_real, _targets(len(real), 1.0))
    err_real.backward()
    fake = netG(z, fake_labels)
    out_fake = netD(fake.detach(), fake_labels)
    err_fake = criterion(out_fake, _targets(len(real), 0.0))
    err_fake.backward()
    opt_d.step()
    return fake, err_real.item() + err_fake.item(), out_real.mean().item(), out_fake.mean().item()


def generator_step(netG, netD, opt_g, criterion, fake, fake_labels=None):
    """One update of G: BCE of D(fake) against the real label 1, through the (just updated) D,
    then opt_g.step(). Returns (G's loss, mean D(fake))."""
    netG.zero_grad()
    out = netD(fake, fake_labels)
    err = criterion(out, _targets(len(out), 1.0))
    err.backward()
    opt_g.step()
    return err.item(), out.mean().item()


def generate(netG, z, labels=None, batch_size=500):
    """Images (N, 1, 28, 28) in [-1, 1] as a NumPy array: the generator in eval mode (BatchNorm's
    running statistics), no graph, in batches; the mode is restored afterwards."""
    was_training = netG.training
    netG.eval()
    out = []
    with no_grad():
        for k in range(0, len(z), batch_size):
            lab = None if labels is None else Tensor(np.asarray(labels[k : k + batch_size], dtype=np.int64))
            out.append(netG(Tensor(np.asarray(z[k : k + batch_size])), lab).numpy())
    netG.train(was_training)
    return np.concatenate(out)


def to_unit(images):
    """Images in [-1, 1] (the generator's Tanh) to [0, 1], float32 (what fastnn.metrics takes)."""
    return np.clip((np.asarray(images, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)


def grid(images, nrow=8, padding=2):
    """The images (N, 1, H, W) in [-1, 1] tiled `nrow` to a row as one uint8 array (rows, cols),
    `padding` black pixels between them."""
    x = np.round(to_unit(images)[:, 0] * 255).astype(np.uint8)
    n, h, w = x.shape
    rows = -(-n // nrow)
    out = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        out[top : top + h, left : left + w] = x[i]
    return out


def image_writer():
    """The library save_grid writes PNGs with: 'pillow', else 'matplotlib', else None."""
    import importlib.util

    for name, module in (("pillow", "PIL"), ("matplotlib", "matplotlib")):
        if importlib.util.find_spec(module) is not None:
            return name
    return None


def save_grid(images, path, nrow=8, padding=2):
    """Write the images (N, 1, H, W) in [-1, 1] as a PNG grid at `path` with Pillow, or matplotlib
    when Pillow is not installed. Returns the path, or None when neither is installed (nothing
    is written: pip install 'fastnn[gan]')."""
    pixels = grid(images, nrow, padding)
    writer = image_writer()
    if writer == "pillow":
        from PIL import Image

        Image.fromarray(pixels).save(path)  # uint8 (H, W): 8-bit grey
    elif writer == "matplotlib":
        from matplotlib import image

        image.imsave(path, pixels, cmap="gray", vmin=0, vmax=255)
    else:
        return None
    return path


def save_checkpoint(path, netG, netD, opt_g=None, opt_d=None, epoch=0, history=None, config=None):
    """Both networks' state dicts (and the optimizers', when given), the epoch, the history and
    the models' configuration, in fastnn.save's format (no pickle); written to a temporary file
    and renamed, so an interrupted write leaves the previous checkpoint whole."""
    state = {
        "generator": netG.state_dict(),
        "discriminator": netD.state_dict(),
        "epoch": int(epoch),
        "history": list(history or []),
        "config": dict(config or {}),
    }
    if opt_g is not None:
        state["optimizer_g"] = opt_g.state_dict()
    if opt_d is not None:
        state["optimizer_d"] = opt_d.state_dict()
    tmp = os.fspath(path) + ".tmp"
    save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, netG=None, netD=None, opt_g=None, opt_d=None):
    """(generator, discriminator, state) from a file save_checkpoint wrote: its weights loaded
    into netG and netD, or into networks built from its configuration when they are not given;
    opt_g and opt_d (optimizers over netG's and netD's parameters) get the saved optimizer
    states. state is the whole loaded dict ('epoch', 'history', 'config', ...)."""
    state = load(path)
    if not isinstance(state, dict) or not {"generator", "discriminator", "config"} <= state.keys():
        raise ValueError(f"fastnn.gan.load_checkpoint: {os.fspath(path)}: not a checkpoint of train_gan")
    cfg = state["config"]
    conditional = bool(cfg.get("conditional", False))
    if netG is None:
        netG = Generator(cfg["nz"], cfg["ngf"], conditional)
    if netD is None:
        netD = Discriminator(cfg["ndf"], conditional)
    netG.load_state_dict(state["generator"])
    netD.load_state_dict(state["discriminator"])
    for opt, key in ((opt_g, "optimizer_g"), (opt_d, "optimizer_d")):
        if opt is not None:
            if key not in state:
                raise ValueError(f"fastnn.gan.load_checkpoint: {os.fspath(path)} holds no {key}")
            opt.load_state_dict(state[key])
    return netG, netD, state


def adam(module, lr=2e-4, betas=(0.5, 0.999)):
    """DCGAN's optimizer: Adam over the module's parameters, lr 2e-4, betas (0.5, 0.999)."""
    return optim.Adam(module.parameters(), lr=lr, betas=betas)


def train_gan(
    epochs=DEFAULT_EPOCHS,
    seed=0,
    batch_size=64,
    conditional=False,
    out_dir="dcgan",
    progress=None,
    log=print,
    limit=None,
    nz=100,
    ngf=64,
    ndf=64,
    lr=2e-4,
    betas=(0.5, 0.999),
    score_samples=1000,
):
    """Train the DCGAN on the bundled digits (the first `limit` training images if given); after
    each epoch write out_dir/checkpoint.npz and out_dir/samples_epoch_<N>.png and score 1,000
    generated digits with fastnn.metrics. Returns the history: one dict per epoch with the mean
    losses (loss_d, loss_g), the mean D(x) and D(G(z)) (d_real, d_fake), fid, confidence,
    real_confidence (of the held-out digits), train_s (the training steps) and time_s (the epoch
    with its scoring and files)."""
    from . import metrics  # the pinned classifier: loaded when the scores are first wanted

    netG, netD = make_models(seed, conditional, nz, ngf, ndf)
    opt_g, opt_d = adam(netG, lr, betas), adam(netD, lr, betas)
    criterion = nn.BCELoss()
    images, labels = training_digits(seed, limit=limit)
    stream = DigitStream(images, labels, batch_size, nz, seed, conditional)
    grid_z, grid_labels = fixed_noise(seed, nz, conditional)
    eval_z, eval_labels = score_noise(seed, score_samples, nz, conditional)
    reference = metrics.heldout_digits(seed=seed)
    real_conf = float(metrics.digit_confidence(reference))
    config = {"nz": nz, "ngf": ngf, "ndf": ndf, "conditional": bool(conditional), "seed": seed}
    config.update({"batch_size": batch_size, "lr": lr, "betas": list(betas), "limit": limit})
    os.makedirs(out_dir, exist_ok=True)
    ckpt = os.path.join(out_dir, "checkpoint.npz")
    if log is not None:
        kind = "conditional DCGAN" if conditional else "DCGAN"
        log(f"{kind} on {len(images)} digits, {len(stream)} steps of {batch_size} per epoch, seed {seed}")
        if image_writer() is None:
            log(
                "note: no image library (Pillow or matplotlib) is installed: no sample grids are written (pip install 'fastnn[gan]')"
            )
    history, grids = [], []
    for epoch in range(1, epochs + 1):
        netG.train()
        netD.train()
        t0 = time.perf_counter()
        bar = _progress(len(stream), f"epoch {epoch}/{epochs}", progress)
        sums, n = np.zeros(4), 0
        for x, y, z, fake_y in stream:
            real_labels = Tensor(y) if conditional else None
            fake_labels = Tensor(fake_y) if conditional else None
            fake, loss_d, d_real, d_fake = discriminator_step(
                netG, netD, opt_d, criterion, Tensor(x), Tensor(z), real_labels, fake_labels
            )
            loss_g, _ = generator_step(netG, netD, opt_g, criterion, fake, fake_labels)
            sums += np.array([loss_d, loss_g, d_real, d_fake]) * len(x)
            n += len(x)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss_d=f"{loss_d:.3f}", loss_g=f"{loss_g:.3f}")
        if bar is not None:
            bar.close()
        train_s = time.perf_counter() - t0
        samples = to_unit(generate(netG, eval_z, eval_labels))
        logs = dict(zip(("loss_d", "loss_g", "d_real", "d_fake"), (sums / max(n, 1)).tolist()))
        logs = {"epoch": epoch, **logs}
        logs["fid"] = float(metrics.digit_fid(samples, reference))
        logs["confidence"] = float(metrics.digit_confidence(samples))
        logs["real_confidence"] = real_conf
        png = save_grid(generate(netG, grid_z, grid_labels), os.path.join(out_dir, f"samples_epoch_{epoch:03d}.png"))
        if png is not None:
            grids.append(png)
        logs["train_s"] = train_s
        logs["time_s"] = time.perf_counter() - t0
        history.append(logs)
        save_checkpoint(ckpt, netG, netD, opt_g, opt_d, epoch, history, config)
        if log is not None:
            log(
                f"epoch {epoch}/{epochs}: loss D {logs['loss_d']:.3f} G {logs['loss_g']:.3f}, "
                f"D(x) {logs['d_real']:.2f} D(G(z)) {logs['d_fake']:.2f}, FID {logs['fid']:.2f}, "
                f"confident {logs['confidence']:.3f} (held-out digits {real_conf:.3f}), {train_s:.1f} s"
            )
    if log is not None:
        if grids:
            log(f"sample grids: {grids[0]} ... {grids[-1]}" if len(grids) > 1 else f"sample grid: {grids[0]}")
        log(f"checkpoint (generator, discriminator, optimizers): {ckpt}")
    return history
