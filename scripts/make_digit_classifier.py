"""Make python/fastnn/data/digit_classifier.npz: the digit classifier behind fastnn.metrics.

Trains fastnn.demo.MnistCNN with the demo's recipe (fastnn.demo.cnn: seed 0, its default number of
epochs, one thread) on the 4,000 training images of the bundled MNIST subset only; the 1,000 images
fastnn.demo.mnist_splits holds out (fastnn.metrics.heldout_digits) are never trained on. Prints
the held-out accuracy of the trained weights and of the weights as stored, then writes them.

The weights are stored as float16 (half the size of float32; the held-out accuracy is checked to
be unchanged by the rounding) in an .npz of plain arrays, one per state_dict key, written with
fixed member timestamps: the same weights give the same bytes.

    python scripts/make_digit_classifier.py [--out PATH] [--dtype float16|float32]
"""

import argparse
import pathlib
import zipfile

import fastnn
import numpy as np
from fastnn import demo

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "fastnn" / "data" / "digit_classifier.npz"
SEED = 0


def train():
    """(the trained MnistCNN, the held-out accuracy demo.cnn reports)."""
    made = []

    class Recorded(demo.MnistCNN):  # demo.cnn builds its own model: keep a handle on it
        def __init__(self):
            super().__init__()
            made.append(self)

    original = demo.MnistCNN
    demo.MnistCNN = Recorded
    try:
        acc, _ = demo.cnn(seed=SEED)  # the demo's default epochs
    finally:
        demo.MnistCNN = original
    (model,) = made
    return model, acc


def heldout_accuracy(state):
    """Accuracy on demo.mnist_splits' held-out images of an MnistCNN with the given weights."""
    model = demo.MnistCNN()
    model.load_state_dict({k: np.asarray(v, dtype=np.float32) for k, v in state.items()})
    model.eval()
    _, test = demo.mnist_splits(SEED)
    x, y = (t.numpy() for t in test.tensors)
    with fastnn.no_grad():
        pred = np.concatenate([model(fastnn.tensor(x[i : i + 500])).numpy().argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).mean())


def write_npz(path, arrays):
    """np.savez_compressed's format (readable by np.load with allow_pickle=False), with fixed
    member timestamps so that the file depends only on the arrays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arrays[name]), allow_pickle=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=pathlib.Path, default=OUT)
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    args = p.parse_args(argv)
    fastnn.set_num_threads(1)  # one thread: the same sums in the same order on every machine
    model, acc = train()
    state = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}
    stored = {k: v.astype(args.dtype) for k, v in state.items()}
    acc32, acc_stored = heldout_accuracy(state), heldout_accuracy(stored)
    print(f"held-out accuracy: {acc32:.4f} (float32 weights; demo.cnn reported {acc:.4f})")
    print(f"held-out accuracy: {acc_stored:.4f} ({args.dtype} weights, as stored)")
    if acc_stored < acc32:
        raise SystemExit(f"storing {args.dtype} lowers the held-out accuracy; use --dtype float32")
    write_npz(args.out, stored)
    n = sum(v.size for v in stored.values())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {n} {args.dtype} weights)")


if __name__ == "__main__":
    main()
