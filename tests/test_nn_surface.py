"""torch.nn.Module's API and containers on fastnn.nn: registration and its errors, traversal,
state_dict / load_state_dict, forward hooks, repr, Sequential / ModuleList / ModuleDict /
ParameterList / ParameterDict, each compared with torch built the same way (skipped without
torch), and the modules that scripts import (backends, accelerator, parallel, onnx)."""

import copy
from collections import OrderedDict

import fastnn
import fastnn.nn as nn
import numpy as np
import pytest
from fastnn import Tensor


def _torch():
    return pytest.importorskip("torch")


def _raises_like(fn_ours, fn_theirs, *args):
    """Both calls (with args) raise, with the same exception type; returns the two exceptions."""
    with pytest.raises(Exception) as theirs:
        fn_theirs(*args)
    with pytest.raises(type(theirs.value)) as ours:
        fn_ours(*args)
    assert type(ours.value) is type(theirs.value), (ours.value, theirs.value)
    return ours.value, theirs.value


def _build(lib, kind):
    """The same structure in fastnn.nn or torch.nn (lib)."""
    if kind == "mlp":
        return lib.Sequential(lib.Linear(3, 4), lib.ReLU(), lib.Linear(4, 2))
    if kind == "named":
        return lib.Sequential(OrderedDict([("fc", lib.Linear(2, 3)), ("act", lib.Tanh()), ("out", lib.Linear(3, 1))]))
    if kind == "nested":
        return lib.Sequential(
            lib.ModuleDict({"enc": lib.Linear(2, 2), "bn": lib.BatchNorm1d(2)}),
            lib.ModuleList([lib.Linear(2, 2), lib.ReLU(), lib.Linear(2, 2)]),
            lib.ParameterList([lib.Parameter(lib_tensor(lib, np.ones((2, 3)))), lib.Parameter(lib_tensor(lib, [1.0]))]),
            lib.ParameterDict(
                {"b": lib.Parameter(lib_tensor(lib, [0.0, 1.0])), "a": lib.Parameter(lib_tensor(lib, [2.0]))}
            ),
        )
    raise ValueError(kind)


def lib_tensor(lib, a):
    a = np.asarray(a, np.float32)
    if lib is nn:
        return Tensor(a)
    import torch

    return torch.from_numpy(a.copy())


# -- containers ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlp", "named", "nested"])
def test_names_state_dict_and_repr_match_torch(kind):
    torch = _torch()
    ours, theirs = _build(nn, kind), _build(torch.nn, kind)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    assert [k for k, _ in ours.named_buffers()] == [k for k, _ in theirs.named_buffers()]
    assert [k for k, _ in ours.named_modules()] == [k for k, _ in theirs.named_modules()]
    assert [k for k, _ in ours.named_children()] == [k for k, _ in theirs.named_children()]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    assert [type(m).__name__ for m in ours.children()] == [type(m).__name__ for m in theirs.children()]
    # the dtype is spelled as NumPy names it ("float32"), not torch's "torch.float32"
    want = repr(theirs).replace("torch.float32", "float32").replace("torch.FloatTensor", "float32")
    assert repr(ours) == want


def test_sequential_editing_matches_torch():
    torch = _torch()
    steps = [
        lambda s, L: s.append(L.Sigmoid()),
        lambda s, L: s.insert(1, L.Tanh()),
        lambda s, L: s.insert(-1, L.Identity()),
        lambda s, L: s.extend(L.Sequential(L.ReLU(), L.Linear(2, 2))),
        lambda s, L: s.__delitem__(0),
        lambda s, L: s.__delitem__(slice(1, 3)),
        lambda s, L: s.__setitem__(-1, L.Linear(2, 5)),
        lambda s, L: s.pop(1),
    ]
    ours, theirs = _build(nn, "mlp"), _build(torch.nn, "mlp")
    for step in steps:
        step(ours, nn), step(theirs, torch.nn)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert len(ours) == len(theirs)
        assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    for a, b in ((ours[1:], theirs[1:]), (ours[::-2], theirs[::-2])):  # slices keep the names
        assert repr(a) == repr(b) and list(a.state_dict()) == list(b.state_dict())
    for a, b in ((ours + ours, theirs + theirs), (ours * 2, theirs * 2), (2 * ours, 2 * theirs)):
        assert repr(a) == repr(b)
    a, b = _build(nn, "named"), _build(torch.nn, "named")
    a += _build(nn, "mlp")
    b += _build(torch.nn, "mlp")
    assert repr(a) == repr(b)
    del a[0], b[0]  # a deletion renumbers named modules too
    assert list(a.state_dict()) == list(b.state_dict())
    a, b = _build(nn, "mlp"), _build(torch.nn, "mlp")
    a *= 2
    b *= 2
    assert list(a.state_dict()) == list(b.state_dict())
    assert ours[-1] is list(ours)[-1] and ours[0] is next(iter(ours))


