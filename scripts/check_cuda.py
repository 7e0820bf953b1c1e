#!/usr/bin/env python3
"""Static gates on the CUDA kernels (csrc/cuda/*.cu), no GPU needed.

For every shipped architecture (sm_80, sm_90) each source is compiled by nvcc with ptxas
verbose and every warning an error, then for every kernel:
  - it declares __launch_bounds__ (a .maxntid in its PTX);
  - no register spills and no stack frame (local memory);
  - registers x maximum threads per block fit one SM's 64K registers.
Then a second front end: clang (19 or newer, found on PATH, or --clang) compiles every source
device-only to PTX with -Wall -Werror against the same toolkit (found from nvcc), one line per
source and architecture; without a clang that line says SKIPPED and the gates still pass.
Prints one line per kernel and architecture; exits 1 on any failure, 2 without nvcc.

  python scripts/check_cuda.py [--nvcc PATH] [--arch 80 90] [--clang PATH | --no-clang]
"""

import argparse
import concurrent.futures
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTERS_PER_SM = 65536
FLAGS = ["-std=c++17", f"-I{ROOT / 'csrc'}", "-Werror", "all-warnings", "-Xptxas", "-v,-warn-spills,-warn-lmem-usage"]


def sources():
    """The kernel sources: every csrc/cuda/*.cu (CMakeLists.txt builds each of them)."""
    found = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    if not found:
        sys.exit("check_cuda: no csrc/cuda/*.cu found")
    return found


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
        return dict(zip(names, out.stdout.splitlines()))
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


def check(nvcc, src, arch, tmp):
    """(report lines, failures) of one source on one architecture: a line per kernel."""
    obj, ptx = tmp / f"{src.stem}.{arch}.o", tmp / f"{src.stem}.{arch}.ptx"
    r = subprocess.run(
        [nvcc, "-c", f"-arch=sm_{arch}", *FLAGS, str(src), "-o", str(obj)], capture_output=True, text=True
    )
    rel = src.relative_to(ROOT)
    if r.returncode != 0:
        return [], [f"{rel} sm_{arch}: nvcc failed:\n{r.stdout}{r.stderr}"]
    subprocess.run(
        [nvcc, "-ptx", f"-arch=sm_{arch}", *FLAGS[:2], str(src), "-o", str(ptx)], check=True, capture_output=True
    )
    bounds, entry = {}, None
    for line in ptx.read_text().splitlines():
        m = re.match(r"\s*\.(?:visible\s+)?\.?entry\s+(\S+?)\(", line) or re.match(r"\.visible \.entry (\S+?)\(", line)
        if m:
            entry = m.group(1)
            bounds[entry] = None
        m = re.match(r"\s*\.maxntid\s+(\d+),\s*(\d+),\s*(\d+)", line)
        if m and entry:
            bounds[entry] = int(m.group(1)) * int(m.group(2)) * int(m.group(3))
    info, kernel = {}, None
    for line in r.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            kernel = m.group(1)
            info[kernel] = {}
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and kernel:
            info[kernel].update(stack=int(m.group(1)), spill=int(m.group(2)) + int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m and kernel:
            info[kernel]["regs"] = int(m.group(1))
    names = demangle(sorted(set(info) | set(bounds)))
    failures, lines = [], []
    for k in sorted(set(info) | set(bounds)):
        i, threads = info.get(k, {}), bounds.get(k)
        name = names[k].replace("fastnn::cuda::(anonymous namespace)::", "")
        regs = i.get("regs")
        problems = []
        if threads is None:
            problems.append("no __launch_bounds__")
        if regs is None:
            problems.append("no ptxas report")
        elif threads and regs * threads > REGISTERS_PER_SM:
            problems.append(f"{regs} registers x {threads} threads > {REGISTERS_PER_SM}")
        if i.get("spill", 0) or i.get("stack", 0):
            problems.append(f"local memory: {i.get('stack')} B stack, {i.get('spill')} B spills")
        lines.append(
            f"  sm_{arch} {rel}: {name}: {regs} registers, {threads} threads"
            + (f"  FAIL: {'; '.join(problems)}" if problems else "")
        )
        failures += [f"{rel} sm_{arch} {name}: {p}" for p in problems]
    if not info:
        failures.append(f"{rel} sm_{arch}: no kernels found in the ptxas report")
    return lines, failures


def toolkit(nvcc, tmp):
    """The CUDA toolkit's root, from nvcc's own dry run (nvcc may be a wrapper script or a link)."""
    empty = tmp / "empty.cu"
    empty.write_text("")
    r = subprocess.run([nvcc, "--dryrun", "-c", str(empty), "-o", str(tmp / "empty.o")], capture_output=True, text=True)
    m = re.search(r"^#\$ _HERE_=(.+)$", r.stdout + r.stderr, re.M)
    root = pathlib.Path(m.group(1).strip()).parent if m else pathlib.Path(nvcc).resolve().parent.parent
    return root if (root / "include" / "cuda_runtime.h").exists() else None


def find_clang():
    """The newest clang++-N (N >= 19) on PATH, else clang++ if it is 19 or newer."""
    for v in range(30, 18, -1):
        exe = shutil.which(f"clang++-{v}")
        if exe:
            return exe
    exe = shutil.which("clang++")
    if exe:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"clang version (\d+)", out)
        if m and int(m.group(1)) >= 19:
            return exe
    return None


