"""torch's semantics at the edges: .data and detach sharing memory, optimizer state keyed by
parameter and torch's optimizer flags, unbatched inputs, LSTM proj_size, MultiheadAttention's
options, 0-d tensors, gradients of every differentiable argument, torch's keyword names."""

import inspect

import fastnn
import numpy as np
import pytest
from fastnn import Tensor, nn

RTOL, ATOL = 1e-5, 1e-6  # float32, one op or a short chain of them


# -- .data and detach --------------------------------------------------------------------------
def test_data_is_a_detached_tensor_sharing_memory():
    p = nn.Parameter(fastnn.ones(3))
    p.grad = fastnn.full((3,), 2.0)
    d = p.data
    assert isinstance(d, Tensor) and not d.requires_grad and d.grad_fn is None
    p.data.add_(p.grad, alpha=-0.5)
    np.testing.assert_array_equal(p.numpy(force=True), [0, 0, 0])
    p.data.copy_(fastnn.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(p.numpy(force=True), [1, 2, 3])
    p.data.mul_(2).zero_()
    assert p.requires_grad and p.is_leaf and not p.numpy(force=True).any()


def test_data_assignment_replaces_the_memory():
    p = nn.Parameter(fastnn.ones(3))
    p.data = fastnn.arange(4.0)
    assert p.shape == (4,) and p.requires_grad and isinstance(p, nn.Parameter)
    p.data = fastnn.zeros(2, dtype=fastnn.float64)
    assert p.dtype == np.float64  # torch: the assigned tensor's dtype


def test_detach_shares_memory():
    x = fastnn.randn(2, 3, requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad
    d = x.detach()
    d[0, 0] = 5.0
    assert x[0, 0].item() == 5.0
    s = fastnn.tensor(3.0).exp().detach()  # 0-d results too
    s.fill_(1.0)
    assert s.item() == 1.0


def test_data_matches_torch_training_idiom():
    torch = pytest.importorskip("torch")
    w0 = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    ours, theirs = nn.Linear(4, 3, bias=False), torch.nn.Linear(4, 3, bias=False)
    for m, T in ((ours, fastnn.from_numpy), (theirs, torch.from_numpy)):
        m.weight.data.copy_(T(w0))
        for _ in range(3):
            m.weight.grad = None
            (m(T(x)) ** 2).sum().backward()
            m.weight.data.add_(m.weight.grad, alpha=-0.01)
    np.testing.assert_allclose(ours.weight.numpy(force=True), theirs.weight.detach().numpy(), rtol=RTOL, atol=ATOL)


# -- optimizers: state keyed by parameter, torch's flags ---------------------------------------
OPTIMS = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam"]


def _pair(torch, seed=0):
    w = np.random.default_rng(seed).standard_normal((3, 4)).astype(np.float32)
    return nn.Parameter(Tensor(w)), torch.nn.Parameter(torch.from_numpy(w.copy()))


def _steps(opt, p, n=3):
    for i in range(n):
        opt.zero_grad()
        ((p * p).sum() * (i + 1)).backward()
        opt.step()


@pytest.mark.parametrize("name", OPTIMS)
def test_state_is_keyed_by_the_parameter(name):
    torch = pytest.importorskip("torch")
    kw = {"momentum": 0.9} if name == "SGD" else {}
    pf, pt = _pair(torch)
    of, ot = getattr(fastnn.optim, name)([pf], lr=0.01, **kw), getattr(torch.optim, name)([pt], lr=0.01, **kw)
    _steps(of, pf), _steps(ot, pt)
    assert pf in of.state and sorted(of.state[pf]) == sorted(ot.state[pt])
    for k, v in ot.state[pt].items():
        np.testing.assert_allclose(np.asarray(of.state[pf][k]), v.numpy(), rtol=RTOL, atol=ATOL, err_msg=k)
    assert of.state[nn.Parameter(fastnn.ones(1))] == {}  # a defaultdict, as torch's
    assert list(of.state_dict()["state"]) == [0]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
@pytest.mark.parametrize("flags", [dict(foreach=True), dict(foreach=False), dict(fused=True), dict(maximize=True)])
def test_torch_flags_are_accepted(name, flags):
    torch = pytest.importorskip("torch")
    pf, pt = _pair(torch)
    kw = dict(lr=0.01, **flags) | ({"momentum": 0.9} if name == "SGD" else {})
    of, ot = getattr(fastnn.optim, name)([pf], **kw), getattr(torch.optim, name)([pt], **kw)
    _steps(of, pf), _steps(ot, pt)
    np.testing.assert_allclose(pf.numpy(force=True), pt.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert of.param_groups[0].keys() == ot.param_groups[0].keys()


def test_adam_decoupled_weight_decay_is_adamw():
    torch = pytest.importorskip("torch")
    pf, pt = _pair(torch)
    of = fastnn.optim.Adam([pf], lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    ot = torch.optim.Adam([pt], lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    _steps(of, pf), _steps(ot, pt)
    np.testing.assert_allclose(pf.numpy(force=True), pt.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", OPTIMS)
def test_differentiable_and_capturable_are_not_implemented(name):
    p = [nn.Parameter(fastnn.ones(2))]
    cls = getattr(fastnn.optim, name)
    with pytest.raises(NotImplementedError, match="differentiable"):
        cls(p, lr=0.1, differentiable=True)
    if "capturable" in inspect.signature(cls).parameters:
        with pytest.raises(NotImplementedError, match="capturable"):
            cls(p, lr=0.1, capturable=True)
    if "fused" in inspect.signature(cls).parameters:
        with pytest.raises(RuntimeError, match="cannot be `True` together"):
            cls(p, lr=0.1, fused=True, foreach=True)


# -- against torch: forward and the gradient of every float input ----------------------------
def _both(torch, rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    return Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def check_torch(ours, theirs, *shapes, seed=0):
    """ours(*fastnn tensors) and theirs(*torch tensors) on the same random inputs: outputs, and
    the gradients of every input under a random output weighting."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    xs = [_both(torch, rng, s) for s in shapes]
    yo, yt = ours(*(x[0] for x in xs)), theirs(*(x[1] for x in xs))
    assert yo.shape == tuple(yt.shape)
    np.testing.assert_allclose(yo.numpy(force=True), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    w = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yo * Tensor(w)).sum().backward()
    (yt * torch.from_numpy(w)).sum().backward()
    for k, (a, b) in enumerate(xs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"grad {k}")


def _tf():
    return pytest.importorskip("torch").nn.functional


# unbatched (C, L) / (C, H, W) inputs: (name, call on either library's functional, input shapes)
UNBATCHED = [
    ("conv1d", lambda F, x, w: F.conv1d(x, w, padding=1), (3, 10), (4, 3, 3)),
    ("conv2d", lambda F, x, w: F.conv2d(x, w, padding=1, stride=2), (3, 8, 7), (4, 3, 3, 3)),
    ("max_pool1d", lambda F, x: F.max_pool1d(x, 3, 2), (3, 10)),
    ("max_pool2d", lambda F, x: F.max_pool2d(x, 2), (3, 8, 8)),
    ("max_pool2d_indices", lambda F, x: F.max_pool2d(x, 2, return_indices=True)[0], (3, 8, 8)),
    ("avg_pool1d", lambda F, x: F.avg_pool1d(x, 3, 2, 1), (3, 10)),
    ("avg_pool2d", lambda F, x: F.avg_pool2d(x, 3, 2, 1), (3, 8, 8)),
    ("adaptive_avg_pool1d", lambda F, x: F.adaptive_avg_pool1d(x, 5), (3, 10)),
    ("adaptive_avg_pool2d", lambda F, x: F.adaptive_avg_pool2d(x, (2, 4)), (3, 8, 8)),
    ("cross_entropy", lambda F, x: F.cross_entropy(x, _target(F, 2)), (5,)),
    ("cross_entropy_none", lambda F, x: F.cross_entropy(x, _target(F, 2), reduction="none"), (5,)),
    ("cross_entropy_smooth", lambda F, x: F.cross_entropy(x, _target(F, 1), label_smoothing=0.1), (5,)),
    ("cross_entropy_probs", lambda F, x, t: F.cross_entropy(x, t.softmax(0)), (5,), (5,)),
    ("nll_loss", lambda F, x: F.nll_loss(x, _target(F, 2)), (5,)),
    ("nll_loss_none", lambda F, x: F.nll_loss(x, _target(F, 2), reduction="none"), (5,)),
    ("sdpa", lambda F, q, k, v: F.scaled_dot_product_attention(q, k, v), (4, 8), (6, 8), (6, 8)),
    ("sdpa_broadcast", lambda F, q, k, v: F.scaled_dot_product_attention(q, k, v), (2, 3, 4, 8), (1, 3, 6, 8), (6, 8)),
    ("sdpa_broadcast_3d", lambda F, q, k, v: F.scaled_dot_product_attention(q, k, v), (3, 4, 8), (2, 1, 6, 8), (6, 5)),
]


def _target(F, c):
    """A 0-d class index of F's library."""
    return (fastnn if F is fastnn.nn.functional else pytest.importorskip("torch")).tensor(c)


@pytest.mark.parametrize("case", UNBATCHED, ids=[c[0] for c in UNBATCHED])
def test_unbatched_functional(case):
    _, f, *shapes = case
    check_torch(lambda *a: f(fastnn.nn.functional, *a), lambda *a: f(_tf(), *a), *shapes)


MODULES = [
    ("Conv1d", (3, 4, 3), {"padding": 1}, (3, 10)),
    ("Conv2d", (3, 4, 3), {"stride": 2}, (3, 9, 8)),
    ("MaxPool1d", (2,), {}, (3, 10)),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1}, (3, 9, 8)),
    ("AvgPool1d", (3,), {"padding": 1}, (3, 10)),
    ("AvgPool2d", (2,), {"ceil_mode": True}, (3, 9, 7)),
    ("AdaptiveAvgPool1d", (4,), {}, (3, 10)),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, (3, 8, 7)),
]


@pytest.mark.parametrize("case", MODULES, ids=[c[0] for c in MODULES])
def test_unbatched_modules(case):
    torch = pytest.importorskip("torch")
    name, args, kw, shape = case
    ours, theirs = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    if hasattr(theirs, "weight"):
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    check_torch(ours, theirs, shape)


# -- pooling options: divisor_override, count_include_pad, ceil_mode; any adaptive size ----------
AVG_POOL = [
    dict(),
    dict(ceil_mode=True),
    dict(ceil_mode=True, count_include_pad=False),
    dict(count_include_pad=False),
    dict(divisor_override=2),
    dict(divisor_override=5, ceil_mode=True),
    dict(divisor_override=3, ceil_mode=True, count_include_pad=False),
]


@pytest.mark.parametrize("kw", AVG_POOL, ids=str)
def test_avg_pool2d_options(kw):
    F = fastnn.nn.functional
    check_torch(lambda x: F.avg_pool2d(x, 3, 2, 1, **kw), lambda x: _tf().avg_pool2d(x, 3, 2, 1, **kw), (2, 3, 8, 9))


@pytest.mark.parametrize("size", [(3, 4), (5, 2), 1, (None, 4), (7, 9), (4, 6)], ids=str)
def test_adaptive_avg_pool2d_any_size(size):
    F = fastnn.nn.functional
    check_torch(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: _tf().adaptive_avg_pool2d(x, size), (2, 3, 7, 9))


@pytest.mark.parametrize("size", [0, (0, 4), (3, 0), (None, 0)], ids=str)
def test_adaptive_avg_pool2d_to_size_zero_is_empty(size):
    # an output size of 0 is an empty result, as torch's, not "keep the input's size"
    F = fastnn.nn.functional
    x = fastnn.tensor(np.random.default_rng(0).standard_normal((2, 3, 7, 9), dtype=np.float32), requires_grad=True)
    y = F.adaptive_avg_pool2d(x, size)
    oh, ow = (size, size) if isinstance(size, int) else (7 if size[0] is None else size[0], size[1])
    assert y.shape == (2, 3, oh, ow)
    y.sum().backward()
    assert x.grad.shape == x.shape and not x.grad.numpy().any()
    with pytest.raises(RuntimeError, match="greater than or equal to 0"):
        F.adaptive_avg_pool2d(x, (2, -1))


@pytest.mark.parametrize("size", [3, 4, 7])
def test_adaptive_avg_pool1d_any_size(size):
    F = fastnn.nn.functional
    check_torch(lambda x: F.adaptive_avg_pool1d(x, size), lambda x: _tf().adaptive_avg_pool1d(x, size), (2, 3, 10))


# -- MultiheadAttention's options ----------------------------------------------------------------
KP = np.array([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]], bool)  # (B, S): True = padding
AM = np.random.default_rng(5).standard_normal((4, 4)).astype(np.float32)
MHA = [  # (constructor kwargs, forward kwargs, q/k/v shapes, masks (key_padding_mask, attn_mask))
    ({}, {}, [(4, 3, 8)] * 3, None),
    ({"kdim": 5, "vdim": 3}, {}, [(4, 3, 8), (6, 3, 5), (6, 3, 3)], None),
    ({"kdim": 5, "vdim": 3}, {"need_weights": False}, [(4, 8), (6, 5), (6, 3)], None),
    ({"add_bias_kv": True}, {}, [(4, 3, 8)] * 3, None),
    ({"add_zero_attn": True}, {}, [(4, 3, 8)] * 3, None),
    (
        {"add_zero_attn": True, "add_bias_kv": True, "batch_first": True},
        {"average_attn_weights": False},
        [(3, 4, 8)] * 3,
        None,
    ),
    ({"add_zero_attn": True, "add_bias_kv": True}, {"need_weights": False}, [(4, 3, 8)] * 3, (KP, AM)),
    ({"add_bias_kv": True}, {}, [(4, 3, 8)] * 3, (KP, AM < 0)),
    ({}, {}, [(4, 8)] * 3, (None, AM < 0)),
    ({"batch_first": True}, {"need_weights": False}, [(3, 4, 8)] * 3, (KP.astype(np.float32) * -1e9, AM)),
]


@pytest.mark.parametrize("case", MHA, ids=lambda c: str(c) if isinstance(c, dict) else None)
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # torch's, for a bool and a float mask
def test_multihead_attention_matches_torch(case):
    torch = pytest.importorskip("torch")
    kw, fkw, shapes, masks = case
    theirs, ours = torch.nn.MultiheadAttention(8, 2, **kw), nn.MultiheadAttention(8, 2, **kw)
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in sd.items()]
    ours.load_state_dict(sd)
    rng = np.random.default_rng(1)
    xs = [_both(torch, rng, s) for s in shapes]
    for lib, i in ((fastnn, 0), (torch, 1)):
        m = {}
        if masks is not None:
            for name, a in zip(("key_padding_mask", "attn_mask"), masks):
                if a is not None:
                    m[name] = lib.tensor(a)
        out, w = (ours if i == 0 else theirs)(*(x[i] for x in xs), **fkw, **m)
        out.sum().backward()
        if i == 0:
            of, wf = out, w
        else:
            ot, wt = out, w
    np.testing.assert_allclose(of.numpy(force=True), ot.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert (wf is None) == (wt is None)
    if wt is not None:
        np.testing.assert_allclose(wf.numpy(force=True), wt.detach().numpy(), rtol=RTOL, atol=ATOL)
    for a, b in xs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
    ps = dict(ours.named_parameters())
    for k, p in theirs.named_parameters():
        np.testing.assert_allclose(ps[k].grad.numpy(), p.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=k)


# -- LSTM proj_size ------------------------------------------------------------------------------
LSTM_PROJ = [  # (kwargs, input shape, with (h_0, c_0))
    ({}, (5, 2, 4), False),
    ({"num_layers": 2, "bidirectional": True}, (5, 2, 4), True),
    ({"batch_first": True}, (2, 5, 4), True),
    ({"bidirectional": True, "bias": False}, (5, 4), True),
]


@pytest.mark.parametrize("case", LSTM_PROJ, ids=lambda c: str(c) if isinstance(c, dict) else None)
@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_proj_size_matches_torch(case):
    torch = pytest.importorskip("torch")
    kw, shape, with_hx = case
    theirs, ours = torch.nn.LSTM(4, 6, proj_size=3, **kw), nn.LSTM(4, 6, proj_size=3, **kw)
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in sd.items()]
    assert repr(ours) == repr(theirs)
    ours.load_state_dict(sd)
    rng = np.random.default_rng(2)
    LD = (2 if kw.get("bidirectional") else 1) * kw.get("num_layers", 1)
    B = () if len(shape) == 2 else (2,)
    xs = [_both(torch, rng, s) for s in [shape] + ([(LD, *B, 3), (LD, *B, 6)] if with_hx else [])]
    res = []
    for i, m in ((0, ours), (1, theirs)):
        args = [xs[0][i]] + ([(xs[1][i], xs[2][i])] if with_hx else [])
        y, (h, c) = m(*args)
        (y.sum() + 2 * h.sum() + 3 * c.sum()).backward()
        res.append((y, h, c))
    for a, b in zip(*res):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(force=True), b.detach().numpy(), rtol=RTOL, atol=ATOL)
    for a, b in xs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
    ps = dict(ours.named_parameters())
    for k, p in theirs.named_parameters():
        np.testing.assert_allclose(ps[k].grad.numpy(), p.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=k)


# -- 0-d tensors through the functional ops, forward and backward ------------------------------
ACTIVATIONS = "relu relu6 leaky_relu sigmoid tanh gelu silu mish softplus elu selu celu hardtanh hardsigmoid"
ACTIVATIONS += " hardswish softsign tanhshrink logsigmoid hardshrink softshrink"
PAIR_LOSSES = "mse_loss l1_loss smooth_l1_loss huber_loss binary_cross_entropy_with_logits"
ZERO_D = [  # (name, call on either library's functional, number of 0-d float inputs)
    *((n, None, 1) for n in ACTIVATIONS.split()),
    *((n, {"dim": 0}, 1) for n in ("softmax", "log_softmax", "softmin")),
    *((n, None, 2) for n in PAIR_LOSSES.split()),
    ("kl_div", lambda F, x, t: F.kl_div(x, t, reduction="batchmean"), 2),
    ("dropout_eval", lambda F, x: F.dropout(x, 0.5, training=False), 1),
    ("binary_cross_entropy", lambda F, x, t: F.binary_cross_entropy(x.sigmoid(), t.sigmoid()), 2),
    ("arithmetic", lambda F, x, y: (x * y + x / (y * y + 1) - y) ** 2, 2),
    ("reductions", lambda F, x: x.sum() + x.mean() + x.amax() + x.exp().log(), 1),
]


@pytest.mark.parametrize("case", ZERO_D, ids=[c[0] for c in ZERO_D])
def test_zero_dim_functional(case):
    name, f, n = case
    if not callable(f):  # the function of that name, with these keywords
        kw = f or {}

        def f(F, *a):
            return getattr(F, name)(*a, **kw)

    check_torch(lambda *a: f(fastnn.nn.functional, *a), lambda *a: f(_tf(), *a), *[()] * n)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [False, True])
