"""File reading and writing shared by modules and the training loop.

    atomic_write(path, write, binary)   a temporary file in the target folder, then os.replace
    atomic_savez(path, arrays)          np.savez through atomic_write
    read_npz(path)                      the arrays of an .npz, or CheckpointError naming the path
"""
import os
import tempfile
import zipfile
import zlib

import numpy as np


class CheckpointError(ValueError):
    """A file that is not a readable fastnn .npz (empty, truncated, corrupt, a .npy array, pickled
    data, ...), or a checkpoint that does not fit what it is loaded into. The message names the path."""


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write, binary=True):
    """Calls write(f) on a temporary file in the target folder, then renames it over `path`: a crash
    mid-write leaves the previous file intact, never a truncated one. The file gets the permissions a
    plain open() would give (0666 less the umask), not mkstemp's 0600."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give a file path, such as {os.path.join(path, 'model.npz')}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_savez(path, arrays):
    """np.savez of `arrays` (name -> array) into `path`, atomically (atomic_write)."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path):
    """dict name -> NumPy array of the .npz at `path`, read in full (no pickles).

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: anything else that is not a readable .npz: a folder, an empty, truncated or
            corrupt file, a .npy array, a text or pickle file, an archive holding object arrays.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a fastnn checkpoint (.npz file)")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is a .npy array, not a fastnn checkpoint (.npz archive)")
        with data:
            return {name: data[name] for name in data.files}
    except (FileNotFoundError, CheckpointError):
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        what = "an empty file" if size == 0 else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{path} is not a fastnn checkpoint (not a valid .npz: {what})") from e
