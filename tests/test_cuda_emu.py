"""The CUDA kernels (csrc/cuda/*.cu) compiled as host C++ and run by the emulator
(csrc/cuda/emu), against the CPU kernels and the float64 references, in the three fiber orders;
and the emulator's own reports of CUDA misuse (csrc/cuda/emu/selftest.cu).

The module is built only with -DFASTNN_CUDA_EMULATION=ON (docs/cuda-emulator.md); without it these
tests skip, unless FASTNN_REQUIRE_CUDA_EMU=1 (CI), where its absence fails."""

import os

import numpy as np
import pytest
from conftest import Device, dev, order, randn  # noqa: F401 (dev, order: fixtures, for the files that import them here)

if os.environ.get("FASTNN_REQUIRE_CUDA_EMU") == "1":
    import _fastnn_cuda_emu as emu
else:
    emu = pytest.importorskip("_fastnn_cuda_emu")

# FASTNN_EMU_ORDERS=random (a comma-separated subset) runs fewer: CI's sanitizer build takes one.
ORDERS = os.environ.get("FASTNN_EMU_ORDERS", "forward,reverse,random").split(",")


# ---- The emulator catches CUDA misuse ----


def test_control_kernel_is_correct_in_every_order(order):
    x = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(emu.selftest("neighbour_sum", x), x + np.roll(x, -1))
    np.testing.assert_array_equal(emu.selftest("warp_sum", x)[:2], [x[:32].sum(), x[32:].sum()])


TSAN = os.environ.get("FASTNN_EMU_TSAN") == "1"  # set by CI's ThreadSanitizer build


@pytest.mark.skipif(TSAN, reason="a deliberate race: under ThreadSanitizer see test_tsan_reports")
def test_missing_barrier_shows_as_order_dependent_results():
    """Without __syncthreads a thread reads its neighbour's slot before it is written in one
    order (the NaN poison of dynamic shared memory) and after in another."""
    x = np.arange(64, dtype=np.float32)
    results = {}
    for o in ("forward", "reverse"):
        os.environ["FASTNN_EMU_ORDER"] = o
        try:
            results[o] = emu.selftest("missing_barrier", x)
        finally:
            del os.environ["FASTNN_EMU_ORDER"]
    assert np.isnan(results["forward"]).any()
    assert not np.array_equal(results["forward"], results["reverse"], equal_nan=True)


@pytest.mark.parametrize(
    "name,needle",
    [
        ("early_return", "is not reached by every thread of its block"),
        ("divergent_barriers", "divergent __syncthreads"),
        ("shuffle_from_exited", "which has exited"),
        ("shuffle_outside_mask", "outside the mask"),
        ("too_many_threads", "2048 threads per block"),
    ],
)
def test_misuse_is_reported_with_its_place(order, name, needle):
    with pytest.raises(RuntimeError, match=needle) as e:
        emu.selftest(name, np.arange(64, dtype=np.float32))
    assert "csrc/cuda/emu/selftest.cu:" in str(e.value)


def test_atomic_cross_block_sum(order):
    x = np.arange(1, 9, dtype=np.float32)
    assert emu.selftest("cross_block_atomic", x)[0] == x.sum()


@pytest.mark.skipif(not TSAN, reason="needs the ThreadSanitizer build (CI)")
@pytest.mark.parametrize(
    "name,race",
    [("cross_block_race", True), ("missing_barrier", True), ("cross_block_atomic", False), ("neighbour_sum", False)],
)
def test_tsan_reports(name, race):
    """Under ThreadSanitizer a race between blocks (a non-atomic +=) and between the threads of
    a block (no barrier between a shared-memory write and another thread's read) are reported;
    the atomic and barrier versions are not. In a subprocess, as a report fails the process."""
    import subprocess
    import sys

    code = f"import numpy as np, _fastnn_cuda_emu as e; e.selftest({name!r}, np.arange(1, 65, dtype=np.float32))"
    env = dict(os.environ, FASTNN_EMU_WORKERS="2")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    reported = "ThreadSanitizer: data race" in r.stderr
    assert reported == race, r.stderr[-3000:]
    if race:
        assert "selftest.cu" in r.stderr
