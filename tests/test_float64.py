"""float64 end to end: tensors keep their dtype, every nn.functional op and layer runs in float64
forward and backward (matching torch in float64, and finite differences without torch), modules
convert with double()/to(dtype), optimizers step float64 parameters, mixed dtypes are refused.

Tolerances: float64 against float64 computed in another order of operations; values and
gradients here are of order 1, so 1e-10 relative leaves ~6 orders of magnitude over the
rounding of a few hundred terms; ATOL only covers exact zeros of one side."""

import fastnn
import fastnn.nn.functional as F
import numpy as np
import pytest
from fastnn import nn

RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def default_float64():
    fastnn.set_default_dtype(fastnn.float64)
    try:
        yield
    finally:
        fastnn.set_default_dtype(fastnn.float32)


def _rand(*shape, seed=0, positive=False):
    a = np.random.default_rng(seed + sum(shape)).standard_normal(shape)
    return np.abs(a) + 0.1 if positive else a


def _close(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=ATOL)


def _against_torch(torch, fn, tfn, arrays, consts=()):
    """fn(*tensors, *consts) against tfn(*torch tensors, *torch consts), float64 arrays given:
    the output (dtype float64, values) and the gradients of sum(out * w) for each input."""
    xs = [fastnn.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    tc = [torch.from_numpy(c) if isinstance(c, np.ndarray) else c for c in consts]
    y, ty = fn(*xs, *consts), tfn(*ts, *tc)
    assert y.dtype == np.float64
    _close(y.detach().numpy(), ty.detach().numpy())
    w = _rand(*y.shape, seed=7)
    (y * fastnn.tensor(w)).sum().backward()
    (ty * torch.from_numpy(w)).sum().backward()
    for x, t in zip(xs, ts):
        assert x.grad.dtype == np.float64
        _close(x.grad.numpy(), t.grad.numpy())


def _tf(torch, name):
    return getattr(torch.nn.functional, name)


IDX = np.array([0, 3, 1, 2, 3])
CASES = [
    ("linear", lambda f, T: f.linear, [(5, 4), (3, 4), (3,)], ()),
    ("conv2d", lambda f, T: f.conv2d, [(2, 3, 6, 6), (4, 3, 3, 3), (4,)], (1, 1)),
    ("conv2d_groups", lambda f, T: lambda x, w: f.conv2d(x, w, None, 2, 1, 1, 2), [(1, 4, 7, 7), (6, 2, 3, 3)], ()),
    ("conv1d", lambda f, T: f.conv1d, [(2, 3, 9), (4, 3, 3)], ()),
    ("relu", lambda f, T: f.relu, [(3, 7)], ()),
    ("leaky_relu", lambda f, T: f.leaky_relu, [(3, 7)], (0.2,)),
    ("gelu", lambda f, T: f.gelu, [(3, 7)], ()),
    ("gelu_tanh", lambda f, T: lambda x: f.gelu(x, approximate="tanh"), [(3, 7)], ()),
    ("sigmoid", lambda f, T: f.sigmoid, [(3, 7)], ()),
    ("tanh", lambda f, T: f.tanh, [(3, 7)], ()),
    ("silu", lambda f, T: f.silu, [(3, 7)], ()),
    ("softmax", lambda f, T: lambda x: f.softmax(x, dim=1), [(3, 7)], ()),
    ("log_softmax", lambda f, T: lambda x: f.log_softmax(x, dim=-1), [(3, 7)], ()),
    ("max_pool2d", lambda f, T: f.max_pool2d, [(2, 3, 6, 6)], (2,)),
    ("avg_pool2d", lambda f, T: lambda x: f.avg_pool2d(x, 3, 2, 1), [(2, 3, 7, 7)], ()),
    (
        "avg_pool2d_divisor_override",
        lambda f, T: lambda x: f.avg_pool2d(x, 3, 2, 1, divisor_override=5),
        [(2, 3, 7, 7)],
        (),
    ),
    ("adaptive_avg_pool2d", lambda f, T: f.adaptive_avg_pool2d, [(2, 3, 5, 5)], (1,)),
    ("adaptive_avg_pool2d_uneven", lambda f, T: f.adaptive_avg_pool2d, [(2, 3, 7, 9)], ((4, 5),)),
    ("conv2d_unbatched", lambda f, T: f.conv2d, [(3, 6, 6), (4, 3, 3, 3)], ()),
    ("layer_norm", lambda f, T: lambda x, w, b: f.layer_norm(x, (6,), w, b), [(4, 6), (6,), (6,)], ()),
    ("layer_norm_plain", lambda f, T: lambda x: f.layer_norm(x, (3, 6)), [(2, 3, 6)], ()),
    ("group_norm", lambda f, T: lambda x, w, b: f.group_norm(x, 2, w, b), [(2, 4, 3, 3), (4,), (4,)], ()),
    (
        "batch_norm",
        lambda f, T: lambda x, w, b: f.batch_norm(x, None, None, w, b, True),
        [(4, 3, 5, 5), (3,), (3,)],
        (),
    ),
    ("batch_norm_2d", lambda f, T: lambda x: f.batch_norm(x, None, None, training=True), [(6, 3)], ()),
    ("embedding", lambda f, T: lambda w: f.embedding(T(IDX), w), [(4, 3)], ()),
    ("matmul", lambda f, T: lambda a, b: a @ b, [(2, 3, 4), (4, 5)], ()),
    ("mse_loss", lambda f, T: f.mse_loss, [(3, 4), (3, 4)], ()),
    ("l1_loss", lambda f, T: f.l1_loss, [(3, 4), (3, 4)], ()),
    ("smooth_l1_loss", lambda f, T: f.smooth_l1_loss, [(3, 4), (3, 4)], ()),
    ("bce_with_logits", lambda f, T: f.binary_cross_entropy_with_logits, [(3, 4)], (_rand(3, 4, seed=9) ** 2,)),
    (
        "bce_with_logits_target_grad",
        lambda f, T: lambda x, y: f.binary_cross_entropy_with_logits(x, y.sigmoid()),
        [(3, 4), (3, 4)],
        (),
    ),
    ("bce", lambda f, T: lambda x, y: f.binary_cross_entropy(x.sigmoid(), y.sigmoid()), [(3, 4), (3, 4)], ()),
    ("kl_div", lambda f, T: lambda x, y: f.kl_div(x, y.softmax(-1), reduction="batchmean"), [(3, 4), (3, 4)], ()),
    ("sdpa", lambda f, T: f.scaled_dot_product_attention, [(2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 3)], ()),
    (
        "sdpa_causal",
        lambda f, T: lambda q, k, v: f.scaled_dot_product_attention(q, k, v, is_causal=True),
        [(3, 5, 4)] * 3,
        (),
    ),
]


@pytest.mark.parametrize("name,make,shapes,consts", CASES, ids=[c[0] for c in CASES])
def test_functional_matches_torch(torch, name, make, shapes, consts):
    fn, tfn = make(F, fastnn.tensor), make(torch.nn.functional, torch.from_numpy)
    _against_torch(torch, fn, tfn, [_rand(*s, seed=i) for i, s in enumerate(shapes)], consts)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_losses_match_torch(torch, loss, reduction):
    t = np.array([1, 0, 4, 2])
    weight = _rand(5, seed=3, positive=True)

    def run(f, x, tt, w):
        inp = f.log_softmax(x, dim=1) if loss == "nll_loss" else x
        return getattr(f, loss)(inp, tt, weight=w, reduction=reduction)

    _against_torch(
        torch,
        lambda x: run(F, x, t, fastnn.tensor(weight)),
        lambda x: run(torch.nn.functional, x, torch.from_numpy(t), torch.from_numpy(weight)),
        [_rand(4, 5)],
    )


def test_cross_entropy_smoothing_and_probabilities(torch):
    t, p = np.array([1, 0, 2]), _rand(3, 4, seed=5)
    _against_torch(
        torch,
        lambda x: F.cross_entropy(x, t, label_smoothing=0.2),
        lambda x: torch.nn.functional.cross_entropy(x, torch.from_numpy(t), label_smoothing=0.2),
        [_rand(3, 4)],
    )
    _against_torch(
        torch,
        lambda x, y: F.cross_entropy(x, y.softmax(1)),
        lambda x, y: torch.nn.functional.cross_entropy(x, y.softmax(1)),
        [_rand(3, 4), p],
    )


def _copy_params(module, tmodule):
    """tmodule's parameters into module (same names), as float64."""
    ours = dict(module.named_parameters())
    for name, tp in tmodule.named_parameters():
        ours[name].data[...] = tp.detach().numpy()


def _module_against_torch(torch, module, tmodule, arrays, out=lambda y: y):
    module.double()
    tmodule.double()
    _copy_params(module, tmodule)
    for p in module.parameters():
        assert p.dtype == np.float64
    _against_torch(torch, lambda *xs: out(module(*xs)), lambda *ts: out(tmodule(*ts)), arrays)
    tparams = dict(tmodule.named_parameters())
    for name, p in module.named_parameters():
        assert p.grad.dtype == np.float64, name
        _close(p.grad.numpy(), tparams[name].grad.numpy())


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layers_match_torch(torch, kind, bidirectional):
    torch.manual_seed(0)
    args = dict(num_layers=2, batch_first=True, bidirectional=bidirectional)
    m, tm = getattr(nn, kind)(3, 4, **args), getattr(torch.nn, kind)(3, 4, **args)
    _module_against_torch(torch, m, tm, [_rand(2, 5, 3)], out=lambda y: y[0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_projection_matches_torch(torch, bidirectional):
    torch.manual_seed(0)
    args = dict(num_layers=2, proj_size=2, bidirectional=bidirectional)
    m, tm = nn.LSTM(3, 4, **args), torch.nn.LSTM(3, 4, **args)
    _module_against_torch(torch, m, tm, [_rand(5, 2, 3)], out=lambda y: y[0] * 2 + y[1][1].sum())


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_match_torch(torch, kind):
    torch.manual_seed(0)
    m, tm = getattr(nn, kind)(3, 4), getattr(torch.nn, kind)(3, 4)
    out = (lambda y: y[0] * y[1]) if kind == "LSTMCell" else (lambda y: y)
    _module_against_torch(torch, m, tm, [_rand(2, 3)], out=out)


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_matches_torch(torch, need_weights):
    torch.manual_seed(0)
    m, tm = nn.MultiheadAttention(8, 2, batch_first=True), torch.nn.MultiheadAttention(8, 2, batch_first=True)
    mask = np.triu(np.ones((4, 4), bool), 1)

    def run(mod, mk):
        return lambda x: mod(x, x, x, attn_mask=mk, need_weights=need_weights)[0]

    m.double()
    tm.double()
    _copy_params(m, tm)
    _against_torch(torch, run(m, mask), run(tm, torch.from_numpy(mask)), [_rand(2, 4, 8)])


def test_multihead_attention_options_match_torch(torch):
    torch.manual_seed(0)
    args = dict(add_bias_kv=True, add_zero_attn=True, kdim=5, vdim=3, batch_first=True)
    m, tm = nn.MultiheadAttention(8, 2, **args), torch.nn.MultiheadAttention(8, 2, **args)
    m.double()
    tm.double()
    _copy_params(m, tm)
    _against_torch(
        torch,
        lambda q, k, v: m(q, k, v)[0],
        lambda q, k, v: tm(q, k, v)[0],
        [_rand(2, 4, 8), _rand(2, 6, 5), _rand(2, 6, 3)],
    )


def test_batch_norm_running_stats_match_torch(torch):
    m, tm = nn.BatchNorm2d(3).double(), torch.nn.BatchNorm2d(3).double()
    x = _rand(4, 3, 5, 5)
    m(fastnn.tensor(x)), tm(torch.from_numpy(x))
    assert m.running_mean.dtype == np.float64 and m.num_batches_tracked.dtype == np.int64
    _close(m.running_mean.numpy(), tm.running_mean.numpy())
    _close(m.running_var.numpy(), tm.running_var.numpy())
    m.eval(), tm.eval()
    _close(m(fastnn.tensor(x)).detach().numpy(), tm(torch.from_numpy(x)).detach().numpy())


# -- finite differences (no torch) ------------------------------------------------------------------


def _finite_difference(fn, arrays, eps=1e-6):
    """fastnn's gradients of sum(fn(*xs) * w) against central differences in float64: the
    truncation error is O(eps^2) ~ 1e-12 and the rounding error ~ 1e-16 / eps ~ 1e-10."""
    xs = [fastnn.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*xs)
    w = _rand(*y.shape, seed=11)
    (y * fastnn.tensor(w)).sum().backward()
    for x, a in zip(xs, arrays):
        assert x.grad.dtype == np.float64
        num = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus, minus = a.copy(), a.copy()
            plus[i] += eps
            minus[i] -= eps
            args = [fastnn.tensor(plus if z is a else z) for z in arrays]
            f_plus = float((fn(*args).numpy() * w).sum())
            args = [fastnn.tensor(minus if z is a else z) for z in arrays]
            num[i] = (f_plus - float((fn(*args).numpy() * w).sum())) / (2 * eps)
        np.testing.assert_allclose(x.grad.numpy(), num, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize(
    "name,fn,shapes",
    [
        ("linear", F.linear, [(3, 4), (2, 4), (2,)]),
        ("conv2d", lambda x, w: F.conv2d(x, w, padding=1), [(1, 2, 4, 4), (2, 2, 3, 3)]),
        ("layer_norm", lambda x, w: F.layer_norm(x, (5,), w), [(3, 5), (5,)]),
        ("gelu", F.gelu, [(4, 3)]),
        ("lstm_cell", lambda x, h, wi, wh: F.lstm_cell(x, h, h, wi, wh)[0], [(2, 3), (2, 2), (8, 3), (8, 2)]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_finite_differences(name, fn, shapes):
    _finite_difference(fn, [_rand(*s, seed=i) * 0.5 for i, s in enumerate(shapes)])


# -- dtypes of tensors ------------------------------------------------------------------------------


def test_tensors_keep_their_dtype():
    a = np.arange(6.0).reshape(2, 3)
    assert fastnn.tensor(a).dtype == np.float64
    assert fastnn.Tensor(a).dtype == np.float64
    assert fastnn.as_tensor(a).dtype == np.float64
    assert fastnn.tensor(a.astype(np.float16)).dtype == np.float16
    assert fastnn.tensor(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert fastnn.tensor([1.0, 2.0]).dtype == np.float32
    assert fastnn.tensor(1.5).dtype == np.float32
    assert fastnn.tensor([1, 2]).dtype == np.int64
    assert fastnn.tensor([True]).dtype == np.bool_
    assert fastnn.zeros(2).dtype == fastnn.randn(2).dtype == fastnn.full((2,), 1.5).dtype == np.float32
    assert fastnn.arange(3).dtype == np.int64 and fastnn.arange(0.0, 1.0, 0.5).dtype == np.float32


def test_from_numpy_shares_memory():
    a = np.zeros((2, 3))
    t = fastnn.from_numpy(a)
    assert t.dtype == np.float64 and np.shares_memory(t.numpy(), a)
    a[0, 1] = 5.0
    assert t[0, 1].item() == 5.0
    t.data[1, 2] = -1.0
    assert a[1, 2] == -1.0
    assert fastnn.from_numpy(np.ones(3, np.int32)).dtype == np.int32
    with pytest.raises(TypeError, match="expected np.ndarray"):
        fastnn.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="complex128"):
        fastnn.from_numpy(np.ones(2, np.complex128))


def test_set_default_dtype_round_trip(default_float64):
    assert fastnn.get_default_dtype() == fastnn.float64
    assert fastnn.tensor([1.0]).dtype == np.float64
    for t in (fastnn.zeros(2), fastnn.ones(2), fastnn.randn(2), fastnn.rand(2), fastnn.empty(2)):
        assert t.dtype == np.float64
    assert fastnn.full((2,), 0.5).dtype == fastnn.arange(0.0, 1.0, 0.25).dtype == np.float64
    assert (fastnn.tensor([1, 2]) / 2).dtype == np.float64
    assert fastnn.zeros(2).new_zeros(3).dtype == fastnn.zeros_like(fastnn.zeros(2)).dtype == np.float64
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2), nn.LayerNorm(2))
    rec = [nn.LSTM(2, 3), nn.GRUCell(2, 3), nn.MultiheadAttention(4, 2), nn.Embedding(3, 2)]
    for p in list(m.parameters()) + [p for r in rec for p in r.parameters()]:
        assert p.dtype == np.float64
    assert m[1].running_mean.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    y = m(fastnn.randn(2, 1, 4, 4))
    assert y.dtype == np.float64
    fastnn.set_default_dtype(fastnn.float32)
    assert fastnn.tensor([1.0]).dtype == np.float32 and nn.Linear(2, 2).weight.dtype == np.float32


def test_set_default_dtype_refuses_non_floats():
    for bad in (fastnn.int64, fastnn.bool, None, "float8"):
        with pytest.raises(TypeError, match="only floating-point types"):
            fastnn.set_default_dtype(bad)
    assert fastnn.get_default_dtype() == fastnn.float32


def test_float16_is_held_but_refused_by_kernels():
    x = fastnn.tensor(np.ones(3, np.float16))
    assert x.dtype == np.float16 and (x + 1).dtype == np.float16
    with pytest.raises(TypeError, match="relu: expected input to be float32 or float64, got float16"):
        F.relu(x)
    with pytest.raises(TypeError, match="linear: expected input to be float32 or float64, got float16"):
        F.linear(fastnn.ones(2, 3, dtype=np.float16), fastnn.ones(4, 3, dtype=np.float16))


# -- mixed dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda a, b: F.linear(a, b),
            "linear: expected input and weight to have the same dtype, got float64 and float32",
        ),
        (
            lambda a, b: F.linear(b, a),
            "linear: expected input and weight to have the same dtype, got float32 and float64",
        ),
        (lambda a, b: a @ b.T, "matmul: expected both operands to have the same dtype, got float64 and float32"),
        (lambda a, b: F.conv2d(a.reshape(1, 1, 4, 4), b.reshape(1, 1, 4, 4)), "conv2d: expected input and weight"),
        (lambda a, b: F.layer_norm(a, (4,), b[0]), "layer_norm: expected input and weight"),
        (lambda a, b: F.batch_norm(a, None, None, b[0], None, True), "batch_norm: expected weight to be float64"),
        (lambda a, b: F.cross_entropy(a, np.array([0, 1, 2, 3]), b[0]), "cross_entropy: expected weight to be float64"),
        (lambda a, b: F.scaled_dot_product_attention(a[None], b[None], b[None]), "expected query and key"),
    ],
)
def test_mixed_float_dtypes_are_refused(call, match):
    with pytest.raises(RuntimeError, match=match):
        call(fastnn.ones(4, 4, dtype=np.float64), fastnn.ones(4, 4))


def test_elementwise_arithmetic_promotes():
    a, b = fastnn.ones(2, dtype=np.float64, requires_grad=True), fastnn.ones(2, requires_grad=True)
    y = a * b + b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float64 and b.grad.dtype == np.float32
    assert F.mse_loss(a, b).dtype == np.float64


# -- modules and optimizers -------------------------------------------------------------------------


def test_module_dtype_conversions():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    m(fastnn.randn(4, 2)).sum().backward()
    assert m.double() is m
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in m.parameters())
    assert m[1].running_var.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    assert m.to(fastnn.float32) is m and m[0].weight.dtype == np.float32
    assert m.to("cpu", fastnn.float64)[0].bias.dtype == np.float64
    assert m.to(fastnn.zeros(1))[0].weight.dtype == np.float32
    assert m.half()[0].weight.dtype == np.float16 and m.float()[0].weight.dtype == np.float32
    assert m.type(fastnn.float64)[1].num_batches_tracked.dtype == np.float64
    with pytest.raises(TypeError, match="only accepts floating point"):
        m.to(fastnn.int64)
    w = m[0].weight
    m.double()
    assert m[0].weight is w  # in place: the same Parameter objects


def test_clip_grad_norm_float64(torch):
    g = [_rand(3, 4), _rand(5, seed=2)]
    ps = [fastnn.tensor(np.zeros_like(a), requires_grad=True) for a in g]
    tps = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in g]
    for p, tp, a in zip(ps, tps, g):
        p.grad, tp.grad = fastnn.tensor(a.copy()), torch.from_numpy(a.copy())
    n, tn = nn.utils.clip_grad_norm_(ps, 0.5), torch.nn.utils.clip_grad_norm_(tps, 0.5)
    assert n.dtype == np.float64
    _close(n.item(), tn.item())
    for p, tp in zip(ps, tps):
        _close(p.grad.numpy(), tp.grad.numpy())


