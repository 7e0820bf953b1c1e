"""Time fastnn act against the NumPy reference and PyTorch: python bench/bench_act.py [--threads 1 2] [--quick].

The same code as `fastnn bench act` (fastnn.bench.act); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "act", *sys.argv[1:]]))
