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
# fastnn runs its regions on one thread for 50 ms after its threads were preempted (by such a
# spinning pool, among others): the settle outlasts that too.
SETTLE_S = 0.15
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# `fastnn bench --isa LEVEL`: the variable each library reads when it loads, and its spelling of
# LEVEL. "default" is each library's plain SSE path (fastnn's is x86-64 baseline SSE2; the peers'
# lowest is SSE4.1/4.2). OpenBLAS: the core type of a DYNAMIC_ARCH build (Prescott reports Katmai
# in current builds, so Nehalem, SSE4.2, stands for the plain path).
ISA_ENV = {
    "default": {
        "FASTNN_CPU_CAPABILITY": "default",
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "OPENBLAS_CORETYPE": "Nehalem",
    },
    "avx2": {
        "FASTNN_CPU_CAPABILITY": "avx2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
    },
    "avx512": {
        "FASTNN_CPU_CAPABILITY": "avx512",
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "OPENBLAS_CORETYPE": "SkylakeX",
    },
}
# Unset under --isa: a fixed L2 size overrides OpenBLAS's blocking for the core type it runs.
ISA_UNSET = ("OPENBLAS_L2_SIZE",)
# Set (to the level) in the process that `fastnn bench --isa` re-runs with ISA_ENV: no second re-run.
ISA_GUARD = "FASTNN_BENCH_ISA"


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


_MAX_DOCUMENT = 64 << 20  # bytes of a --json document (a full run writes about 100 KB)


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
            raise AssertionError(
                f"{bad.sum()} of {bad.size} elements outside the bound; worst at {i}: "
                f"got {actual[i]:.7g}, want {desired[i]:.7g} (bound {bound[i]:.3g})"
            )

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


_PROBED = {}  # what isa_checks() saw of torch's oneDNN and MKL: {"onednn": level, "mkl": level}


@functools.cache
def backend(impl):
    """The ISA column: the ISA fastnn selected; for a peer its BLAS and the code path it runs, e.g.
    'openblas Haswell' (OpenBLAS's core type), 'mkl; aten avx2; onednn avx2' (torch's CPU
    capability, and oneDNN's / MKL's ISA when isa_checks() saw them)."""
    lib = impl.split("_")[0]
    if lib == SUBJECT:
        return config()["isa_selected"]
    if lib == "numpy":
        name = _short_blas(_numpy_blas()["name"])
        archs = sorted({a for a in _openblas_archs() if a}) if name == "openblas" else []
        return " ".join([name, *archs])
    if lib == "torch" and sys.modules.get("torch"):
        blas = _torch_blas().lower()
        parts = [
            f"{blas} {_PROBED['mkl']}" if _PROBED.get("mkl") and blas == "mkl" else blas,
            f"aten {_torch_capability()}",
        ]
        if _PROBED.get("onednn"):
            parts.append(f"onednn {_PROBED['onednn']}")
        return "; ".join(parts)
    return ""


def _openblas_archs():
    """The core type ('Haswell', 'SkylakeX', ...) of each OpenBLAS loaded, from threadpoolctl."""
    tpc = optional("threadpoolctl")
    return [i.get("architecture") for i in tpc.threadpool_info() if i.get("internal_api") == "openblas"] if tpc else []


def _torch_capability():
    return sys.modules["torch"].backends.cpu.get_cpu_capability().lower()


def _numpy_blas():
    try:  # numpy >= 1.26
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"name": blas["name"], "version": blas.get("version")}
    except Exception:  # noqa: BLE001 - older numpy: the name is only informative
        return {"name": "unknown", "version": None}


def _torch_blas():
    m = re.search(r"BLAS_INFO=(\w+)", sys.modules["torch"].__config__.show())
    return m.group(1) if m else "unknown"


_TORCH_PROBE = """
import torch
torch.set_num_threads(1)
a = torch.randn(64, 64)
torch.mm(a, a)  # MKL's sgemm: MKL_VERBOSE names the code path (on Intel CPUs)
x, w = torch.randn(8, 16, 32, 32), torch.randn(16, 16, 3, 3)
torch.nn.functional.conv2d(x, w)  # large enough that torch runs oneDNN's convolution
"""


