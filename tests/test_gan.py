"""fastnn.gan: the DCGAN's shapes, the mechanics of its training step, one step against PyTorch,
a short run that learns, checkpoints, sample grids, `fastnn demo gan` and the example."""

import pathlib
import types

import fastnn
import numpy as np
import pytest
from conftest import load_example, num_threads
from fastnn import gan, nn
from fastnn.tensor import Tensor

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _params(module):
    return {k: p.detach().numpy().copy() for k, p in module.named_parameters()}


def _batch(rng, n=16, nz=100):
    x, y = gan.training_digits(0, limit=n)
    z = rng.standard_normal((n, nz, 1, 1), dtype=np.float32)
    return x, y, z, rng.integers(0, 10, n)


def test_shapes_and_ranges(rng):
    netG, netD = gan.make_models(0)
    z = Tensor(rng.standard_normal((5, 100, 1, 1), dtype=np.float32))
    img = netG(z)
    assert img.shape == (5, 1, 28, 28)
    v = img.detach().numpy()
    assert v.min() >= -1 and v.max() <= 1
    assert netG(Tensor(z.numpy().reshape(5, 100))).shape == (5, 1, 28, 28)  # (N, nz) works too
    out = netD(img).detach().numpy()
    assert out.shape == (5,) and ((out > 0) & (out < 1)).all()
    # the layers of the DCGAN for 28x28: 100 -> 128x7x7 -> 64x14x14 -> 1x28x28, and back
    h = z
    sizes = []
    for m in netG.main:
        h = m(h)
        if isinstance(m, nn.ConvTranspose2d):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(128, 7, 7), (64, 14, 14), (1, 28, 28)]
    assert not any(isinstance(m, nn.Linear) for m in [*netG.modules(), *netD.modules()])


def test_conditional_shapes(rng):
    netG, netD = gan.make_models(0, conditional=True)
    z = Tensor(rng.standard_normal((6, 100), dtype=np.float32))
    labels = Tensor(np.arange(6, dtype=np.int64))
    img = netG(z, labels)
    assert img.shape == (6, 1, 28, 28)
    assert netG.main[0].in_channels == 110 and netD.main[0].in_channels == 11
    out = netD(img, labels)
    assert out.shape == (6,)
    # the label changes the output: the embedding reaches both networks
    other = Tensor(np.arange(6, dtype=np.int64)[::-1].copy())
    assert not np.allclose(netG(z, other).detach().numpy(), img.detach().numpy())
    assert not np.allclose(netD(img, other).detach().numpy(), out.detach().numpy())
    with pytest.raises(ValueError, match="needs the class labels"):
        netG(z)
    with pytest.raises(ValueError, match="needs the class labels"):
        netD(img)
    plainG, plainD = gan.make_models(0)
    with pytest.raises(ValueError, match="unconditional"):
        plainG(z, labels)
    with pytest.raises(ValueError, match="unconditional"):
        plainD(img, labels)


