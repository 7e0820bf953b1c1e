"""Time fastnn pool2d against the NumPy reference and PyTorch: python bench/bench_pool2d.py [--threads 1 2] [--quick].

The same code as `fastnn bench pool2d` (fastnn.bench.pool2d); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "pool2d", *sys.argv[1:]]))
