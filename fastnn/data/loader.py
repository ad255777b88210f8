"""Mini-batches, seeded shuffling, and the splits used to choose and judge models.

    loader = DataLoader(x, y, batch_size=64, shuffle=True, seed=0, transform=RandomShift(2))
    for xb, yb in loader:          # one epoch; the next `for` is the next epoch, in a new order
        ...
    train, val, test = train_val_test_split(x, y, val_fraction=0.1, test_fraction=0.1, seed=0)
    for train_idx, val_idx in kfold(len(x), k=5, seed=0):
        ...

Randomness is a pure function of (seed, epoch): epoch e's order is the permutation drawn by
np.random.default_rng([seed, e, 0]) and its augmentation draws from default_rng([seed, e, 1]).
A run is therefore reproducible, and a resumed run that calls set_epoch(e) sees exactly the
batches the uninterrupted run would have seen.
"""
import numbers

import numpy as np

from .._backend import is_cupy_array
from ..functional._checks import int_at_least
from ._util import check_device, sizes_from_fractions, to_device

_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


def _check_seed(seed):
    if seed is None:
        # Fresh entropy, fixed for this loader's life, so its epochs still differ from each other.
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


def _same_length_arrays(arrays, who, allow_gpu=False):
    if not arrays:
        raise ValueError(f"{who}: give at least one array")
    kinds = "NumPy or CuPy" if allow_gpu else "NumPy"
    for i, a in enumerate(arrays):
        if not (isinstance(a, np.ndarray) or (allow_gpu and is_cupy_array(a))):
            raise TypeError(f"{who}: array {i} is a {type(a).__name__}, expected a {kinds} array")
        if a.ndim == 0:
            raise ValueError(f"{who}: array {i} is 0-dimensional; the first axis indexes the samples")
    on_gpu = {is_cupy_array(a) for a in arrays}
    if len(on_gpu) > 1:
        raise TypeError(f"{who}: the arrays must all be NumPy or all CuPy, not a mix")
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"{who}: the arrays must have the same length (first axis), got {lengths}")
    return list(arrays)


class DataLoader:
    """Batches of one or more arrays that share their first axis (e.g. images and labels).

    Batch k of an epoch holds samples order[k*B : (k+1)*B] of every array, where order is
    0..n-1 (shuffle=False) or the epoch's seeded permutation (shuffle=True). The last batch is
    smaller when B does not divide n, unless drop_last=True leaves it out.

    Args:
        *arrays: arrays of equal length n, all NumPy or all CuPy. A data set that fits in GPU
            memory is best put there once (cupy.asarray(x)): every batch is then a gather on the
            GPU, with no host-to-device copy per step.
        batch_size: B.
        shuffle: a new seeded order every epoch.
        seed: non-negative int, or None for a random one (then not reproducible across runs).
        drop_last: leave out the last batch when it has fewer than B samples.
        transform: called as transform(batch_of_first_array, rng) -> new batch, e.g. an
            augmentation from fastnn.data.augment (those take NumPy batches); rng is the epoch's
            augmentation generator. It runs before the batch moves to `device`.
        device: None leaves batches where the arrays are; "cpu" gives NumPy batches; "cuda"
            copies each batch to the current GPU (CuPy).

    Iterating yields a tuple of batches, one per array, or the batch alone when there is one
    array. Without shuffle the batches are views of the arrays (no copy); with it, copies.
    """

    def __init__(self, *arrays, batch_size=64, shuffle=False, seed=None, drop_last=False, transform=None,
                 device=None):
        self.arrays = _same_length_arrays(arrays, "DataLoader", allow_gpu=True)
        self.batch_size = int_at_least("DataLoader", "batch_size", batch_size)
        self.shuffle = bool(shuffle)
        self.seed = _check_seed(seed)
        self.drop_last = bool(drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.transform = transform
        self.device = check_device(device)
        self.epoch = 0

    @property
    def num_samples(self):
        return len(self.arrays[0])

    def __len__(self):
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def set_epoch(self, epoch):
        """The next iteration runs epoch `epoch` (its order and augmentation), e.g. after a resume."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def order(self, epoch):
        """The sample order of epoch `epoch`: int64 indices, a permutation of 0..n-1."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch, _ORDER_STREAM]).permutation(self.num_samples)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        order = self.order(epoch) if self.shuffle else None
        if order is not None and is_cupy_array(self.arrays[0]):
            import cupy

            order = cupy.asarray(order)  # one copy per epoch; each batch's gather then stays on the GPU
        augment_rng = np.random.default_rng([self.seed, epoch, _AUGMENT_STREAM])
        n, b = self.num_samples, self.batch_size
        for k in range(len(self)):
            rows = slice(k * b, min((k + 1) * b, n)) if order is None else order[k * b:(k + 1) * b]
            batch = [a[rows] for a in self.arrays]
            if self.transform is not None:
                batch[0] = self.transform(batch[0], augment_rng)
            batch = [to_device(part, self.device) for part in batch]
            yield batch[0] if len(batch) == 1 else tuple(batch)


def random_split(n, fractions, seed=None, shuffle=True):
    """Indices 0..n-1 dealt into disjoint pieces of the given fractions.

    Piece i has floor(fractions[i] * n) indices, except the first, which takes what rounding
    leaves, so every index lands in exactly one piece.

    Args:
        n: number of samples.
        fractions: non-negative numbers summing to 1, e.g. [0.8, 0.1, 0.1].
        seed: seeds the shuffle (None: random).
        shuffle: False keeps the pieces in index order (e.g. for time series).

    Returns:
        A list of sorted int64 index arrays, one per fraction.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    sizes = sizes_from_fractions(int(n), fractions)
    order = np.random.default_rng(_check_seed(seed)).permutation(n) if shuffle else np.arange(n)
    bounds = np.cumsum([0] + sizes)
    return [np.sort(order[bounds[i]:bounds[i + 1]]).astype(np.int64) for i in range(len(sizes))]


def train_val_test_split(*arrays, val_fraction=0.1, test_fraction=0.1, seed=None, shuffle=True):
    """Splits arrays of equal length into training, validation and test parts (disjoint, covering all).

    Returns:
        (train, val, test), each a tuple with one array per input array (or the array alone when
        one was given). The validation and test parts have floor(fraction * n) samples; training
        has the rest.
    """
    arrays = _same_length_arrays(arrays, "train_val_test_split")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    train_fraction = 1.0 - val_fraction - test_fraction
    pieces = random_split(len(arrays[0]), [train_fraction, val_fraction, test_fraction], seed, shuffle)
    parts = [tuple(a[idx] for a in arrays) for idx in pieces]
    return tuple(part[0] if len(arrays) == 1 else part for part in parts)


def kfold(n, k, seed=None, shuffle=True):
    """k-fold cross-validation: k (train_indices, val_indices) pairs over samples 0..n-1.

    The k validation folds are disjoint and together cover every sample once; fold sizes differ
    by at most one (the first n mod k folds get the extra sample). Each fold's training indices
    are all the others.

    Raises:
        ValueError: k < 2 or k > n.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 2 <= k <= n:
        raise ValueError(f"k must be an int with 2 <= k <= n = {n}, got {k!r}")
    order = np.random.default_rng(_check_seed(seed)).permutation(n) if shuffle else np.arange(n)
    folds = np.array_split(order, k)
    pairs = []
    for i, fold in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != i])
        pairs.append((np.sort(train).astype(np.int64), np.sort(fold).astype(np.int64)))
    return pairs
