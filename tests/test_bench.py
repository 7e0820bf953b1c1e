"""The benchmark harness: validation before timing, the gemm tolerance, and the `fastnn bench` command."""
import json

import numpy as np
import pytest

from fastnn.bench import Case, gemm, time_interleaved, within
from fastnn.cli import main


def test_within_checks_bound_shape_and_nan():
    check = within(lambda: (np.array([1.0, 2.0]), 0.1))
    check(np.array([1.05, 1.95], np.float32))
    for bad in ([1.0, 2.2], [1.0, np.nan], [1.0]):
        with pytest.raises(AssertionError):
            check(np.array(bad))


def test_failed_impl_is_reported_and_never_timed():
    calls = {"good": 0, "bad": 0}

    def impl(name, value):
        def f():
            calls[name] += 1
            return np.array([value])
        return f

    case = Case("c", {"fastnn": impl("good", 1.0), "bad": impl("bad", 5.0)},
                within(lambda: (np.array([1.0]), 1e-6)), flops=1.0)
    (r,) = time_interleaved([case], repeats=3, min_time=0.0)
    assert r["impls"]["bad"]["status"] == "FAILED" and "median_ms" not in r["impls"]["bad"]
    assert calls["bad"] == 1
    assert len(r["impls"]["fastnn"]["times_ms"]) == 3 and r["ratios"] == {}


@pytest.mark.parametrize("make", [gemm.gemm_case, gemm.linear_case])
def test_gemm_validator_catches_one_dropped_term(make):
    case = make(64, 128, 10)
    out = case.impls["fastnn"]().copy()
    case.check(out)
    out[3, 4] += 0.5  # about one product term of N(0,1) inputs; the bound here is < 1e-3
    with pytest.raises(AssertionError):
        case.check(out)


def test_cli_quick(tmp_path):
    path = tmp_path / "b.json"
    assert main(["bench", "gemm", "--quick", "--repeats", "1", "--min-time", "0",
                 "--json", str(path)]) == 0
    d = json.loads(path.read_text())
    assert d["ops"] == ["gemm"] and d["machine"]["fastnn"]["isa_selected"]
    assert all(r["impls"]["fastnn"]["status"] == "ok" for r in d["results"])


@pytest.mark.parametrize("op", ["train", "softmax", "rnn", "layernorm", "embedding"])
def test_cli_quick_new_ops(tmp_path, op):
    # the training-step and softmax cases validate (first-call loss against the float64
    # reference forward; results against the reference) before they are timed
    path = tmp_path / "b.json"
    assert main(["bench", op, "--quick", "--repeats", "1", "--min-time", "0", "--json", str(path)]) == 0
    d = json.loads(path.read_text())
    assert all(r["status"] == "ok" for res in d["results"] for r in res["impls"].values())
    if op == "train":
        assert all(res["impls"]["fastnn"]["items_per_s"] > 0 for res in d["results"])


def test_cli_demo(capsys):
    import fastnn
    before = fastnn.get_num_threads()
    try:
        assert main(["demo", "cnn", "--epochs", "1", "--threads", "1"]) == 0
    finally:
        fastnn.set_num_threads(before)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "held-out" in out
