"""Recurrent layers with torch.nn's constructors, parameter names, initialisation and shapes:
RNN, LSTM, GRU (stacked, bidirectional, batch_first, dropout between layers) and their cells.
Each layer and direction is one whole-sequence kernel call (fastnn.nn.functional.lstm/gru/rnn)."""

import math
import warnings

import numpy as np

from ..tensor import Tensor, cat, stack
from . import functional as F
from . import init
from .functional import _t
from .modules import Module, Parameter, _factory_dtype

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _check_sizes(name, input_size, hidden_size):
    for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"fastnn.nn.{name}: expected {what} to be a positive integer, got {v!r}")


def _check_float(name, what, t):
    if t._data.dtype not in (np.float32, np.float64):
        raise TypeError(f"fastnn.nn.{name}: expected {what} to be float32 or float64, got {t._data.dtype}")


class RNNBase(Module):
    """The stacked, optionally bidirectional recurrent layer behind RNN, LSTM and GRU."""

    def __init__(
        self,
        mode,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        name = "RNN" if mode.startswith("RNN") else mode
        _check_sizes(name, input_size, hidden_size)
        if not isinstance(num_layers, (int, np.integer)) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"fastnn.nn.{name}: expected num_layers to be a positive integer, got {num_layers!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(
                f"fastnn.nn.{name}: expected dropout to be a number in [0, 1] (the probability "
                f"of zeroing an element), got {dropout!r}"
            )
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        self.mode, self._name = mode, name
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), int(proj_size)
        G, H, D = _GATES[mode], self.hidden_size, 2 if bidirectional else 1
        R = self.proj_size or H  # the size of h: the projection's, if any
        # torch's order: per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh, weight_hr
        for layer in range(num_layers):
            isz = self.input_size if layer == 0 else R * D
            for sfx in ("", "_reverse")[:D]:
                setattr(self, f"weight_ih_l{layer}{sfx}", Parameter(np.empty((G * H, isz), np.float32)))
                setattr(self, f"weight_hh_l{layer}{sfx}", Parameter(np.empty((G * H, R), np.float32)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{sfx}", Parameter(np.empty(G * H, np.float32)))
                    setattr(self, f"bias_hh_l{layer}{sfx}", Parameter(np.empty(G * H, np.float32)))
                if self.proj_size:
                    setattr(self, f"weight_hr_l{layer}{sfx}", Parameter(np.empty((R, H), np.float32)))
        self.reset_parameters()
        self.to(_factory_dtype(dtype))  # made float32 above; the default dtype or dtype=
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _weights(self, layer, direction):
        sfx = "_reverse" if direction else ""
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        ws = [getattr(self, f"{n}_l{layer}{sfx}") for n in names]
        return ws if self.bias else ws + [None, None]

    def _check_hidden(self, h, expected, what):
        if not isinstance(h, Tensor):
            h = _t(h)
        _check_float(self._name, what, h)
        if tuple(h.shape) != tuple(expected):
            raise ValueError(
                f"fastnn.nn.{self._name}: expected {what} of shape {tuple(expected)}, got {tuple(h.shape)}"
            )
        return h

    def forward(self, input, hx=None):
        x = _t(input)
        _check_float(self._name, "input", x)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"fastnn.nn.{self._name}: expected input to be 2-D (unbatched) or 3-D, "
                f"got a {x.ndim}-D input of shape {tuple(x.shape)}"
            )
        batched = x.ndim == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"fastnn.nn.{self._name}: expected input.size(-1) == input_size = {self.input_size}, got {x.shape[2]}"
            )
        D = 2 if self.bidirectional else 1
        B, H = x.shape[1], self.hidden_size
        shape = (self.num_layers * D, B, H) if batched else (self.num_layers * D, H)
        h_shape = shape[:-1] + (self.proj_size or H,)
        h0 = c0 = None
        if hx is not None:
            if self.mode == "LSTM":
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"fastnn.nn.LSTM: expected hx to be a tuple (h_0, c_0), got {type(hx).__name__}")
                h0 = self._check_hidden(hx[0], h_shape, "h_0")
                c0 = self._check_hidden(hx[1], shape, "c_0")
            else:
                if isinstance(hx, (tuple, list)):
                    raise TypeError(f"fastnn.nn.{self._name}: expected hx to be a tensor, got {type(hx).__name__}")
                h0 = self._check_hidden(hx, shape, "hx")
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = None if c0 is None else c0.unsqueeze(1)
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                h_init = None if h0 is None else h0[k]
                w = self._weights(layer, d)
                if self.proj_size:
                    w_hr = getattr(self, f"weight_hr_l{layer}{'_reverse' if d else ''}")
                    y, h, c = _lstm_projected(x, h_init, None if c0 is None else c0[k], *w, w_hr, bool(d))
                    cs.append(c)
                elif self.mode == "LSTM":
                    y, h, c = F.lstm(x, h_init, None if c0 is None else c0[k], *w, reverse=bool(d))
                    cs.append(c)
                elif self.mode == "GRU":
                    y, h = F.gru(x, h_init, *w, reverse=bool(d))
                else:
                    y, h = F.rnn(
                        x, h_init, *w, nonlinearity="tanh" if self.mode == "RNN_TANH" else "relu", reverse=bool(d)
                    )
                outs.append(y)
                hs.append(h)
            x = outs[0] if D == 1 else cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = stack(hs, 0)
        c_n = stack(cs, 0) if cs else None
        if not batched:
            x, h_n = x.squeeze(1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return (x, (h_n, c_n)) if self.mode == "LSTM" else (x, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        for k, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)}"
        return s


