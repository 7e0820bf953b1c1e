"""fastnn.save / fastnn.load and the checkpoint loader on good and corrupted files: every corrupted
file is a ValueError naming the file and the reason, decided before anything big is allocated;
nothing is unpickled."""

import io
import json
import struct
import zipfile
import zlib
from collections import OrderedDict

import fastnn
import numpy as np
import pytest
from fastnn import nn, train

META = "__fastnn_structure__"


def npy_bytes(header_dict, data=b"", version=(1, 0)):
    """A .npy stream with the given header dict (written as NumPy writes it) and data."""
    text = repr(header_dict).encode("latin1")
    if version == (1, 0):
        pad = 64 - (10 + len(text) + 1) % 64
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text) + pad + 1)
    else:
        pad = 64 - (12 + len(text) + 1) % 64
        head = b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(text) + pad + 1)
    return head + text + b" " * pad + b"\n" + data


def structure_bytes(structure):
    text = structure if isinstance(structure, (str, bytes)) else json.dumps(structure)
    text = text.encode() if isinstance(text, str) else text
    arr = np.frombuffer(text, dtype=np.uint8)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def write_npz(path, members, compression=zipfile.ZIP_STORED):
    """members: [(name, bytes)]; names as they are stored (with .npy)."""
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def array_member(name, a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a))
    return (f"{name}.npy", buf.getvalue())


def one_tensor_file(path, member_bytes, compression=zipfile.ZIP_STORED):
    return write_npz(path, [("a0.npy", member_bytes), (f"{META}.npy", structure_bytes({"tensor": "a0"}))], compression)


def refused(path, match, **kw):
    with pytest.raises(ValueError, match=match) as e:
        fastnn.load(path, **kw)
    assert str(e.value).startswith(f"fastnn.load: {path}"), e.value
    return str(e.value)


# ---- what save writes comes back


def test_round_trip_of_every_kind_of_value(tmp_path):
    obj = {
        "t": fastnn.ones(2, 3),
        "f": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        "be": np.arange(5, dtype=">i4"),
        "empty": np.zeros((0, 7), np.float32),
        "scalars": [1, -2.5, "x", None, True, float("nan"), float("-inf"), float("inf")],
        "od": OrderedDict([("b", 1), ("a", 2)]),
        (1, "k"): (np.arange(3),),
        3: {"nested": [[{"deep": np.float32(1.5)}]]},
    }
    p = tmp_path / "o.npz"
    fastnn.save(obj, p)
    back = fastnn.load(p)
    np.testing.assert_array_equal(back["t"].numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(back["f"], obj["f"])
    assert back["f"].flags.f_contiguous and back["f"].flags.writeable
    assert back["be"].dtype == np.dtype(">i4") and list(back["be"]) == [0, 1, 2, 3, 4]
    assert back["empty"].shape == (0, 7)
    s = back["scalars"]
    assert s[:5] == [1, -2.5, "x", None, True] and np.isnan(s[5]) and s[6] == float("-inf") and s[7] == float("inf")
    assert isinstance(back["od"], OrderedDict) and list(back["od"]) == ["b", "a"]
    np.testing.assert_array_equal(back[(1, "k")][0], np.arange(3))
    assert back[3] == {"nested": [[{"deep": 1.5}]]}
    with open(p, "rb") as fh:  # a stream works as a path does
        assert set(fastnn.load(fh)) == set(obj)


def test_savez_compressed_files_load(tmp_path):
    p = tmp_path / "c.npz"
    a = np.arange(1000, dtype=np.float32)
    np.savez_compressed(p, a0=a, **{META: np.frombuffer(b'{"array": "a0"}', np.uint8)})
    np.testing.assert_array_equal(fastnn.load(p), a)


def test_save_refuses_what_load_would_refuse(tmp_path):
    deep = []
    for _ in range(60):  # 60 lists are 120 JSON levels, past the limit of 100
        deep = [deep]
    with pytest.raises(ValueError, match="fastnn.save: .*nested too deeply"):
        fastnn.save(deep, tmp_path / "d.npz")
    fastnn.save([[[[{"a": [1]}]]]], tmp_path / "ok.npz")


# ---- corrupted archives


def test_not_an_archive(tmp_path):
    for data in (b"", b"PK\x03\x04garbage", b"\x00" * 100, b"hello world"):
        p = tmp_path / "x.npz"
        p.write_bytes(data)
        refused(p, "not a readable .npz archive")
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


def test_a_member_claiming_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    # 8 GB and 40 TB claimed by a 16-byte member: refused from the header, nothing allocated
    for shape in ((2**31,), (2**40, 10)):
        p = one_tensor_file(
            tmp_path / "big.npz", npy_bytes({"descr": "<f4", "fortran_order": False, "shape": shape}, b"\0" * 16)
        )
        msg = refused(p, "more than the file holds")
        assert "a0.npy" in msg


def test_a_deflated_member_may_not_claim_past_deflates_ratio(tmp_path):
    # the data is 1 MB of zeros (about 1 KB deflated), the header claims 4 GB
    head = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (2**30,)}, b"\0" * 2**20)
    p = one_tensor_file(tmp_path / "bomb.npz", head, zipfile.ZIP_DEFLATED)
    refused(p, "more than the file holds")


