"""File writing shared by modules and the training loop."""
import os
import tempfile

import numpy as np


def atomic_savez(path, arrays):
    """np.savez into a temporary file in the target folder, then os.replace: a crash mid-write leaves
    the previous file intact, never a truncated one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