_RANK = {"default": 0, "avx": 1, "avx2": 2, "avx512": 3}


def _level(text):
    """The --isa level a library's text names ('AVX-512', 'jit:avx2', 'SSE4.1', ...), else None."""
    t = (text or "").lower().replace("-", "").replace("_", "")
    for key, level in (("avx512", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sse", "default")):
        if key in t:
            return level
    return None


def _probe_torch():
    """oneDNN's and MKL's verbose lines from one matmul and one conv in a fresh interpreter with this
    environment (each prints its ISA when it starts): {'onednn_isa', 'onednn_impl', 'mkl'} or {'error'}."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}
    try:
        p = subprocess.run([sys.executable, "-c", _TORCH_PROBE], env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    if p.returncode:
        return {"error": f"exit {p.returncode}: {p.stderr.strip()[-300:]}"}
    seen = {}
    for line in p.stdout.splitlines():
        if line.startswith("onednn_verbose") and ",isa:" in line:
            seen["onednn_isa"] = line.split(",isa:", 1)[1].strip()
        elif line.startswith("onednn_verbose") and ",exec,cpu,convolution," in line:
            seen["onednn_impl"] = line.split(",exec,cpu,convolution,", 1)[1].split(",")[0]
        elif line.startswith("MKL_VERBOSE") and " architecture " in line:
            # "MKL_VERBOSE oneMKL 2024.0 ... for Intel(R) 64 architecture <processors>, Lnx ..."
            seen["mkl"] = line.split(" architecture ", 1)[1].split(", Lnx")[0].split(", Win")[0].strip()
    return seen


def isa_checks(isa):
    """Whether each library runs at `isa` after `fastnn bench --isa` set ISA_ENV: one dict per
    library with the variable, its value, what the library reports (seen) and how that was read,
    and ok (True/False; None where the library does not say). Also fills the ISA column's detail."""
    want, out = ISA_ENV[isa], []

    def add(library, var, seen, how, ok):
        out.append(
            {"library": library, "variable": var, "value": os.environ.get(var), "seen": seen, "how": how, "ok": ok}
        )

    sel = config()["isa_selected"]
    add("fastnn", "FASTNN_CPU_CAPABILITY", sel, "fastnn.config()['isa_selected']", sel == isa)
    blas = _short_blas(_numpy_blas()["name"])
    archs = _openblas_archs()
    for arch in archs:
        add(
            "OpenBLAS (numpy)",
            "OPENBLAS_CORETYPE",
            arch,
            "threadpoolctl's 'architecture'",
            None if arch is None else arch.lower() == want["OPENBLAS_CORETYPE"].lower(),
        )
    if not archs:
        add(
            "OpenBLAS (numpy)",
            "OPENBLAS_CORETYPE",
            None,
            f"not checkable: no OpenBLAS seen by threadpoolctl (numpy's BLAS: {blas})",
            None,
        )
    torch = optional("torch")
    if torch is None:
        add("torch", "ATEN_CPU_CAPABILITY", None, "torch is not installed", None)
        return out
    cap = _torch_capability()
    add("torch (ATen)", "ATEN_CPU_CAPABILITY", cap, "torch.backends.cpu.get_cpu_capability()", cap == isa)
    probe = _probe_torch()
    if "error" in probe:
        for lib, var in (("oneDNN (torch)", "ONEDNN_MAX_CPU_ISA"), ("MKL (torch)", "MKL_ENABLE_INSTRUCTIONS")):
            add(lib, var, None, f"not checkable: the probe failed ({probe['error']})", None)
        return out
    isa_text, impl = probe.get("onednn_isa"), probe.get("onednn_impl")
    level, impl_level = _level(isa_text), _level(impl)
    # the ceiling oneDNN reports must be the level; the convolution it picked may sit below it
    ok = None if level is None else (level == isa and _RANK[impl_level or "default"] <= _RANK[isa])
    add(
        "oneDNN (torch)",
        "ONEDNN_MAX_CPU_ISA",
        f"isa '{isa_text}', conv {impl}" if isa_text else None,
        "ONEDNN_VERBOSE of one conv in a fresh interpreter"
        if isa_text
        else "not checkable: oneDNN printed no isa line",
        ok,
    )
    mkl = probe.get("mkl")
    mkl_level = _level(mkl)
    add(
        "MKL (torch)",
        "MKL_ENABLE_INSTRUCTIONS",
        mkl,
        "MKL_VERBOSE of one sgemm in a fresh interpreter"
        if mkl_level
        else f"not checkable: MKL_VERBOSE names no ISA on this CPU ({mkl!r}); off Intel CPUs MKL may "
        "ignore the variable (on a Zen 4 its sgemm ran as fast at SSE4_2 as at AVX2)"
        if mkl
        else "not checkable: MKL printed no MKL_VERBOSE line",
        None if mkl_level is None else mkl_level == isa,
    )
    _PROBED.update(onednn=level, mkl=mkl_level)
    backend.cache_clear()
    return out


def isa_check_lines(checks, isa):
    """One printed line per library: variable=value -> what it reports, and ok / MISMATCH."""
    lines = []
    for c in checks:
        setting = f"{c['variable']}={c['value']}"
        verdict = ("ok" if c["ok"] else f"MISMATCH (wanted {isa})") if c["ok"] is not None else ""
        seen = f"{c['seen']} ({c['how']})" if c["ok"] is not None else c["how"]
        lines.append(f"isa check: {c['library']:<17} {setting:<32} -> {seen}" + (f": {verdict}" if verdict else ""))
    return lines


@contextlib.contextmanager
def busy_core():
    """A child process spinning on the last CPU this process may use, for the duration of the block;
    yields (pid, cpu). It is killed and reaped on leaving the block (also on an exception or Ctrl-C),
    and dies by itself if this process is killed (PR_SET_PDEATHSIG, and a parent check)."""
    cpu = max(os.sched_getaffinity(0))
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUSY_LOOP, str(cpu), str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        if proc.stdout.read(1) != b"1":  # it writes "1" once it is pinned and about to spin
            raise RuntimeError(f"the busy process for --contended could not pin itself to CPU {cpu}")
        yield proc.pid, cpu
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


_BUSY_LOOP = """
import ctypes, os, signal, sys
cpu, parent = int(sys.argv[1]), int(sys.argv[2])
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
except Exception:
    pass
os.sched_setaffinity(0, {cpu})
if os.getppid() != parent:
    sys.exit(0)
os.write(1, b"1")
n = 0
while True:
    n += 1
    if n & 0xFFFFF == 0 and os.getppid() != parent:  # the bench is gone: stop (about every 30 ms)
        break
"""


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
            res[impl].update(
                median_ms=med, min_ms=min(times[impl]), times_ms=times[impl], calls_per_sample=number[impl]
            )
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
        result = {
            "case": case.name,
            "threads": fastnn.get_num_threads(),
            "flops": case.flops,
            "bytes": case.bytes,
            "items": case.items,
            "impls": res,
            "ratios": {impl: statistics.median(p / f for p, f in zip(times[impl], subject)) for impl in peers},
            "ratios_of_medians": {impl: res[impl]["median_ms"] / res[SUBJECT]["median_ms"] for impl in peers},
        }
        results.append(result)
        if report:
            report(result)
    return results


COLUMNS = "{:<26} {:<8} {:>10} {:>10} {:>12}"


def _header(peers):
    return (
        COLUMNS.format("case", "impl", "median ms", "min ms", "throughput")
        + "".join(f" {'vs ' + p:>9}" for p in peers)
        + f" {'threads':>7}  ISA"
    )


def _rows(result, peers):
    lines = []
    for impl, r in result["impls"].items():
        if r["status"] != "ok":
            lines.append(
                COLUMNS.format(result["case"], impl, "FAILED", "", "")
                + " " * (10 * len(peers))
                + f" {result['threads']:>7}  {r['isa']}"
            )
            lines.append(f"    {impl}: {r['error']}")
            continue
        rate = (
            f"{r['gflops']:.1f} GF/s"
            if "gflops" in r
            else f"{r['items_per_s']:.0f} img/s"
            if "items_per_s" in r
            else f"{r.get('gbps', 0):.1f} GB/s"
        )
        ratios = "".join(
            f" {result['ratios'][p]:>8.2f}x" if impl == SUBJECT and p in result["ratios"] else f" {'':>9}"
            for p in peers
        )
        lines.append(
            COLUMNS.format(result["case"], impl, f"{r['median_ms']:.4g}", f"{r['min_ms']:.4g}", rate)
            + ratios
            + f" {result['threads']:>7}  {r['isa']}"
        )
    return "\n".join(lines)


def _git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor()
            )
    except OSError:
        return platform.processor()


def cpu_caches():
    """CPU 0's data and unified caches in bytes, e.g. {'L1d': 32768, 'L2': 1048576, 'L3': 33554432}:
    from sysfs, else from glibc's sysconf; {} where neither says."""
    caches = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in sorted(os.listdir(base)):
            d = os.path.join(base, index)
            try:
                with open(os.path.join(d, "level")) as f:
                    level = f.read().strip()
                with open(os.path.join(d, "type")) as f:
                    kind = f.read().strip()
                with open(os.path.join(d, "size")) as f:
                    size = f.read().strip()
            except OSError:
                continue
            if kind == "Instruction" or not size:
                continue
            units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
            scale = units.get(size[-1].upper(), 1)
            caches[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size.rstrip("KMGkmg")) * scale
    except (OSError, ValueError):
        caches = {}
    if not caches and hasattr(os, "sysconf"):
        for key, name in (
            ("L1d", "SC_LEVEL1_DCACHE_SIZE"),
            ("L2", "SC_LEVEL2_CACHE_SIZE"),
            ("L3", "SC_LEVEL3_CACHE_SIZE"),
        ):
            try:
                if (size := os.sysconf(name)) > 0:
                    caches[key] = size
            except (ValueError, OSError):
                pass
    return caches


def machine_info():
    """What the numbers depend on: CPU and its caches, library builds and BLAS, environment, git
    commit."""
    torch, tpc = sys.modules.get("torch"), optional("threadpoolctl")
    status = _git("status", "--porcelain", "--untracked-files=no")
    cfg = config()
    return {
        "cpu_model": _cpu_model(),
        "cpu_caches": cpu_caches(),
        # what fastnn itself detected and blocks the GEMM for (where this build reports them)
        **{f"fastnn_{k}": cfg[k] for k in ("cpu_caches", "gemm_blocking") if k in cfg},
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastnn": cfg,
        "numpy": {"version": np.__version__, "blas": _numpy_blas()},
        "torch": torch
        and {"version": torch.__version__, "blas": _torch_blas(), "mkldnn": torch.backends.mkldnn.is_available()},
        "blas_libraries": tpc and [i for i in tpc.threadpool_info() if i["user_api"] == "blas"],
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "FASTNN_", "KMP_", "GOMP_", "ATEN_", "ONEDNN_", "DNNL_"))
        },
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def notes():
    """Warnings about what would skew or limit the comparison."""
    # under --isa OPENBLAS_CORETYPE is set on purpose (OPENBLAS_L2_SIZE is unset)
    out = [
        f"warning: {v}={os.environ[v]} is set: it slows a current NumPy's OpenBLAS; time NumPy "
        f"without it (env -u {v} ...)"
        for v in OPENBLAS_VARS
        if v in os.environ and not (v == "OPENBLAS_CORETYPE" and os.environ.get(ISA_GUARD))
    ]
    load, cpus = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, os.cpu_count() or 1
    if load >= 1.0:
        out.append(
            f"note: load average {load:.2f} on {cpus} CPUs: other processes compete for the "
            "cores (timings with as many threads as cores suffer most)"
        )
    if importlib.util.find_spec("threadpoolctl") is None:
        out.append(
            "warning: threadpoolctl is not installed: NumPy's BLAS thread count is not "
            "controlled (pip install threadpoolctl)"
        )
    if importlib.util.find_spec("torch") is None:
        out.append("note: torch is not installed: PyTorch is not timed")
    return out


