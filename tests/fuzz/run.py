"""Fuzz one op of fastnn.ops in this process: valid calls against the reference, then mutated
calls (mutations.py). tests/test_fuzz.py runs it in a child process per op, so that a crash
ends only the child; run it by hand to reproduce a failure:

    python tests/fuzz/run.py OP [--profile ci|release] [--seed N] [--log FILE]

--profile (default: $FASTNN_FUZZ_PROFILE, else ci) picks the hypothesis settings: "ci" is small
and derandomized (the same cases every run), "release" runs thousands of cases per op from a
random seed, which it prints; --seed N replays the cases of seed N in either profile. Before
each call the case is appended to the log (default: fuzz-OP.log in the system's temporary
directory), so the last line names the case that a crash or a hang stopped in. Exit status 0
when every case passed; the last line of stdout is a JSON summary (op, cases: the op's calls,
seconds, failures, seed).

Guards: the address space is limited to its size after start-up plus FASTNN_FUZZ_HEADROOM_GIB
(4) GiB, so that an unchecked huge allocation fails at once (a MemoryError, which the
mutations count as a failure) instead of swapping; not under AddressSanitizer, whose shadow
memory needs the address space. And each call has a watchdog: one that has not returned after
FASTNN_FUZZ_CASE_TIMEOUT (60) seconds dumps the stacks and ends the process. This is a hang
detector with a limit hundreds of times any case's run time, not a statement about speed."""

import argparse
import faulthandler
import importlib
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fuzz, conftest, test_<op>

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FLT_MAX = float(np.finfo(np.float32).max)
CASE_TIMEOUT = float(os.environ.get("FASTNN_FUZZ_CASE_TIMEOUT", "60"))
HEADROOM = int(float(os.environ.get("FASTNN_FUZZ_HEADROOM_GIB", "4")) * 2**30)

