"""torch.backends.cudnn's flags: settable, with no effect (fastnn's CUDA kernels are its own,
not cuDNN's); is_available() is False and version() None."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True
benchmark_limit = 10


def is_available():
    return False


def version():
    return None