def run(cases, threads=(1,), repeats=10, min_time=0.05, json_path=None, meta=None, contended=False, plot_path=None):
    """Time the cases at each thread count, print the table as it goes, write JSON (when json_path)
    and a bar chart of the ratios (when plot_path). contended: a busy process spins on the last CPU
    while timing (busy_core). Returns the list of per-case results."""
    for line in notes():
        print(line, file=sys.stderr)
    peers = list(dict.fromkeys(i for c in cases for i in c.impls if i != SUBJECT))
    meta = dict(meta or {}, contended=bool(contended))
    results = []
    with busy_core() if contended else contextlib.nullcontext() as busy:
        if busy:
            pid, cpu = busy
            meta.update(contended_pid=pid, contended_cpu=cpu)
            print(
                f"note: --contended: a busy process (pid {pid}) spins on CPU {cpu} of "
                f"{len(os.sched_getaffinity(0))} usable while timing: the kernels run with that "
                "core taken",
                file=sys.stderr,
            )
        print(_header(peers), flush=True)
        for n in threads:
            with num_threads(n):
                results += time_interleaved(
                    cases, repeats, min_time, report=lambda r: print(_rows(r, peers), flush=True)
                )
    doc = {
        **meta,
        "machine": machine_info(),
        "threads": list(threads),
        "repeats": repeats,
        "min_time_s": min_time,
        "results": results,
    }
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {json_path}")
    if plot_path:
        plot(doc, plot_path)
        print(f"wrote {plot_path}")
    return results


