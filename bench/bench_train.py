"""Time fastnn train against the NumPy reference and PyTorch: python bench/bench_train.py [--threads 1 2] [--quick].

The same code as `fastnn bench train` (fastnn.bench.train); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "train", *sys.argv[1:]]))