def test_bce_with_logits_target_gradient(reduction, pos_weight):
    torch = pytest.importorskip("torch")
    pw = np.linspace(0.5, 2.0, 4, dtype=np.float32)
    w = np.linspace(0.2, 1.0, 4, dtype=np.float32)

    def call(F, lib):
        kw = dict(weight=lib.tensor(w), pos_weight=lib.tensor(pw) if pos_weight else None, reduction=reduction)
        return lambda x, t: F.binary_cross_entropy_with_logits(x, t.sigmoid(), **kw)

    check_torch(call(fastnn.nn.functional, fastnn), call(torch.nn.functional, torch), (3, 4), (3, 4))


# -- writes through strided views ------------------------------------------------------------------


_VIEW_WRITES = {
    "column fill_": lambda t, a: a[:, 0].fill_(7),
    "columns mul_ add_": lambda t, a: a[:, 1:].mul_(2).add_(1),
    "T add_": lambda t, a: a.T.add_(1),
    "t() setitem": lambda t, a: a.t().__setitem__(0, 4.0),
    "element fill_": lambda t, a: a[1, 2].fill_(9),
    "element add_": lambda t, a: a[0, 1].add_(2),
    "narrow zero_ add_": lambda t, a: a.narrow(1, 1, 2).zero_().add_(3),
    "permute copy_": lambda t, a: a.permute(1, 0).copy_(t.arange(6.0).reshape(3, 2)),
    "row of a transpose": lambda t, a: a.t()[1].mul_(-1),
    "advanced index (a copy in torch too)": lambda t, a: a[[0, 1], [0, 2]].add_(100),
}


@pytest.mark.parametrize("name", list(_VIEW_WRITES))
def test_in_place_writes_through_views_reach_the_base(name):
    torch = pytest.importorskip("torch")
    write = _VIEW_WRITES[name]
    a_t = torch.arange(6.0).reshape(2, 3)
    a_f = fastnn.arange(6.0).reshape(2, 3)
    write(torch, a_t)
    write(fastnn, a_f)
    np.testing.assert_array_equal(a_f.numpy(), a_t.numpy())


def test_in_place_on_a_strided_view_of_a_tensor_that_requires_grad():
    w = fastnn.nn.Parameter(fastnn.zeros(2, 3))
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        w[:, 0].add_(1)
    with fastnn.no_grad():
        w[:, 0].fill_(1)  # as torch: the usual way to edit a parameter in place
    assert w.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    x = fastnn.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(NotImplementedError, match="strided view"):
        x[:, 0].add_(1)
