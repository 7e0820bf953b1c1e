"""Benchmark harness: check every implementation against a float64 reference, then time them interleaved."""
import contextlib
import dataclasses
import datetime
import functools
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import numpy as np

import fastnn
from fastnn._config import config

SUBJECT = "fastnn"  # the impl each peer is compared with in the ratio columns
# With several threads, another library's idle workers keep spinning after its call (OpenBLAS for
# 2^28 cycles, ~75 ms; libgomp up to ~10 ms) and steal cores from the next impl: each sample is
# preceded by this long an untimed run of its own impl, so the previous pool has gone to sleep.
SETTLE_S = 0.1
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclasses.dataclass
class Case:
    """One problem: impls maps a name to a zero-arg callable returning its result; check maps a name
    to a validator (or is one validator for all) that raises AssertionError on a wrong result;
    flops (reported as GFLOP/s) or, for memory-bound cases, bytes (GB/s) of one call, or items
    (reported as items/s, e.g. the images of one training step)."""
    name: str
    impls: dict
    check: object
    flops: float = 0.0
    bytes: float = 0.0
    items: float = 0.0

    def validator(self, impl):
        return self.check[impl] if isinstance(self.check, dict) else self.check


def within(expected):
    """A validator: |actual - desired| <= bound elementwise, where expected() -> (desired, bound) in
    float64 is computed on first use and kept. NaN where a number is expected fails."""
    expected = functools.cache(expected)

    def check(actual):
        desired, bound = expected()
        actual = np.asarray(actual, dtype=np.float64)
        if actual.shape != desired.shape:
            raise AssertionError(f"shape {actual.shape}, expected {desired.shape}")
        bound = np.broadcast_to(bound, desired.shape)
        err = np.abs(actual - desired)
        bad = ~(err <= bound) & ~(np.isnan(actual) & np.isnan(desired))
        if bad.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                worst = np.argmax(np.where(bad, np.nan_to_num(err / bound, nan=np.inf), -1))
            i = tuple(int(j) for j in np.unravel_index(worst, bad.shape))
            raise AssertionError(f"{bad.sum()} of {bad.size} elements outside the bound; worst at {i}: "
                                 f"got {actual[i]:.7g}, want {desired[i]:.7g} (bound {bound[i]:.3g})")
    return check


def optional(name):
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except (ImportError, OSError):
        return None


@contextlib.contextmanager
def num_threads(n):
    """fastnn, torch (when imported) and NumPy's BLAS (through threadpoolctl) use n threads inside."""
    torch, tpc = sys.modules.get("torch"), optional("threadpoolctl")
    saved = fastnn.get_num_threads(), torch and torch.get_num_threads()
    fastnn.set_num_threads(n)
    if torch:
        torch.set_num_threads(n)
    try:
        with tpc.threadpool_limits(n, user_api="blas") if tpc else contextlib.nullcontext():
            yield
    finally:
        fastnn.set_num_threads(saved[0])
        if torch:
            torch.set_num_threads(saved[1])


def _short_blas(name):
    name = name.lower()
    return next((b for b in ("openblas", "mkl", "blis", "accelerate") if b in name), name)


@functools.cache
def backend(impl):
    """The ISA fastnn selected, or the BLAS behind a peer ('openblas', 'mkl'), for the ISA column."""
    lib = impl.split("_")[0]
    if lib == SUBJECT:
        return config()["isa_selected"]
    if lib == "numpy":
        return _short_blas(_numpy_blas()["name"])
    if lib == "torch" and sys.modules.get("torch"):
        return _torch_blas()
    return ""


def _numpy_blas():
    try:  # numpy >= 1.26
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"name": blas["name"], "version": blas.get("version")}
    except Exception:  # noqa: BLE001 - older numpy: the name is only informative
        return {"name": "unknown", "version": None}


def _torch_blas():
    m = re.search(r"BLAS_INFO=(\w+)", sys.modules["torch"].__config__.show())
    return m.group(1) if m else "unknown"


def _sample(fn, number):
    """Seconds per call over `number` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def _calibrate(fn, min_time):
    """Calls per sample so that one sample lasts >= min_time s; the calls also warm up caches."""
    number = 1
    while (t := _sample(fn, number) * number) < min_time:
        number = max(2 * number, math.ceil(1.2 * number * min_time / max(t, 1e-9)))
    return number


def _settle(fn, seconds):
    """Untimed calls for `seconds` (at least one): the impl's caches and threads are hot again."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def _validate(case, impl):
    try:
        case.validator(impl)(case.impls[impl]())
        return {"status": "ok"}
    except Exception as e:  # noqa: BLE001 - any error marks the impl FAILED, never timed
        return {"status": "FAILED", "error": f"{type(e).__name__}: {e}"}