def test_sequential_errors_match_torch():
    torch = _torch()
    s, t = _build(nn, "mlp"), _build(torch.nn, "mlp")
    _raises_like(lambda: s[3], lambda: t[3])
    _raises_like(lambda: s[-4], lambda: t[-4])
    _raises_like(lambda: s.insert(4, nn.ReLU()), lambda: t.insert(4, torch.nn.ReLU()))
    _raises_like(lambda: s.insert(0, 3), lambda: t.insert(0, 3))
    _raises_like(lambda: s.__setitem__(0, 3), lambda: t.__setitem__(0, 3))
    _raises_like(lambda: s + 3, lambda: t + 3)
    _raises_like(lambda: s * 0, lambda: t * 0)
    _raises_like(lambda: s * 1.5, lambda: t * 1.5)
    _raises_like(lambda: nn.Sequential(3), lambda: torch.nn.Sequential(3))
    _raises_like(lambda: s.append(3), lambda: t.append(3))


def test_sequential_forward_in_order():
    fastnn.manual_seed(0)
    s = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    np.testing.assert_array_equal(s(x).data, s[2](s[1](s[0](x))).data)
    assert len(nn.Sequential()) == 0 and nn.Sequential()(x) is x


def test_module_list_matches_torch():
    torch = _torch()
    L, T = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()]), torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.ReLU()])
    for step in (
        lambda m, lib: m.append(lib.Tanh()),
        lambda m, lib: m.extend([lib.Linear(2, 2), lib.Linear(2, 2)]),
        lambda m, lib: m.insert(1, lib.Sigmoid()),
        lambda m, lib: m.__iadd__([lib.ReLU()]),
        lambda m, lib: m.__delitem__(0),
        lambda m, lib: m.__delitem__(slice(0, 4, 2)),
        lambda m, lib: m.__setitem__(-1, lib.Identity()),
        lambda m, lib: m.pop(0),
    ):
        step(L, nn), step(T, torch.nn)
        assert repr(L) == repr(T) and list(L.state_dict()) == list(T.state_dict()) and len(L) == len(T)
    assert repr(L[1:]) == repr(T[1:]) and list(L[1:].state_dict()) == list(T[1:].state_dict())
    assert repr(L + L) == repr(T + T)
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList())
    _raises_like(lambda: L[10], lambda: T[10])
    _raises_like(lambda: L.extend(3), lambda: T.extend(3))
    _raises_like(lambda: L.append(3), lambda: T.append(3))
    _raises_like(lambda: L(1), lambda: T(1))