class _Net:
    """A small CNN + LSTM classifier, built the same way in fastnn and torch."""

    @staticmethod
    def build(lib):
        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                # no bias before the batch norm: its gradient is 0 but for roundings, which Adam
                # would scale up to steps of lr * noise / eps
                self.conv = lib.nn.Conv2d(1, 3, 3, padding=1, bias=False)
                self.bn = lib.nn.BatchNorm2d(3)
                self.lstm = lib.nn.LSTM(3 * 3, 5, batch_first=True)
                self.head = lib.nn.Linear(5, 4)

            def forward(self, x):
                y = lib.nn.functional.max_pool2d(lib.nn.functional.relu(self.bn(self.conv(x))), 2)  # (B, 3, 3, 3)
                y = y.permute(0, 2, 1, 3).reshape(x.shape[0], 3, 9)  # rows as time steps
                out, _ = self.lstm(y)
                return self.head(out[:, -1])

        return Net()


@pytest.mark.parametrize("opt", ["SGD", "Adam", "AdamW"])
def test_double_model_training_matches_torch(torch, opt):
    torch.manual_seed(0)
    m, tm = _Net.build(fastnn).double(), _Net.build(torch).double()
    _copy_params(m, tm)
    kw = dict(lr=0.1, momentum=0.9, weight_decay=1e-3) if opt == "SGD" else dict(lr=1e-2)
    o, to = getattr(fastnn.optim, opt)(m.parameters(), **kw), getattr(torch.optim, opt)(tm.parameters(), **kw)
    x, t = _rand(6, 1, 6, 6), np.array([0, 1, 2, 3, 1, 0])
    for _ in range(3):
        o.zero_grad(), to.zero_grad()
        loss = F.cross_entropy(m(fastnn.tensor(x)), t)
        tloss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(t))
        assert loss.dtype == np.float64
        _close(loss.item(), tloss.item())
        loss.backward(), tloss.backward()
        o.step(), to.step()
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64
        _close(p.numpy(force=True), tparams[name].detach().numpy())
    for st in o.state.values():
        for v in st.values():
            assert not isinstance(v, np.ndarray) or v.dtype == np.float64
    _close(m.bn.running_var.numpy(), tm.bn.running_var.numpy())


