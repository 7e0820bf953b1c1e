"""The benchmark harness: validation before timing, the gemm tolerance, and the `fastnn bench` command
(--isa re-runs, --plot, --contended)."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import child_env
from fastnn import cli
from fastnn.bench import Case, gemm, harness, time_interleaved, within
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

    case = Case(
        "c", {"fastnn": impl("good", 1.0), "bad": impl("bad", 5.0)}, within(lambda: (np.array([1.0]), 1e-6)), flops=1.0
    )
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
    assert main(["bench", "gemm", "--quick", "--repeats", "1", "--min-time", "0", "--json", str(path)]) == 0
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


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--isa", "sse2"],
        ["bench", "--from-json", "r.json"],
        ["bench", "--device", "cuda", "--isa", "avx2"],
        ["bench", "gemm", "--plot", "p.png", "--from-json", "r.json"],
    ],
)
def test_cli_rejects_bad_bench_arguments(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_isa_above_the_cpu_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(
        cli,
        "_build_info",
        lambda: {"isa_compiled": ["default", "avx2", "avx512"], "isa_supported": ["default", "avx2"]},
    )
    monkeypatch.setattr(cli, "_rerun_at_isa", lambda *a: pytest.fail("re-ran at a refused ISA"))
    assert main(["bench", "gemm", "--quick", "--isa", "avx512", "--json", str(tmp_path / "b.json")]) == 2
    assert "CPU does not support avx512" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_isa_reruns_every_library_at_the_level(tmp_path):
    # a fresh interpreter (the variables are read when each library loads); OPENBLAS_L2_SIZE from
    # the caller must not reach the re-run
    path = tmp_path / "b.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnn.cli",
            "bench",
            "gemm",
            "--quick",
            "--repeats",
            "1",
            "--min-time",
            "0",
            "--isa",
            "default",
            "--json",
            str(path),
        ],
        env=child_env({"OPENBLAS_L2_SIZE": "1048576", harness.ISA_GUARD: ""}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(path.read_text())
    env = d["machine"]["env"]
    assert d["isa"] == "default" and "OPENBLAS_L2_SIZE" not in env
    assert {k: env.get(k) for k in harness.ISA_ENV["default"]} == harness.ISA_ENV["default"]
    assert d["machine"]["fastnn"]["isa_selected"] == "default"
    assert all(r["impls"]["fastnn"]["isa"] == "default" for r in d["results"])
    checks = {c["library"]: c for c in d["isa_checks"]}
    assert checks["fastnn"]["ok"] is True and "isa check: fastnn" in p.stdout
    if "torch (ATen)" in checks:
        assert checks["torch (ATen)"]["ok"] is True
    assert d["machine"]["cpu_model"] and "L1d" in d["machine"]["cpu_caches"]


@pytest.mark.parametrize(
    "text, level",
    [
        ("Intel AVX2", "avx2"),
        ("Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions", "avx512"),
        ("Intel SSE4.1", "default"),
        ("jit:avx2", "avx2"),
        ("brg_conv_fwd:avx512_core", "avx512"),
        ("Intel(R) Advanced Vector Extensions 2 (Intel(R) AVX2) enabled processors", "avx2"),
        ("Intel(R) Architecture processors", None),
        (None, None),
    ],
)
def test_isa_level_read_from_library_text(text, level):
    # oneDNN's and MKL's verbose lines; MKL on a non-Intel CPU names no ISA (not checkable)
    assert harness._level(text) == level


def test_plot_needs_matplotlib_before_timing(monkeypatch, capsys, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a)
    )
    assert (
        main(["bench", "gemm", "--quick", "--plot", str(tmp_path / "p.png"), "--json", str(tmp_path / "b.json")]) == 2
    )
    assert "needs matplotlib" in capsys.readouterr().err and not (tmp_path / "b.json").exists()


def test_plot_png_after_a_run_and_from_json(tmp_path):
    pytest.importorskip("matplotlib")
    path, png, png2 = tmp_path / "b.json", tmp_path / "r.png", tmp_path / "r2.png"
    assert (
        main(["bench", "gemm", "--quick", "--repeats", "1", "--min-time", "0", "--json", str(path), "--plot", str(png)])
        == 0
    )
    assert main(["bench", "--plot", str(png2), "--from-json", str(path)]) == 0
    for p in (png, png2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "text,match",
    [
        (b"\xff", "not a fastnn bench JSON document"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b"[]", "no list of results"),
        (b'{"results": [1]}', "without a case name"),
        (b'{"results": [{"case": "g", "threads": 1, "ratios": {"torch": "fast"}}]}', "not finite numbers"),
        (b'{"results": [], "machine": []}', "'machine'"),
        (b'{"results": [], "threads": "1"}', "'threads'"),
    ],
)
def test_from_json_refuses_what_is_not_a_run(tmp_path, capsys, text, match):
    pytest.importorskip("matplotlib")
    bad = tmp_path / "bad.json"
    bad.write_bytes(text)
    assert main(["bench", "--plot", str(tmp_path / "p.png"), "--from-json", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnn bench --from-json: {bad}") and re.search(match, err), err
    assert not (tmp_path / "p.png").exists()


def test_contended_busy_process_is_gone_after_the_run(tmp_path):
    path = tmp_path / "b.json"
    assert (
        main(["bench", "gemm", "--quick", "--repeats", "1", "--min-time", "0", "--contended", "--json", str(path)]) == 0
    )
    d = json.loads(path.read_text())
    assert d["contended"] is True and d["contended_cpu"] == max(os.sched_getaffinity(0))
    assert not _alive(d["contended_pid"])


def test_busy_core_is_pinned_and_killed_on_an_exception():
    with pytest.raises(RuntimeError, match="boom"):
        with harness.busy_core() as (pid, cpu):
            assert os.sched_getaffinity(pid) == {cpu} and _alive(pid)
            raise RuntimeError("boom")
    assert not _alive(pid)