def time_interleaved(cases, repeats, min_time, report=None):
    """Per case: validate each impl's result (a failure is reported, never timed), warm up, then take
    `repeats` samples round-robin (a, b, c, a, b, c, ...), each >= min_time s long and preceded by an
    untimed call (SETTLE_S of calls with several threads). Returns one dict per case with
    median/min/all times (ms per call) per impl; report(result) is called as each case ends."""
    settle = SETTLE_S if fastnn.get_num_threads() > 1 else 0.0
    results = []
    for case in cases:
        res = {impl: _validate(case, impl) for impl in case.impls}
        ok = [impl for impl in case.impls if res[impl]["status"] == "ok"]
        number = {impl: _calibrate(case.impls[impl], min_time) for impl in ok}
        times = {impl: [] for impl in ok}
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(repeats):
                for impl in ok:
                    _settle(case.impls[impl], settle)
                    times[impl].append(_sample(case.impls[impl], number[impl]) * 1e3)
        finally:
            if gc_enabled:
                gc.enable()
        for impl in case.impls:
            res[impl]["isa"] = backend(impl)
        for impl in ok:
            med = statistics.median(times[impl])
            res[impl].update(median_ms=med, min_ms=min(times[impl]), times_ms=times[impl],
                             calls_per_sample=number[impl])
            if case.flops:
                res[impl]["gflops"] = case.flops / med * 1e-6
            if case.bytes:
                res[impl]["gbps"] = case.bytes / med * 1e-6
            if case.items:
                res[impl]["items_per_s"] = case.items / med * 1e3
        subject = times.get(SUBJECT)
        peers = [impl for impl in ok if subject and impl != SUBJECT]
        # Paired: the median over rounds of peer / fastnn within a round, whose samples ran next
        # to each other; a host whose speed drifts between rounds moves both alike.
        result = {"case": case.name, "threads": fastnn.get_num_threads(), "flops": case.flops,
                  "bytes": case.bytes, "items": case.items, "impls": res,
                  "ratios": {impl: statistics.median(p / f for p, f in zip(times[impl], subject))
                             for impl in peers},
                  "ratios_of_medians": {impl: res[impl]["median_ms"] / res[SUBJECT]["median_ms"]
                                        for impl in peers}}
        results.append(result)
        if report:
            report(result)
    return results


COLUMNS = "{:<26} {:<8} {:>10} {:>10} {:>12}"


def _header(peers):
    return (COLUMNS.format("case", "impl", "median ms", "min ms", "throughput")
            + "".join(f" {'vs ' + p:>9}" for p in peers) + f" {'threads':>7}  ISA")


def _rows(result, peers):
    lines = []
    for impl, r in result["impls"].items():
        if r["status"] != "ok":
            lines.append(COLUMNS.format(result["case"], impl, "FAILED", "", "")
                         + " " * (10 * len(peers)) + f" {result['threads']:>7}  {r['isa']}")
            lines.append(f"    {impl}: {r['error']}")
            continue
        rate = (f"{r['gflops']:.1f} GF/s" if "gflops" in r else f"{r['items_per_s']:.0f} img/s"
                if "items_per_s" in r else f"{r.get('gbps', 0):.1f} GB/s")
        ratios = "".join(f" {result['ratios'][p]:>8.2f}x" if impl == SUBJECT and p in result["ratios"]
                         else f" {'':>9}" for p in peers)
        lines.append(COLUMNS.format(result["case"], impl, f"{r['median_ms']:.4g}", f"{r['min_ms']:.4g}",
                                    rate) + ratios + f" {result['threads']:>7}  {r['isa']}")
    return "\n".join(lines)


def _git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()


def machine_info():
    """What the numbers depend on: CPU, library builds and BLAS, environment, git commit."""
    torch, tpc = sys.modules.get("torch"), optional("threadpoolctl")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastnn": config(),
        "numpy": {"version": np.__version__, "blas": _numpy_blas()},
        "torch": torch and {"version": torch.__version__, "blas": _torch_blas(),
                            "mkldnn": torch.backends.mkldnn.is_available()},
        "blas_libraries": tpc and [i for i in tpc.threadpool_info() if i["user_api"] == "blas"],
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "FASTNN_", "KMP_", "GOMP_"))},
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def notes():
    """Warnings about what would skew or limit the comparison."""
    out = [f"warning: {v}={os.environ[v]} is set: it slows a current NumPy's OpenBLAS; time NumPy "
           f"without it (env -u {v} ...)" for v in OPENBLAS_VARS if v in os.environ]
    load, cpus = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, os.cpu_count() or 1
    if load >= 1.0:
        out.append(f"note: load average {load:.2f} on {cpus} CPUs: other processes compete for the "
                   "cores (timings with as many threads as cores suffer most)")
    if importlib.util.find_spec("threadpoolctl") is None:
        out.append("warning: threadpoolctl is not installed: NumPy's BLAS thread count is not "
                   "controlled (pip install threadpoolctl)")
    if importlib.util.find_spec("torch") is None:
        out.append("note: torch is not installed: PyTorch is not timed")
    return out


def run(cases, threads=(1,), repeats=10, min_time=0.05, json_path=None, meta=None):
    """Time the cases at each thread count, print the table as it goes, write JSON (when json_path).
    Returns the list of per-case results."""
    for line in notes():
        print(line, file=sys.stderr)
    peers = list(dict.fromkeys(i for c in cases for i in c.impls if i != SUBJECT))
    print(_header(peers), flush=True)
    results = []
    for n in threads:
        with num_threads(n):
            results += time_interleaved(cases, repeats, min_time,
                                        report=lambda r: print(_rows(r, peers), flush=True))
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump({**(meta or {}), "machine": machine_info(), "threads": list(threads),
                       "repeats": repeats, "min_time_s": min_time, "results": results}, f, indent=1)
        print(f"wrote {json_path}")
    return results
