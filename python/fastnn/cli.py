"""The `fastnn` command: `fastnn bench [ops...]` times kernels against NumPy and PyTorch, `fastnn config`
prints the build configuration, `fastnn demo cnn` trains the MNIST CNN on the bundled data, `fastnn demo gan`
a DCGAN on the same digits."""

import argparse
import datetime
import importlib.util
import os
import subprocess
import sys

BENCH_HELP = """\
Each impl's result is first checked against the float64 reference (fastnn.ref); one that fails is
reported FAILED and not timed. The rest are timed round-robin in one run; the table gives the median
and min ms per call, GFLOP/s (or GB/s), and on the fastnn row the ratio peer time / fastnn time
(>1: fastnn faster): the median over rounds of the two samples taken next to each other in a round
(the JSON also holds the ratio of the medians, the CPU model and cache sizes). The ISA column names
fastnn's ISA and each peer's BLAS and code path (OpenBLAS core type; torch's ATen capability).

Fair comparisons at one ISA on any host: --isa LEVEL re-runs the command (a fresh interpreter,
before NumPy and torch load) with every library held to LEVEL by its variable: FASTNN_CPU_CAPABILITY
and ATEN_CPU_CAPABILITY (both LEVEL), ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS, OPENBLAS_CORETYPE:
  LEVEL    fastnn, ATen  oneDNN       MKL      OpenBLAS
  default  default       SSE41        SSE4_2   Nehalem
  avx2     avx2          AVX2         AVX2     Haswell
  avx512   avx512        AVX512_CORE  AVX512   SkylakeX
and OPENBLAS_L2_SIZE unset. It then prints one 'isa check:' line per library with what it reports
(fastnn's config, torch.backends.cpu.get_cpu_capability(), OpenBLAS's core type from threadpoolctl,
oneDNN's and MKL's verbose lines from one conv and one sgemm in a fresh interpreter; MKL's line
names the ISA on Intel CPUs only, else 'not checkable'), and a warning where a library runs another
ISA. A LEVEL above what the CPU (or this fastnn build) supports is refused. "default" is each
library's plain SSE path.
  fastnn bench gemm --threads 1 --isa avx2

--plot PNG draws the ratios as bars (one per case and peer, a line at 1.0x; needs matplotlib:
pip install 'fastnn[plot]'); --plot PNG --from-json RUN.json draws a finished run without timing.
--contended keeps one core busy while timing (a process spinning on the last CPU, killed at the
end): e.g. --threads 2 --contended shows the kernels with one of two cores taken.

Timing NumPy without --isa: run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the environment
(OpenBLAS reads them when NumPy is imported, too early for this command to undo; they slow a
current NumPy), e.g.
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fastnn bench --threads 1 2"""


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return n


def _bench(parser, args, argv):
    from fastnn import bench
    from fastnn.bench import harness

    if args.from_json and not args.plot:
        parser.error("--from-json needs --plot PNG (the chart to draw from it)")
    if args.from_json and (args.ops or args.isa or args.contended):
        parser.error("--from-json draws a finished run: no ops, --isa or --contended")
    if args.device == "cuda" and (args.isa or args.contended or args.plot):
        parser.error("--isa, --contended and --plot apply to --device cpu")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print(
            "fastnn bench --plot: needs matplotlib (pip install 'fastnn[plot]' or pip install "
            "matplotlib); nothing was timed",
            file=sys.stderr,
        )
        return 2
    if args.from_json:
        try:
            doc = harness.read_document(args.from_json)
        except ValueError as e:
            print(f"fastnn bench --from-json: {e}", file=sys.stderr)
            return 2
        harness.plot(doc, args.plot)
        print(f"wrote {args.plot}")
        return 0
    unknown = [op for op in args.ops if op not in bench.OPS]
    if unknown:
        parser.error(f"unknown op {', '.join(unknown)} (registered: {', '.join(bench.OPS)})")
    ops = args.ops or list(bench.OPS)
    if args.device == "cuda":
        return _bench_cuda(parser, args, ops)
    if args.isa:
        refused = _isa_refused(args.isa)
        if refused:
            print(f"fastnn bench --isa {args.isa}: {refused}; nothing was timed", file=sys.stderr)
            return 2
        if os.environ.get(harness.ISA_GUARD) != args.isa:
            return _rerun_at_isa(args.isa, argv)
    repeats = args.repeats or (3 if args.quick else 10)
    min_time = args.min_time if args.min_time is not None else (0.005 if args.quick else 0.05)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = args.json or f"bench/results/{'-'.join(ops)}-{stamp}.json"
    cases = [c for op in ops for c in bench.load_cases(op, quick=args.quick)]
    checks = None
    if args.isa:
        checks = harness.isa_checks(args.isa)
        for line in harness.isa_check_lines(checks, args.isa):
            print(line, flush=True)
        off = [c["library"] for c in checks if c["ok"] is False]
        if off:
            print(
                f"warning: {', '.join(off)} did not take --isa {args.isa}: those ratios compare different ISAs",
                file=sys.stderr,
            )
    results = bench.run(
        cases,
        threads=args.threads,
        repeats=repeats,
        min_time=min_time,
        json_path=json_path,
        contended=args.contended,
        plot_path=args.plot,
        meta={"ops": ops, "quick": args.quick, "isa": args.isa, "isa_checks": checks},
    )
    failed = sum(r["status"] != "ok" for res in results for r in res["impls"].values())
    if failed:
        print(f"{failed} impl result(s) FAILED validation", file=sys.stderr)
    return 1 if failed else 0


