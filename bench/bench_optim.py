"""Time fastnn's optim kernels against the NumPy reference and PyTorch: python bench/bench_optim.py [--threads 1 2] [--quick].

The same code as `fastnn bench optim` (fastnn.bench.optim: SGD and Adam steps over the CNN's params); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "optim", *sys.argv[1:]]))
