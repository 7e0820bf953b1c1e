"""float32 rounding: the constants and the a-priori bound of a sum that the tests and
fastnn.bench state their tolerances in (one definition of each)."""

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23: the gap between 1 and the next float32
U32 = EPS32 / 2  # 2**-24: unit roundoff, the largest relative error of one rounding


def gamma32(n):
    """gamma_n = n u / (1 - n u) with u = U32: the bound on |error| / (sum of |terms|) of a float32
    sum of n terms in any order (Higham, Accuracy and Stability of Numerical Algorithms, 3.1)."""
    return n * U32 / (1 - n * U32)