def test_weights_init():
    netG, netD = gan.make_models(3)
    convs = [m for m in [*netG.modules(), *netD.modules()] if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    w = np.concatenate([m.weight.detach().numpy().ravel() for m in convs])
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 5e-4
    bns = [m for m in [*netG.modules(), *netD.modules()] if isinstance(m, nn.BatchNorm2d)]
    scale = np.concatenate([m.weight.detach().numpy() for m in bns])
    assert abs(scale.mean() - 1) < 0.01 and 0.01 < scale.std() < 0.03
    assert all(not m.bias.detach().numpy().any() for m in bns)
    again, _ = gan.make_models(3)
    assert all(np.array_equal(a, b) for a, b in zip(_params(netG).values(), _params(again).values()))


@pytest.mark.parametrize("conditional", [False, True], ids=["plain", "conditional"])
def test_discriminator_step_leaves_generator_alone(rng, conditional):
    netG, netD = gan.make_models(0, conditional, ngf=16, ndf=16)
    opt_g, opt_d = gan.adam(netG), gan.adam(netD)
    x, y, z, fy = _batch(rng)
    lab = (Tensor(y), Tensor(fy)) if conditional else (None, None)
    g0, d0 = _params(netG), _params(netD)
    fake, loss, d_real, d_fake = gan.discriminator_step(netG, netD, opt_d, nn.BCELoss(), Tensor(x), Tensor(z), *lab)
    assert all(p.grad is None for p in netG.parameters())  # the detached fake sends nothing back
    assert all(np.array_equal(g0[k], v) for k, v in _params(netG).items())
    assert all(not np.array_equal(d0[k], v) for k, v in _params(netD).items() if "embedding" not in k)
    assert loss > 0 and 0 < d_real < 1 and 0 < d_fake < 1 and fake.requires_grad
    # the generator step: G changes, D does not (its gradients are left for the next zero_grad)
    loss_g, _ = gan.generator_step(netG, netD, opt_g, nn.BCELoss(), fake, lab[1])
    assert loss_g > 0
    assert all(not np.array_equal(g0[k], v) for k, v in _params(netG).items() if "embedding" not in k)
    d1 = _params(netD)
    assert all(p.grad is not None for p in netD.parameters())
    gan.generator_step(netG, netD, opt_g, nn.BCELoss(), netG(Tensor(z), lab[1]), lab[1])
    assert all(np.array_equal(d1[k], v) for k, v in _params(netD).items())


def test_detached_fake_sends_no_gradient_to_generator(rng):
    netG, netD = gan.make_models(0, ngf=16, ndf=16)
    z = Tensor(rng.standard_normal((8, 100, 1, 1), dtype=np.float32))
    fake = netG(z)
    nn.BCELoss()(netD(fake.detach()), Tensor(np.zeros(8, np.float32))).backward()
    assert all(p.grad is None for p in netG.parameters())
    assert all(p.grad is not None for p in netD.parameters())
    nn.BCELoss()(netD(fake), Tensor(np.ones(8, np.float32))).backward()  # not detached: G gets gradients
    assert all(p.grad is not None and np.abs(p.grad.numpy()).max() > 0 for p in netG.parameters())


# --- one step against PyTorch -------------------------------------------------------------------


def _reference_module():
    pytest.importorskip("torch")
    path = ROOT / "bench" / "gan_torch_reference.py"
    mod = types.ModuleType("gan_torch_reference")
    exec(compile(path.read_text(), str(path), "exec"), mod.__dict__)
    return mod


def _adam_first_step_gap(ga, gb, lr, eps):
    """The largest difference between two first Adam steps taken from gradients ga and gb.

    With the bias corrections, Adam's first step is u(g) = lr * g / (|g| + eps). Its slope
    lr * eps / (|g| + eps)^2 is small where |g| >> eps but lr / eps at g = 0, so a gradient that
    is zero to within float32 rounding can move its parameter by anything up to lr either way.
    By the mean value theorem |u(ga) - u(gb)| <= lr * eps * |ga - gb| / (m + eps)^2, m the
    smallest |g| between ga and gb (0 when their signs differ); and never more than 2 lr."""
    same = np.sign(ga) == np.sign(gb)
    m = np.where(same, np.minimum(np.abs(ga), np.abs(gb)), 0.0)
    return np.minimum(lr * eps * np.abs(ga - gb) / (m + eps) ** 2, 2 * lr)


def _close(name, got, want, rtol):
    """max |got - want| <= rtol * max |want| (a tensor's error measured against its scale: the
    sums behind a convolution's gradient are ordered differently in each library)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err, scale = np.abs(got - want).max(), np.abs(want).max()
    assert err <= rtol * scale, f"{name}: max |diff| {err:.3g} > {rtol:g} * max |ref| {scale:.3g}"


def _record_kinks(module):
    """{activation module: []} filled, on each call of a ReLU / LeakyReLU of the fastnn module,
    with the input and which of its elements take the slope 1 (input > 0)."""
    seen = {}
    for m in module.modules():
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            seen[m] = []
            m.register_forward_pre_hook(lambda mod, inputs: seen[mod].append(inputs[0].detach().numpy() > 0))
    return seen


def _replay_kinks(tmodule, fmodule, seen, flips):
    """Replace the torch module's ReLU / LeakyReLU layers by ones that take, call by call, the
    slope fastnn's matching layer took for each element. Where the two inputs differ in sign
    they are within rounding of the kink, both slopes are right and the values agree to that
    rounding; the element and its |input| relative to the layer's largest are added to flips."""
    import torch

    class Replay(torch.nn.Module):
        def __init__(self, slope, masks):
            super().__init__()
            self.slope, self.masks = slope, masks

        def forward(self, x):
            mask = torch.from_numpy(self.masks.pop(0))
            own = (x > 0).numpy()
            if (own != mask.numpy()).any():
                xs = x.detach().abs().numpy()
                flips.extend((xs[own != mask.numpy()] / xs.max()).tolist())
            return x * torch.where(mask, torch.ones((), dtype=x.dtype), torch.full((), self.slope, dtype=x.dtype))

    fmods = [m for m in fmodule.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    seq = tmodule.main
    acts = [i for i, m in enumerate(seq) if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    assert len(acts) == len(fmods)
    for i, fm in zip(acts, fmods):
        seq[i] = Replay(getattr(fm, "negative_slope", 0.0), seen[fm])


@pytest.mark.parametrize(
    "conditional, ref_dtype",
    [(False, "float64"), (True, "float64"), (False, "float32")],
    ids=["plain-f64", "conditional-f64", "plain-f32"],
)
def test_one_step_matches_pytorch(rng, conditional, ref_dtype):
    """One discriminator step and one generator step with Adam, from the same weights, noise and
    real batch, in fastnn (float32) and in torch: the losses, every gradient, every parameter
    after its step, and BatchNorm's running statistics agree.

    The reference runs in float64 where it can (the measured difference is then fastnn's own
    float32 rounding, about 1e-6 of each tensor's scale; the bound is 1e-4 of it), and in float32
    for the unconditional model (torch's rounding on top of fastnn's, still under 1e-4).
    Parameters after the first Adam step differ by up to _adam_first_step_gap (Adam's first step
    is about lr * sign(g), so a gradient at zero within rounding may step either way) plus 1e-4
    of the parameter or of the step's size lr (for parameters near 0).

    Kinks: of the million inputs to the ReLU / LeakyReLU layers in a step, a few lie within
    float32 rounding of 0, where the slope jumps (1 to 0 or 0.2); one that lands on the other side
    in the two libraries changes every gradient behind it by about 1e-3 of its scale. Both sides
    are right there, so torch replays fastnn's choice of slope per element (_replay_kinks), and
    the test checks that the elements where the libraries' signs differ are within 1e-5 of their
    layer's largest input of 0 (rounding, not a wrong activation)."""
    torch = pytest.importorskip("torch")  # an optional test peer

    ref = _reference_module()
    dtype = getattr(torch, ref_dtype)
    with num_threads(1):
        torch.set_num_threads(1)
        netG, netD = gan.make_models(0, conditional)
        tG, tD = (m.to(dtype) for m in ref.torch_models(netG, netD))
        seen = {**_record_kinks(netG), **_record_kinks(netD)}
        x, y, z, fy = _batch(rng, 64)
        opt_g, opt_d = gan.adam(netG), gan.adam(netD)
        topt_g = torch.optim.Adam(tG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        topt_d = torch.optim.Adam(tD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        g0 = {k: v.detach().numpy().astype(np.float64) for k, v in netG.named_parameters()}
        lab = (Tensor(y), Tensor(fy)) if conditional else (None, None)
        tlab = (torch.from_numpy(y), torch.from_numpy(fy)) if conditional else (None, None)

        fake, *f_d = gan.discriminator_step(netG, netD, opt_d, nn.BCELoss(), Tensor(x), Tensor(z), *lab)
        f_dgrad = {k: p.grad.numpy().copy() for k, p in netD.named_parameters()}
        f_g = gan.generator_step(netG, netD, opt_g, nn.BCELoss(), fake, lab[1])
        f_ggrad = {k: p.grad.numpy().copy() for k, p in netG.named_parameters()}

        flips = []
        _replay_kinks(tG, netG, seen, flips)
        _replay_kinks(tD, netD, seen, flips)
        tx, tz = torch.from_numpy(x).to(dtype), torch.from_numpy(z).to(dtype)
        tfake, *t_d = ref.torch_discriminator_step(tG, tD, topt_d, torch.nn.BCELoss(), tx, tz, *tlab)
        t_dgrad = {k: p.grad.numpy().copy() for k, p in tD.named_parameters()}
        t_g = ref.torch_generator_step(tG, tD, topt_g, torch.nn.BCELoss(), tfake, tlab[1])
        t_ggrad = {k: p.grad.numpy().copy() for k, p in tG.named_parameters()}

    assert all(not masks for masks in seen.values())  # every recorded call was replayed, in order
    assert len(flips) <= 10 and max(flips, default=0) < 1e-5, f"sign differences at activations: {flips}"
    # losses and mean outputs: sums of 64 terms, float32 rounding about 1e-7
    np.testing.assert_allclose(f_d, t_d, rtol=1e-5)
    np.testing.assert_allclose(f_g, t_g, rtol=1e-5)
    np.testing.assert_allclose(fake.detach().numpy(), tfake.detach().numpy(), rtol=0, atol=1e-5)
    for name, grads, tgrads in (("D", f_dgrad, t_dgrad), ("G", f_ggrad, t_ggrad)):
        assert grads.keys() == tgrads.keys()
        for k in grads:
            _close(f"{name} grad {k}", grads[k], tgrads[k], 1e-4)
    tstate = {"G": tG.state_dict(), "D": tD.state_dict()}
    for name, net, grads, tgrads in (("G", netG, f_ggrad, t_ggrad), ("D", netD, f_dgrad, t_dgrad)):
        params = dict(net.named_parameters())
        for k, v in net.state_dict().items():
            got, want = v.numpy().astype(np.float64), tstate[name][k].numpy().astype(np.float64)
            if k in params:
                gap = _adam_first_step_gap(grads[k].astype(np.float64), tgrads[k].astype(np.float64), 2e-4, 1e-8)
                bad = np.abs(got - want) > gap + 1e-4 * (np.abs(want) + 2e-4)  # of the parameter or of its step
                assert not bad.any(), f"{name} {k} after the step: {np.abs(got - want)[bad].max():.3g} off"
            elif k.endswith("num_batches_tracked"):
                assert int(got) == int(want) == (3 if name == "D" else 1)
            else:  # running_mean / running_var
                _close(f"{name} {k}", got, want, 1e-4)
    # every parameter moved by about lr (Adam's first step), so the check above is not vacuous
    moved = np.abs(netG.main[0].weight.detach().numpy() - g0["main.0.weight"])
    assert np.median(moved) > 1e-4


# --- training -----------------------------------------------------------------------------------


def test_streams_and_noise_are_seeded():
    x, y = gan.training_digits(0, limit=100)
    assert x.dtype == np.float32 and x.shape == (100, 1, 28, 28) and x.min() == -1 and x.max() == 1
    a = gan.DigitStream(x, y, 32, 100, seed=5, conditional=True)
    b = gan.DigitStream(x, y, 32, 100, seed=5, conditional=True)
    for _ in range(2):
        ea, eb = list(a), list(b)
        assert len(ea) == len(a) == 4 and [len(t[0]) for t in ea] == [32, 32, 32, 4]
        for ta, tb in zip(ea, eb):
            assert all(np.array_equal(u, v) for u, v in zip(ta, tb))
        seen = np.concatenate([t[0] for t in ea])
        assert np.array_equal(np.sort(seen.reshape(100, -1), 0), np.sort(x.reshape(100, -1), 0))
    assert not np.array_equal(list(a)[0][0], list(a)[0][0])  # a new order each epoch
    z, labels = gan.fixed_noise(0, conditional=True)
    assert z.shape == (80, 100, 1, 1) and list(labels[:9]) == [0] * 8 + [1]
    assert np.array_equal(z[:8], z[8:16])  # one noise per column, one class per row
    assert gan.fixed_noise(0)[0].shape == (64, 100, 1, 1) and gan.fixed_noise(0)[1] is None


def test_training_digits_are_not_the_held_out_ones():
    metrics = pytest.importorskip("fastnn.metrics")
    x, _ = gan.training_digits(0)
    held = metrics.heldout_digits(seed=0)
    assert len(x) == 4000 and held.shape == (1000, 1, 28, 28)
    train = {np.round((im + 1) * 127.5).astype(np.uint8).tobytes() for im in x}
    test = {np.round(im * 255).astype(np.uint8).tobytes() for im in held}
    assert not train & test
    images, _ = fastnn.data.load_mnist_5k()
    assert len(train | test) == len({im.tobytes() for im in images})


@pytest.mark.slow
def test_short_run_improves_fid(tmp_path):
    """Three epochs of networks half as wide (ngf = ndf = 32, about 20 s on one core): the FID of
    the generated digits falls from the first epoch to the last (593 to 450 when written), and
    every epoch wrote its files."""
    pytest.importorskip("fastnn.metrics")
    lines = []
    with num_threads(1):
        hist = gan.train_gan(epochs=3, seed=0, ngf=32, ndf=32, out_dir=str(tmp_path), log=lines.append, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["fid"] < 0.85 * hist[0]["fid"]
    for h in hist:
        assert set(h) >= {"loss_d", "loss_g", "fid", "confidence", "real_confidence", "train_s", "time_s"}
        assert 0 <= h["confidence"] <= 1 and h["real_confidence"] > 0.5
    if gan.image_writer() is not None:
        assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"samples_epoch_00{e}.png" for e in (1, 2, 3)]
    assert any("checkpoint" in line and str(tmp_path) in line for line in lines)
    _, _, state = gan.load_checkpoint(tmp_path / "checkpoint.npz")
    assert state["epoch"] == 3 and [h["fid"] for h in state["history"]] == [h["fid"] for h in hist]


def test_checkpoint_round_trip(tmp_path, rng):
    netG, netD = gan.make_models(1, conditional=True, ngf=16, ndf=16)
    opt_g, opt_d = gan.adam(netG), gan.adam(netD)
    x, y, z, fy = _batch(rng)

    def step(G, D, og, od):
        fake, *_ = gan.discriminator_step(G, D, od, nn.BCELoss(), Tensor(x), Tensor(z), Tensor(y), Tensor(fy))
        gan.generator_step(G, D, og, nn.BCELoss(), fake, Tensor(fy))

    step(netG, netD, opt_g, opt_d)
    cfg = {"nz": 100, "ngf": 16, "ndf": 16, "conditional": True}
    path = tmp_path / "ck.npz"
    gan.save_checkpoint(path, netG, netD, opt_g, opt_d, epoch=1, history=[{"fid": 1.5}], config=cfg)
    G2, D2 = gan.make_models(7, conditional=True, ngf=16, ndf=16)
    og2, od2 = gan.adam(G2), gan.adam(D2)
    assert gan.load_checkpoint(path, G2, D2, og2, od2)[:2] == (G2, D2)
    state = gan.load_checkpoint(path)[2]
    assert state["epoch"] == 1 and state["history"] == [{"fid": 1.5}] and state["config"]["ngf"] == 16
    for a, b in ((netG, G2), (netD, D2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    zs, labels = gan.fixed_noise(0, conditional=True)
    assert np.array_equal(gan.generate(netG, zs, labels), gan.generate(G2, zs, labels))
    # a step after loading continues exactly as one without the round trip (the Adam state came back)
    step(netG, netD, opt_g, opt_d)
    step(G2, D2, og2, od2)
    for a, b in ((netG, G2), (netD, D2)):
        assert all(np.array_equal(u, v) for u, v in zip(_params(a).values(), _params(b).values()))
    with pytest.raises(ValueError, match="not a checkpoint"):
        fastnn.save({"model": {}}, tmp_path / "other.npz")
        gan.load_checkpoint(tmp_path / "other.npz")


def test_save_grid(tmp_path, monkeypatch):
    images = np.linspace(-1, 1, 80 * 28 * 28, dtype=np.float32).reshape(80, 1, 28, 28)
    g = gan.grid(images, nrow=8, padding=2)
    assert g.shape == (10 * 30 + 2, 8 * 30 + 2) and g.dtype == np.uint8
    assert g[:2].max() == 0 and g[2, 2] == 0 and g[-3, -3] == 255  # padding black, first pixel -1, last 1
    if gan.image_writer() is not None:
        path = gan.save_grid(images[:64], str(tmp_path / "g.png"))
        assert path == str(tmp_path / "g.png") and (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(gan, "image_writer", lambda: None)
    assert gan.save_grid(images, str(tmp_path / "none.png")) is None and not (tmp_path / "none.png").exists()


def test_save_grid_with_matplotlib(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(gan, "image_writer", lambda: "matplotlib")
    images = np.zeros((4, 1, 28, 28), np.float32)
    assert gan.save_grid(images, str(tmp_path / "m.png"), nrow=2) == str(tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_no_image_library_is_a_note(tmp_path, monkeypatch):
    pytest.importorskip("fastnn.metrics")
    monkeypatch.setattr(gan, "image_writer", lambda: None)
    lines = []
    with num_threads(1):
        gan.train_gan(epochs=1, limit=32, ngf=8, ndf=8, out_dir=str(tmp_path), log=lines.append, score_samples=200)
    assert any("no image library" in line and "fastnn[gan]" in line for line in lines)
    assert not list(tmp_path.glob("*.png")) and (tmp_path / "checkpoint.npz").exists()


# --- the command and the example ----------------------------------------------------------------


def test_demo_gan_command(tmp_path, capsys):
    pytest.importorskip("fastnn.metrics")
    from fastnn import cli

    out = tmp_path / "run"
    old = fastnn.get_num_threads()
    try:
        rc = cli.main(["demo", "gan", "--epochs", "1", "--limit", "64", "--out", str(out), "--threads", "1"])
    finally:
        fastnn.set_num_threads(old)
    assert rc == 0
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "FID" in text and "held-out digits" in text
    assert str(out / "checkpoint.npz") in text and (out / "checkpoint.npz").exists()
    if gan.image_writer() is not None:
        assert str(out / "samples_epoch_001.png") in text and (out / "samples_epoch_001.png").exists()
    G, D, state = gan.load_checkpoint(out / "checkpoint.npz")
    assert state["config"]["limit"] == 64 and not G.conditional


def test_demo_gan_options(tmp_path, monkeypatch):
    from fastnn import cli

    calls = []
    monkeypatch.setattr(gan, "train_gan", lambda **kw: calls.append(kw) or [])
    old = fastnn.get_num_threads()
    try:
        assert cli.main(["demo", "gan", "--conditional", "--seed", "3", "--out", str(tmp_path), "--threads", "1"]) == 0
        assert cli.main(["demo", "gan", "--epochs", "2"]) == 0
    finally:
        fastnn.set_num_threads(old)
    assert calls[0] == {
        "epochs": gan.DEFAULT_EPOCHS,
        "seed": 3,
        "conditional": True,
        "out_dir": str(tmp_path),
        "limit": None,
    }
    assert calls[1]["epochs"] == 2 and calls[1]["out_dir"] == "dcgan" and not calls[1]["conditional"]
    for bad in (["demo", "gan", "--epochs", "0"], ["demo", "cnn", "--conditional"], ["demo", "cnn", "--out", "x"]):
        with pytest.raises(SystemExit):
            cli.main(bad)


def test_demo_help_names_the_default_epochs(capsys):
    from fastnn import cli

    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    assert f"{gan.DEFAULT_EPOCHS} for gan" in " ".join(capsys.readouterr().out.split())


def test_example_runs(tmp_path, capsys):
    pytest.importorskip("fastnn.metrics")
    with num_threads(1):
        history = load_example("dcgan_mnist").main(["--epochs", "1", "--limit", "64", "--out", str(tmp_path)])
    assert len(history) == 1 and history[0]["fid"] > 0
    assert (tmp_path / "dcgan_checkpoint.npz").exists()
    assert "FID" in capsys.readouterr().out
