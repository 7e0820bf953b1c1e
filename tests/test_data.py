"""fastnn.data: the IDX reader (bundled file, raw and gzip, malformed files), datasets, DataLoader."""

import gzip

import fastnn
import numpy as np
import pytest
from fastnn.data import DataLoader, TensorDataset, load_mnist_5k, random_split, read_idx


def test_bundled_mnist_subset():
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert (np.bincount(labels) == 500).all() and (np.diff(labels) >= 0).all()  # sorted by class
    assert images.max() == 255 and 0.1 < images.mean() / 255 < 0.15


def _idx_bytes(a, code):
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize(
    "dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)]
)
def test_read_idx_raw_and_gzip(tmp_path, dtype, code):
    a = (np.arange(24).reshape(2, 3, 4) * 3 - 5).astype(dtype)
    raw = _idx_bytes(a, code)
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    for name in ("a.idx", "a.idx.gz"):
        b = read_idx(tmp_path / name)
        assert b.dtype == np.dtype(dtype) and b.dtype.isnative
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(
    "data,msg",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "type"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x00\x01", "bytes"),
        (b"\x00\x00", "magic"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, data, msg):
    p = tmp_path / "bad.idx"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=msg):
        read_idx(p)
    p.write_bytes(gzip.compress(data)[:-4])  # a cut gzip stream
    with pytest.raises(ValueError):
        read_idx(p)


def _refused(path, match, **kw):
    with pytest.raises(ValueError, match=match) as e:
        read_idx(path, **kw)
    assert str(e.value).startswith(f"read_idx: {path}"), e.value


def test_read_idx_refuses_claims_past_the_file_before_allocating(tmp_path):
    # 16 GiB and 2^64 bytes claimed by a few bytes of data, raw and gzip-compressed
    for dims in ((2**16, 2**9, 2**9), (2**32 - 1, 2**32 - 1)):
        raw = bytes([0, 0, 0x0E, len(dims)]) + b"".join(n.to_bytes(4, "big") for n in dims) + b"\0" * 64
        (tmp_path / "big.idx").write_bytes(raw)
        (tmp_path / "big.idx.gz").write_bytes(gzip.compress(raw))
        for name in ("big.idx", "big.idx.gz"):
            _refused(tmp_path / name, "more than the file holds")


def test_read_idx_gzip_bombs(tmp_path):
    n = 64 << 20  # 64 MiB of zeros, about 64 KiB compressed
    body = bytes(n)
    honest = gzip.compress(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + body, compresslevel=9)
    (tmp_path / "honest.gz").write_bytes(honest)
    _refused(tmp_path / "honest.gz", "more than the limit of 1000000", max_bytes=10**6)  # before decompressing
    assert read_idx(tmp_path / "honest.gz").shape == (n,)
    # a header claiming 1 KiB over 64 MiB of data: stopped after the claimed size, not at the end
    liar = gzip.compress(bytes([0, 0, 8, 1]) + (1024).to_bytes(4, "big") + body, compresslevel=9)
    (tmp_path / "liar.gz").write_bytes(liar)
    _refused(tmp_path / "liar.gz", "more data than the 1024 bytes")


def test_read_idx_damaged_gzip_and_options(tmp_path):
    a = np.arange(100, dtype=np.uint8)
    gz = bytearray(gzip.compress(_idx_bytes(a, 0x08)))
    gz[-8] ^= 0xFF  # the CRC in the trailer
    (tmp_path / "crc.gz").write_bytes(bytes(gz))
    _refused(tmp_path / "crc.gz", "not a readable gzip file")
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a, 0x08))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx", max_bytes=100), a)
    _refused(tmp_path / "a.idx", "more than the limit of 99", max_bytes=99)
    for bad in (-1, 2.0, None.__class__):
        with pytest.raises(ValueError, match="read_idx: max_bytes"):
            read_idx(tmp_path / "a.idx", max_bytes=bad)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing.idx")


def test_dataloader_batches_shuffle_and_drop_last():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    ds = TensorDataset(x, y)
    batches = list(DataLoader(ds, batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(DataLoader(ds, batch_size=4)) == 3
    assert [len(b[1]) for b in DataLoader(ds, batch_size=4, drop_last=True)] == [4, 4]
    fastnn.manual_seed(3)
    a = np.concatenate([b[1].numpy() for b in DataLoader(ds, batch_size=3, shuffle=True)])
    fastnn.manual_seed(3)
    b = np.concatenate([b[1].numpy() for b in DataLoader(ds, batch_size=3, shuffle=True)])
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(10)) and (a != np.arange(10)).any()
    for xb, yb in DataLoader(ds, batch_size=3, shuffle=True):
        np.testing.assert_array_equal(xb.numpy()[:, 0], yb.numpy())  # rows stay paired
    parts = random_split(ds, [7, 3])
    assert sorted([parts[0][i][1].item() for i in range(7)] + [parts[1][i][1].item() for i in range(3)]) == list(
        range(10)
    )
    with pytest.raises(ValueError):
        TensorDataset(x, y[:5])
    with pytest.raises(ValueError):
        DataLoader(ds, batch_size=0)


def test_bundled_tinyshakespeare():
    import hashlib

    from fastnn.data import load_tinyshakespeare

    text = load_tinyshakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert hashlib.md5(text.encode()).hexdigest() == "6fb458f1232090904fb40fe944165e91"
    assert text.startswith("First Citizen:")
