"""Time fastnn softmax against the NumPy reference and PyTorch: python bench/bench_softmax.py [--threads 1 2] [--quick].

The same code as `fastnn bench softmax` (fastnn.bench.softmax); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "softmax", *sys.argv[1:]]))