def test_module_dict_matches_torch():
    torch = _torch()
    D = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.ReLU()})
    T = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 3), "b": torch.nn.ReLU()})
    D["c"], T["c"] = nn.Tanh(), torch.nn.Tanh()
    D.update([("d", nn.Linear(1, 1))]), T.update([("d", torch.nn.Linear(1, 1))])
    D.update(OrderedDict(e=nn.ReLU())), T.update(OrderedDict(e=torch.nn.ReLU()))
    del D["b"], T["b"]
    assert repr(D) == repr(T) and list(D.state_dict()) == list(T.state_dict())
    assert list(D) == list(T) and list(D.keys()) == list(T.keys()) and len(D) == len(T)
    assert [type(v).__name__ for v in D.values()] == [type(v).__name__ for v in T.values()]
    assert [k for k, _ in D.items()] == [k for k, _ in T.items()]
    assert "a" in D and "b" not in D
    assert type(D.pop("e")).__name__ == "ReLU" and "e" not in D
    _raises_like(lambda: D.update(3), lambda: T.update(3))
    _raises_like(lambda: D.update([("a",)]), lambda: T.update([("a",)]))
    _raises_like(lambda: D.update([3]), lambda: T.update([3]))
    _raises_like(lambda: D.__setitem__("x", 3), lambda: T.__setitem__("x", 3))
    _raises_like(lambda: D["zz"], lambda: T["zz"])
    _raises_like(lambda: D(1), lambda: T(1))
    D.clear()
    assert len(D) == 0 and repr(D) == "ModuleDict()"


def test_parameter_list_and_dict_match_torch():
    torch = _torch()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    P = nn.ParameterList([nn.Parameter(Tensor(a)), Tensor(b)])
    Q = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(a.copy())), torch.from_numpy(b.copy())])
    P.append(Tensor(b)), Q.append(torch.from_numpy(b.copy()))
    P.extend([Tensor(a)]), Q.extend([torch.from_numpy(a.copy())])
    P[0], Q[0] = Tensor(b), torch.from_numpy(b.copy())
    assert isinstance(P[1], nn.Parameter) and P[1].requires_grad  # a tensor put in becomes a Parameter
    assert list(P.state_dict()) == list(Q.state_dict()) and len(P) == len(Q)
    norm = lambda r: r.replace("torch.float32", "float32").replace("torch.FloatTensor", "float32")
    assert repr(P) == norm(repr(Q)) and repr(P[1:]) == norm(repr(Q[1:]))
    assert [p.shape for p in P] == [tuple(q.shape) for q in Q]
    assert sum(1 for _ in P.parameters()) == 4
    _raises_like(lambda: P[4], lambda: Q[4])
    _raises_like(lambda: P.extend(3), lambda: Q.extend(3))
    _raises_like(lambda: P(1), lambda: Q(1))

    D = nn.ParameterDict({"w": Tensor(a), "b": nn.Parameter(Tensor(b))})
    E = torch.nn.ParameterDict({"w": torch.from_numpy(a.copy()), "b": torch.nn.Parameter(torch.from_numpy(b.copy()))})
    (
        D.update({"z": Tensor(b), "c": Tensor(a)}),
        E.update({"z": torch.from_numpy(b.copy()), "c": torch.from_numpy(a.copy())}),
    )
    D["y"], E["y"] = Tensor(b), torch.from_numpy(b.copy())
    del D["w"], E["w"]
    assert list(D) == list(E) and list(D.state_dict()) == list(E.state_dict())
    assert repr(D) == norm(repr(E))
    assert isinstance(D["y"], nn.Parameter) and "c" in D and D.get("nope") is None
    assert D.pop("z").shape == (4,) and "z" not in D
    assert list((D | nn.ParameterDict({"q": Tensor(b)})).keys()) == list(D.keys()) + ["q"]
    _raises_like(lambda: D.__setitem__(3, Tensor(b)), lambda: E.__setitem__(3, torch.from_numpy(b.copy())))
    _raises_like(lambda: D.update(3), lambda: E.update(3))
    _raises_like(lambda: D(1), lambda: E(1))
    D.clear()
    assert len(D) == 0


def test_containers_train_and_gradients():
    fastnn.manual_seed(0)
    m = nn.Sequential(nn.ModuleDict({"fc": nn.Linear(3, 2)}))
    m.scale = nn.ParameterList([nn.Parameter(Tensor(np.full(2, 2.0, np.float32)))])
    x = Tensor(np.ones((4, 3), np.float32))
    (m[0]["fc"](x) * m.scale[0]).sum().backward()
    assert m[0]["fc"].weight.grad.shape == (2, 3)
    np.testing.assert_allclose(m.scale[0].grad.data, m[0]["fc"](x).data.sum(0), rtol=1e-6)
    assert m.eval() is m and not m[0].training and not m[0]["fc"].training and not m.scale.training
    assert m.train() is m and m[0]["fc"].training


