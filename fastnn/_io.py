"""File reading and writing shared by modules and the training loop.

    atomic_write(path, write, binary)   a temporary file in the target folder, then os.replace
    atomic_savez(path, arrays)          np.savez through atomic_write
    read_npz(path)                      the arrays of an .npz, or CheckpointError naming the path
"""
import os
import secrets
import stat
import zipfile
import zlib

import numpy as np


class CheckpointError(ValueError):
    """A file that is not a readable fastnn .npz (empty, truncated, corrupt, a .npy array, pickled
    data, ...), or a checkpoint that does not fit what it is loaded into. The message names the path."""


def _create_temporary(folder, suffix):
    """A new file in `folder`, opened for writing, created with mode 0666 so the kernel applies the
    umask as for a plain open() (mkstemp gives 0600; reading the umask means setting it, which
    races with other threads). Returns (fd, path)."""
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def atomic_write(path, write, binary=True):
    """Calls write(f) on a temporary file in the target folder, then renames it over `path`: a crash
    mid-write leaves the previous file intact, never a truncated one. A new file gets the permissions
    a plain open() would give (0666 less the umask); a replaced one keeps its mode."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give a file path, such as {os.path.join(path, 'model.npz')}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _create_temporary(folder, os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        if os.path.exists(path):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
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
        # Our own file object, closed here whatever np.load raises: given a path, np.load hands its
        # file to NpzFile, which leaves it open when the archive is truncated (BadZipFile).
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path} is a .npy array, not a fastnn checkpoint (.npz archive)")
            with data:
                return {name: data[name] for name in data.files}
    except (FileNotFoundError, PermissionError, CheckpointError):
        raise  # (a file that cannot be read is not a corrupt one)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        what = "an empty file" if size == 0 else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{path} is not a fastnn checkpoint (not a valid .npz: {what})") from e
