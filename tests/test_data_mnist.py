"""MNIST and Fashion-MNIST loaders: the real shipped data, the search order, checksums, downloads.

Search-order tests run on small synthetic data sets written into tmp_path, with the data set's
checksum table and folders swapped for ones that point there.
"""
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from fastnn import data
from fastnn.data import mnist, write_idx

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---- the real data shipped with fastnn -------------------------------------------------------------


def test_real_mnist_test_split():
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS


def test_real_mnist_train_split_label_counts():
    x, y = data.load_mnist("train", dtype=np.uint8, flatten=True)
    assert x.shape == (60000, 784) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS


def test_float_pixels_are_raw_over_255():
    raw, _ = data.load_mnist("test", dtype=np.uint8)
    x64, _ = data.load_mnist("test", dtype=np.float64, flatten=True)
    assert x64.shape == (10000, 784) and x64.dtype == np.float64
    np.testing.assert_array_equal(x64, raw.reshape(10000, 784) / 255.0)


def test_returned_arrays_are_private_copies():
    x1, y1 = data.load_mnist("test")
    x1[:] = -1
    y1[:] = -1
    x2, y2 = data.load_mnist("test")
    assert x2.min() == 0.0 and y2.min() == 0


def test_shipped_copy_is_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    files = data.locate("mnist", "test")
    assert files.images.parent == mnist.DATASETS["mnist"].shipped


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian_package(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    x, y = data.load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28)
    assert np.bincount(y, minlength=10).tolist() == [1000] * 10
    assert len(data.FASHION_MNIST_CLASSES) == 10


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_mnist("validation")
    with pytest.raises(TypeError, match="dtype must be"):
        data.load_mnist("test", dtype=np.int32)


# ---- synthetic data sets for the search order --------------------------------------------------------


def _write_split(folder, split, label, n=5, gz=True):
    """A tiny data set whose labels are all `label`, so a test can tell which folder was read."""
    folder.mkdir(parents=True, exist_ok=True)
    images_name, labels_name = mnist.SPLIT_FILES[split]
    suffix = ".gz" if gz else ""
    images = np.full((n, 28, 28), label * 20, dtype=np.uint8)
    write_idx(folder / (images_name + suffix), images)
    write_idx(folder / (labels_name + suffix), np.full(n, label, dtype=np.uint8))


