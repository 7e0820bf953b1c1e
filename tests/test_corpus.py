"""The corpus of classic PyTorch training programs (tests/corpus): each runs unchanged on fastnn
(only its import lines rewritten) and, where torch is installed, matches torch's losses and
final gradients from the same initial weights and data.

Randomness torch and fastnn cannot share (their generators differ) is kept out of the compared
runs: dropout runs with p=0 there, and the DataLoader program takes an ordered split and
unshuffled batches; noise a model consumes (VAE, GAN) is drawn with NumPy inside the program.
The fastnn-only run uses each program's own settings (dropout, shuffling and random_split on)."""

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from corpus import runner


@dataclass
class Case:
    steps: int = 10
    build: dict = field(default_factory=dict)  # the compared run's build_model options
    train: dict = field(default_factory=dict)  # and train options
    decreases: bool = True  # the fastnn-only run's loss goes down (not for a GAN's)
    xfail: str = ""  # the missing fastnn feature the program needs
    raises: type = Exception  # and the error that missing feature raises


CASES = {
    "mlp_classifier": Case(),
    "cnn_classifier": Case(build={"dropout": 0.0}),
    "gru_classifier": Case(),
    "lstm_sine": Case(),
    "vae": Case(),
    "gan": Case(decreases=False),
    "transformer_lm": Case(steps=5, build={"dropout": 0.0}),
    "seq2seq_transformer": Case(steps=5, build={"dropout": 0.0}),
    "matrix_factorization": Case(),
    "float64_regression": Case(),
    # LBFGS runs 5 evaluations a step; by the third step the gradients are rounding noise
    "lbfgs_fit": Case(steps=2),
    "dataloader_scheduler": Case(steps=2, build={"dropout": 0.0}, train={"shuffle": False}),
    # programs in the style of the classic public examples
    "mnist_cnn": Case(steps=8, build={"dropout": 0.0}),  # two Adadelta epochs, a StepLR step between
    "word_language_model": Case(steps=5, build={"dropout": 0.0}),
    "time_sequence_prediction": Case(steps=2),  # LBFGS: as lbfgs_fit
    "polynomial_regression": Case(),
    "rnn_mnist_classifier": Case(steps=6),
    "siamese_network": Case(steps=5),
    "super_resolution": Case(steps=5),
    "dcgan": Case(steps=3, decreases=False),
    "finetune_pipeline": Case(steps=6, build={"dropout": 0.0}),  # the backbone unfrozen at step 4
    "resnet_imagenet_style": Case(steps=4),
    # policy gradients: the compared runs draw actions with NumPy; the returns are not a loss that falls
    "reinforce": Case(steps=3, build={"dropout": 0.0}, decreases=False),
    "actor_critic": Case(steps=3, decreases=False),
}

# float32: losses to 1e-5 relative; a gradient to 1e-4 of its norm, floored at 1e-3 of the
# largest gradient's norm, as a gradient that is zero in exact arithmetic (the key bias of
# attention, softmax being shift invariant) is rounding noise in both. float64: 1e-10 for both.
TOLERANCES = {np.dtype(np.float32): (1e-5, 1e-4), np.dtype(np.float64): (1e-10, 1e-10)}


def marks(name):
    case = CASES[name]
    return [pytest.mark.xfail(strict=True, reason=case.xfail, raises=case.raises)] if case.xfail else []


PARAMS = [pytest.param(name, marks=marks(name), id=name) for name in CASES]


def test_every_program_has_a_case():
    assert sorted(CASES) == runner.PROGRAMS


@pytest.mark.parametrize("name", PARAMS)
def test_runs_on_fastnn(name, capsys):
    losses = runner.load(name, "fastnn").main()
    assert all(math.isfinite(v) for v in losses)
    if CASES[name].decreases:
        assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", PARAMS)
def test_matches_torch(name):
    pytest.importorskip("torch")
    case = CASES[name]
    expected, actual = runner.run_pair(name, case.steps, case.build, case.train)
    dtype = next(g.dtype for g in expected["grads"].values() if g is not None)
    loss_rtol, grad_rtol = TOLERANCES[dtype]
    np.testing.assert_allclose(actual["losses"], expected["losses"], rtol=loss_rtol, atol=0)
    assert actual["grads"].keys() == expected["grads"].keys()
    floor = 1e-3 * max(np.linalg.norm(g) for g in expected["grads"].values() if g is not None)
    for key, want in expected["grads"].items():
        got = actual["grads"][key]
        assert (got is None) == (want is None), key
        if want is None:
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, key
        err = np.linalg.norm(got.astype(np.float64) - want) / max(np.linalg.norm(want), floor)
        assert err <= grad_rtol, f"{key}: gradient differs by {err:.3g} of its norm"


def test_import_rewriting():
    src = "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader\n  import torch.nn\nx = 'import torch'\n"
    assert runner.to_fastnn(src) == (
        "import fastnn as torch\nimport fastnn.nn as nn\nfrom fastnn.utils.data import DataLoader\n"
        "  import fastnn.nn; import fastnn as torch\nx = 'import torch'\n"
    )
    with pytest.raises(ValueError, match="cannot rewrite"):
        runner.to_fastnn("import numpy, torch\n")
