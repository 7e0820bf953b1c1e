"""fastnn's DCGAN recipe (fastnn.gan.train_gan) replayed in PyTorch, and the two compared.

For each seed, fastnn trains with train_gan, and PyTorch trains the same networks from the same
initial weights (fastnn.gan.make_models' weights copied over), on the same batches in the same
order with the same noise (fastnn.gan.DigitStream), with the same optimizer settings; after each
epoch both generate from the same noise (in eval mode) and are scored by the same
fastnn.metrics (digit_fid against the held-out digits, digit_confidence). Each library runs on
`--threads` threads (default 1). Prints a table per seed and a summary, writes a JSON.

    python bench/gan_torch_reference.py                      # 3 seeds, the demo's epochs
    python bench/gan_torch_reference.py --seeds 0 --epochs 2 --limit 512
    python bench/gan_torch_reference.py --which torch --seeds 1 2

The torch side keeps the state dict names of fastnn.gan's modules (main.N.*, label_embedding.*)
so the weights copy by name; tests/test_gan.py checks one step of each against the other.
"""

import argparse
import json
import os
import statistics
import sys
import time

import fastnn
import numpy as np
import torch
import torch.nn as tnn
from fastnn import gan


class TorchGenerator(tnn.Module):
    def __init__(self, nz=100, ngf=64, conditional=False, num_classes=10):
        super().__init__()
        self.nz, self.conditional = nz, conditional
        extra = num_classes if conditional else 0
        if conditional:
            self.label_embedding = tnn.Embedding(num_classes, num_classes)
        self.main = tnn.Sequential(
            tnn.ConvTranspose2d(nz + extra, ngf * 2, 7, 1, 0, bias=False),
            tnn.BatchNorm2d(ngf * 2),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            tnn.BatchNorm2d(ngf),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),
            tnn.Tanh(),
        )

    def forward(self, z, labels=None):
        z = z.view(z.size(0), self.nz)
        if self.conditional:
            z = torch.cat([z, self.label_embedding(labels)], 1)
        return self.main(z.view(z.size(0), -1, 1, 1))


class TorchDiscriminator(tnn.Module):
    def __init__(self, ndf=64, conditional=False, num_classes=10):
        super().__init__()
        self.conditional, self.num_classes = conditional, num_classes
        extra = num_classes if conditional else 0
        if conditional:
            self.label_embedding = tnn.Embedding(num_classes, num_classes)
        self.main = tnn.Sequential(
            tnn.Conv2d(1 + extra, ndf, 4, 2, 1, bias=False),
            tnn.LeakyReLU(0.2, True),
            tnn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            tnn.BatchNorm2d(ndf * 2),
            tnn.LeakyReLU(0.2, True),
            tnn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),
            tnn.Sigmoid(),
        )

    def forward(self, x, labels=None):
        if self.conditional:
            n, _, h, w = x.shape
            maps = self.label_embedding(labels).view(n, self.num_classes, 1, 1).expand(n, self.num_classes, h, w)
            x = torch.cat([x, maps], 1)
        return self.main(x).view(-1)


def to_torch_state(state_dict):
    """A fastnn state dict as torch tensors (copies)."""
    return {k: torch.from_numpy(np.array(v.numpy())) for k, v in state_dict.items()}


def torch_models(netG, netD):
    """Torch twins of fastnn.gan's generator and discriminator, holding copies of their weights
    and buffers."""
    g = TorchGenerator(netG.nz, netG.ngf, netG.conditional, netG.num_classes)
    d = TorchDiscriminator(netD.ndf, netD.conditional, netD.num_classes)
    g.load_state_dict(to_torch_state(netG.state_dict()))
    d.load_state_dict(to_torch_state(netD.state_dict()))
    return g, d


def torch_discriminator_step(netG, netD, opt_d, criterion, real, z, real_labels=None, fake_labels=None):
    """fastnn.gan.discriminator_step in torch: the same returns."""
    netD.zero_grad()
    out_real = netD(real, real_labels)
    err_real = criterion(out_real, torch.full_like(out_real, 1.0))
    err_real.backward()
    fake = netG(z, fake_labels)
    out_fake = netD(fake.detach(), fake_labels)
    err_fake = criterion(out_fake, torch.full_like(out_fake, 0.0))
    err_fake.backward()
    opt_d.step()
    return fake, err_real.item() + err_fake.item(), out_real.mean().item(), out_fake.mean().item()


def torch_generator_step(netG, netD, opt_g, criterion, fake, fake_labels=None):
    """fastnn.gan.generator_step in torch."""
    netG.zero_grad()
    out = netD(fake, fake_labels)
    err = criterion(out, torch.full_like(out, 1.0))
    err.backward()
    opt_g.step()
    return err.item(), out.mean().item()


def torch_generate(netG, z, labels=None, batch_size=500):
    netG.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(z), batch_size):
            lab = None if labels is None else torch.from_numpy(np.asarray(labels[k : k + batch_size], dtype=np.int64))
            out.append(netG(torch.from_numpy(np.asarray(z[k : k + batch_size])), lab).numpy())
    netG.train()
    return np.concatenate(out)