def _raw_bytes(path):
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Five folders in tmp_path standing for the five places of the search order, with the
    'fashion-mnist' spec, $FASTNN_DATA and the cache pointed at them. Each test writes its own
    synthetic files there; checksums are switched off (verify=False) unless a test sets a table."""
    root = tmp_path / "places"
    folders = {
        "path": root / "explicit",
        "env": root / "env",
        "shipped": root / "shipped",
        "cache": root / "cache",
        "system": root / "system",
    }
    spec = mnist.DATASETS["fashion-mnist"]._replace(
        shipped=folders["shipped"], system=folders["system"], mirrors=()
    )
    monkeypatch.setitem(mnist.DATASETS, "fashion-mnist", spec)
    monkeypatch.setenv("FASTNN_DATA", str(root / "env-root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache-root"))
    folders["env"] = root / "env-root" / "fashion-mnist"
    folders["cache"] = root / "cache-root" / "fastnn" / "fashion-mnist"
    return folders


def test_search_order(places):
    order = ["path", "env", "shipped", "cache", "system"]
    for label, key in enumerate(order):
        _write_split(places[key], "test", label)
    for label, key in enumerate(order):
        _, y = data.load_fashion_mnist("test", path=places["path"], verify=False)
        assert y.tolist() == [label] * 5, f"expected the {key} copy"
        for f in places[key].iterdir():
            f.unlink()


def test_explicit_path_may_hold_the_data_set_folder(places, tmp_path):
    _write_split(tmp_path / "mine" / "fashion-mnist", "test", 7, gz=False)
    _write_split(places["env"], "test", 1)
    _, y = data.load_fashion_mnist("test", path=tmp_path / "mine", verify=False)
    assert y.tolist() == [7] * 5


def test_a_folder_with_one_file_of_the_pair_is_skipped(places):
    _write_split(places["env"], "test", 1)
    (places["env"] / "t10k-labels-idx1-ubyte.gz").unlink()
    _write_split(places["cache"], "test", 3)
    _, y = data.load_fashion_mnist("test", verify=False)
    assert y.tolist() == [3] * 5


def test_nothing_found_message_names_every_place(places, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        data.load_fashion_mnist("train", path=places["path"])
    message = str(err.value)
    assert "Fashion-MNIST (train split) not found" in message
    for key in ["path", "env", "shipped", "cache", "system"]:
        assert str(places[key]) in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message

    monkeypatch.delenv("FASTNN_DATA")
    with pytest.raises(FileNotFoundError, match=r"\$FASTNN_DATA \(not set\)"):
        data.load_fashion_mnist("train")
    places["env"].mkdir(parents=True)
    monkeypatch.setenv("FASTNN_DATA", str(places["env"].parent))
    with pytest.raises(FileNotFoundError, match="missing train-images-idx3-ubyte"):
        data.load_fashion_mnist("train")


# ---- checksums and consistency ----------------------------------------------------------------------


def _use_checksums_of(monkeypatch, folder, split):
    spec = mnist.DATASETS["fashion-mnist"]
    table = dict(spec.sha256)
    for base in mnist.SPLIT_FILES[split]:
        table[base] = hashlib.sha256(_raw_bytes(folder / (base + ".gz"))).hexdigest()
    monkeypatch.setitem(mnist.DATASETS, "fashion-mnist", spec._replace(sha256=table))


def test_checksum_mismatch_is_detected(places, monkeypatch):
    _write_split(places["env"], "test", 4)
    _use_checksums_of(monkeypatch, places["env"], "test")
    _, y = data.load_fashion_mnist("test")
    assert y.tolist() == [4] * 5

    write_idx(places["env"] / "t10k-labels-idx1-ubyte.gz", np.array([4, 4, 4, 4, 5], dtype=np.uint8))
    with pytest.raises(ValueError, match="checksum mismatch .* t10k-labels-idx1-ubyte"):
        data.load_fashion_mnist("test")
    _, y = data.load_fashion_mnist("test", verify=False)
    assert y.tolist() == [4, 4, 4, 4, 5]


def test_real_mnist_checksum_table_matches_shipped_files():
    spec = mnist.DATASETS["mnist"]
    for base, digest in spec.sha256.items():
        assert hashlib.sha256(_raw_bytes(spec.shipped / (base + ".gz"))).hexdigest() == digest


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((4, 28, 28), np.uint8), np.zeros(5, np.uint8), "has 5 labels but .* has 4 images"),
        (np.zeros((5, 20, 20), np.uint8), np.zeros(5, np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((5, 28, 28), np.float32), np.zeros(5, np.uint8), "uint8 images"),
        (np.zeros((5, 28, 28), np.uint8), np.full(5, 10, np.uint8), r"label 10 is outside \[0, 10\)"),
        (np.zeros((5, 28, 28), np.uint8), np.zeros((5, 1), np.uint8), "uint8 labels"),
    ],
)
def test_images_and_labels_must_agree(tmp_path, images, labels, message):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match=message):
        data.load_mnist("test", path=tmp_path, verify=False)


def test_in_memory_cache_notices_a_changed_file(places):
    _write_split(places["env"], "test", 2)
    _, y = data.load_fashion_mnist("test", verify=False)
    assert y[0] == 2
    _write_split(places["env"], "test", 6, n=3)
    stamp = os.stat(places["env"] / "t10k-labels-idx1-ubyte.gz").st_mtime_ns + 10**9
    os.utime(places["env"] / "t10k-labels-idx1-ubyte.gz", ns=(stamp, stamp))
    _, y = data.load_fashion_mnist("test", verify=False)
    assert y.tolist() == [6, 6, 6]


# ---- downloading (from file:// mirrors: no network here) ---------------------------------------------


def test_download_into_cache_tries_mirrors_in_order(places, monkeypatch, tmp_path):
    good = tmp_path / "good-mirror"
    _write_split(good, "test", 8)
    _use_checksums_of(monkeypatch, good, "test")
    bad = tmp_path / "bad-mirror"
    _write_split(bad, "test", 9)  # wrong content: fails the checksum, so the next mirror is used
    spec = mnist.DATASETS["fashion-mnist"]
    monkeypatch.setitem(
        mnist.DATASETS, "fashion-mnist", spec._replace(mirrors=(bad.as_uri() + "/", good.as_uri() + "/"))
    )
    with pytest.raises(FileNotFoundError):
        data.load_fashion_mnist("test")
    _, y = data.load_fashion_mnist("test", download=True)
    assert y.tolist() == [8] * 5
    assert sorted(p.name for p in places["cache"].iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    ]


def test_failed_download_reports_places_and_urls(places, monkeypatch, tmp_path):
    spec = mnist.DATASETS["fashion-mnist"]
    missing = (tmp_path / "no-mirror").as_uri() + "/"
    monkeypatch.setitem(mnist.DATASETS, "fashion-mnist", spec._replace(mirrors=(missing,)))
    with pytest.raises(FileNotFoundError) as err:
        data.load_fashion_mnist("test", download=True)
    message = str(err.value)
    assert "Looked in" in message and "Downloading failed too" in message and missing in message
    assert not any(p.name.endswith(".part") for p in places["cache"].iterdir())