# -- the Module API --------------------------------------------------------------------------


def test_registration_errors_match_torch():
    torch = _torch()
    ours, theirs = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    zeros = lambda lib: lib_tensor(lib, np.zeros(2))
    for args in [("a.b", None), ("", None), (3, None), ("weight", None), ("x", 3)]:
        _raises_like(ours.register_buffer, theirs.register_buffer, *args)
    for name in ("a.b", "", 3):
        _raises_like(ours.register_parameter, theirs.register_parameter, name, None)
    _raises_like(lambda: ours.register_parameter("x", zeros(nn)), lambda: theirs.register_parameter("x", zeros(torch)))
    for name, mod in [("a.b", "m"), ("", "m"), (3, "m"), ("weight", "m"), ("x", 3)]:
        a, b = (nn.ReLU(), torch.nn.ReLU()) if mod == "m" else (mod, mod)
        _raises_like(lambda n, a=a: ours.add_module(n, a), lambda n, b=b: theirs.add_module(n, b), name)
    _raises_like(lambda: setattr(ours, "weight", zeros(nn)), lambda: setattr(theirs, "weight", zeros(torch)))
    ours.register_buffer("rb", zeros(nn)), theirs.register_buffer("rb", zeros(torch))
    _raises_like(lambda: setattr(ours, "rb", 3), lambda: setattr(theirs, "rb", 3))
    ours.child, theirs.child = nn.ReLU(), torch.nn.ReLU()
    _raises_like(lambda: setattr(ours, "child", 3), lambda: setattr(theirs, "child", 3))
    _raises_like(lambda: ours.train("yes"), lambda: theirs.train("yes"))
    _raises_like(lambda: ours.load_state_dict([1]), lambda: theirs.load_state_dict([1]))
    _raises_like(lambda: ours.nothing, lambda: theirs.nothing)


def test_assignment_semantics_match_torch():
    torch = _torch()
    for lib in (nn, torch.nn):
        m = lib.Linear(2, 3)
        m.bias = None  # a registered parameter set to None stays registered (and is skipped)
        assert "bias" in m._parameters and m.bias is None
        assert [k for k, _ in m.named_parameters()] == ["weight"] and list(m.state_dict()) == ["weight"]
        m.bias = lib.Parameter(lib_tensor(lib, np.zeros(3)))
        assert [k for k, _ in m.named_parameters()] == ["weight", "bias"]
        m.extra = None  # a plain attribute, later replaced by a parameter of the same name
        m.extra = lib.Parameter(lib_tensor(lib, np.ones(1)))
        assert isinstance(m.extra, lib.Parameter) and "extra" in dict(m.named_parameters())
        m.child = lib.ReLU()
        m.child = None
        assert "child" in m._modules and m.child is None and [n for n, _ in m.named_children()] == []
        m.register_buffer("buf", lib_tensor(lib, np.ones(2)))
        m.buf = lib_tensor(lib, np.zeros(2))  # assigning a tensor to a buffer keeps it one
        assert "buf" in dict(m.named_buffers())
        del m.buf
        assert "buf" not in dict(m.named_buffers()) and not hasattr(m, "buf")
        m.register_buffer("tmp", lib_tensor(lib, np.ones(1)), persistent=False)
        assert "tmp" in dict(m.named_buffers()) and "tmp" not in m.state_dict()


