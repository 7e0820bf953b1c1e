"""Per-call overhead of small fastnn calls, one or more builds side by side.

    python bench/overhead.py --build new=python [--build old=OTHER/python ...] [--rounds 21]

Each --build NAME=DIR names a directory that holds a `fastnn` package (a source checkout's
`python/` with its built modules). One worker process per build imports that fastnn (one thread:
OMP_NUM_THREADS=1 and fastnn.set_num_threads(1)) and times the cases below with timeit; the
workers take turns, one sample of one case at a time, so that a slow drift of a shared machine
hits every build alike. The table gives the median (and the minimum) over the rounds of the
time per call in microseconds. The arrays are tiny: what is timed is the work around the kernel
(argument checks, output allocation, the Python wrapper). See bench/README.md.
"""

import argparse
import os
import statistics
import subprocess
import sys

# name: (setup, statement, calls per sample)
CASES = {
    "gemm 4x4": ("a = f(4, 4); b = f(4, 4)", "ops.gemm(a, b)", 200_000),
    "gemm 4x4 out=": ("a = f(4, 4); b = f(4, 4); o = f(4, 4)", "ops.gemm(a, b, out=o)", 200_000),
    "relu 4x4": ("x = f(4, 4)", "ops.relu_forward(x)", 200_000),
    "lstm_cell_forward B=1 I=H=4": (
        "x = f(1, 4); h = f(1, 4); c = f(1, 4); wi = f(16, 4); wh = f(16, 4); bi = f(16); bh = f(16)",
        "ops.lstm_cell_forward(x, h, c, wi, wh, bi, bh)",
        50_000,
    ),
    "sgd_step 10 params": (
        "p = [f(4, 4) for _ in range(10)]; g = [f(4, 4) for _ in range(10)]",
        "ops.sgd_step(p, g, None, 1e-3)",
        50_000,
    ),
    "sgd_step 10 params, momentum": (
        "p = [f(4, 4) for _ in range(10)]; g = [f(4, 4) for _ in range(10)]; m = [f(4, 4) for _ in range(10)]",
        "ops.sgd_step(p, g, m, 1e-3, momentum=0.9)",
        50_000,
    ),
    "adam_step 10 params": (
        "p, g, m, v = ([f(4, 4) for _ in range(10)] for _ in range(4))",
        "ops.adam_step(p, g, m, v, 1)",
        50_000,
    ),
}

WORKER_SETUP = """
import numpy as np
import fastnn
from fastnn import ops
if hasattr(fastnn, "set_num_threads"):
    fastnn.set_num_threads(1)
rng = np.random.default_rng(0)
def f(*shape):
    return rng.standard_normal(shape).astype(np.float32)
"""


def worker():
    """Read case names from stdin; answer each with the seconds per call of one sample."""
    import timeit

    env = {}
    exec(WORKER_SETUP, env)
    timers = {}
    for line in sys.stdin:
        name, scale = line.rstrip("\n").rsplit("|", 1)
        setup, stmt, number = CASES[name]
        if name not in timers:
            exec(setup, env)
            timers[name] = timeit.Timer(stmt, globals=env)
            timers[name].timeit(max(1, number // 10))  # warm up
        n = max(1, int(number * float(scale)))
        print(timers[name].timeit(n) / n, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", action="append", required=True, metavar="NAME=DIR", help="a fastnn to time")
    p.add_argument("--rounds", type=int, default=21, help="samples per case and build (default 21)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every case's calls per sample")
    p.add_argument("--cases", nargs="*", default=list(CASES), help="cases to time (default: all)")
    p.add_argument("--cpu", type=int, default=None, help="pin the workers to this CPU")
    args = p.parse_args(argv)
    builds = [b.split("=", 1) for b in args.build]
    env = dict(os.environ, OMP_NUM_THREADS="1", FASTNN_NUM_THREADS="1")
    workers = {}
    for name, path in builds:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker"]
        if args.cpu is not None:
            cmd = ["taskset", "-c", str(args.cpu), *cmd]
        workers[name] = subprocess.Popen(
            cmd,
            env=dict(env, PYTHONPATH=os.path.abspath(path)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    times = {(case, name): [] for case in args.cases for name, _ in builds}
    for _ in range(args.rounds):
        for case in args.cases:
            for name, _ in builds:
                w = workers[name]
                w.stdin.write(f"{case}|{args.scale}\n")
                w.stdin.flush()
                line = w.stdout.readline()
                if not line:
                    raise SystemExit(f"worker {name} failed on {case}")
                times[case, name].append(float(line) * 1e6)
    for w in workers.values():
        w.stdin.close()
        w.wait()
    names = [name for name, _ in builds]
    width = max(len(c) for c in args.cases)
    print(f"{'case':<{width}}  " + "  ".join(f"{n + ' us (min)':>20}" for n in names))
    for case in args.cases:
        cells = []
        for name in names:
            t = times[case, name]
            cells.append(f"{statistics.median(t):>11.2f} ({min(t):.2f})")
        print(f"{case:<{width}}  " + "  ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
