"""DataLoader batching, seeded shuffling and drop_last; random splits and k-fold cross-validation."""
import numpy as np
import pytest

import fastnn
from fastnn import data


def _epoch(loader):
    return [tuple(part.copy() for part in batch) for batch in loader]


def test_every_sample_once_in_order_without_shuffle():
    x = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10)
    loader = data.DataLoader(x, y, batch_size=4)
    batches = _epoch(loader)
    assert len(loader) == len(batches) == 3
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in batches]), x)


def test_drop_last():
    y = np.arange(10)
    loader = data.DataLoader(y, batch_size=4, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert all(b.shape == (4,) for b in batches)
    assert len(data.DataLoader(np.arange(8), batch_size=4, drop_last=True)) == 2


def test_single_array_yields_arrays():
    batch = next(iter(data.DataLoader(np.arange(5), batch_size=2)))
    assert isinstance(batch, np.ndarray) and batch.tolist() == [0, 1]


def test_shuffle_is_seeded_per_epoch_and_covers_all():
    x = np.arange(100) * 10
    y = np.arange(100)
    a = data.DataLoader(x, y, batch_size=16, shuffle=True, seed=7)
    b = data.DataLoader(x, y, batch_size=16, shuffle=True, seed=7)
    a0, a1 = _epoch(a), _epoch(a)
    b0 = _epoch(b)
    orders = [np.concatenate([yb for _, yb in e]) for e in (a0, a1, b0)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(100))
    np.testing.assert_array_equal(orders[0], orders[2])  # same seed, same epoch: same order
    assert not np.array_equal(orders[0], orders[1])  # next epoch: a new order
    assert not np.array_equal(orders[0], np.arange(100))
    for xb, yb in a0:  # images and labels stay paired
        np.testing.assert_array_equal(xb, yb * 10)
    c = data.DataLoader(x, y, batch_size=16, shuffle=True, seed=8)
    assert not np.array_equal(np.concatenate([yb for _, yb in c]), orders[0])


def test_set_epoch_resumes_the_same_batches():
    y = np.arange(50)
    uninterrupted = data.DataLoader(y, batch_size=8, shuffle=True, seed=3)
    epochs = [_epoch(uninterrupted) for _ in range(3)]
    resumed = data.DataLoader(y, batch_size=8, shuffle=True, seed=3)
    resumed.set_epoch(2)
    for got, want in zip(_epoch(resumed), epochs[2]):
        np.testing.assert_array_equal(got[0], want[0])
    assert resumed.epoch == 3
    with pytest.raises(ValueError, match="epoch"):
        resumed.set_epoch(-1)


def test_transform_gets_the_first_array_and_a_seeded_rng():
    x = np.zeros((12, 1, 4, 4), dtype=np.float32)
    y = np.arange(12)

    def add_noise(images, rng):
        return images + rng.standard_normal(images.shape).astype(images.dtype)

    runs = [_epoch(data.DataLoader(x, y, batch_size=5, shuffle=True, seed=1, transform=add_noise)) for _ in range(2)]
    for (xa, ya), (xb, yb) in zip(*runs):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        assert np.abs(xa).sum() > 0 and ya.dtype == y.dtype
    assert np.all(x == 0)  # the dataset itself is untouched


def test_loader_bad_arguments():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="same length"):
        data.DataLoader(x, np.zeros(9))
    with pytest.raises(TypeError, match="expected a NumPy or CuPy array"):
        data.DataLoader([1, 2, 3])
    with pytest.raises(ValueError, match="at least one array"):
        data.DataLoader()
    with pytest.raises(ValueError, match="0-dimensional"):
        data.DataLoader(np.array(1.0))
    with pytest.raises(ValueError, match="DataLoader: batch_size must be >= 1"):
        data.DataLoader(x, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        data.DataLoader(x, batch_size=2.5)
    with pytest.raises(ValueError, match="seed"):
        data.DataLoader(x, seed=-1)
    with pytest.raises(TypeError, match="transform must be callable"):
        data.DataLoader(x, transform="shift")
    with pytest.raises(ValueError, match="device"):
        data.DataLoader(x, device="gpu0")


@pytest.mark.cuda
@pytest.mark.skipif(not fastnn.cuda_available(), reason="needs a CUDA GPU with CuPy")
def test_batches_on_the_gpu():
    import cupy

    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    xb, yb = next(iter(data.DataLoader(x, y, batch_size=4, shuffle=True, seed=0, device="cuda")))
    assert isinstance(xb, cupy.ndarray) and isinstance(yb, cupy.ndarray)
    np.testing.assert_array_equal(xb.get()[:, 0], yb.get() * 2)


@pytest.mark.cuda
@pytest.mark.skipif(not fastnn.cuda_available(), reason="needs a CUDA GPU with CuPy")
def test_data_already_on_the_gpu_is_batched_there():
    import cupy

    x = cupy.arange(20, dtype=cupy.float32).reshape(10, 2)
    y = cupy.arange(10)
    loader = data.DataLoader(x, y, batch_size=4, shuffle=True, seed=0)
    batches = list(loader)
    assert all(isinstance(part, cupy.ndarray) for batch in batches for part in batch)
    labels = np.concatenate([yb.get() for _, yb in batches])
    assert sorted(labels.tolist()) == list(range(10))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.get()[:, 0], yb.get() * 2)
    host_x, host_y = next(iter(data.DataLoader(x, y, batch_size=4, device="cpu")))
    assert isinstance(host_x, np.ndarray) and host_y.tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError, match="must all be NumPy or all CuPy"):
        data.DataLoader(x, np.arange(10))


