"""fastnn.nn against torch.nn (skipped without torch): the seed CNN's loss and gradients, each layer
and loss with copied weights, initialisation statistics, state dicts."""

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import numpy as np
import pytest
from fastnn import Tensor
from fastnn.demo import MnistCNN as Net  # the seed program's CNN (examples/cnn_mnist.py spells it out)


def to_torch(torch, a, grad=False):
    t = torch.from_numpy(np.array(a._data if isinstance(a, Tensor) else a, copy=True))
    return t.requires_grad_() if grad else t


def copy_weights(src_torch, dst):
    dst.load_state_dict({k: v.detach().numpy() for k, v in src_torch.state_dict().items()})


def test_seed_cnn_loss_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    tnn, tF = torch.nn, torch.nn.functional

    class TNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 32, 3, padding=1)
            self.conv2 = tnn.Conv2d(32, 64, 3, padding=1)
            self.fc1 = tnn.Linear(64 * 7 * 7, 128)
            self.fc2 = tnn.Linear(128, 10)

        def forward(self, x):
            x = tF.max_pool2d(tF.relu(self.conv1(x)), 2)
            x = tF.max_pool2d(tF.relu(self.conv2(x)), 2)
            return self.fc2(tF.relu(self.fc1(x.flatten(1))))

    torch.manual_seed(0)
    tnet, net = TNet(), Net()
    copy_weights(tnet, net)
    images, labels = fastnn.data.load_mnist_5k()
    idx = np.random.default_rng(0).permutation(len(labels))[:64]
    x = ((images[idx].astype(np.float32) / 255 - 0.1307) / 0.3081).reshape(64, 1, 28, 28)
    y = labels[idx]
    tloss = tF.cross_entropy(tnet(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    loss = nn.CrossEntropyLoss()(net(Tensor(x)), Tensor(y))
    loss.backward()
    assert abs(loss.item() - tloss.item()) <= 1e-4 * abs(tloss.item())
    tgrads = {k: p.grad.numpy() for k, p in tnet.named_parameters()}
    for k, p in net.named_parameters():
        g, tg = p.grad._data, tgrads[k]
        # the bound: 1e-4 relative, measured on the whole tensor (max error / max |grad|)
        assert np.abs(g - tg).max() <= 1e-4 * np.abs(tg).max(), k


# torch warns (once per process) that its 'same' padding of an even kernel copies the input.
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize(
    "kind",
    [
        "linear",
        "conv",
        "conv_grouped",
        "bn_train",
        "bn_eval",
        "embedding",
        "avgpool",
        "adaptive",
        "gelu",
        "leaky",
        "sigmoid_tanh",
    ],
)
def test_layers_match_torch(kind):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    pairs = {
        "linear": (tnn.Linear(7, 5), nn.Linear(7, 5), (3, 7)),
        "conv": (tnn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 9, 9)),
        "conv_grouped": (
            tnn.Conv2d(4, 6, (3, 2), padding="same", groups=2, bias=False),
            nn.Conv2d(4, 6, (3, 2), padding="same", groups=2, bias=False),
            (2, 4, 6, 7),
        ),
        "bn_train": (tnn.BatchNorm2d(5), nn.BatchNorm2d(5), (4, 5, 3, 3)),
        "bn_eval": (tnn.BatchNorm2d(5), nn.BatchNorm2d(5), (4, 5, 3, 3)),
        "embedding": (tnn.Embedding(10, 4, padding_idx=2), nn.Embedding(10, 4, padding_idx=2), None),
        "avgpool": (tnn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1), (2, 3, 8, 8)),
        "adaptive": (tnn.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool2d(1), (2, 3, 5, 5)),
        "gelu": (tnn.GELU(), nn.GELU(), (4, 6)),
        "leaky": (tnn.LeakyReLU(0.2), nn.LeakyReLU(0.2), (4, 6)),
        "sigmoid_tanh": (tnn.Sequential(tnn.Sigmoid(), tnn.Tanh()), nn.Sequential(nn.Sigmoid(), nn.Tanh()), (4, 6)),
    }
    tm, m, shape = pairs[kind]
    if list(tm.state_dict()):
        copy_weights(tm, m)
    if kind == "bn_eval":
        tm.running_mean.uniform_(-1, 1), tm.running_var.uniform_(0.5, 2)
        copy_weights(tm, m)
        tm.eval(), m.eval()
    if kind == "embedding":
        x = rng.integers(0, 10, (3, 5))
        xt, xf = torch.from_numpy(x), Tensor(x)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
        xt, xf = to_torch(torch, x, True), Tensor(x, requires_grad=True)
    yt, y = tm(xt), m(xf)
    np.testing.assert_allclose(y._data, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    w = rng.standard_normal(y.shape).astype(np.float32)
    (yt * torch.from_numpy(w)).sum().backward()
    (y * Tensor(w)).sum().backward()
    if kind != "embedding":
        np.testing.assert_allclose(xf.grad._data, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (k, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.grad._data, tp.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    for (k, b), (_, tb) in zip(m.named_buffers(), tm.named_buffers()):
        np.testing.assert_allclose(b._data, tb.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"ignore_index": 1},
        {"label_smoothing": 0.1},
        {"weight": True, "label_smoothing": 0.2},
        {"weight": True, "ignore_index": 0, "reduction": "mean"},
    ],
)
def test_losses_match_torch(opts):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4)).astype(np.float32) * 3
    t = rng.integers(0, 4, 6)
    o = dict(opts)
    if o.pop("weight", False):
        wv = rng.random(4).astype(np.float32) + 0.5
        o_t, o_f = dict(o, weight=torch.from_numpy(wv)), dict(o, weight=Tensor(wv))
    else:
        o_t = o_f = o
    for fn_t, fn_f, inp in (
        (tF.cross_entropy, F.cross_entropy, x),
        (tF.nll_loss, F.nll_loss, np.log(np.exp(x) / np.exp(x).sum(1, keepdims=True))),
    ):
        if fn_t is tF.nll_loss and "label_smoothing" in o:
            continue
        inp = inp.astype(np.float32)
        xt, xf = to_torch(torch, inp, True), Tensor(inp, requires_grad=True)
        lt, lf = fn_t(xt, torch.from_numpy(t), **o_t), fn_f(xf, Tensor(t), **o_f)
        np.testing.assert_allclose(lf._data, lt.detach().numpy(), rtol=1e-5, atol=1e-6)
        g = rng.standard_normal(lf.shape).astype(np.float32)
        lt.backward(torch.from_numpy(g))
        lf.backward(Tensor(g))
        np.testing.assert_allclose(xf.grad._data, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_other_losses_and_softmax_match_torch():
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 3, 4)).astype(np.float32)
    b = rng.random((5, 3, 4)).astype(np.float32)
    cases = [
        (lambda m, x, y: m.mse_loss(x, y), True),
        (lambda m, x, y: m.binary_cross_entropy_with_logits(x, y), True),
        (lambda m, x, y: m.softmax(x, 1) * y, False),
        (lambda m, x, y: m.log_softmax(x, -1) * y, False),
        (lambda m, x, y: m.cross_entropy(x, (y * 3).long() if hasattr(y, "long") else y, reduction="sum"), False),
    ]
    for f, _ in cases[:4]:
        xt, xf = to_torch(torch, a, True), Tensor(a, requires_grad=True)
        yt, yf = to_torch(torch, b), Tensor(b)
        lt, lf = f(tF, xt, yt).sum(), f(F, xf, yf).sum()
        np.testing.assert_allclose(lf.item(), lt.item(), rtol=1e-5)
        lt.backward(), lf.backward()
        np.testing.assert_allclose(xf.grad._data, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    # cross-entropy over (N, C, d): class scores along dim 1
    t = rng.integers(0, 3, (5, 4))
    xt, xf = to_torch(torch, a, True), Tensor(a, requires_grad=True)
    lt, lf = tF.cross_entropy(xt, torch.from_numpy(t)), F.cross_entropy(xf, Tensor(t))
    np.testing.assert_allclose(lf.item(), lt.item(), rtol=1e-5)
    lt.backward(), lf.backward()
    np.testing.assert_allclose(xf.grad._data, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_default_initialisation_statistics():
    fastnn.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)  # kaiming_uniform(a=sqrt(5)) on fan_in 400: U(-1/sqrt(400), 1/sqrt(400))
    w = lin.weight._data
    assert np.abs(w).max() <= bound and abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    assert np.abs(lin.bias._data).max() <= bound
    conv = nn.Conv2d(16, 8, 3)
    assert np.abs(conv.weight._data).max() <= 1 / np.sqrt(16 * 9)
    bn = nn.BatchNorm2d(4)
    assert (bn.weight._data == 1).all() and (bn.bias._data == 0).all()
    emb = nn.Embedding(1000, 50)
    assert abs(emb.weight._data.std() - 1) < 0.02


def test_module_api_and_state_dict_round_trip(tmp_path):
    fastnn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    names = [k for k, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    sd = net.state_dict()
    assert list(sd) == names[:4] + ["1.running_mean", "1.running_var", "1.num_batches_tracked"] + names[4:] or set(
        sd
    ) == set(names) | {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    path = tmp_path / "net.npz"
    fastnn.save(sd, path)
    fastnn.manual_seed(1)
    other = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    other.load_state_dict(fastnn.load(path))
    x = fastnn.randn(2, 1, 28, 28)
    net.eval(), other.eval()
    np.testing.assert_array_equal(net(x)._data, other(x)._data)
    with pytest.raises(RuntimeError, match="Missing key"):  # torch's message
        other.load_state_dict({"0.weight": sd["0.weight"]})
    with pytest.raises(RuntimeError, match="size mismatch"):
        nn.Linear(3, 2).load_state_dict({"weight": np.zeros((2, 4)), "bias": np.zeros(2)})
    assert not net.training and all(not m.training for m in net.modules())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert "Conv2d(1, 4" in repr(net)


def test_dropout_train_and_eval():
    fastnn.manual_seed(0)
    d = nn.Dropout(0.25)
    x = Tensor(np.ones((200, 200), np.float32), requires_grad=True)
    y = d(x)
    kept = y._data != 0
    assert abs(kept.mean() - 0.75) < 0.01 and np.allclose(y._data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad._data, y._data)
    d.eval()
    assert d(x) is x


def test_fused_relu_pool_gradient_equals_unfused():
    # F.max_pool2d(F.relu(z)) routes the gradient to z through the pooling backward (relu=True);
    # with relu's output also used elsewhere, both paths must add up
    rng = np.random.default_rng(5)
    z0 = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    z = Tensor(z0, requires_grad=True)
    r = F.relu(z)
    (F.max_pool2d(r, 2).sum() + (r * 2).sum()).backward()
    z2 = Tensor(z0, requires_grad=True)
    r2 = F.relu(z2)
    p2 = F.max_pool2d(r2 * 1.0, 2)  # not a relu node: the plain path
    (p2.sum() + (r2 * 2).sum()).backward()
    np.testing.assert_array_equal(z.grad._data, z2.grad._data)


def test_load_a_torch_state_dict_directly():
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)
    )
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    m.load_state_dict(tm.state_dict())  # torch tensors, as torch.load would give them
    tm.eval(), m.eval()
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(m(Tensor(x))._data, tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 7)])
@pytest.mark.parametrize("track", [True, False])
def test_batchnorm1d_matches_torch(shape, track):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    tm, m = torch.nn.BatchNorm1d(4, track_running_stats=track), nn.BatchNorm1d(4, track_running_stats=track)
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 1
    for mode in ("train", "eval"):
        getattr(tm, mode)(), getattr(m, mode)()
        xt, xf = torch.from_numpy(x.copy()).requires_grad_(), Tensor(x, requires_grad=True)
        yt, y = tm(xt), m(xf)
        np.testing.assert_allclose(y._data, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
        w = rng.standard_normal(shape).astype(np.float32)
        (yt * torch.from_numpy(w)).sum().backward()
        (y * Tensor(w)).sum().backward()
        np.testing.assert_allclose(xf.grad._data, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    if track:
        np.testing.assert_allclose(m.running_var._data, tm.running_var.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 4), (4, 8), (6, 3, 2, 2), (5, 5)])