def test_traversal_and_lookup_match_torch():
    torch = _torch()

    def build(lib):
        shared = lib.Linear(2, 2)
        m = lib.Sequential(shared, lib.Sequential(shared, lib.BatchNorm1d(2)), lib.Linear(2, 1))
        m[2].weight = m[0].weight  # a tied parameter
        return m

    a, b = build(nn), build(torch.nn)
    for kwargs in ({}, {"prefix": "model"}, {"recurse": False}, {"remove_duplicate": False}):
        assert [k for k, _ in a.named_parameters(**kwargs)] == [k for k, _ in b.named_parameters(**kwargs)], kwargs
        assert [k for k, _ in a.named_buffers(**kwargs)] == [k for k, _ in b.named_buffers(**kwargs)], kwargs
    for kwargs in ({}, {"prefix": "m"}, {"remove_duplicate": False}):
        assert [k for k, _ in a.named_modules(**kwargs)] == [k for k, _ in b.named_modules(**kwargs)], kwargs
    assert list(a.state_dict()) == list(b.state_dict())  # a shared module under each of its names
    assert list(a.state_dict(prefix="model.")) == list(b.state_dict(prefix="model."))
    params = dict(a.named_parameters(remove_duplicate=False))
    assert all(isinstance(v, nn.Parameter) == (k in params) for k, v in a.state_dict(keep_vars=True).items())
    assert not any(isinstance(v, nn.Parameter) for v in a.state_dict().values())
    assert a.get_submodule("1.1") is a[1][1] and a.get_submodule("") is a
    assert a.get_parameter("1.0.bias") is a[0].bias and a.get_buffer("1.1.running_mean") is a[1][1].running_mean
    for target in ("1.x", "0.weight", "5"):
        _raises_like(a.get_submodule, b.get_submodule, target)
    for target in ("1.0.x", "1.1.running_mean", "9.weight"):
        _raises_like(a.get_parameter, b.get_parameter, target)
    for target in ("1.1.weight", "1.1.nothing"):
        e_ours, e_theirs = _raises_like(a.get_buffer, b.get_buffer, target)
        assert str(e_ours) == str(e_theirs)
    dest = OrderedDict()
    assert a.state_dict(destination=dest, prefix="p.") is dest and list(dest)[0] == "p.0.weight"
    with pytest.warns(FutureWarning, match="Positional args"):
        assert list(a.state_dict(None, "q.")) == ["q." + k for k in b.state_dict()]


