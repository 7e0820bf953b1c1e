"""docs/torch-compat.md is what scripts/gen_torch_compat.py makes from the code (so it cannot go
stale), and what it says holds: a supported name exists, a name supported in part refuses what
its note says is missing, and a name not supported raises NotImplementedError naming the torch
feature."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import pytest
from conftest import child_env
from fastnn import _compat
from fastnn.distributions import Categorical, Distribution

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gen_torch_compat", ROOT / "scripts" / "gen_torch_compat.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

NAMESPACES = list(_compat.NAMESPACES)


def where(namespace):
    """What a program touches for namespace: a tensor for torch.Tensor, else the module."""
    return fastnn.tensor([1.0]) if namespace == "torch.Tensor" else gen._fastnn_object(_compat.NAMESPACES[namespace])


def test_doc_is_generated_from_the_code():
    assert gen.render() == gen.DOC.read_text(), "docs/torch-compat.md is stale: run scripts/gen_torch_compat.py"


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_supported_names_exist(namespace):
    supported, partial, unsupported = gen.classify(namespace)
    assert set(partial) <= _compat.torch_names(namespace), "PARTIAL names a name torch does not have"
    assert len(supported) + len(partial) + len(unsupported) == len(_compat.torch_names(namespace))
    obj = where(namespace)
    assert [n for n in supported + list(partial) if not hasattr(obj, n)] == []


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_unsupported_names_raise_not_implemented(namespace):
    _, _, unsupported = gen.classify(namespace)
    obj = where(namespace)
    for name in unsupported:
        with pytest.raises(NotImplementedError, match=rf"fastnn has no {re.escape(namespace)}\.{name}\b"):
            getattr(obj, name)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_other_unknown_names_are_plain_attribute_errors(namespace):
    with pytest.raises(AttributeError) as e:
        where(namespace).no_such_name  # noqa: B018
    assert not isinstance(e.value, NotImplementedError)


def test_an_unset_slot_is_not_a_missing_feature():
    t = fastnn.tensor([1.0])
    del t.grad  # an attribute fastnn has, unset: AttributeError, not "fastnn has no torch.Tensor.grad"
    with pytest.raises(AttributeError) as e:
        t.grad  # noqa: B018
    assert not isinstance(e.value, NotImplementedError)


def test_submodules_load_on_first_use():
    assert fastnn.sparse.__name__ == "fastnn.sparse"


# One call per PARTIAL entry that passes what its note says is missing.
x4 = lambda: fastnn.randn(1, 1, 6, 6)
PROBES = {
    ("torch", "einsum"): lambda: fastnn.einsum(fastnn.ones(2), [0], [0]),
    ("torch", "norm"): lambda: fastnn.norm(fastnn.ones(3), p="nuc"),
    ("torch.Tensor", "norm"): lambda: fastnn.ones(3).norm(p="nuc"),
    ("torch.Tensor", "scatter"): lambda: fastnn.zeros(3).scatter(0, fastnn.tensor([0]), fastnn.ones(1), reduce="add"),
    ("torch.distributions", "Categorical"): lambda: Categorical(fastnn.ones(2)).rsample(),
    ("torch.distributions", "Distribution"): lambda: Distribution().rsample(),
    ("torch.nn", "DataParallel"): lambda: pytest.skip("needs two CUDA devices"),
    ("torch.nn", "Embedding"): lambda: nn.Embedding(4, 2, max_norm=1.0),
    ("torch.nn", "Module"): lambda: nn.Linear(2, 2).register_full_backward_hook(lambda *a: None),
    ("torch.nn", "Unflatten"): lambda: nn.Unflatten("features", (2, 2)),
    ("torch.nn", "Upsample"): lambda: nn.Upsample(scale_factor=2, mode="bicubic")(x4()),
    ("torch.nn.functional", "interpolate"): lambda: F.interpolate(
        x4(), scale_factor=2, mode="bilinear", antialias=True
    ),
    ("torch.nn.functional", "normalize"): lambda: F.normalize(fastnn.ones(2, 2), out=fastnn.ones(2, 2)),
    ("torch.nn.functional", "scaled_dot_product_attention"): lambda: F.scaled_dot_product_attention(
        fastnn.ones(1, 2, 3, 4), fastnn.ones(1, 1, 3, 4), fastnn.ones(1, 1, 3, 4), enable_gqa=True
    ),
    # SGD's weight_decay with a sparse gradient: test_optim's sparse SGD tests
    **{
        ("torch.optim", name): (
            lambda name=name: getattr(fastnn.optim, name)([nn.Parameter(fastnn.ones(2))], differentiable=True)
        )
        for name in ("Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "SGD")
    },
}


def test_every_partial_entry_has_a_probe():
    assert sorted(PROBES) == sorted((ns, name) for ns, names in _compat.PARTIAL.items() for name in names)


@pytest.mark.parametrize("key", sorted(PROBES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_partial_names_refuse_what_is_missing(key):
    with pytest.raises(NotImplementedError):
        PROBES[key]()


def test_names_file_is_torchs():
    torch = pytest.importorskip("torch")
    if f"torch {torch.__version__}'s" not in _compat.NAMES_FILE.read_text():
        pytest.skip(f"the names are another torch's; this is {torch.__version__}")
    # a fresh interpreter, as --refresh-names runs: dir(torch) grows as submodules are imported
    script = ROOT / "scripts" / "gen_torch_compat.py"
    out = subprocess.run(
        [sys.executable, str(script), "--print-names"], env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == _compat.NAMES_FILE.read_text()
