"""Training-step benchmark: one step (forward, cross-entropy, backward, SGD with momentum 0.9) of
the classic MNIST CNN (and its 3x32x32 variant) and of an MLP 784-128-10, batch 64, in fastnn
against PyTorch on NCHW tensors and on channels_last ones. Every implementation starts from the
same weights (fastnn's initialisation copied into the torch models), so the loss each returns
on its first call is validated against the float64 reference forward of fastnn.ref."""

import numpy as np

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn import ref

from .harness import Case, optional

torch = optional("torch")


class CNN(nn.Module):
    def __init__(self, c, hw):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * (hw // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def _torch_cnn(c, hw):
    tnn, tF = torch.nn, torch.nn.functional

    class TCNN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(c, 32, 3, padding=1)
            self.conv2 = tnn.Conv2d(32, 64, 3, padding=1)
            self.fc1 = tnn.Linear(64 * (hw // 4) ** 2, 128)
            self.fc2 = tnn.Linear(128, 10)

        def forward(self, x):
            x = tF.max_pool2d(tF.relu(self.conv1(x)), 2)
            x = tF.max_pool2d(tF.relu(self.conv2(x)), 2)
            return self.fc2(tF.relu(self.fc1(x.flatten(1))))

    return TCNN()


def _ref_loss(kind, sd, x, y):
    """float64 reference loss of the initial weights."""
    if kind == "mlp":
        h = ref.relu_forward(ref.gemm(x, sd["0.weight"], trans_b=True, bias=sd["0.bias"]))
        out = ref.gemm(h, sd["2.weight"], trans_b=True, bias=sd["2.bias"])
    else:
        a = ref.relu_forward(ref.conv2d_forward(x, sd["conv1.weight"], sd["conv1.bias"], padding=1))
        a = ref.max_pool2d_forward(a, 2)[0]
        a = ref.relu_forward(ref.conv2d_forward(a, sd["conv2.weight"], sd["conv2.bias"], padding=1))
        a = ref.max_pool2d_forward(a, 2)[0].reshape(len(x), -1)
        h = ref.relu_forward(ref.gemm(a, sd["fc1.weight"], trans_b=True, bias=sd["fc1.bias"]))
        out = ref.gemm(h, sd["fc2.weight"], trans_b=True, bias=sd["fc2.bias"])
    return float(ref.cross_entropy_forward(out, y))


def _case(kind, batch, c=1, hw=28):
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        name = f"train_step mlp 784-128-10 b{batch}"
    else:
        model = CNN(c, hw)
        x = rng.standard_normal((batch, c, hw, hw)).astype(np.float32)
        name = f"train_step cnn {c}x{hw}x{hw} b{batch}"
    y = rng.integers(0, 10, batch)
    sd = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    opt = fastnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xf, yf = fastnn.Tensor(x), fastnn.Tensor(y)

    def fastnn_step():
        opt.zero_grad()
        loss = F.cross_entropy(model(xf), yf)
        loss.backward()
        opt.step()
        return loss.item()

    impls = {"fastnn": fastnn_step}
    if torch:
        for tag in ("torch", "torch_cl"):
            tm = (
                torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
                if kind == "mlp"
                else _torch_cnn(c, hw)
            )
            tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
            xt, yt = torch.from_numpy(x.copy()), torch.from_numpy(y)
            if tag == "torch_cl":
                if kind == "mlp":
                    continue  # no channels for an MLP
                tm = tm.to(memory_format=torch.channels_last)
                xt = xt.contiguous(memory_format=torch.channels_last)
            topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)

            def torch_step(tm=tm, topt=topt, xt=xt, yt=yt):
                topt.zero_grad()
                loss = torch.nn.functional.cross_entropy(tm(xt), yt)
                loss.backward()
                topt.step()
                return loss.item()

            impls[tag] = torch_step
    want = _ref_loss(kind, sd, x, y)

    def check(loss):  # the first call's loss: the initial weights' forward, float32 vs float64
        assert abs(loss - want) <= 1e-4 * abs(want), f"loss {loss} where the reference gives {want}"

    return Case(name, impls, check, items=batch)


def cases(quick=False):
    """The CNN on 1x28x28 and 3x32x32 and the MLP, batch 64 (quick: batch 8)."""
    b = 8 if quick else 64
    return [_case("cnn", b, 1, 28), _case("cnn", b, 3, 32), _case("mlp", b)]
