#!/usr/bin/env python3
"""Static gates on the CUDA kernels (csrc/cuda/*.cu), no GPU needed.

For every shipped architecture (sm_80, sm_90) each source is compiled by nvcc with ptxas
verbose and every warning an error, then for every kernel:
  - it declares __launch_bounds__ (a .maxntid in its PTX);
  - no register spills and no stack frame (local memory);
  - registers x maximum threads per block fit one SM's 64K registers.
Prints one line per kernel and architecture; exits 1 on any failure, 2 without nvcc.

  python scripts/check_cuda.py [--nvcc PATH] [--arch 80 90]
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTERS_PER_SM = 65536
FLAGS = ["-std=c++17", f"-I{ROOT / 'csrc'}", "-Werror", "all-warnings",
         "-Xptxas", "-v,-warn-spills,-warn-lmem-usage"]


def sources():
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"set\(FASTNN_CUDA_SOURCES([^)]*)\)", text)
    if not m:
        sys.exit("check_cuda: FASTNN_CUDA_SOURCES not found in CMakeLists.txt")
    return [ROOT / s for s in m.group(1).split()]


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
        return dict(zip(names, out.stdout.splitlines()))
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


def check(nvcc, src, arch, tmp):
    """Failures (strings) of one source on one architecture; prints a line per kernel."""
    obj, ptx = tmp / f"{src.stem}.{arch}.o", tmp / f"{src.stem}.{arch}.ptx"
    r = subprocess.run([nvcc, "-c", f"-arch=sm_{arch}", *FLAGS, str(src), "-o", str(obj)],
                       capture_output=True, text=True)
    rel = src.relative_to(ROOT)
    if r.returncode != 0:
        return [f"{rel} sm_{arch}: nvcc failed:\n{r.stdout}{r.stderr}"]
    subprocess.run([nvcc, "-ptx", f"-arch=sm_{arch}", *FLAGS[:2], str(src), "-o", str(ptx)], check=True,
                   capture_output=True)
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
    failures = []
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
        print(f"  sm_{arch} {rel}: {name}: {regs} registers, {threads} threads"
              + (f"  FAIL: {'; '.join(problems)}" if problems else ""))
        failures += [f"{rel} sm_{arch} {name}: {p}" for p in problems]
    if not info:
        failures.append(f"{rel} sm_{arch}: no kernels found in the ptxas report")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvcc", default=shutil.which("nvcc"))
    ap.add_argument("--arch", nargs="+", default=["80", "90"])
    args = ap.parse_args()
    if not args.nvcc:
        print("check_cuda: nvcc not found")
        return 2
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources():
            for arch in args.arch:
                failures += check(args.nvcc, src, arch, pathlib.Path(tmp))
    if failures:
        print("CUDA static gates failed:\n  " + "\n  ".join(failures))
        return 1
    print("CUDA static gates passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