def read_document(path):
    """The `fastnn bench --json` document in the file at path, checked to be one (what plot()
    reads has the types it expects): ValueError naming the file and the reason otherwise."""
    import math

    from .._files import json_depth

    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_DOCUMENT + 1)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        if len(raw) > _MAX_DOCUMENT:
            raise ValueError(f"larger than {_MAX_DOCUMENT} bytes")
        text = raw.decode()
        if json_depth(text) > 16:
            raise ValueError("nested deeper than 16 levels")
        doc = json.loads(text)
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError included
        raise ValueError(f"{path}: not a fastnn bench JSON document ({e})") from None

    def bad(what):
        raise ValueError(f"{path}: not a fastnn bench JSON document ({what})")

    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        bad("no list of results")
    if not isinstance(doc.get("machine", {}), dict) or not isinstance(doc.get("isa") or "", str):
        bad("'machine' is not an object or 'isa' not a string")
    threads = doc.get("threads") or []
    if not isinstance(threads, list) or not all(type(t) is int for t in threads):
        bad("'threads' is not a list of counts")
    for r in doc["results"]:
        if not isinstance(r, dict) or not isinstance(r.get("case"), str) or type(r.get("threads")) is not int:
            bad("a result without a case name and a thread count")
        ratios = r.get("ratios", {})
        if not isinstance(ratios, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in ratios.values()
        ):
            bad(f"the ratios of {r['case']!r} are not finite numbers")
    return doc


