"""MNIST and Fashion-MNIST: 28x28 grey images of 10 classes, 60000 for training and 10000 for testing.

Where the files are looked for, in this order (the first folder that holds both files of the
requested split wins):

    1. the `path` argument: the folder itself, then path/<name> (<name> is mnist or fashion-mnist)
    2. $FASTNN_DATA/<name>
    3. the copy shipped inside fastnn (MNIST only: fastnn/data/mnist, CC BY-SA 3.0)
    4. the user cache: $XDG_CACHE_HOME/fastnn/<name>, by default ~/.cache/fastnn/<name>
    5. Debian's dataset-fashion-mnist package: /usr/share/datasets/fashion-mnist (Fashion-MNIST only)

Each file may be raw IDX or gzip-compressed (train-images-idx3-ubyte or train-images-idx3-ubyte.gz).
The SHA-256 of the decompressed bytes is checked against the published data, so a corrupt or
foreign file is an error rather than a silently wrong training run. When nothing is found the
FileNotFoundError lists every place looked. With download=True, missing files are fetched from the
data set's public mirrors into the user cache (checked the same way).

Decoded arrays are kept in memory for the life of the process, so a second load costs one copy.
"""
import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .idx import parse_idx, read_idx_bytes

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IMAGE_SIZE = 28
NUM_CLASSES = 10

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


class DatasetSpec(NamedTuple):
    title: str  # name used in messages
    folder: str  # sub-folder name under $FASTNN_DATA, the cache and an explicit path
    sha256: dict  # file name without .gz -> SHA-256 of its decompressed bytes
    shipped: object  # Path of the copy inside the package, or None
    system: object  # Path where a system package installs it, or None
    system_hint: str  # how to get that system package ("" when there is none)
    mirrors: tuple  # base URLs that serve <file>.gz


DATASETS = {
    "mnist": DatasetSpec(
        title="MNIST",
        folder="mnist",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        shipped=Path(__file__).resolve().parent / "mnist",
        system=None,
        system_hint="",
        # The original site often refuses scripted downloads; these mirrors serve the same files.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": DatasetSpec(
        title="Fashion-MNIST",
        folder="fashion-mnist",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        shipped=None,
        system=Path("/usr/share/datasets/fashion-mnist"),
        system_hint="apt-get install dataset-fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
}

# (data set, split, file identities) -> (images uint8 (N,28,28), labels uint8 (N,)), both read-only.
_decoded_cache = {}


class SplitFiles(NamedTuple):
    images: Path
    labels: Path


def cache_dir():
    """The user cache folder fastnn downloads into: $XDG_CACHE_HOME/fastnn, else ~/.cache/fastnn."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastnn"


def _spec(name):
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def _check_split(split):
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def search_locations(name, path=None):
    """The places looked in for data set `name`, in order, as (description, folder or None) pairs.

    A None folder is a place that does not apply now (no path given, $FASTNN_DATA not set); it is
    still listed so the "not found" message can say so.
    """
    spec = _spec(name)
    places = []
    if path is not None:
        given = Path(path).expanduser()
        places.append(("path argument", given))
        places.append(("path argument", given / spec.folder))
    else:
        places.append(("path argument (none given)", None))
    env = os.environ.get("FASTNN_DATA")
    if env:
        places.append(("$FASTNN_DATA", Path(env).expanduser() / spec.folder))
    else:
        places.append(("$FASTNN_DATA (not set)", None))
    if spec.shipped is not None:
        places.append(("copy shipped with fastnn", spec.shipped))
    places.append(("user cache", cache_dir() / spec.folder))
    if spec.system is not None:
        places.append((f"system package ({spec.system_hint})", spec.system))
    return places


def _split_files_in(folder, split):
    """SplitFiles for `split` in `folder` (raw preferred over .gz), or None with what is missing."""
    found, missing = [], []
    for base in SPLIT_FILES[split]:
        for candidate in (folder / base, folder / (base + ".gz")):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            missing.append(base)
    return (SplitFiles(*found), []) if not missing else (None, missing)


def locate(name, split="train", path=None):
    """The two files (images, labels) of `split` of data set `name` ("mnist" or "fashion-mnist"),
    from the first place in the search order that has both.

    Raises:
        FileNotFoundError: no place has both files; the message names every place looked.
    """
    _check_split(split)
    spec = _spec(name)
    places = search_locations(name, path)
    report = []
    for description, folder in places:
        if folder is None:
            report.append(f"  - {description}")
            continue
        files, missing = _split_files_in(folder, split)
        if files is not None:
            return files
        if folder.is_dir():
            status = "missing " + ", ".join(f"{m}[.gz]" for m in missing)
        elif folder.exists():
            status = "not a folder"
        else:
            status = "no such folder"
        report.append(f"  - {description}: {folder} ({status})")
    images, labels = SPLIT_FILES[split]
    hints = [f"put {images}[.gz] and {labels}[.gz] in one of these folders"]
    if spec.system_hint:
        hints.append(f"run `{spec.system_hint}`")
    hints.append("pass download=True to fetch them into the user cache")
    raise FileNotFoundError(
        f"{spec.title} ({split} split) not found. Looked in:\n" + "\n".join(report) + "\nTo fix: "
        + "; or ".join(hints) + "."
    )


def _verify(spec, base, data, source):
    digest = hashlib.sha256(data).hexdigest()
    expected = spec.sha256[base]
    if digest != expected:
        raise ValueError(
            f"{source}: checksum mismatch for {spec.title} file {base}: SHA-256 of the decompressed "
            f"content is {digest}, expected {expected}. The file is corrupt or is not {spec.title}'s; "
            "delete or replace it (or pass verify=False to load it anyway)."
        )


def _decode_split(spec, split, files, verify):
    """uint8 images (N, 28, 28) and labels (N,) from `files`, checked against each other."""
    arrays = []
    for base, file in zip(SPLIT_FILES[split], files):
        data = read_idx_bytes(file)
        if verify:
            _verify(spec, base, data, file)
        arrays.append(parse_idx(data, name=str(file)))
    images, labels = arrays
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{files.images}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{files.labels}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{files.labels} has {labels.shape[0]} labels but {files.images} has {images.shape[0]} images"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise ValueError(f"{files.labels}: label {int(labels.max())} is outside [0, {NUM_CLASSES})")
    return images, labels


def _download(spec, split, dest):
    """Fetches the split's two .gz files into `dest`, each checked before it is moved into place."""
    dest.mkdir(parents=True, exist_ok=True)
    for base in SPLIT_FILES[split]:
        failures = []
        for mirror in spec.mirrors:
            url = mirror + base + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    blob = response.read()
                _verify(spec, base, gzip.decompress(blob), url)
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                failures.append(f"  - {url}: {exc}")
                continue
            # Written next to its final name and renamed, so a crash never leaves a partial file.
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=base + ".", suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, dest / (base + ".gz"))
            break
        else:
            raise OSError(f"could not download {spec.title} file {base}.gz:\n" + "\n".join(failures))


