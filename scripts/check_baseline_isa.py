"""Check that the baseline (portable) code of a fastnn build uses no AVX, so the wheel runs on any
x86-64: the dispatcher only calls AVX2/AVX-512 code after a CPUID check, but code compiled
without those flags must never contain them.

    python scripts/check_baseline_isa.py BUILD_DIR     # a CMake build tree of fastnn

1. The object files of the baseline units (every csrc/ unit outside csrc/cpu/avx2/ and
   csrc/cpu/avx512/) contain no VEX/EVEX instruction (mnemonics v*, ymm/zmm/mask registers,
   the VEX-encoded BMI1/BMI2 instructions) and none of lzcnt/tzcnt/popcnt/movbe.
2. No function with such instructions in an ISA unit is an external or weak (COMDAT) symbol
   that a baseline unit also defines: the linker keeps one copy of such a function, and if it
   kept the AVX one, baseline callers would run AVX (per-ISA helpers must be static or in an
   anonymous namespace).
Exit status 1 with the offending functions listed.
"""

import os
import re
import subprocess
import sys

NOT_BASELINE = re.compile(
    r"^(v\w+|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|tzcnt|popcnt|movbe)\b"
    r"|%[yz]mm\d|%k[0-7]\b"
)


def avx_functions(obj):
    """{symbol: first offending instruction} for the functions of obj with non-baseline code."""
    dis = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", obj], check=True, capture_output=True, text=True
    ).stdout
    found, cur = {}, None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = m.group(1)
            continue
        if cur and cur not in found and "\t" in line:
            ins = line.split("\t")[-1].strip()
            if NOT_BASELINE.search(ins):
                found[cur] = ins
    return found


def defined_symbols(obj, external_only):
    out = subprocess.run(["nm", "--defined-only", obj], check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and (not external_only or parts[1] in "TWVu"):
            syms.add(parts[2])
    return syms


def demangle(sym):
    return subprocess.run(["c++filt", sym], capture_output=True, text=True).stdout.strip() or sym


def main(build_dir):
    objs = []
    for root, _, files in os.walk(build_dir):
        objs += [os.path.join(root, f) for f in files if f.endswith(".o") and "csrc" in root]
    isa_objs = [o for o in objs if re.search(r"[/\\]cpu[/\\]avx(2|512)[/\\]", o)]
    base_objs = [o for o in objs if o not in isa_objs]
    if not base_objs or not isa_objs:
        sys.exit(f"no fastnn object files under {build_dir} (baseline {len(base_objs)}, ISA {len(isa_objs)})")
    problems = []
    base_syms = set()
    for o in sorted(base_objs):
        base_syms |= defined_symbols(o, external_only=False)
        for fn, ins in avx_functions(o).items():
            problems.append(f"baseline unit {os.path.basename(o)}: {demangle(fn)}: {ins}")
    for o in sorted(isa_objs):
        shared = defined_symbols(o, external_only=True) & base_syms
        for fn, ins in avx_functions(o).items():
            if fn in shared:
                problems.append(
                    f"ISA unit {os.path.basename(o)} and a baseline unit both define "
                    f"{demangle(fn)} (the AVX copy may win at link time): {ins}"
                )
    print(f"checked {len(base_objs)} baseline and {len(isa_objs)} ISA object files: {len(problems)} problem(s)")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