def test_apply_requires_grad_zero_grad_train_eval():
    fastnn.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Sequential(nn.Linear(3, 1)))
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ["Linear", "Dropout", "Linear", "Sequential", "Sequential"]  # children first, as torch

    def init(mod):
        if isinstance(mod, nn.Linear):
            nn.init.constant_(mod.weight, 0.5)

    m.apply(init)
    assert (m[0].weight.data == 0.5).all() and (m[2][0].weight.data == 0.5).all()
    assert m.requires_grad_(False) is m and not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    m(Tensor(np.ones((4, 2), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert m.eval() is m and not any(x.training for x in m.modules())
    assert m.train() is m and all(x.training for x in m.modules())

    class Frozen(nn.Module):  # a train() override is called for each child, as torch does
        def train(self, mode=True):
            return super().train(False)

    m.add_module("frozen", Frozen())
    m.train()
    assert not m.frozen.training and m.training


def test_load_state_dict_results_and_errors_match_torch():
    torch = _torch()
    a, b = _build(nn, "mlp"), _build(torch.nn, "mlp")
    sd = {k: v.detach().numpy() for k, v in b.state_dict().items()}
    r_ours, r_theirs = a.load_state_dict(sd), b.load_state_dict(b.state_dict())
    assert repr(r_ours) == repr(r_theirs) == "<All keys matched successfully>"
    assert r_ours.missing_keys == [] and tuple(r_ours) == ([], [])
    np.testing.assert_array_equal(a[0].weight.data, sd["0.weight"])
    partial = {k: v for k, v in sd.items() if k != "2.bias"}
    partial["extra"] = np.zeros(1, np.float32)
    r_ours = a.load_state_dict(partial, strict=False)
    r_theirs = b.load_state_dict({k: torch.from_numpy(v) for k, v in partial.items()}, strict=False)
    assert r_ours == r_theirs and repr(r_ours) == repr(r_theirs)
    assert r_ours.missing_keys == ["2.bias"] and r_ours.unexpected_keys == ["extra"]
    missing, unexpected = r_ours
    assert missing == ["2.bias"] and unexpected == ["extra"]
    e_ours, e_theirs = _raises_like(
        lambda: a.load_state_dict(partial),
        lambda: b.load_state_dict({k: torch.from_numpy(v) for k, v in partial.items()}),
    )
    assert str(e_ours) == str(e_theirs)
    bad = dict(sd, **{"0.weight": np.zeros((4, 4), np.float32)})
    e_ours, e_theirs = _raises_like(
        lambda: a.load_state_dict(bad, strict=False),
        lambda: b.load_state_dict({k: torch.from_numpy(v) for k, v in bad.items()}, strict=False),
    )
    assert "size mismatch for 0.weight" in str(e_ours) and "size mismatch for 0.weight" in str(e_theirs)
    with pytest.raises(NotImplementedError, match="assign=True"):
        a.load_state_dict(sd, assign=True)


def test_non_persistent_buffers_stay_out_of_state_dict():
    torch = _torch()
    for lib in (nn, torch.nn):
        m = lib.Linear(2, 2)
        m.register_buffer("mask", lib_tensor(lib, np.ones(2)), persistent=False)
        m.register_buffer("kept", lib_tensor(lib, np.ones(2)))
        assert list(m.state_dict()) == ["weight", "bias", "kept"]
        assert [k for k, _ in m.named_buffers()] == ["mask", "kept"]
        r = m.load_state_dict({k: v for k, v in m.state_dict().items()})
        assert r.missing_keys == [] and r.unexpected_keys == []


def test_forward_hooks_match_torch():
    torch = _torch()
    log = {}
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    outs = {}
    for name, lib, X in (("ours", nn, Tensor(x)), ("torch", torch.nn, torch.from_numpy(x.copy()))):
        m = lib.Linear(2, 2)
        calls = log[name] = []
        h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
        h2 = m.register_forward_hook(lambda mod, args, out: out + 1)
        h3 = m.register_forward_hook(lambda mod, args, out, calls=calls: calls.append("first"), prepend=True)
        h4 = m.register_forward_pre_hook(
            lambda mod, args, kwargs, calls=calls: calls.append(sorted(kwargs)), with_kwargs=True
        )
        h5 = m.register_forward_hook(
            lambda mod, args, kwargs, out, calls=calls: calls.append(("kw", len(args))),
            with_kwargs=True,
            always_call=True,
        )
        assert len({h.id for h in (h1, h2, h3, h4, h5)}) == 5
        y1 = m(X)
        w, b = (m.weight.detach().numpy(), m.bias.detach().numpy())
        np.testing.assert_allclose(np.asarray(y1.detach().numpy()), (2 * x) @ w.T + b + 1, rtol=1e-5, atol=1e-6)
        h1.remove(), h1.remove()  # a second remove does nothing
        h2.remove()
        with m.register_forward_hook(lambda mod, args, out: out * 0):
            outs[name] = [m(X).detach().numpy().copy()]
        outs[name].append(m(X).detach().numpy().copy())
        m.register_forward_pre_hook(lambda mod, args: args[0] + 1)  # a single value becomes the args
        outs[name].append(m(X).detach().numpy().copy())
        # x + 1 adds the weight's row sums to every output row
        np.testing.assert_allclose(outs[name][2] - outs[name][1], np.tile(w.sum(1), (3, 1)), rtol=1e-5, atol=1e-6)
        assert not outs[name][0].any() and outs[name][1].any()
    assert log["ours"] == log["torch"]


def test_forward_hooks_with_kwargs_and_always_call():
    class Add(nn.Module):
        def forward(self, x, y=0.0):
            if y is None:
                raise ValueError("boom")
            return x + y

    m = Add()
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"y": 10.0}), with_kwargs=True)
    assert m(Tensor(np.ones(2, np.float32)), y=1.0).data.tolist() == [11.0, 11.0]
    m2, seen = Add(), []
    m2.register_forward_hook(lambda mod, args, out: seen.append(out), always_call=True)
    with pytest.raises(ValueError, match="boom"):
        m2(Tensor(np.ones(2, np.float32)), y=None)
    assert seen == [None]
    m3 = Add()
    m3.register_forward_pre_hook(lambda mod, args, kwargs: 3, with_kwargs=True)
    with pytest.raises(RuntimeError, match="forward pre-hook must return None or a tuple"):
        m3(Tensor(np.ones(2, np.float32)))
    c = copy.deepcopy(m)  # hooks travel with a deep copy, as torch's
    assert c(Tensor(np.ones(2, np.float32))).data.tolist() == [11.0, 11.0]


