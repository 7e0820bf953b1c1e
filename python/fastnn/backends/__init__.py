"""fastnn.backends: torch.backends' switches for scripts that set them.

fastnn's kernels are its own (no cuDNN, no MPS), so the flags here are accepted, kept and
change nothing: `fastnn.backends.cudnn.benchmark = True` works as a no-op; the queries say
what is there (cudnn.is_available() and mps.is_available() are False)."""

from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