def plot(doc, path):
    """A bar chart of a run's ratios (a `fastnn bench` JSON document): one bar per case and peer,
    peer time / fastnn time, a line at 1.0x; the title names the CPU, ISA and threads. Needs
    matplotlib (the `plot` extra)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    results = doc.get("results", [])
    several = len({r["threads"] for r in results}) > 1
    labels = [r["case"] + (f" {r['threads']}T" if several else "") for r in results]
    peers = list(dict.fromkeys(p for r in results for p in r.get("ratios", {})))
    width = 0.8 / max(len(peers), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 + 0.35 * len(results) * max(len(peers), 1)), 4.8))
    for j, peer in enumerate(peers):
        xs = [i + (j - (len(peers) - 1) / 2) * width for i, r in enumerate(results) if peer in r.get("ratios", {})]
        ys = [r["ratios"][peer] for r in results if peer in r.get("ratios", {})]
        bars = ax.bar(xs, ys, width, label=f"vs {peer}")
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_xticks(range(len(results)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("peer time / fastnn time (>1: fastnn faster)")
    machine = doc.get("machine", {})
    isa = doc.get("isa")
    isa_text = (
        f"ISA {isa} (every library)"
        if isa
        else f"fastnn ISA {machine.get('fastnn', {}).get('isa_selected', '?')}, peers at their own"
    )
    threads = doc.get("threads") or sorted({r["threads"] for r in results})
    ax.set_title(
        f"{machine.get('cpu_model', 'unknown CPU')}\n{isa_text}, threads "
        f"{', '.join(map(str, threads))}" + (", one core busy (--contended)" if doc.get("contended") else ""),
        fontsize=10,
    )
    if peers:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
