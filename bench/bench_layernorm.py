"""Time fastnn's layer norm forward+backward against torch and the NumPy reference: python bench/bench_layernorm.py [--threads 1 2] [--quick].

The same code as `fastnn bench layernorm` (fastnn.bench.layernorm); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "layernorm", *sys.argv[1:]]))
