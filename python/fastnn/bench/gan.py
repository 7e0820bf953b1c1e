"""GAN benchmark: the DCGAN layers on 28x28 digits, batch 64, and a whole training step.

- conv_transpose2d forward + backward (dx, dw) at the generator's three shapes: 100x1x1 ->
  128x7x7 (7x7 kernel), 128x7x7 -> 64x14x14 and 64x14x14 -> 1x28x28 (4x4, stride 2, padding 1);
- conv2d forward + backward at the discriminator's mirror of them: 1 -> 64 and 64 -> 128 (4x4,
  stride 2, padding 1) and 128x7x7 -> 1 (a 7x7 kernel over the whole image);
- one GAN step: the discriminator on a real and a fake batch, its Adam step, then the generator
  through it with the real label and its Adam step (BCE, Adam lr 2e-4, betas (0.5, 0.999)).

fastnn against PyTorch (NCHW). Every layer case returns (y, dx, dw) flattened and is checked
against the float64 reference; the GAN step returns the discriminator's loss of its first call
(the initial weights), checked against the same step run by fastnn in float64."""

import functools

import numpy as np

import fastnn
from fastnn import nn, ref
from fastnn.nn import functional as F

from ..ref.rounding import EPS32
from .harness import Case, optional, within

torch = optional("torch")

# (kind, B, C_in, H, C_out, kernel, stride, padding): conv_transpose2d's weight is (C_in, C_out, k, k)
LAYERS = [
    ("conv_transpose2d", 64, 100, 1, 128, 7, 1, 0),
    ("conv_transpose2d", 64, 128, 7, 64, 4, 2, 1),
    ("conv_transpose2d", 64, 64, 14, 1, 4, 2, 1),
    ("conv2d", 64, 1, 28, 64, 4, 2, 1),
    ("conv2d", 64, 64, 14, 128, 4, 2, 1),
    ("conv2d", 64, 128, 7, 1, 7, 1, 0),
]


def _bound(desired, magnitude, k):
    return desired, 4 * (np.sqrt(k) + 2) * EPS32 * magnitude


def _layer_case(kind, B, C, H, OC, k, s, p):
    rng = np.random.default_rng([B, C, H, OC, k])
    ct = kind == "conv_transpose2d"
    x = rng.standard_normal((B, C, H, H), dtype=np.float32)
    w = (rng.standard_normal((C, OC, k, k) if ct else (OC, C, k, k), dtype=np.float32) * 0.1).astype(np.float32)
    OH = (H - 1) * s - 2 * p + k if ct else (H + 2 * p - k) // s + 1
    g = rng.standard_normal((B, OC, OH, OH), dtype=np.float32)
    ax, aw, ag = np.abs(x), np.abs(w), np.abs(g)

    def reference(x, w, g):
        """(y, dx, dw) in float64 from conv2d's references (the transposed convolution's forward is
        conv2d's backward-data, its gradients conv2d's forward and backward-weight)."""
        x, w, g = (a.astype(np.float64) for a in (x, w, g))
        if ct:
            y = ref.conv2d_backward_data(x, w, g.shape, s, p)
            return y, ref.conv2d_forward(g, w, None, s, p), ref.conv2d_backward_weight(x, g, w.shape, s, p)
        y = ref.conv2d_forward(x, w, None, s, p)
        return y, ref.conv2d_backward_data(g, w, x.shape, s, p), ref.conv2d_backward_weight(g, x, w.shape, s, p)

    def expected():
        d, m = reference(x, w, g), reference(ax, aw, ag)
        # summed terms per value: taps x channels (forward), x output channels (dx), pixels (dw)
        ks = (C * k * k, OC * k * k, B * max(H, OH) ** 2)
        parts = [_bound(a, b, kk) for a, b, kk in zip(d, m, ks)]
        return np.concatenate([a.ravel() for a, _ in parts]), np.concatenate([b.ravel() for _, b in parts])

    xf, wf, gf = fastnn.tensor(x, requires_grad=True), fastnn.tensor(w, requires_grad=True), fastnn.tensor(g)
    op = F.conv_transpose2d if ct else F.conv2d

    def run_fastnn():
        xf.grad = wf.grad = None
        y = op(xf, wf, None, s, p)
        y.backward(gf)
        return np.concatenate([y.detach().numpy().ravel(), xf.grad.numpy().ravel(), wf.grad.numpy().ravel()])

    impls = {"fastnn": run_fastnn}
    if torch:
        xt, wt, gt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True), torch.tensor(g)
        top = torch.nn.functional.conv_transpose2d if ct else torch.nn.functional.conv2d

        def run_torch():
            xt.grad = wt.grad = None
            y = top(xt, wt, None, s, p)
            y.backward(gt)
            return np.concatenate([y.detach().numpy().ravel(), xt.grad.numpy().ravel(), wt.grad.numpy().ravel()])

        impls["torch"] = run_torch
    flops = 3 * 2.0 * B * C * OC * k * k * (H * H if ct else OH * OH)
    name = f"{kind} fwd+bwd {B}x{C}x{H}x{H}->{OC}x{OH}x{OH} k{k} s{s}"
    return Case(name, impls, within(expected), flops=flops)


