"""Time fastnn's batchnorm kernels against the NumPy reference and PyTorch: python bench/bench_batchnorm.py [--threads 1 2] [--quick].

The same code as `fastnn bench batchnorm` (fastnn.bench.batchnorm); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "batchnorm", *sys.argv[1:]]))
