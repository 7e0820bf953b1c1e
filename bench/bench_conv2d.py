"""conv2d benchmark entry point: same as `fastnn bench conv2d [options]`."""

import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "conv2d", *sys.argv[1:]]))