def train_torch(
    epochs, seed=0, batch_size=64, conditional=False, out_dir=None, log=print, limit=None, nz=100, ngf=64, ndf=64
):
    """train_gan's loop in torch from fastnn's initial weights; the same history keys."""
    from fastnn import metrics

    fG, fD = gan.make_models(seed, conditional, nz, ngf, ndf)
    netG, netD = torch_models(fG, fD)
    opt_g = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = tnn.BCELoss()
    images, labels = gan.training_digits(seed, limit=limit)
    stream = gan.DigitStream(images, labels, batch_size, nz, seed, conditional)
    grid_z, grid_labels = gan.fixed_noise(seed, nz, conditional)
    eval_z, eval_labels = gan.score_noise(seed, 1000, nz, conditional)
    reference = metrics.heldout_digits(seed=seed)
    real_conf = float(metrics.digit_confidence(reference))
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        sums, n = np.zeros(4), 0
        for x, y, z, fake_y in stream:
            real_labels = torch.from_numpy(y) if conditional else None
            fake_labels = torch.from_numpy(fake_y) if conditional else None
            fake, loss_d, d_real, d_fake = torch_discriminator_step(
                netG, netD, opt_d, criterion, torch.from_numpy(x), torch.from_numpy(z), real_labels, fake_labels
            )
            loss_g, _ = torch_generator_step(netG, netD, opt_g, criterion, fake, fake_labels)
            sums += np.array([loss_d, loss_g, d_real, d_fake]) * len(x)
            n += len(x)
        train_s = time.perf_counter() - t0
        samples = gan.to_unit(torch_generate(netG, eval_z, eval_labels))
        logs = {"epoch": epoch, **dict(zip(("loss_d", "loss_g", "d_real", "d_fake"), (sums / n).tolist()))}
        logs["fid"] = float(metrics.digit_fid(samples, reference))
        logs["confidence"] = float(metrics.digit_confidence(samples))
        logs["real_confidence"] = real_conf
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            gan.save_grid(
                torch_generate(netG, grid_z, grid_labels), os.path.join(out_dir, f"samples_epoch_{epoch:03d}.png")
            )
        logs["train_s"] = train_s
        logs["time_s"] = time.perf_counter() - t0
        history.append(logs)
        if log is not None:
            log(
                f"torch epoch {epoch}/{epochs}: loss D {logs['loss_d']:.3f} G {logs['loss_g']:.3f}, "
                f"FID {logs['fid']:.2f}, confident {logs['confidence']:.3f} (held-out {real_conf:.3f}), {train_s:.1f} s"
            )
    return history


def summary(runs):
    """Lines comparing the last epoch of each (framework, seed) run."""
    last = {(r["framework"], r["seed"]): r["history"][-1] for r in runs}
    per_epoch = {(r["framework"], r["seed"]): statistics.mean(h["train_s"] for h in r["history"]) for r in runs}
    seeds = sorted({s for _, s in last})
    lines = ["seed  fastnn FID  torch FID  ratio  fastnn conf  torch conf  real conf  s/epoch fastnn  torch"]
    for s in seeds:
        f, t = last.get(("fastnn", s)), last.get(("torch", s))
        cells = [f"{s:>4}"]
        cells.append(f"{f['fid']:>10.2f}" if f else f"{'-':>10}")
        cells.append(f"{t['fid']:>9.2f}" if t else f"{'-':>9}")
        cells.append(f"{f['fid'] / t['fid']:>5.2f}" if f and t else f"{'-':>5}")
        cells.append(f"{f['confidence']:>11.3f}" if f else f"{'-':>11}")
        cells.append(f"{t['confidence']:>10.3f}" if t else f"{'-':>10}")
        real = (f or t)["real_confidence"]
        cells.append(f"{real:>9.3f}")
        cells.append(f"{per_epoch[('fastnn', s)]:>14.1f}" if f else f"{'-':>14}")
        cells.append(f"{per_epoch[('torch', s)]:>6.1f}" if t else f"{'-':>6}")
        lines.append("  ".join(cells))
    for fw in ("fastnn", "torch"):
        fids = [last[(fw, s)]["fid"] for s in seeds if (fw, s) in last]
        if len(fids) > 1:
            lines.append(
                f"{fw}: FID mean {statistics.mean(fids):.2f}, spread (max - min) {max(fids) - min(fids):.2f}, "
                f"std {statistics.stdev(fids):.2f} over {len(fids)} seeds"
            )
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=gan.DEFAULT_EPOCHS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--which", nargs="+", choices=["fastnn", "torch"], default=["fastnn", "torch"])
    p.add_argument("--conditional", action="store_true")
    p.add_argument("--limit", type=int, help="train on the first N training digits only")
    p.add_argument("--out", default="bench/results/gan", help="sample grids and checkpoints go under here")
    p.add_argument("--json", help="results file (default: <out>/gan-<which>-<seeds>.json)")
    args = p.parse_args(argv)
    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    runs = []
    for seed in args.seeds:
        for fw in args.which:
            out = os.path.join(args.out, f"{fw}-seed{seed}")
            print(f"--- {fw}, seed {seed}, {args.epochs} epochs, {args.threads} thread(s)", flush=True)
            if fw == "fastnn":
                hist = gan.train_gan(
                    args.epochs, seed, conditional=args.conditional, out_dir=out, limit=args.limit, progress=False
                )
            else:
                hist = train_torch(args.epochs, seed, conditional=args.conditional, out_dir=out, limit=args.limit)
            runs.append({"framework": fw, "seed": seed, "epochs": args.epochs, "history": hist})
    for line in summary(runs):
        print(line)
    path = args.json or os.path.join(args.out, f"gan-{'-'.join(args.which)}-{'-'.join(map(str, args.seeds))}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    meta = {"threads": args.threads, "conditional": args.conditional, "limit": args.limit, "torch": torch.__version__}
    with open(path, "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    print(f"wrote {path}")
    return runs


if __name__ == "__main__":
    main(sys.argv[1:])