def _lstm_projected(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr, reverse):
    """torch's LSTM with a projection, step by step in Tensor operations: x (T, B, I), h (B, P),
    c (B, H); h_t = W_hr (o * tanh(c_t)). Returns (y (T, B, P), h_T, c_T)."""
    T, B = x.shape[0], x.shape[1]
    H, P = w_hr.shape[1], w_hr.shape[0]
    h = Tensor(np.zeros((B, P), x._data.dtype)) if h is None else h  # the input's dtype
    c = Tensor(np.zeros((B, H), x._data.dtype)) if c is None else c
    xw = F.linear(x, w_ih, b_ih)  # (T, B, 4H): the input's share of the gates, all steps at once
    ys = [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        gates = xw[t] + F.linear(h, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = F.linear(o.sigmoid() * c.tanh(), w_hr)
        ys[t] = h
    return stack(ys, 0), h, c


class RNN(RNNBase):
    """torch.nn.RNN: h_t = tanh or relu(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"fastnn.nn.RNN: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
        )
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """torch.nn.LSTM (gates i, f, g, o); forward returns (output, (h_n, c_n))."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
        )


class GRU(RNNBase):
    """torch.nn.GRU (gates r, z, n; b_hn inside the reset product)."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device=device
        )


class RNNCellBase(Module):
    """One recurrent step: weight_ih (G*H, I), weight_hh (G*H, H), bias_ih / bias_hh (G*H,)."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        G, H = num_chunks, self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), np.float32))
        self.weight_hh = Parameter(np.empty((G * H, H), np.float32))
        if bias:
            self.bias_ih = Parameter(np.empty(G * H, np.float32))
            self.bias_hh = Parameter(np.empty(G * H, np.float32))
        else:
            self.bias_ih = self.bias_hh = None
        self.reset_parameters()
        self.to(_factory_dtype())  # made float32 above; the default dtype
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _prepare(self, input, states):
        """(input (B, I), states (B, H) or None, batched) after checking dtypes and shapes."""
        name = type(self).__name__
        x = _t(input)
        _check_float(name, "input", x)
        if x.ndim not in (1, 2):
            raise ValueError(
                f"fastnn.nn.{name}: expected input to be 1-D (unbatched) or 2-D, got a {x.ndim}-D "
                f"input of shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"fastnn.nn.{name}: expected input.size(-1) == input_size = {self.input_size}, got {x.shape[-1]}"
            )
        batched = x.ndim == 2
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        out = []
        for what, h in states:
            if h is not None:
                h = _t(h)
                _check_float(name, what, h)
                if tuple(h.shape) != expected:
                    raise ValueError(f"fastnn.nn.{name}: expected {what} of shape {expected}, got {tuple(h.shape)}")
                h = h if batched else h.unsqueeze(0)
            out.append(h)
        return (x if batched else x.unsqueeze(0)), out, batched

    def _w(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"fastnn.nn.RNNCell: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, device)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [("hx", hx)])
        h1 = F.rnn_cell(x, h, *self._w(), nonlinearity=self.nonlinearity)
        return h1 if batched else h1.squeeze(0)


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device)

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [("hx", hx)])
        h1 = F.gru_cell(x, h, *self._w())
        return h1 if batched else h1.squeeze(0)


class LSTMCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"fastnn.nn.LSTMCell: expected hx to be a tuple (h_0, c_0), got {type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        x, (h, c), batched = self._prepare(input, [("h_0", h), ("c_0", c)])
        h1, c1 = F.lstm_cell(x, h, c, *self._w())
        return (h1, c1) if batched else (h1.squeeze(0), c1.squeeze(0))
