"""fastnn.train: fit, evaluate, checkpoints (resume is exact), save/load without pickle, the demo."""

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
import numpy as np
import pytest
from fastnn import train
from fastnn.data import DataLoader, TensorDataset


def _setup(seed=0):
    fastnn.manual_seed(seed)
    rng = np.random.default_rng(0)  # the same data every time
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, 1, 0.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    return model, opt, sched, loader


def test_fit_learns_and_reports():
    model, opt, sched, loader = _setup()
    seen = []

    class CB:
        def on_epoch_end(self, epoch, logs):
            seen.append(epoch)

    hist = train.fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        loader,
        epochs=4,
        val_loader=loader,
        scheduler=sched,
        callbacks=[CB()],
        log=None,
    )
    assert seen == [0, 1, 2, 3] and len(hist) == 4
    assert hist[-1]["loss"] < hist[0]["loss"] and hist[-1]["val_accuracy"] > 0.8
    assert abs(opt.param_groups[0]["lr"] - 0.1 * 0.5**4) < 1e-12
    ev = train.evaluate(model, loader, nn.CrossEntropyLoss())
    assert set(ev) == {"loss", "accuracy"} and model.training


def test_resume_from_checkpoint_is_exact(tmp_path):
    model, opt, sched, loader = _setup()
    train.fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=3, scheduler=sched, log=None)
    straight = [p._data.copy() for p in model.parameters()]

    ck = str(tmp_path / "ck.npz")
    model, opt, sched, loader = _setup()
    train.fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=1, scheduler=sched, checkpoint=ck, log=None)
    model, opt, sched, loader = _setup(seed=99)  # fresh objects, other weights and generator state
    hist = train.fit(
        model, nn.CrossEntropyLoss(), opt, loader, epochs=3, scheduler=sched, checkpoint=ck, resume=True, log=None
    )
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for a, b in zip(straight, model.parameters()):
        np.testing.assert_array_equal(a, b._data)


def test_save_load_never_unpickles(tmp_path):
    obj = {"a": fastnn.ones(2, 3), "b": [1, 2.5, "x", None, True], "c": (np.arange(3),), "d": {"e": float("inf")}}
    p = tmp_path / "o.npz"
    fastnn.save(obj, p)
    back = fastnn.load(p)
    np.testing.assert_array_equal(back["a"].numpy(), np.ones((2, 3)))
    assert back["b"] == [1, 2.5, "x", None, True] and back["d"]["e"] == float("inf")
    np.testing.assert_array_equal(back["c"][0], np.arange(3))
    np.savez(tmp_path / "evil.npz", x=np.array([object()], dtype=object))
    with pytest.raises(ValueError):
        fastnn.load(tmp_path / "evil.npz")  # object arrays would need pickle: refused
    with pytest.raises(TypeError):
        fastnn.save({"f": object()}, tmp_path / "no.npz")


def test_demo_cnn_reaches_97_percent():
    from fastnn import demo

    acc, hist = demo.cnn(epochs=12, seed=0, log=None)
    assert acc >= 0.97, hist


def _load_example(source, name):
    import types

    mod = types.ModuleType(name)
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod


EXAMPLE = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "cnn_mnist.py"


def test_seed_program_runs_on_fastnn():
    acc = _load_example(EXAMPLE.read_text(), "cnn_mnist").main(epochs=1)
    assert acc > 0.8


def test_seed_program_is_pytorch_code_with_other_imports():
    # the same file with the imports switched back runs on PyTorch: only the imports differ
    pytest.importorskip("torch")
    src = EXAMPLE.read_text()
    swaps = {
        "import fastnn as torch\n": "import torch\n",
        "import fastnn.nn as nn\n": "import torch.nn as nn\n",
        "import fastnn.nn.functional as F\n": "import torch.nn.functional as F\n",
        "import fastnn.optim as optim\n": "import torch.optim as optim\n",
        "from fastnn.utils.data import DataLoader, TensorDataset\n": "from torch.utils.data import DataLoader, TensorDataset\n",
    }
    for a, b in swaps.items():
        assert a in src
        src = src.replace(a, b)
    body = src.split("from fastnn.data import load_mnist_5k\n", 1)[1]
    assert "fastnn" not in body  # nothing else names fastnn
    acc = _load_example(src, "cnn_mnist_torch").main(epochs=1)
    assert acc > 0.8
