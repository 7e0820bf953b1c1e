"""Benchmarks behind `fastnn bench`: the harness, and one module per op exposing cases(quick)."""

import importlib

from .harness import Case, num_threads, run, time_interleaved, within

# op name -> module whose cases(quick: bool) returns a list of Case; a new op is one line here.
OPS = {
    "gemm": "fastnn.bench.gemm",
    "pool2d": "fastnn.bench.pool2d",
    "act": "fastnn.bench.act",
    "conv2d": "fastnn.bench.conv2d",
    "softmax": "fastnn.bench.softmax",
    "train": "fastnn.bench.train",
    "optim": "fastnn.bench.optim",
    "batchnorm": "fastnn.bench.batchnorm",
    "rnn": "fastnn.bench.rnn",
    "attention": "fastnn.bench.attention",
    "layernorm": "fastnn.bench.layernorm",
    "embedding": "fastnn.bench.embedding",
    "gan": "fastnn.bench.gan",
}


def load_cases(op, quick=False):
    """The benchmark cases of one registered op (imports its module, and torch if it uses it)."""
    return importlib.import_module(OPS[op]).cases(quick)


__all__ = ["OPS", "Case", "load_cases", "num_threads", "run", "time_interleaved", "within"]
