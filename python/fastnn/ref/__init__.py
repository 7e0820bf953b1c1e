"""NumPy references of every op in fastnn.ops: same names and signatures, float64 inside."""
from .gemm import gemm

__all__ = ["gemm"]