# Headers clang's CUDA wrapper includes that a CUDA 13 toolkit lacks: texture references (and
# texture_fetch_functions.h) were removed in CUDA 13, and cuRAND (curand_mtgp32_kernel.h) is a
# separate package. Our kernels use neither, so an empty stand-in is enough; it comes after the
# toolkit's own include directory (-idirafter), so a toolkit that has the header wins.
CLANG_STUBS = ["texture_fetch_functions.h", "curand_mtgp32_kernel.h"]


def check_clang(clang, cuda_root, src, arch, tmp):
    """clang's device-only compile of one source to PTX, every warning an error: (report lines,
    failures)."""
    stubs = tmp / "clang-stubs"  # written by main() before the compiles start
    cmd = [
        clang,
        "-x",
        "cuda",
        "--cuda-device-only",
        f"--cuda-gpu-arch=sm_{arch}",
        f"--cuda-path={cuda_root}",
        "-std=c++17",
        f"-I{ROOT / 'csrc'}",
        "-idirafter",
        str(stubs),
        "-O2",
        "-Wall",
        "-Werror",
        "-Wno-unknown-cuda-version",  # clang 19 knows CUDA up to 12.x; CUDA 13 is parsed as the newest
        "-S",
        "-o",
        str(tmp / f"{src.stem}.{arch}.clang.ptx"),
        str(src),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    rel = src.relative_to(ROOT)
    line = f"  clang sm_{arch} {rel}: " + ("ok" if r.returncode == 0 else "FAIL")
    return [line], [] if r.returncode == 0 else [f"{rel} sm_{arch}: clang failed:\n{r.stdout}{r.stderr}"]


def run_all(fn, jobs, *args):
    """fn(*args, src, arch, tmp) for every (source, architecture), on as many compiler processes at
    once as there are CPUs; prints the reports in order and returns the failures."""
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for lines, fails in pool.map(lambda job: fn(*args, *job), jobs):
            for line in lines:
                print(line)
            failures += fails
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvcc", default=shutil.which("nvcc"))
    ap.add_argument("--arch", nargs="+", default=["80", "90"])
    ap.add_argument("--clang", default=None, help="clang++ for the second front end (default: found on PATH)")
    ap.add_argument("--no-clang", action="store_true", help="skip the clang front end")
    args = ap.parse_args()
    if not args.nvcc:
        print("check_cuda: nvcc not found")
        return 2
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(src, arch, pathlib.Path(tmp)) for src in sources() for arch in args.arch]
        failures += run_all(check, jobs, args.nvcc)
        clang = None if args.no_clang else (args.clang or find_clang())
        cuda_root = toolkit(args.nvcc, pathlib.Path(tmp))
        if args.no_clang:
            print("  clang: not run (--no-clang)")
        elif not clang:
            print(
                "SKIPPED: no clang++ 19 or newer found (apt-get install clang-19): the second CUDA front end "
                "did not run"
            )
        elif not cuda_root:
            failures.append(f"clang: no CUDA toolkit found from {args.nvcc}")
        else:
            print(f"  clang: {clang} against {cuda_root}")
            stubs = pathlib.Path(tmp) / "clang-stubs"
            stubs.mkdir()
            for h in CLANG_STUBS:
                if not (cuda_root / "include" / h).exists():
                    (stubs / h).write_text("// empty: see scripts/check_cuda.py\n")
            failures += run_all(check_clang, jobs, clang, cuda_root)
    if failures:
        print("CUDA static gates failed:\n  " + "\n  ".join(failures))
        return 1
    print("CUDA static gates passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