# Examples per op: valid calls, mutated calls (a mutated example calls the op twice). ci: the
# whole suite in about a minute on two cores; release: thousands per op (about an hour).
PROFILES = {"ci": (40, 200), "release": (1000, 3000)}
_COMMON = dict(
    database=None,  # nothing written next to the sources; a failure is replayed by its seed
    deadline=None,  # no time limits on cases (the watchdog above catches hangs)
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("release", derandomize=False, **_COMMON)


class Failure(AssertionError):
    """A case the op got wrong (the message says how)."""


class Log:
    """The cases, one line each, written (and flushed) before the call."""

    def __init__(self, path):
        self.file = open(path, "w", buffering=1)
        self.cases = 0

    def case(self, line, call=True):
        self.cases += call  # calls of the op (the reference's are logged, not counted)
        self.file.write(line.replace("\n", " ") + "\n")
        self.file.flush()


LOG = None
DUMP = None  # a directory: each failing case's arguments are pickled there (--dump)


def guarded(what, fn, *args, call=True, **kwargs):
    """fn(...) with the case logged first and the watchdog armed around it."""
    LOG.case(what, call)
    faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
    try:
        return fn(*args, **kwargs)
    finally:
        faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------------------------------------
# The verdict on one call


def _names_op(op, msg):
    """The message names the op (fastnn.ops.<op>: ..., or pybind11's "<op>(): incompatible
    function arguments", which lists the types it takes) and says more than that."""
    return op in msg and len(msg) > len(op) + 20


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 0


def _within_memory_policy(op, e):
    """A MemoryError the project allows: "fastnn.ops.<op>: cannot allocate N bytes ..." for N
    bytes this machine has (csrc/bind/alloc.h: more than it has is the op's ValueError), which
    failed here because of the address-space limit. Any other MemoryError is a failure."""
    import re

    m = re.match(rf"fastnn\.ops\.{op}: cannot allocate (\d+) bytes", str(e))
    return bool(m) and int(m.group(1)) <= _physical_memory()


def _result_arrays(v):
    from fuzz.mutations import arrays_in

    return arrays_in(v)


def matched(g, w, what):
    """(got, want) with the non-finite expected values checked (NaN for NaN, the same infinity)
    and then read as 0 in both; structure, shapes and dtypes checked first."""
    from fuzz.mutations import describe_value

    if isinstance(w, dict):  # the reference's own notes for the check
        return g, w
    if w is None:
        if g is not None:
            raise Failure(f"{what}: got {describe_value(g)}, the reference gives None")
        return None, None
    if isinstance(w, (list, tuple)):
        if not isinstance(g, (list, tuple)) or len(g) != len(w):
            raise Failure(f"{what}: got {describe_value(g)}, the reference gives {len(w)} values")
        pairs = [matched(a, b, f"{what}[{i}]") for i, (a, b) in enumerate(zip(g, w))]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(w, float) and not isinstance(w, np.generic):  # grad_norm's Python float
        if not isinstance(g, float):
            raise Failure(f"{what}: got {describe_value(g)}, want a float")
        if not np.isfinite(w) or not np.isfinite(g):
            if not (g == w or (np.isnan(g) and np.isnan(w))):
                raise Failure(f"{what}: got {g!r}, want {w!r}")
            return 0.0, 0.0
        return g, w
    w = np.asarray(w)
    if not isinstance(g, np.ndarray):
        raise Failure(f"{what}: got {describe_value(g)}, want an array of shape {w.shape}")
    if g.shape != w.shape:
        raise Failure(f"{what}: got shape {g.shape}, the reference gives {w.shape}")
    if w.dtype.kind in "iub":
        if g.dtype != np.int64 or not np.array_equal(g, w):
            raise Failure(f"{what}: got {describe_value(g)} {g.reshape(-1)[:8]}, want {w.reshape(-1)[:8]}")
        return g, w
    if g.dtype != np.float32:
        raise Failure(f"{what}: got dtype {g.dtype}, want float32")
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    # a value past the float32 range is, in float32, the infinity of its sign (or the largest
    # float32 when it rounds down to it)
    past = np.isfinite(w64) & (np.abs(w64) > FLT_MAX)
    if past.any():
        ok = (g64 == np.sign(w64) * np.inf) | (g64 == np.sign(w64) * FLT_MAX)
        if not ok[past].all():
            i = tuple(int(j) for j in np.argwhere(past & ~ok)[0])
            raise Failure(f"{what}: got {g64[i]!r} at {i}, want {w64[i]!r} (past the float32 range: its infinity)")
        g = np.where(past, 0, g)
        w64 = np.where(past, 0.0, w64)
        g64 = g.astype(np.float64)
    special = ~np.isfinite(w64)
    bad = (np.isnan(g64) != np.isnan(w64)) | (np.isinf(w64) & (g64 != w64))
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise Failure(
            f"{what}: {int(bad.sum())} non-finite values differ; first at {i}: got {g64[i]!r}, want {w64[i]!r}"
        )
    return np.where(special, 0, g).astype(np.float32), np.where(special, 0.0, w64)


def _same(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "O":
        return True  # compared by the op's refusal or result
    return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def attempt(op, kw, hidden, label, mutation=None):
    """Calls op on kw and judges the answer (see mutations.py); raises Failure. Returns the
    op's return value, or None when a mutated call was refused as it should be."""
    from fuzz.mutations import snapshot

    snap = snapshot(kw)  # the reference's arguments: the values before the call
    try:
        return _attempt(op, kw, snap, hidden, label, mutation)
    except Failure:
        if DUMP:  # the arguments of the failing case, for a look at it in Python
            import pickle

            with open(os.path.join(DUMP, f"{op.name}-{LOG.cases}.pkl"), "wb") as f:
                pickle.dump(dict(op=op.name, label=label, kw=snap, hidden=hidden), f)
        raise


def _attempt(op, kw, snap, hidden, label, mutation):
    from fuzz.mutations import describe

    what = f"{op.name} {label}: {describe(kw)}"
    try:
        ret = guarded(what, _run, op, kw)
    except Exception as e:  # judged below: the kinds the project allows, naming the op
        msg = f"{type(e).__name__}: {e}"
        if mutation is None:
            raise Failure(f"{what}\n  a valid call was refused: {msg}") from e
        allowed = (TypeError, ValueError) + ((IndexError,) if mutation.index else ())
        if isinstance(e, MemoryError) and _within_memory_policy(op.name, e):
            return None
        if not isinstance(e, allowed):
            raise Failure(f"{what}\n  raised {msg} (expected TypeError or ValueError naming the op)") from e
        if not _names_op(op.name, str(e)):
            raise Failure(f"{what}\n  the message does not name {op.name} and what it expected: {msg}") from e
        return None
    if mutation is not None and mutation.must_refuse:
        raise Failure(f"{what}\n  took a read-only output and returned")
    got = op.got(kw, ret)
    results = _result_arrays(got)
    for a in results:
        if a.size > 2**26:
            raise Failure(f"{what}\n  accepted, with a result of shape {a.shape}: too big to check")
    if results and all(a.size == 0 for a in results) and any(max(a.shape, default=0) > 2**24 for a in results):
        return ret  # empty results with a huge dimension (from an empty huge input): nothing to compare

    try:
        want = guarded(f"{op.name} {label}: the reference", _reference, op, snap, hidden, call=False)
    except Exception as e:  # the op took what its reference refuses
        raise Failure(f"{what}\n  accepted, but the reference raises {type(e).__name__}: {e}") from e
    try:
        got_s, want_s = matched(got, want, "result")
        outs = [(n, pos) for n, pos in op.outs.items() if isinstance(kw.get(n), np.ndarray)]
        for n, pos in outs:  # the given out holds the result
            matched(kw[n], want[pos], n)
        op.check(snap, got_s, want_s)
    except AssertionError as e:
        raise Failure(f"{what}\n  wrong result: {e}") from e
    except Exception as e:  # the check cannot read what the op took and returned
        raise Failure(f"{what}\n  accepted, and the check of the result raises {type(e).__name__}: {e}") from e
    # the arguments the op only reads are as they were (unless they share memory with an output)
    writes = op.writes(kw)
    written = [a for n in list(op.outs) + list(writes) for a in _result_arrays(kw.get(n))]
    for n, v in kw.items():
        if n in op.outs or n in writes:
            continue
        for a, before in zip(_result_arrays(v), _result_arrays(snap[n])):
            if any(np.may_share_memory(a, w) for w in written):
                continue
            if not _same(a, before):
                raise Failure(f"{what}\n  changed its input {n}")
    return ret


def _reference(op, kw, hidden):
    """The reference on copies of the arguments, its floating-point warnings silenced (NaN and
    infinities are part of the cases)."""
    import warnings

    from fuzz.mutations import snapshot

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return op.want(snapshot(kw), hidden)


def _run(op, kw):
    """The op with warnings as errors, as pytest runs the project (pyproject.toml)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return op.run(kw)


# ---------------------------------------------------------------------------------------------
# The hypothesis tests of one op


def fuzz(op, profile, seed, examples=None):
    n_valid, n_mutated = examples or PROFILES[profile]
    base = settings.get_profile(profile)
    failures = []

    @settings(base, max_examples=n_valid)
    @given(data=st.data())
    def valid(data):
        case = data.draw(op.case(False), label="case")
        attempt(op, case.kw, case.hidden, "valid")

    @settings(base, max_examples=n_mutated)
    @given(data=st.data())
    def mutated(data):
        from fuzz.mutations import draw_mutation

        case = data.draw(op.case(False), label="case")
        ret = attempt(op, case.kw, case.hidden, "valid (to mutate)")
        m = draw_mutation(data.draw, op, case, op.got(case.kw, ret), lambda: data.draw(op.case(True), label="empty"))
        attempt(op, m.kw, case.hidden if m.hidden is None else m.hidden, f"mutated ({m.label})", m)

    for test in (valid, mutated):
        if seed is not None:
            test = hypothesis_seed(seed)(test)
        try:
            test()
        except Exception as e:  # every test of the op runs; all failures are reported
            import traceback

            failures.append("".join(traceback.format_exception(e)))
    return failures


# ---------------------------------------------------------------------------------------------
# Start-up: the table entry, the address-space limit, the log


def asan():
    """True when AddressSanitizer is loaded (its shadow memory needs the address space)."""
    if os.environ.get("FASTNN_FUZZ_NO_RLIMIT") == "1":
        return True
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return "libasan" in maps or "libclang_rt.asan" in maps


def limit_address_space():
    """RLIMIT_AS = the current size + HEADROOM; returns a line saying what was set."""
    if asan():
        return "address space: no limit (AddressSanitizer)"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return "address space: no limit (no /proc)"
    vm = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + HEADROOM
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return f"address space: limited to {limit / 2**30:.1f} GiB"


def warm_up():
    """One threaded op, so that the thread pool and its stacks exist before the limit."""
    import fastnn

    a = np.ones((256, 256), np.float32)
    fastnn.ops.gemm(a, a)
    fastnn.ops.relu_forward(np.ones(1 << 20, np.float32))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("op", help="a name of fastnn.ops.__all__")
    p.add_argument("--profile", default=os.environ.get("FASTNN_FUZZ_PROFILE", "ci"), choices=sorted(PROFILES))
    p.add_argument("--seed", type=int, default=None, help="replay the cases of this seed")
    p.add_argument("--log", default=None, help="the case log (default: fuzz-OP.log in the temporary directory)")
    p.add_argument("--dump", default=None, help="pickle the arguments of each failing case into this directory")
    p.add_argument(
        "--examples", default=None, help="VALID,MUTATED: the numbers of cases instead of the profile's (a longer run)"
    )
    args = p.parse_args(argv)

    from fuzz.selftest import SELFTESTS
    from fuzz.table import OPS

    global LOG, DUMP
    DUMP = args.dump
    op = OPS.get(args.op) or SELFTESTS.get(args.op)
    if op is None:
        print(f"no fuzz table entry for fastnn.ops.{args.op}: add it to OPS in tests/fuzz/table.py", file=sys.stderr)
        return 2
    seed = args.seed
    if seed is None and args.profile == "release":
        seed = random.SystemRandom().getrandbits(32)
    for module in op.test_modules:
        importlib.import_module(module)
    log = args.log or os.path.join(tempfile.gettempdir(), f"fuzz-{args.op}.log")
    LOG = Log(log)
    faulthandler.enable()  # a crash prints the Python stacks (the case is in the log)
    warm_up()
    print(limit_address_space(), flush=True)
    replay = f"python tests/fuzz/run.py {args.op} --profile {args.profile}" + (
        "" if seed is None else f" --seed {seed}"
    )
    print(f"fuzzing fastnn.ops.{args.op}: profile {args.profile}, seed {seed}; replay: {replay}", flush=True)
    t0 = time.perf_counter()
    examples = tuple(int(n) for n in args.examples.split(",")) if args.examples else None
    failures = fuzz(op, args.profile, seed, examples)
    dt = time.perf_counter() - t0
    for f in failures:
        print(f, file=sys.stderr)
    if failures:
        print(f"FAILED: {len(failures)} of the tests of fastnn.ops.{args.op}; replay: {replay}", file=sys.stderr)
    print(json.dumps(dict(op=args.op, cases=LOG.cases, seconds=round(dt, 2), failures=len(failures), seed=seed)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