@pytest.mark.parametrize(
    "method",
    [
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_backward_hook",
        "register_state_dict_pre_hook",
        "register_load_state_dict_post_hook",
    ],
)
def test_unsupported_hooks_say_so(method):
    with pytest.raises(NotImplementedError, match=f"torch.nn.Module.{method}"):
        getattr(nn.Linear(1, 1), method)(lambda *a: None)


def test_repr_and_extra_repr_match_torch():
    torch = _torch()

    def build(lib):
        class Custom(lib.Module):
            def __init__(self):
                super().__init__()
                self.inner = lib.Linear(1, 1)

            def extra_repr(self):
                return "a=1\nb=2"

        class Leaf(lib.Module):
            def extra_repr(self):
                return "a=1\nb=2"

        return [
            Custom(),
            Leaf(),
            lib.ReLU(inplace=True),
            lib.ReLU(),
            lib.LeakyReLU(0.1, True),
            lib.GELU("tanh"),
            lib.Softmax(1),
            lib.LogSoftmax(-1),
            lib.Flatten(),
            lib.Identity(),
            lib.Dropout(0.2),
            lib.Conv2d(1, 2, 3, padding="same"),
            lib.Conv2d(1, 2, 3, padding="valid"),
            lib.Conv2d(1, 2, 3, stride=2, padding=1, dilation=2, bias=False),
            lib.BatchNorm2d(3, momentum=None),
            lib.BatchNorm1d(3, affine=False),
            lib.BatchNorm2d(3, bias=False),
            lib.LayerNorm(4, bias=False),
            lib.LayerNorm((2, 3), elementwise_affine=False),
            lib.Embedding(5, 2, padding_idx=1),
            lib.MaxPool2d(2),
            lib.AvgPool2d(3, 2, 1),
            lib.AdaptiveAvgPool2d(1),
            lib.CrossEntropyLoss(),
            lib.MSELoss(),
            lib.Sequential(),
            lib.ModuleDict(),
        ]

    for a, b in zip(build(nn), build(torch.nn)):
        assert repr(a) == repr(b)


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


# -- modules that scripts import --------------------------------------------------------------


def test_backends_flags_are_settable_and_truthful(run_py):
    out = run_py(
        """
        import fastnn as torch
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.enabled = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.enable_flash_sdp(False)
        import fastnn.backends.cudnn as cudnn
        print(cudnn.benchmark, cudnn.deterministic, cudnn.enabled, torch.backends.cuda.matmul.allow_tf32)
        print(torch.backends.cudnn.is_available(), torch.backends.mps.is_available(), torch.backends.mps.is_built())
        print(torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())
        """
    ).stdout.split("\n")
    assert out[:3] == ["True True False True", "False False False", "False True"]


def test_accelerator_follows_fastnn_cuda(monkeypatch):
    import fastnn.cuda

    assert fastnn.accelerator.is_available() == fastnn.cuda.is_available()
    assert fastnn.accelerator.device_count() == fastnn.cuda.device_count()
    monkeypatch.setattr(fastnn.cuda, "is_available", lambda: False)
    assert fastnn.accelerator.current_accelerator() is None and not fastnn.accelerator.is_available()
    with pytest.raises(RuntimeError, match="no accelerator is available"):
        fastnn.accelerator.current_device_index()
    monkeypatch.setattr(fastnn.cuda, "is_available", lambda: True)
    acc = fastnn.accelerator.current_accelerator()
    assert acc == fastnn.device("cuda") and acc.type == "cuda"


