"""nn.RNN / LSTM / GRU and their cells against torch.nn (weights copied in): outputs and the
gradients of input, hx and every parameter; shapes, dropout, errors, state dicts."""

import io

import fastnn
import fastnn.nn as nn
import numpy as np
import pytest
from fastnn import Tensor

# float32 forward and backward through time of a few steps: a few ulps per step, summed over
# T and B in a different order than torch's; 1e-4 relative (with a small absolute floor for
# entries near zero) is what float32 kernels meet at these sizes.
RTOL, ATOL = 1e-4, 1e-5


def _torch():
    return pytest.importorskip("torch")


def copy_params(fmod, tmod):
    """fastnn parameters set from the torch module's (same names, same shapes)."""
    tparams = dict(tmod.named_parameters())
    fparams = dict(fmod.named_parameters())
    assert list(fparams) == list(tparams)
    for k, p in fparams.items():
        assert p.shape == tuple(tparams[k].shape), k
        p._data[...] = tparams[k].detach().numpy()


def _flat(out):
    """The output tensors of a layer's forward, in order ((out, h) / (out, (h, c)) / h / (h, c))."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def check(ftype, kwargs, x_shape, hx_shapes=None, seed=0):
    """Forward and backward of fastnn's layer against torch's with the same weights and inputs."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    tmod = getattr(torch.nn, ftype)(**kwargs)
    fmod = getattr(nn, ftype)(**kwargs)
    copy_params(fmod, tmod)
    x = rng.standard_normal(x_shape).astype(np.float32)
    hx = None if hx_shapes is None else [rng.standard_normal(s).astype(np.float32) for s in hx_shapes]
    xt = torch.tensor(x, requires_grad=True)
    xf = Tensor(x, requires_grad=True)
    ht = None if hx is None else [torch.tensor(h, requires_grad=True) for h in hx]
    hf = None if hx is None else [Tensor(h, requires_grad=True) for h in hx]
    pack = lambda hs: None if hs is None else (tuple(hs) if len(hs) == 2 else hs[0])
    outs_t, outs_f = _flat(tmod(xt, pack(ht))), _flat(fmod(xf, pack(hf)))
    assert len(outs_t) == len(outs_f)
    gs = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in outs_t]
    loss_t = sum((o * torch.from_numpy(g)).sum() for o, g in zip(outs_t, gs))
    loss_f = sum((o * Tensor(g)).sum() for o, g in zip(outs_f, gs))
    for of, ot in zip(outs_f, outs_t):
        assert of.shape == tuple(ot.shape)
        np.testing.assert_allclose(of._data, ot.detach().numpy(), rtol=RTOL, atol=ATOL)
    loss_t.backward()
    loss_f.backward()
    np.testing.assert_allclose(xf.grad._data, xt.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="input")
    for i, (a, b) in enumerate(zip(hf or [], ht or [])):
        np.testing.assert_allclose(a.grad._data, b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"hx[{i}]")
    tgrads = {k: p.grad.numpy() for k, p in tmod.named_parameters()}
    for k, p in fmod.named_parameters():
        np.testing.assert_allclose(p.grad._data, tgrads[k], rtol=RTOL, atol=ATOL, err_msg=k)


KINDS = ["LSTM", "GRU", "RNN"]


def states(kind, shape):
    return [shape, shape] if kind == "LSTM" else [shape]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, False), (1, True), (2, True)])
def test_layer_matches_torch(kind, layers, bidir):
    D = 2 if bidir else 1
    kw = dict(input_size=5, hidden_size=7, num_layers=layers, bidirectional=bidir)
    check(kind, kw, (4, 3, 5))  # hx None: zeros
    check(kind, kw, (4, 3, 5), states(kind, (layers * D, 3, 7)), seed=1)  # given hx gets gradients


