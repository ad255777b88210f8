"""The IDX reader: round trips for every element type, and every way a file can contradict its header."""
import gzip

import numpy as np
import pytest

from fastnn.data import parse_idx, read_idx, write_idx
from fastnn.data.mnist import DATASETS


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5, 7)) * 50).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_header_bytes_are_the_documented_big_endian_layout(tmp_path):
    write_idx(tmp_path / "labels", np.arange(3, dtype=np.int16).reshape(1, 3))
    raw = (tmp_path / "labels").read_bytes()
    assert raw[:4] == b"\x00\x00\x0b\x02"
    assert raw[4:12] == b"\x00\x00\x00\x01\x00\x00\x00\x03"
    assert raw[12:] == b"\x00\x00\x00\x01\x00\x02"


def test_gzip_recognised_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "plain-name", array, compress=True)
    assert (tmp_path / "plain-name").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), array)


def test_real_mnist_header():
    labels = read_idx(DATASETS["mnist"].shipped / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    images = read_idx(DATASETS["mnist"].shipped / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8


def _header(type_code, shape):
    return bytes([0, 0, type_code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x12\x34\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX element type 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
        (_header(0x08, (2, 3)) + bytes(5), "truncated"),
        (_header(0x0C, (4,)) + bytes(15), "truncated"),
        (_header(0x08, (2, 3)) + bytes(7), "1 unexpected bytes after the data"),
    ],
)
def test_corrupt_headers_raise_clear_errors(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(data)
    path = tmp_path / "bad-idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="bad-idx"):
        read_idx(path)


def test_huge_declared_shape_is_refused_without_allocating():
    data = _header(0x0E, (2**32 - 1, 2**32 - 1, 2**32 - 1)) + bytes(8)
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(data)


def test_corrupt_gzip_stream(tmp_path):
    blob = gzip.compress(_header(0x08, (100,)) + bytes(100))
    (tmp_path / "cut.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="gzip data is corrupt or truncated"):
        read_idx(tmp_path / "cut.gz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing-here")


def test_write_idx_refuses_what_idx_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="cannot store dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "x", np.float32(1.0))


def test_big_endian_input_is_written_correctly(tmp_path):
    array = np.arange(6, dtype=">f8").reshape(2, 3)
    write_idx(tmp_path / "be", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "be"), array)
