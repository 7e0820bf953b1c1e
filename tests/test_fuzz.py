"""The fuzz suite (tests/fuzz; docs/testing.md, "The fuzz suite"): every op of fastnn.ops fuzzed
in a child process of its own (python tests/fuzz/run.py OP), so that a crash ends the child and
this run reports it with the op, the signal and the last case; and the harness's own checks,
with stand-in ops that crash, hang, allocate, compute wrong or refuse in the wrong words."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env
from fastnn import ops
from fuzz.selftest import SELFTESTS
from fuzz.table import KNOWN_FINDINGS, OPS

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "tests" / "fuzz" / "run.py"
PROFILE = os.environ.get("FASTNN_FUZZ_PROFILE", "ci")
# A backstop behind the child's own per-case watchdog (run.py): a hang detector with a limit far
# past any run of the profile, not a statement about speed.
CHILD_TIMEOUT = {"ci": 1200, "release": 6 * 3600}.get(PROFILE, 6 * 3600)


def fuzz_child(op, tmp_path, env=None, profile=PROFILE, timeout=CHILD_TIMEOUT):
    """Runs the fuzzing of op in a child; returns (failure report or None, the child's summary
    (a dict) or None, its stdout + stderr)."""
    log = tmp_path / f"fuzz-{op}.log"
    cmd = [sys.executable, str(RUN), op, "--profile", profile, "--log", str(log)]
    try:
        p = subprocess.run(cmd, env=child_env(env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = _text(e.stdout) + _text(e.stderr)
        return _report(op, f"did not finish within {timeout} s (hung?)", log, out), None, out
    out = p.stdout + p.stderr
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    if p.returncode == 0:
        return None, summary, out
    if p.returncode < 0:
        how = f"died of signal {signal.Signals(-p.returncode).name}"
    else:
        how = f"exited with status {p.returncode}"
    return _report(op, how, log, out), summary, out


def _text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _report(op, how, log, out):
    """What failed: the op, how the child ended, the case it was in, how to replay it."""
    lines = log.read_text().splitlines() if log.exists() else []
    replay = re.search(r"replay: (.*)", out)
    return (
        f"fuzzing fastnn.ops.{op} {how}\n"
        f"last case: {lines[-1] if lines else '(none logged)'}\n"
        f"replay: {replay.group(1) if replay else f'python tests/fuzz/run.py {op} --profile {PROFILE}'}\n"
        f"--- the child's output (end):\n{out[-6000:]}"
    )


def test_every_op_has_a_table_entry():
    missing = sorted(set(ops.__all__) - set(OPS))
    assert not missing, f"no fuzz table entry for fastnn.ops.{', '.join(missing)}: add it to OPS in tests/fuzz/table.py"
    assert sorted(OPS) == sorted(ops.__all__), sorted(set(OPS) - set(ops.__all__))


@pytest.mark.parametrize("op", ops.__all__)
def test_fuzz(op, tmp_path):
    report, summary, _ = fuzz_child(op, tmp_path)
    if report:
        pytest.fail(report, pytrace=False)
    assert summary and summary["cases"] > 0, summary


def test_known_findings_are_documented():
    text = (ROOT / "docs" / "testing.md").read_text()
    for key in KNOWN_FINDINGS:
        assert f"`{key}`" in text, f"KNOWN_FINDINGS[{key!r}] is not listed in docs/testing.md"


# ---- the harness: each kind of failure is caught and reported ----


def test_a_crash_is_reported_with_the_signal_and_the_last_case(tmp_path):
    report, _, _ = fuzz_child("_selftest_segv", tmp_path)
    # AddressSanitizer catches the signal itself, reports it and exits with status 1
    assert report and ("died of signal SIGSEGV" in report or "AddressSanitizer: SEGV" in report), report
    assert "last case: _selftest_segv valid: x=float32[" in report, report


def test_a_hang_is_reported_by_the_watchdog(tmp_path):
    report, _, out = fuzz_child("_selftest_hang", tmp_path, env={"FASTNN_FUZZ_CASE_TIMEOUT": "2"}, timeout=120)
    assert report and "exited with status" in report and "Timeout" in out, report
    assert "last case: _selftest_hang valid: x=float32[" in report, report


def test_a_huge_allocation_is_a_failure(tmp_path):
    report, _, out = fuzz_child("_selftest_huge", tmp_path)
    if "address space: limited" not in out:
        pytest.skip("no address-space limit in the child (AddressSanitizer)")
    assert report and "MemoryError" in report, report


def test_a_wrong_result_is_a_failure(tmp_path):
    report, _, _ = fuzz_child("_selftest_wrong", tmp_path)
    assert report and "wrong result" in report and "_selftest_wrong" in report, report


def test_a_refusal_that_does_not_name_the_op_is_a_failure(tmp_path):
    report, _, _ = fuzz_child("_selftest_unnamed", tmp_path)
    assert report and "does not name _selftest_unnamed" in report, report


def test_selftests_are_not_ops():
    assert not set(SELFTESTS) & set(ops.__all__)
