"""Stand-in ops that misbehave on purpose, for tests/test_fuzz.py to check that the harness
reports each kind of failure: a crash (signal), a hang, a huge allocation, a wrong result and a
refusal that does not name the op. Run like the table's ops: python tests/fuzz/run.py NAME."""

import os
import signal
import time

import numpy as np
from hypothesis import strategies as st

from .table import Case, Op, within


def _case(empty=False):
    return st.builds(lambda n: Case(dict(x=np.arange(n, dtype=np.float32))), st.just(0) if empty else st.integers(1, 9))


def _checked(x):
    """x when it is a float32 C-contiguous 1-D array; else a ValueError that names no op."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1 and x.flags.c_contiguous):
        raise ValueError("bad input")
    return x


def _segv(x):
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang(x):
    time.sleep(3600)


def _huge(x):
    return np.ones(2**40, np.uint8)  # 1 TiB: past the child's address-space limit


def _wrong(x):
    return _checked(x) + 1


def _unnamed(x):
    return _checked(x).copy()


def _op(name, call):
    return Op(
        name,
        _case,
        lambda kw, got, want: within(name, got[0], want[0], 0.0),
        reference=lambda kw, hidden: [np.asarray(kw["x"], np.float64)],
        arrays=("x",),
        call=call,
    )


SELFTESTS = {
    name: _op(name, call)
    for name, call in {
        "_selftest_segv": _segv,
        "_selftest_hang": _hang,
        "_selftest_huge": _huge,
        "_selftest_wrong": _wrong,
        "_selftest_unnamed": _unnamed,
    }.items()
}