def test_random_split_is_a_disjoint_cover():
    pieces = data.random_split(103, [0.7, 0.2, 0.1], seed=0)
    assert [len(p) for p in pieces] == [73, 20, 10]
    np.testing.assert_array_equal(np.sort(np.concatenate(pieces)), np.arange(103))
    again = data.random_split(103, [0.7, 0.2, 0.1], seed=0)
    for p, q in zip(pieces, again):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(pieces[1], np.arange(73, 93))  # shuffled
    ordered = data.random_split(103, [0.7, 0.2, 0.1], shuffle=False)
    np.testing.assert_array_equal(ordered[2], np.arange(93, 103))
    with pytest.raises(ValueError, match="sum to 1"):
        data.random_split(10, [0.5, 0.4])
    with pytest.raises(ValueError, match="n must be"):
        data.random_split(-1, [1.0])


def test_train_val_test_split_keeps_pairs():
    x = np.arange(200).reshape(100, 2)
    y = np.arange(100)
    (xtr, ytr), (xva, yva), (xte, yte) = data.train_val_test_split(x, y, val_fraction=0.2, test_fraction=0.1, seed=5)
    assert (len(ytr), len(yva), len(yte)) == (70, 20, 10)
    assert not set(ytr) & set(yva) and not set(ytr) & set(yte) and not set(yva) & set(yte)
    for xs, ys in [(xtr, ytr), (xva, yva), (xte, yte)]:
        np.testing.assert_array_equal(xs[:, 0], ys * 2)
    train, val, test = data.train_val_test_split(y, val_fraction=0.5, test_fraction=0.0, seed=0)
    assert (len(train), len(val), len(test)) == (50, 50, 0)
    with pytest.raises(ValueError, match="below 1"):
        data.train_val_test_split(y, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_test_split(y, val_fraction=-0.1)


@pytest.mark.parametrize("n, k", [(10, 2), (23, 5), (7, 7)])
def test_kfold_folds_are_disjoint_and_cover(n, k):
    folds = data.kfold(n, k, seed=0)
    assert len(folds) == k
    vals = [val for _, val in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), np.arange(n))
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert not set(train.tolist()) & set(val.tolist())
        assert len(train) + len(val) == n


def test_kfold_bad_k():
    with pytest.raises(ValueError, match="2 <= k <= n"):
        data.kfold(10, 1)
    with pytest.raises(ValueError, match="2 <= k <= n"):
        data.kfold(3, 4)