def _load(name, split, path, dtype, flatten, download, verify):
    _check_split(split)
    spec = _spec(name)
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32, np.float64):
        raise TypeError(f"dtype must be float32, float64 or uint8, got {dtype}")
    try:
        files = locate(name, split, path)
    except FileNotFoundError as not_found:
        if not download:
            raise
        try:
            _download(spec, split, cache_dir() / spec.folder)
        except OSError as exc:
            raise FileNotFoundError(f"{not_found}\nDownloading failed too: {exc}") from exc
        files = locate(name, split, path)

    identity = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (name, split, identity, bool(verify))
    if key not in _decoded_cache:
        images, labels = _decode_split(spec, split, files, verify)
        images.flags.writeable = False
        labels.flags.writeable = False
        _decoded_cache[key] = (images, labels)
    images, labels = _decoded_cache[key]

    n = images.shape[0]
    if dtype == np.uint8:
        x = images.copy()
    else:
        x = np.divide(images, dtype.type(255), dtype=dtype)  # one pass: cast and scale together
    x = x.reshape(n, IMAGE_SIZE * IMAGE_SIZE) if flatten else x.reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    return x, labels.astype(np.int64)


def load_mnist(split="train", path=None, dtype=np.float32, flatten=False, download=False, verify=True):
    """MNIST handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0).

        x[n, 0, i, j] = pixel[n, i, j] / 255   (0 = background, 1 = ink)
        y[n]          = the digit, 0..9

    Args:
        split: "train" (60000 images) or "test" (10000 images).
        path: a folder to look in first (see the module docstring for the search order).
        dtype: float32 (default) or float64 for pixels scaled to [0, 1]; uint8 for raw 0..255.
        flatten: images as (N, 784) rows instead of (N, 1, 28, 28).
        download: fetch missing files from a public mirror into the user cache.
        verify: check each file's SHA-256 (about 0.1 s for the training images).

    Returns:
        (x, y): x as described, y int64 (N,). Both are fresh arrays the caller may modify.

    Raises:
        FileNotFoundError: the files are nowhere in the search order (the message lists it).
        ValueError: a file is corrupt, fails its checksum, or disagrees with its header or partner.
        TypeError: an unsupported dtype.
    """
    return _load("mnist", split, path, dtype, flatten, download, verify)


def load_fashion_mnist(split="train", path=None, dtype=np.float32, flatten=False, download=False, verify=True):
    """Fashion-MNIST: Zalando's article images in MNIST's format (MIT license, Zalando SE).

    Same arguments, shapes and errors as load_mnist; y[n] indexes FASHION_MNIST_CLASSES. fastnn
    does not ship it: on Debian `apt-get install dataset-fashion-mnist` provides it, or pass
    download=True, or point `path` / $FASTNN_DATA at a copy.
    """
    return _load("fashion-mnist", split, path, dtype, flatten, download, verify)