@pytest.mark.parametrize("kind", KINDS)
def test_layer_batch_first_no_bias(kind):
    check(
        kind,
        dict(input_size=3, hidden_size=6, num_layers=2, bias=False, batch_first=True, bidirectional=True),
        (2, 5, 3),
        states(kind, (4, 2, 6)),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_layer_edges(kind):
    check(kind, dict(input_size=4, hidden_size=3), (1, 1, 4))  # T = 1, B = 1
    check(
        kind, dict(input_size=4, hidden_size=3, num_layers=2, bidirectional=True), (6, 4), states(kind, (4, 3))
    )  # unbatched (T, I)


def test_rnn_relu_matches_torch():
    check("RNN", dict(input_size=4, hidden_size=5, nonlinearity="relu", num_layers=2), (5, 3, 4), [(2, 3, 5)])


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(kind, bias):
    st = [(3, 6), (3, 6)] if kind == "LSTMCell" else [(3, 6)]
    check(kind, dict(input_size=4, hidden_size=6, bias=bias), (3, 4))
    check(kind, dict(input_size=4, hidden_size=6, bias=bias), (3, 4), st, seed=2)
    check(kind, dict(input_size=4, hidden_size=6, bias=bias), (4,), [s[1:] for s in st], seed=3)  # unbatched


def test_rnn_cell_relu_matches_torch():
    check("RNNCell", dict(input_size=4, hidden_size=6, nonlinearity="relu"), (5, 4), [(5, 6)])


@pytest.mark.parametrize("kind,G", [("LSTM", 4), ("GRU", 3), ("RNN", 1)])
def test_parameters_shapes_and_init(kind, G):
    fastnn.manual_seed(0)
    m = getattr(nn, kind)(10, 16, num_layers=2, bidirectional=True)
    names = [k for k, _ in m.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert names[4:8] == [n + "_reverse" for n in names[:4]]
    assert m.weight_ih_l0.shape == (G * 16, 10) and m.weight_ih_l1.shape == (G * 16, 32)
    assert m.weight_hh_l1_reverse.shape == (G * 16, 16) and m.bias_hh_l1_reverse.shape == (G * 16,)
    allw = np.concatenate([p._data.ravel() for p in m.parameters()])
    assert np.abs(allw).max() <= 0.25 and np.abs(allw).max() > 0.24  # uniform(-1/sqrt(16), 1/sqrt(16))
    assert abs(allw.mean()) < 0.01
    out, h = getattr(nn, kind)(10, 16, bias=False)(Tensor(np.zeros((2, 3, 10), np.float32)))
    assert out.shape == (2, 3, 16)


def test_output_shapes():
    m = nn.LSTM(3, 5, num_layers=3, bidirectional=True, batch_first=True)
    out, (h, c) = m(Tensor(np.ones((2, 7, 3), np.float32)))
    assert out.shape == (2, 7, 10) and h.shape == (6, 2, 5) and c.shape == (6, 2, 5)
    out, h = nn.GRU(3, 5, num_layers=2)(Tensor(np.ones((7, 3), np.float32)))
    assert out.shape == (7, 5) and h.shape == (2, 5)


def test_bidirectional_halves_are_the_two_directions():
    """output[..., :H] is the forward pass; output[..., H:] the reversed one (aligned in time);
    h_n holds each direction's last state: forward at t = T-1, reverse at t = 0."""
    fastnn.manual_seed(3)
    m = nn.GRU(3, 4, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out, h = m(Tensor(x))
    np.testing.assert_array_equal(out._data[-1, :, :4], h._data[0])
    np.testing.assert_array_equal(out._data[0, :, 4:], h._data[1])
    fwd = nn.GRU(3, 4)
    rev = nn.GRU(3, 4)
    for a, b in ((fwd, ""), (rev, "_reverse")):
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(a, n + "_l0")._data[...] = getattr(m, f"{n}_l0{b}")._data
    np.testing.assert_allclose(out._data[:, :, :4], fwd(Tensor(x))[0]._data, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out._data[:, :, 4:], rev(Tensor(x[::-1].copy()))[0]._data[::-1], rtol=1e-5, atol=1e-6)


def test_dropout_eval_is_deterministic_and_training_masks():
    fastnn.manual_seed(0)
    m = nn.LSTM(8, 256, num_layers=2, dropout=0.4)
    x = Tensor(np.random.default_rng(1).standard_normal((3, 64, 8)).astype(np.float32))
    m.eval()
    a, b = m(x)[0]._data, m(x)[0]._data
    np.testing.assert_array_equal(a, b)
    # in training, layer 1 sees layer 0's output with a fraction p of it zeroed and the rest
    # scaled by 1/(1-p): check that directly by running layer 1 on the masked input
    m.train()
    seen = []
    orig = nn.functional.lstm

    def spy(inp, *args, **kw):
        seen.append(inp._data.copy())
        return orig(inp, *args, **kw)

    nn.functional.lstm = spy
    try:
        fastnn.manual_seed(5)
        out_train = m(x)[0]._data
    finally:
        nn.functional.lstm = orig
    m.eval()
    y0 = nn.functional.lstm(x, None, None, *m._weights(0, 0))[0]._data
    masked = seen[1]
    zero = masked == 0
    assert 0.37 < zero.mean() < 0.43  # 49,152 elements: the binomial's sd is 0.0022
    np.testing.assert_allclose(masked[~zero], y0[~zero] / 0.6, rtol=1e-6)
    assert not np.allclose(out_train, a)


def test_gradient_flows_through_carried_state():
    """h_n from one call, fed back as hx, passes its gradient on to the first call's input."""
    m = nn.LSTM(3, 4)
    x1 = Tensor(np.ones((2, 1, 3), np.float32), requires_grad=True)
    _, state = m(x1)
    out, _ = m(Tensor(np.ones((2, 1, 3), np.float32)), state)
    out.sum().backward()
    assert x1.grad is not None and np.abs(x1.grad._data).sum() > 0


@pytest.mark.parametrize(
    "make,x,hx,match",
    [
        (lambda: nn.LSTM(4, 5), np.zeros((2, 3, 6)), None, "input_size = 4, got 6"),
        (lambda: nn.GRU(4, 5), np.zeros((2, 3, 4, 1)), None, "2-D .* or 3-D, got a 4-D"),
        (lambda: nn.RNN(4, 5, num_layers=2), np.zeros((2, 3, 4)), np.zeros((1, 3, 5)), r"hx of shape \(2, 3, 5\)"),
        (lambda: nn.LSTM(4, 5), np.zeros((2, 3, 4)), (np.zeros((1, 3, 5)), np.zeros((1, 2, 5))), r"c_0 of shape"),
        (lambda: nn.LSTMCell(4, 5), np.zeros((3, 6)), None, "LSTMCell: expected input.size"),
        (lambda: nn.GRUCell(4, 5), np.zeros((3, 4)), np.zeros((2, 5)), r"GRUCell: expected hx of shape \(3, 5\)"),
        (lambda: nn.RNNCell(4, 5), np.zeros((1, 3, 4)), None, "RNNCell: expected input to be 1-D"),
    ],
)
def test_bad_shapes(make, x, hx, match):
    f32 = lambda a: Tensor(np.asarray(a, np.float32))
    hx = None if hx is None else (tuple(f32(h) for h in hx) if isinstance(hx, tuple) else f32(hx))
    with pytest.raises(ValueError, match=match):
        make()(f32(x), hx)


def test_bad_arguments():
    with pytest.raises(
        RuntimeError, match="lstm: expected input and weight_ih to have the same dtype, got float64 and"
    ):
        nn.LSTM(2, 3)(Tensor(np.zeros((1, 1, 2)), dtype=np.float64))
    with pytest.raises(TypeError, match="LSTM: expected input to be float32 or float64, got float16"):
        nn.LSTM(2, 3)(Tensor(np.zeros((1, 1, 2)), dtype=np.float16))
    with pytest.raises(TypeError, match=r"LSTM: expected hx to be a tuple \(h_0, c_0\)"):
        nn.LSTM(2, 3)(Tensor(np.zeros((1, 1, 2), np.float32)), Tensor(np.zeros((1, 1, 3), np.float32)))
    with pytest.raises(ValueError, match="RNN: expected nonlinearity"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="GRU: expected dropout"):
        nn.GRU(2, 3, dropout=1.5)
    with pytest.raises(ValueError, match="LSTM: expected hidden_size"):
        nn.LSTM(2, 0)
    with pytest.raises(ValueError, match="GRUCell: expected input_size"):
        nn.GRUCell(-1, 3)
    with pytest.raises(ValueError, match="proj_size has to be smaller"):
        nn.LSTM(2, 3, proj_size=3)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(2, 3, dropout=0.5)


@pytest.mark.parametrize("kind", KINDS + ["LSTMCell", "GRUCell", "RNNCell"])
def test_state_dict_round_trip(kind):
    kw = dict(num_layers=2, bidirectional=True) if kind in KINDS else {}
    a, b = getattr(nn, kind)(3, 4, **kw), getattr(nn, kind)(3, 4, **kw)
    buf = io.BytesIO()
    fastnn.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(fastnn.load(buf))
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))
    for pa, pb in zip(_flat(a(x)), _flat(b(x))):
        np.testing.assert_array_equal(pa._data, pb._data)
