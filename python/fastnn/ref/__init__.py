"""NumPy references of every op in fastnn.ops: same names and signatures, float64 inside."""
from .conv2d import (conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight,
                     conv2d_forward)
from .gemm import gemm

__all__ = ["gemm", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
           "conv2d_backward_bias"]
