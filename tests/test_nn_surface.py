"""torch.nn.Module's API and containers on fastnn.nn, compared with torch built the same way
(skipped without torch)."""

import fastnn.nn as nn
import numpy as np
import pytest
from fastnn import Tensor


def _torch():
    return pytest.importorskip("torch")


def test_batchnorm_cumulative_average_and_bias_flag_match_torch():
    torch = _torch()
    rng = np.random.default_rng(1)
    a, b = nn.BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None)
    for i in range(3):
        x = rng.standard_normal((5, 3)).astype(np.float32) * (i + 1)
        a(Tensor(x)), b(torch.from_numpy(x))
    np.testing.assert_allclose(a.running_mean.data, b.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.running_var.data, b.running_var.numpy(), rtol=1e-5, atol=1e-6)
    a, b = nn.BatchNorm2d(3, bias=False), torch.nn.BatchNorm2d(3, bias=False)
    assert list(a.state_dict()) == list(b.state_dict())
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(a(Tensor(x)).data, b(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
