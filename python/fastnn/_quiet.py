"""NumPy's floating-point warnings off inside fastnn's ops: torch is silent on inf, nan, overflow
and division by zero, so log(0), 1 / 0, 0 / 0, inf - inf, sqrt(-1) and exp(1000) give inf or
nan and no RuntimeWarning, even under warnings.simplefilter("error").

numpy.errstate costs about 1 us a use, as much as a small op. NumPy 2 keeps the error state in
a context variable, so enter() / leave() set and reset it directly (about 0.15 us); older NumPy
falls back on numpy.errstate. The user's own NumPy calls keep their error state: only fastnn's
calls run ignoring."""

import functools
import sys

import numpy as np

__all__ = ["enter", "leave", "quietly", "stacklevel"]

try:
    from numpy._core._multiarray_umath import _extobj_contextvar, _make_extobj

    _IGNORE = _make_extobj(all="ignore")
except (ImportError, TypeError):  # NumPy 1.x
    _extobj_contextvar = None

if _extobj_contextvar is not None:
    _set = _extobj_contextvar.set

    def enter():
        """Ignore NumPy's floating-point errors until leave(token)."""
        return _set(_IGNORE)

    leave = _extobj_contextvar.reset
else:

    def enter():
        """Ignore NumPy's floating-point errors until leave(token)."""
        state = np.errstate(all="ignore")
        state.__enter__()
        return state

    def leave(token):
        token.__exit__(None, None, None)


def quietly(f):
    """f running with NumPy's floating-point errors ignored."""

    @functools.wraps(f)
    def g(*args, **kwargs):
        token = enter()
        try:
            return f(*args, **kwargs)
        finally:
            leave(token)

    return g


_WRAPPER = quietly(lambda: None).__code__


def stacklevel(level):
    """warnings.warn's stacklevel, from the function calling this one, for the frame `level`
    frames up not counting quietly()'s wrappers (so a wrapped function's warning still points at
    its caller)."""
    f, depth, counted = sys._getframe(1), 1, 1
    while counted < level and f.f_back is not None:
        f, depth = f.f_back, depth + 1
        if f.f_code is not _WRAPPER:
            counted += 1
    return depth
