"""`fastnn bench --device cuda` (python/fastnn/bench/gpu.py) on the emulated device: every CUDA
case's impls must pass their validators (the timing itself means nothing on the emulator), and
the command must refuse to run without a device."""

import json

from fastnn import cli
from fastnn.bench import gpu, time_interleaved


def test_every_cuda_case_validates_on_the_emulated_device(emulated_gpu):
    results = time_interleaved(gpu.cases(quick=True), repeats=1, min_time=0.0)
    assert {r["case"].split()[0] for r in results} >= {
        "gemm",
        "relu",
        "softmax",
        "cross_entropy",
        "layer_norm",
        "max_pool2d",
        "adam",
    }
    bad = {r["case"]: {k: v.get("error") for k, v in r["impls"].items() if v["status"] != "ok"} for r in results}
    assert not any(bad.values()), bad
    assert all("cupy" in r["impls"] for r in results if r["case"].startswith("gemm"))


def test_the_command_runs_on_the_emulated_device(emulated_gpu, tmp_path, capsys):
    path = tmp_path / "cuda.json"
    assert cli.main(["bench", "--device", "cuda", "--quick", "--repeats", "1", "--json", str(path), "gemm"]) == 0
    out = capsys.readouterr().out
    assert "gemm 64x64x64 (cuda)" in out
    data = json.loads(path.read_text())
    assert data["device"] == "cuda" and data["cuda"]["device_count"] == 1


def test_the_command_needs_a_device(monkeypatch, capsys):
    from fastnn import cuda

    monkeypatch.setattr(cuda, "_module", None)
    monkeypatch.setattr(cuda, "_tried", True)
    assert cli.main(["bench", "--device", "cuda", "gemm"]) == 2
    assert "built without CUDA; nothing was timed" in capsys.readouterr().err
