"""Time fastnn attention and layer norm against PyTorch's SDPA (flash, math) and the NumPy reference: python bench/bench_attention.py [--threads 1 2] [--quick].

The same code as `fastnn bench attention` (fastnn.bench.attention); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "attention", *sys.argv[1:]]))
