"""Argument checks and the host-to-GPU step shared by the loaders."""
import math

from .. import _backend


def check_device(device):
    """None leaves batches where the data is; "cpu" makes them NumPy arrays; "cuda" makes them CuPy
    arrays on the current GPU."""
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be None, 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        _backend.cupy_module()
    return device


def to_device(array, device):
    if device == "cuda":
        import cupy

        return cupy.asarray(array)
    if device == "cpu" and _backend.is_cupy_array(array):
        return array.get()
    return array


def sizes_from_fractions(n, fractions):
    """Piece sizes floor(f * n) for every fraction but the first, which gets the rest (so they sum to n)."""
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 or not math.isfinite(f) for f in fractions):
        raise ValueError(f"fractions must be non-negative numbers, got {fractions}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {sum(fractions)})")
    rest = [int(math.floor(f * n + 1e-9)) for f in fractions[1:]]
    return [n - sum(rest)] + rest