def test_data_parallel_is_a_pass_through_with_torchs_names():
    torch = _torch()
    ours, theirs = nn.DataParallel(_build(nn, "mlp")), torch.nn.DataParallel(_build(torch.nn, "mlp"))
    assert repr(ours) == repr(theirs)
    assert (
        list(ours.state_dict())
        == list(theirs.state_dict())
        == ["module.0.weight", "module.0.bias", "module.2.weight", "module.2.bias"]
    )
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-6, atol=1e-6)
    assert isinstance(ours.module, nn.Sequential) and ours.module[0] is ours.module._modules["0"]
    # the bare module loads the wrapped one's weights once the prefix is taken off, as in torch
    bare = _build(nn, "mlp")
    bare.load_state_dict({k.removeprefix("module."): v for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(bare(Tensor(x)).data, ours(Tensor(x)).data)
    assert nn.parallel.DataParallel is nn.DataParallel
    assert nn.parallel.data_parallel(bare, Tensor(x)).shape == (5, 2)
    with pytest.raises(NotImplementedError, match="torch.nn.parallel.DistributedDataParallel"):
        nn.parallel.DistributedDataParallel(bare)


def test_data_parallel_refuses_several_devices(monkeypatch):
    import fastnn.cuda

    monkeypatch.setattr(fastnn.cuda, "is_available", lambda: True)
    with pytest.raises(NotImplementedError, match="splitting of each batch over several devices"):
        nn.DataParallel(nn.Linear(1, 1), device_ids=[0, 1])
    assert nn.DataParallel(nn.Linear(1, 1), device_ids=[0]).device_ids == [0]
    monkeypatch.setattr(fastnn.cuda, "is_available", lambda: False)  # without a device: ids ignored, as torch
    assert nn.DataParallel(nn.Linear(1, 1), device_ids=[0, 1]).device_ids == []


def test_onnx_export_says_there_is_no_exporter():
    import fastnn.onnx

    with pytest.raises(NotImplementedError, match="torch.onnx.export: fastnn has no ONNX exporter"):
        fastnn.onnx.export(nn.Linear(2, 2), Tensor(np.zeros((1, 2), np.float32)), "model.onnx")
    assert fastnn.onnx.is_in_onnx_export() is False


def test_every_exported_name_exists_and_torch_has_it():
    torch = _torch()
    missing = [n for n in nn.__all__ if not hasattr(nn, n)]
    assert not missing
    ours_only = {"PositionalEmbedding"}  # fastnn's learned positional embedding
    assert [n for n in nn.__all__ if not hasattr(torch.nn, n) and n not in ours_only] == []
    import fastnn.nn.functional as F

    assert [n for n in F.__all__ if not hasattr(F, n)] == []
    assert [
        n
        for n in F.__all__
        if not hasattr(torch.nn.functional, n)
        and n not in ("flatten", "rnn", "lstm", "gru", "rnn_cell", "lstm_cell", "gru_cell")
    ] == []


def test_torch_names_fastnn_lacks_raise_not_implemented():
    import fastnn.nn.functional as F
    from fastnn.nn import _unsupported

    with pytest.raises(NotImplementedError, match="fastnn has no torch.nn.ConvTranspose3d"):
        nn.ConvTranspose3d(1, 1, 3)
    with pytest.raises(NotImplementedError, match="fastnn has no torch.nn.functional.grid_sample"):
        F.grid_sample(None, None)
    assert not hasattr(nn, "ConvTranspose3d") and getattr(F, "unfold", None) is None  # AttributeErrors too
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchLayer'") as e:
        nn.NoSuchLayer()
    assert not isinstance(e.value, NotImplementedError)
    # the lists name only what torch has and fastnn does not
    assert not [n for n in _unsupported.TORCH_NN if n in vars(nn)]
    assert not [n for n in _unsupported.TORCH_NN_FUNCTIONAL if n in vars(F)]
    torch = _torch()
    assert not [n for n in _unsupported.TORCH_NN if not hasattr(torch.nn, n)]
    assert not [n for n in _unsupported.TORCH_NN_FUNCTIONAL if not hasattr(torch.nn.functional, n)]
