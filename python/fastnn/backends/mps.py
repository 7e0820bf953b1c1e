"""torch.backends.mps: fastnn has no Apple Metal (MPS) backend."""


def is_available():
    return False


def is_built():
    return False
