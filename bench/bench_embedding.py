"""Time fastnn's embedding forward+backward against torch and the NumPy reference: python bench/bench_embedding.py [--threads 1 2] [--quick].

The same code as `fastnn bench embedding` (fastnn.bench.embedding); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "embedding", *sys.argv[1:]]))
