"""Time fastnn gemm against NumPy and PyTorch: python bench/bench_gemm.py [--threads 1 2] [--quick].

The same code as `fastnn bench gemm` (fastnn.bench.gemm); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "gemm", *sys.argv[1:]]))