def test_dropout_keeps_dtype():
    x = fastnn.tensor(_rand(50, 4) ** 2 + 1.0, requires_grad=True)
    y = F.dropout(x, 0.25)
    assert y.dtype == np.float64
    kept = y.detach().numpy() != 0
    np.testing.assert_array_equal(y.detach().numpy()[kept], x.detach().numpy()[kept] * (1 / 0.75))  # x * mask
    y.sum().backward()
    assert x.grad.dtype == np.float64


def test_sparse_embedding_float64_step():
    e = nn.Embedding(5, 3, sparse=True).double()
    w0 = e.weight.detach().numpy().copy()
    e(fastnn.tensor([1, 3, 1])).sum().backward()
    assert e.weight.grad.dtype == np.float64
    fastnn.optim.SGD(e.parameters(), lr=0.5).step()
    expected = w0.copy()
    expected[1] -= 0.5 * 2
    expected[3] -= 0.5
    np.testing.assert_array_equal(e.weight.detach().numpy(), expected)


def test_zero_dim_results_promote_as_tensors():
    # a 0-d op's result (NumPy makes it a scalar) is a 0-d tensor for promotion, not a weak number
    s = fastnn.tensor(np.ones(5)).sum().exp()  # float64, 0-d
    assert isinstance(s._data, np.ndarray)
    assert s.clamp(min=0).dtype == np.float64
    assert (s * fastnn.tensor(2.0)).dtype == np.float64  # 0-d float64 with 0-d float32: float64
    assert (s.clamp(min=0) + fastnn.ones(3)).dtype == np.float32  # a 0-d tensor next to a dim'd one
    i = fastnn.tensor(np.arange(4)).sum() * 1  # int64, 0-d
    assert (i + fastnn.tensor(1, dtype=fastnn.int32)).dtype == np.int64