def generator(lib, nz=100, ngf=64):
    m = lib.nn
    return m.Sequential(
        m.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False),
        m.BatchNorm2d(ngf * 2),
        m.ReLU(),
        m.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        m.BatchNorm2d(ngf),
        m.ReLU(),
        m.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),
        m.Tanh(),
    )


def discriminator(lib, ndf=64):
    m = lib.nn
    return m.Sequential(
        m.Conv2d(1, ndf, 4, 2, 1, bias=False),
        m.LeakyReLU(0.2),
        m.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        m.BatchNorm2d(ndf * 2),
        m.LeakyReLU(0.2),
        m.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),
        m.Sigmoid(),
    )


def _step(lib, G, D, real, z):
    """One DCGAN step on library lib's modules; returns the discriminator's loss (a float)."""
    optD = lib.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = lib.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = lib.nn.BCELoss()
    ones, zeros = lib.ones(len(real), dtype=real.dtype), lib.zeros(len(real), dtype=real.dtype)

    def step():
        D.zero_grad()
        err_real = bce(D(real).view(-1), ones)
        err_real.backward()
        fake = G(z)
        err_fake = bce(D(fake.detach()).view(-1), zeros)
        err_fake.backward()
        optD.step()
        G.zero_grad()
        bce(D(fake).view(-1), ones).backward()
        optG.step()
        return err_real.item() + err_fake.item()

    return step


def _gan_case(B):
    fastnn.manual_seed(0)
    G, D = generator(fastnn), discriminator(fastnn)
    for m in (*G.modules(), *D.modules()):  # DCGAN's initialisation
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    sg = {k: v.numpy().copy() for k, v in G.state_dict().items()}
    sd = {k: v.numpy().copy() for k, v in D.state_dict().items()}
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (B, 1, 28, 28)).astype(np.float32)
    z = rng.standard_normal((B, 100, 1, 1)).astype(np.float32)
    impls = {"fastnn": _step(fastnn, G, D, fastnn.tensor(real), fastnn.tensor(z))}
    if torch:
        tg, td = generator(torch), discriminator(torch)
        tg.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sg.items()})
        td.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
        impls["torch"] = _step(torch, tg, td, torch.from_numpy(real), torch.from_numpy(z))

    @functools.cache
    def reference():
        G64, D64 = generator(fastnn).double(), discriminator(fastnn).double()
        G64.load_state_dict({k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in sg.items()})
        D64.load_state_dict({k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in sd.items()})
        return _step(fastnn, G64, D64, fastnn.tensor(real.astype(np.float64)), fastnn.tensor(z.astype(np.float64)))()

    def check(loss):  # the first call's loss: the initial weights, float32 against float64
        want = reference()
        assert abs(loss - want) <= 1e-4 * abs(want), f"loss {loss} where float64 gives {want}"

    return Case(f"gan_step dcgan 28x28 b{B}", impls, check, items=B)


def cases(quick=False):
    """The six layers and the GAN step at batch 64 (quick: the GAN step at batch 8 and the 4x4
    stride-2 layers)."""
    if quick:
        return [_layer_case(*LAYERS[1][:1], 8, *LAYERS[1][2:]), _gan_case(8)]
    return [_layer_case(*c) for c in LAYERS] + [_gan_case(64)]
