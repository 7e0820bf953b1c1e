"""fastnn.distributions: torch.distributions' Categorical, the distribution the policy-gradient
examples (REINFORCE, actor-critic) sample their actions from. Other torch.distributions names
raise NotImplementedError naming the feature.

Samples come from fastnn's seeded generator (fastnn.manual_seed), so they repeat under a seed
but differ from torch's; log_prob and entropy are differentiable in probs or logits."""

import numpy as np

from . import _compat
from . import _device as _dev
from . import random as _random
from .tensor import Tensor, no_grad, tensor

__all__ = ["Distribution", "Categorical"]


class Distribution:
    """The base of fastnn's distributions: batch_shape and event_shape, and sample() as
    rsample() is not offered (no reparameterised sampling)."""

    has_rsample = False
    has_enumerate_support = False

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        self._validate_args = True if validate_args is None else bool(validate_args)

    @property
    def batch_shape(self):
        return self._batch_shape

    @property
    def event_shape(self):
        return self._event_shape

    def rsample(self, sample_shape=()):
        raise NotImplementedError(f"fastnn has no reparameterised sampling (rsample) for {type(self).__name__}")

    def sample_n(self, n):
        return self.sample((n,))

    def perplexity(self):
        return self.entropy().exp()


def _as_tensor(x, what):
    if isinstance(x, Tensor):
        return x
    try:
        return tensor(x)
    except Exception:
        raise TypeError(f"Categorical: expected {what} to be a Tensor, got {type(x).__name__}") from None


class Categorical(Distribution):
    """A distribution over {0, ..., K-1}, K the size of the last dim of probs (non-negative,
    normalised here) or logits (unnormalised log-probabilities); exactly one of the two."""

    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            probs = _as_tensor(probs, "probs")
            if probs.dim() < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / probs.sum(-1, keepdim=True)
            self._param = self.probs
        else:
            logits = _as_tensor(logits, "logits")
            if logits.dim() < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
            self._param = self.logits
        if self._param.dtype.kind != "f":
            raise ValueError(f"Categorical: expected floating-point probs or logits, got {self._param.dtype}")
        self._num_events = self._param.shape[-1]
        super().__init__(self._param.shape[:-1], (), validate_args)
        if self._validate_args and probs is not None:
            p = _dev.to_host(self._param._data)
            if not (np.all(p >= 0) and np.all(np.isfinite(p))):
                raise ValueError(
                    "Expected parameter probs of distribution Categorical to satisfy the constraint Simplex(), "
                    f"but found invalid values:\n{self.probs}"
                )

    # probs and logits: whichever was not given is derived on first use, as torch's lazy_property
    def __getattr__(self, name):
        if name == "probs":
            value = self.logits.softmax(-1)
        elif name == "logits":
            eps = float(np.finfo(self.probs.dtype).eps)
            value = self.probs.clamp(min=eps, max=1 - eps).log()
        else:
            raise _compat.Unsupported(
                f"fastnn has no torch.distributions.Categorical.{name}: fastnn.distributions.Categorical.{name} "
                "is not implemented"
            )
        self.__dict__[name] = value
        return value

    @property
    def param_shape(self):
        return self._param.shape

    @property
    def mean(self):
        return tensor(np.full(self.batch_shape, np.nan, dtype=self._param.dtype))

    variance = mean

    @property
    def mode(self):
        return self.probs.argmax(dim=-1)

    def sample(self, sample_shape=()):
        """int64 indices of shape sample_shape + batch_shape, drawn from probs (no gradient)."""
        if isinstance(sample_shape, int):
            sample_shape = (sample_shape,)
        shape = tuple(sample_shape) + self.batch_shape
        with no_grad():
            p = _dev.to_host(self.probs._data).astype(np.float64)
        cdf = np.cumsum(p, axis=-1)
        u = _random.generator().random(shape)[..., None] * cdf[..., -1:]
        idx = np.minimum((cdf <= u).sum(-1), self._num_events - 1).astype(np.int64)
        return Tensor(_dev.move(idx, _dev.device_of(self._param._data)))

    def _check_support(self, value):
        v = _dev.to_host(value._data)
        ok = (v >= 0) & (v < self._num_events) & (v == np.floor(v))
        if not np.all(ok):
            raise ValueError(
                "Expected value argument to be within the support (IntegerInterval(lower_bound=0, "
                f"upper_bound={self._num_events - 1})) of the distribution {self!r}, but found invalid values:\n{value}"
            )

    def log_prob(self, value):
        """log P(value) for integer values broadcast against batch_shape."""
        value = _as_tensor(value, "value")
        if self._validate_args:
            self._check_support(value)
        shape = tuple(np.broadcast_shapes(tuple(value.shape), self.batch_shape))
        index = value.long().expand(*shape).unsqueeze(-1)
        logits = self.logits.expand(*shape, self._num_events)
        return logits.gather(-1, index).squeeze(-1)

    def entropy(self):
        min_real = float(np.finfo(self.logits.dtype).min)
        p_log_p = self.logits.clamp(min=min_real) * self.probs
        return -p_log_p.sum(-1)

    def enumerate_support(self, expand=True):
        values = tensor(np.arange(self._num_events, dtype=np.int64)).reshape(
            (self._num_events,) + (1,) * len(self.batch_shape)
        )
        return values.expand(self._num_events, *self.batch_shape) if expand else values

    def __repr__(self):
        name = "probs" if self._param is self.__dict__.get("probs") else "logits"
        shown = self._param if self._param.numel() == 1 else tuple(self._param.shape)
        return f"Categorical({name}: {shown})"


def __getattr__(name):
    # torch.distributions' other names: NotImplementedError naming them
    raise _compat.missing(__name__, "torch.distributions", name)
