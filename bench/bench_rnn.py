"""Time fastnn's recurrent layers (LSTM, GRU, tanh RNN forward+backward) against torch.nn and the NumPy reference: python bench/bench_rnn.py [--threads 1 2] [--quick].

The same code as `fastnn bench rnn` (fastnn.bench.rnn); see bench/README.md.
"""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "rnn", *sys.argv[1:]]))