def _isa_refused(isa):
    """Why --isa `isa` cannot run here (the CPU or this build lacks it), or None."""
    info = _build_info()
    if isa in info["isa_supported"]:
        return None
    if isa not in info["isa_compiled"]:
        return f"this fastnn build has no {isa} kernels (compiled: {', '.join(info['isa_compiled'])})"
    return (
        f"the CPU does not support {isa} (it runs: {', '.join(info['isa_supported'])}); "
        "a peer forced above its CPU would fault or ignore the setting"
    )


def _build_info():
    from fastnn import _core

    return _core.build_info()


def _rerun_at_isa(isa, argv):
    """Run this command again in a fresh interpreter whose environment holds every library to `isa`
    (each reads its variable when it loads, so this process cannot change it); returns its status.
    The guard variable marks the child, which runs the benchmark instead of re-running again."""
    from fastnn.bench.harness import ISA_ENV, ISA_GUARD, ISA_UNSET

    env = {k: v for k, v in os.environ.items() if k not in ISA_UNSET}
    env.update(ISA_ENV[isa])
    env[ISA_GUARD] = isa
    # the child imports this same fastnn, installed or from a source tree on sys.path
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    print(
        f"fastnn bench --isa {isa}: running with "
        + " ".join(f"{k}={v}" for k, v in ISA_ENV[isa].items())
        + "".join(f" (unset {k})" for k in ISA_UNSET),
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    child = subprocess.Popen([sys.executable, "-m", "fastnn.cli", *argv], env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too: give it time to stop its busy process and exit
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return 130


def _bench_cuda(parser, args, ops):
    """`fastnn bench --device cuda`: the ops' CUDA cases on CuPy arrays (bench/gpu.py)."""
    from fastnn import bench, cuda
    from fastnn.bench import gpu

    if not cuda.is_available():
        info = cuda.info()
        why = (
            "this fastnn was built without CUDA"
            if not info["built"]
            else "no CUDA device is visible" + ("" if info["driver_version"] else " (no driver)")
        )
        print(f"fastnn bench --device cuda: {why}; nothing was timed", file=sys.stderr)
        return 2
    try:
        import cupy  # noqa: F401
    except ImportError:
        print("fastnn bench --device cuda: needs CuPy (pip install cupy-cuda13x); nothing was timed", file=sys.stderr)
        return 2
    without = [op for op in ops if op not in gpu.GPU_OPS]
    if without and args.ops:
        print(f"note: no CUDA cases for {', '.join(without)}", file=sys.stderr)
    ops = [op for op in ops if op in gpu.GPU_OPS]
    repeats = args.repeats or (3 if args.quick else 10)
    min_time = args.min_time if args.min_time is not None else (0.005 if args.quick else 0.05)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = args.json or f"bench/results/cuda-{'-'.join(ops)}-{stamp}.json"
    results = bench.run(
        gpu.cases(ops, quick=args.quick),
        threads=(1,),
        repeats=repeats,
        min_time=min_time,
        json_path=json_path,
        meta={"ops": ops, "quick": args.quick, "device": "cuda", "cuda": cuda.info()},
    )
    failed = sum(r["status"] != "ok" for res in results for r in res["impls"].values())
    if failed:
        print(f"{failed} impl result(s) FAILED validation", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None):
    """Entry point of the `fastnn` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn command-line tool.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{bench,config,demo}")
    b = sub.add_parser(
        "bench",
        help="validate, then time fastnn against NumPy and PyTorch",
        description="Validate, then time fastnn ops against NumPy's BLAS and PyTorch.",
        epilog=BENCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("ops", nargs="*", metavar="op", help="ops to time (default: all registered)")
    b.add_argument(
        "--threads",
        type=_positive,
        nargs="+",
        default=[1],
        metavar="N",
        help="thread counts to time at, in turn, e.g. --threads 1 2 (default: 1)",
    )
    b.add_argument("--repeats", type=_positive, metavar="R", help="timed samples per impl (default: 10, --quick 3)")
    b.add_argument(
        "--min-time", type=float, metavar="S", help="seconds each sample lasts at least (default: 0.05, --quick 0.005)"
    )
    b.add_argument("--quick", action="store_true", help="a few small shapes, few repeats (CI smoke)")
    b.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cpu (default): the CPU kernels; cuda: the CUDA kernels on CuPy arrays against "
        "CuPy and torch's CUDA build (needs a GPU; --threads does not apply)",
    )
    b.add_argument(
        "--json", metavar="PATH", help="where to write the results (default: bench/results/<ops>-<time>.json)"
    )
    b.add_argument(
        "--isa",
        choices=["default", "avx2", "avx512"],
        help="run fastnn and every peer (torch's ATen, oneDNN, MKL; NumPy's OpenBLAS) at "
        "this ISA, check that each took it, record it in the JSON (see below)",
    )
    b.add_argument(
        "--plot", metavar="PNG", help="also draw the ratios as a bar chart (needs matplotlib: the plot extra)"
    )
    b.add_argument(
        "--from-json", metavar="PATH", help="with --plot: draw the chart of a finished run's JSON, time nothing"
    )
    b.add_argument(
        "--contended", action="store_true", help="keep one core busy while timing (a process spinning on the last CPU)"
    )
    sub.add_parser("config", help="print the build configuration (fastnn.show_config())")
    d = sub.add_parser(
        "demo",
        help="train a classic model offline on bundled data",
        description="Train a classic model on data shipped with fastnn (no download).",
    )
    d.add_argument(
        "model",
        choices=["cnn", "gan", "word2vec"],
        help="cnn: the MNIST CNN on the bundled 5,000 images (1,000 held out for the test accuracy); "
        "gan: a DCGAN on the 4,000 training images, scored against the 1,000 held-out ones; "
        "word2vec: skip-gram word vectors on the bundled tinyshakespeare text",
    )
    d.add_argument(
        "--epochs", type=_positive, help="training epochs (default: 12 for cnn, 20 for gan, 10 for word2vec)"
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and shuffling")
    d.add_argument(
        "--threads", type=_positive, help="fastnn threads (default: fastnn.get_num_threads(); word2vec: 1 worker)"
    )
    d.add_argument("--conditional", action="store_true", help="gan: a class-conditional DCGAN (one digit per row)")
    d.add_argument("--out", metavar="DIR", help="gan: where the sample grids and the checkpoint go (default: ./dcgan)")
    d.add_argument("--limit", type=_positive, help=argparse.SUPPRESS)  # gan: train on the first N digits (tests)
    args = parser.parse_args(argv)
    if args.command == "config":
        import fastnn

        fastnn.show_config()
        return 0
    if args.command == "demo":
        import fastnn
        from fastnn import demo

        if args.model == "cnn" and (args.conditional or args.out or args.limit):
            d.error("--conditional and --out apply to the gan demo")
        if args.threads:
            fastnn.set_num_threads(args.threads)
        if args.model == "word2vec":
            if args.conditional or args.out or args.limit:
                d.error("--conditional and --out apply to the gan demo")
            from fastnn.text import demo as text_demo

            text_demo.word2vec(epochs=args.epochs or 10, seed=args.seed, workers=args.threads or 1)
            return 0
        if args.model == "gan":
            from fastnn import gan

            epochs = args.epochs or gan.DEFAULT_EPOCHS
            gan.train_gan(
                epochs=epochs,
                seed=args.seed,
                conditional=args.conditional,
                out_dir=args.out or "dcgan",
                limit=args.limit,
            )
            return 0
        acc, _ = demo.cnn(epochs=args.epochs or 12, seed=args.seed)
        return 0
    return _bench(b, args, argv)


if __name__ == "__main__":
    sys.exit(main())
