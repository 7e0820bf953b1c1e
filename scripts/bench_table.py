#!/usr/bin/env python3
"""Markdown table of `fastnn bench --json` results, as bench/README.md keeps them.

    python scripts/bench_table.py bench/results/a.json [b.json ...] > table.md

One row per case and thread count: fastnn's median time and throughput, then each peer's
paired ratio (peer time / fastnn time, > 1: fastnn faster; the harness's median over rounds;
PyTorch's in bold).
The heading names the host (CPU model and caches), the ISA each side ran and the commit.
"""

import json
import sys


def _rate(r):
    if "gflops" in r:
        return f"{r['gflops']:.1f} GF/s"
    if "items_per_s" in r:
        return f"{r['items_per_s']:.0f} img/s"
    return f"{r.get('gbps', 0):.1f} GB/s"


def _size(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def table(runs):
    first = runs[0]
    m = first["machine"]
    caches = m.get("cpu_caches") or {}
    isas = sorted(
        {r["impls"][p].get("isa", "") for run in runs for r in run["results"] for p in r["impls"] if p != "fastnn"}
        - {""}
    )
    lines = [
        f"Host: {m['cpu_model']} ({', '.join(f'{k} {_size(v)}' for k, v in caches.items())}); "
        f"fastnn at {m['fastnn']['isa_selected']}, commit {(m.get('git_commit') or '?')[:7]}"
        f"{' (dirty)' if m.get('git_dirty') else ''}, {m['timestamp'][:10]}; "
        f"load average {m['load_average'][0]:.1f} at the start.",
        f"Peers: {'; '.join(isas)}.",
        "",
    ]
    lines.append("| case | threads | fastnn median | throughput | peer time / fastnn time |")
    lines.append("|---|---|---|---|---|")
    for run in runs:
        for r in run["results"]:
            f = r["impls"]["fastnn"]
            if f["status"] != "ok":
                lines.append(f"| {r['case']} | {r['threads']} | FAILED | | |")
                continue
            ratios = ", ".join(
                f"{p} **{v:.2f}x**" if p.startswith("torch") else f"{p} {v:.2f}x" for p, v in r["ratios"].items()
            )
            lines.append(f"| {r['case']} | {r['threads']} | {f['median_ms']:.4g} ms | {_rate(f)} | {ratios} |")
    return "\n".join(lines)


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