def test_the_cap_refuses_honest_but_large_files(tmp_path):
    p = tmp_path / "ok.npz"
    fastnn.save({"w": np.zeros(1000, np.float32), "v": np.zeros(1000, np.float32)}, p)
    with np.load(p) as z:
        need = sum(z[k].nbytes for k in z.files)  # both arrays and the structure description
    assert need > 8000
    assert fastnn.load(p, max_bytes=need)["w"].shape == (1000,)
    refused(p, f"needs {need} bytes, more than the limit of {need - 1}", max_bytes=need - 1)
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValueError, match="max_bytes"):
            fastnn.load(p, max_bytes=bad)


def test_truncated_and_overlong_data(tmp_path):
    hdr = {"descr": "<f4", "fortran_order": False, "shape": (100,)}
    p = one_tensor_file(tmp_path / "short.npz", npy_bytes(hdr, b"\0" * 200))
    refused(p, "more than the file holds")
    p = one_tensor_file(tmp_path / "long.npz", npy_bytes(hdr, b"\0" * 800))
    refused(p, "more data than the 400 bytes")


def test_a_damaged_byte_fails_the_checksum(tmp_path):
    p = tmp_path / "ok.npz"
    fastnn.save({"w": np.arange(256, dtype=np.float32)}, p)
    raw = bytearray(p.read_bytes())
    raw[raw.index(np.arange(256, dtype=np.float32).tobytes()) + 100] ^= 0xFF
    p.write_bytes(bytes(raw))
    refused(p, "not a readable .npz archive.*CRC")


def test_bad_npy_headers(tmp_path):
    cases = [
        b"not an npy header at all",
        b"\x93NUMPY\x09\x00" + b"\0" * 60,  # unknown version
        npy_bytes({"descr": "<f4", "shape": (2,)}, b"\0" * 8),  # a key missing
        npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (-1,)}),
        npy_bytes({"descr": "<f4", "fortran_order": False, "shape": "(2,)"}),
        npy_bytes({"descr": "nonsense", "fortran_order": False, "shape": (2,)}),
        b"\x93NUMPY\x01\x00\xff\xff" + b"x" * 100,  # a header longer than the member
    ]
    for i, member in enumerate(cases):
        p = one_tensor_file(tmp_path / f"h{i}.npz", member)
        refused(p, "not a valid .npy header|file ends|more than the file holds")


def test_object_arrays_are_never_unpickled(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([object()], dtype=object))
    refused(tmp_path / "evil.npz", "only pickle could read")
    p = one_tensor_file(
        tmp_path / "rec.npz", npy_bytes({"descr": [("a", "O")], "fortran_order": False, "shape": (1,)}, b"\0" * 8)
    )
    refused(p, "only pickle could read")


def test_archive_layout_problems(tmp_path):
    st = ("__fastnn_structure__.npy", structure_bytes({"array": "a0"}))
    a0 = array_member("a0", np.zeros(2, np.float32))
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_npz(tmp_path / "dup.npz", [a0, a0, st])
    refused(tmp_path / "dup.npz", "member name twice")
    write_npz(tmp_path / "txt.npz", [("a0.txt", b"hello"), st])
    refused(tmp_path / "txt.npz", "not a .npy array")
    write_npz(tmp_path / "nometa.npz", [a0])
    refused(tmp_path / "nometa.npz", "no structure entry")
    write_npz(tmp_path / "f32meta.npz", [a0, array_member(META, np.zeros(3, np.float32))])
    refused(tmp_path / "f32meta.npz", "structure entry is not a 1-d uint8")


# ---- corrupted structure descriptions