def test_orthogonal_init(shape, dtype):
    fastnn.manual_seed(0)
    t = fastnn.zeros(*shape, dtype=dtype)
    gain = nn.init.calculate_gain("relu")
    assert nn.init.orthogonal_(t, gain) is t and t.dtype == dtype
    m = t.numpy().reshape(shape[0], -1)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m  # the smaller side is orthonormal
    np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-5)
    first = t.numpy().copy()
    fastnn.manual_seed(0)
    again = nn.init.orthogonal_(fastnn.zeros(*shape, dtype=dtype), gain)  # the same draw from the same seed
    np.testing.assert_array_equal(again.numpy(), first)


def test_trunc_normal_and_eye_init():
    fastnn.manual_seed(0)
    t = nn.init.trunc_normal_(fastnn.zeros(200, 100), mean=0.5, std=1.0, a=-0.5, b=1.0)
    v = t.numpy()
    assert v.min() >= -0.5 and v.max() <= 1.0 and 0.2 < v.mean() < 0.4 and v.std() > 0.3
    e = nn.init.eye_(fastnn.ones(3, 5, dtype=fastnn.float64))
    np.testing.assert_array_equal(e.numpy(), np.eye(3, 5))


def test_init_errors_match_torch():
    torch = pytest.importorskip("torch")
    for name in ("orthogonal_", "eye_"):
        with pytest.raises(ValueError) as theirs:
            getattr(torch.nn.init, name)(torch.zeros(3))
        with pytest.raises(ValueError) as ours:
            getattr(nn.init, name)(fastnn.zeros(3))
        assert str(ours.value) == str(theirs.value)