@pytest.mark.parametrize(
    "structure,match",
    [
        (b"\xff\xfe not utf-8", "not valid JSON"),
        ("{not json", "not valid JSON"),
        ('{"array": "a0", "x": NaN}', "not valid JSON"),
        ("[" * 1_000_000 + "]" * 1_000_000, "nested deeper than 100"),
        ('{"list": ' + "[" * 101 + "]" * 101 + "}", "nested deeper than 100"),
        ("9" * 5000, "not valid JSON"),  # more digits than int() takes
        ({"array": "a0", "extra": 1}, "keys \\['array', 'extra'\\]"),
        ({"tensor": "a9"}, "names an array 'a9'"),
        ({"list": [{"array": "a0"}, {"array": "a0"}]}, "twice"),
        ({"list": []}, "leaves out the arrays \\['a0'\\]"),
        ({"dict": [[{"list": []}, {"array": "a0"}]], "ordered": False}, "dict key of type list"),
        ({"dict": [[1, 2, 3]], "ordered": False}, "not a \\[key, value\\] pair"),
        ({"dict": [], "ordered": "yes"}, "keys"),
        ({"dict": {}, "ordered": False}, "not a list"),
        ({"list": [{"float": "1e999"}, {"array": "a0"}]}, "float '1e999'"),
        ({"tuple": "abc"}, "not a list"),
        ([{"array": "a0"}], "a list where a value belongs"),
    ],
)
def test_structure_descriptions_save_never_writes(tmp_path, structure, match):
    p = write_npz(
        tmp_path / "s.npz", [array_member("a0", np.zeros(2, np.float32)), (f"{META}.npy", structure_bytes(structure))]
    )
    refused(p, match)


# ---- checkpoints


def _model_and_opt():
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    return model, fastnn.optim.Adam(model.parameters(), lr=0.01)


def test_checkpoint_round_trip_and_corruptions(tmp_path):
    model, opt = _model_and_opt()
    path = str(tmp_path / "ck.npz")
    train.save_checkpoint(path, model, opt, epoch=3, history=[{"loss": 1.0}])
    assert train.load_checkpoint(path, *_model_and_opt()) == (3, [{"loss": 1.0}])

    good = fastnn.load(path)

    def corrupt(edit, match):
        state = dict(good)
        edit(state)
        fastnn.save(state, path)
        with pytest.raises(ValueError, match=match) as e:
            train.load_checkpoint(path, *_model_and_opt())
        assert str(e.value).startswith(f"load_checkpoint: {path}"), e.value

    corrupt(lambda s: s.pop("rng"), "not a checkpoint")
    corrupt(lambda s: s.update(epoch=-1), "'epoch'")
    corrupt(lambda s: s.update(epoch="3"), "'epoch'")
    corrupt(lambda s: s.update(history={"a": 1}), "'history'")
    corrupt(lambda s: s.update(rng=np.frombuffer(b"[" * 5000, np.uint8)), "'rng' entry")
    corrupt(lambda s: s.update(rng=np.frombuffer(b'{"bit_generator": "PCG64"}', np.uint8)), "'rng' entry")
    corrupt(lambda s: s.update(rng=np.zeros(3, np.float32)), "'rng' entry")
    corrupt(lambda s: s.update(model=[1, 2]), "'model' entry")
    corrupt(lambda s: s.update(model={"0.weight": np.zeros((9, 9), np.float32)}), "'model' entry")
    corrupt(lambda s: s.update(optimizer={"param_groups": "x"}), "'optimizer' entry")
    corrupt(lambda s: s.update(optimizer={"state": {}, "param_groups": []}), "'optimizer' entry")
    fastnn.save([1, 2], path)
    with pytest.raises(ValueError, match="not a checkpoint"):
        train.load_checkpoint(path, *_model_and_opt())


def test_set_rng_state_checks_its_input():
    state = fastnn.random.get_rng_state()
    a = fastnn.rand(3).numpy()
    fastnn.random.set_rng_state(state)
    np.testing.assert_array_equal(fastnn.rand(3).numpy(), a)
    for bad in (b"\xff", b"[]", b'{"state": 1}', b"{" * 100):
        with pytest.raises(ValueError, match="set_rng_state: not a state"):
            fastnn.random.set_rng_state(np.frombuffer(bad, np.uint8))
    fastnn.random.set_rng_state(state)
    np.testing.assert_array_equal(fastnn.rand(3).numpy(), a)  # a refused state changed nothing


def test_zlib_is_what_deflate_uses():
    # the ratio bound in fastnn._files holds for zlib's best case: a long run of one byte
    data = b"\0" * (1 << 22)
    from fastnn import _files

    assert len(data) <= _files.deflate_bound(len(zlib.compress(data, 9)) - 6)


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "checkpoint"])
def test_save_writes_the_path_it_is_given(tmp_path, name):
    # torch.save(sd, "model.pt") then torch.load("model.pt"): no ".npz" added to the name
    for path in (tmp_path / name, str(tmp_path / name)):
        fastnn.save({"w": fastnn.ones(2)}, path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]
        np.testing.assert_array_equal(fastnn.load(path)["w"].numpy(), np.ones(2))
