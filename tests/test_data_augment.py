"""Image augmentation: each output image is a legal transform of its input, drawn reproducibly."""
import numpy as np
import pytest

from fastnn import data


def _images(n=32, c=2, h=9, w=7, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def _shifted(img, dy, dx):
    """img moved down by dy and right by dx, zeros moved in: out[i, j] = img[i - dy, j - dx]."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_random_shift_moves_each_image_within_bounds():
    x = _images()
    out = data.random_shift(x, 2, rng=0)
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for n in range(len(x)):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out[n], _shifted(x[n], dy, dx))]
        assert len(matches) == 1, f"image {n} is not a shift of its input by at most 2"
        seen.add(matches[0])
    assert len(seen) > 5  # offsets differ between images
    np.testing.assert_array_equal(x, _images())  # input untouched


def test_random_shift_non_square_limits_and_identity():
    x = _images(n=20)
    out = data.random_shift(x, (0, 3), rng=1)
    for n in range(len(x)):
        assert any(np.array_equal(out[n], _shifted(x[n], 0, dx)) for dx in range(-3, 4))
    np.testing.assert_array_equal(data.random_shift(x, 0, rng=2), x)
    raw = (x * 255).astype(np.uint8)
    assert data.random_shift(raw, 1, rng=0).dtype == np.uint8


def test_random_flip_mirrors_about_half():
    x = _images(n=400)
    out = data.random_horizontal_flip(x, rng=0, p=0.5)
    flipped = np.array([np.array_equal(out[n], x[n, :, :, ::-1]) for n in range(len(x))])
    kept = np.array([np.array_equal(out[n], x[n]) for n in range(len(x))])
    assert np.all(flipped ^ kept)
    assert 150 < flipped.sum() < 250
    np.testing.assert_array_equal(data.random_horizontal_flip(x, rng=0, p=0.0), x)
    np.testing.assert_array_equal(data.random_horizontal_flip(x, rng=0, p=1.0), x[..., ::-1])


def test_random_brightness_adds_one_delta_per_image_and_clips():
    x = _images(n=50) * 0.5 + 0.25  # in [0.25, 0.75]
    out = data.random_brightness(x, 0.2, rng=0)
    delta = (out - x).reshape(50, -1)
    np.testing.assert_allclose(delta, delta[:, :1] * np.ones_like(delta), atol=1e-6)
    assert np.all(np.abs(delta) <= 0.2 + 1e-6) and delta.std() > 0
    bright = data.random_brightness(_images(n=50), 0.9, rng=0)
    assert bright.min() >= 0.0 and bright.max() <= 1.0
    unclipped = data.random_brightness(_images(n=50), 0.9, rng=0, clip=None)
    assert unclipped.min() < 0.0 or unclipped.max() > 1.0
    np.testing.assert_array_equal(data.random_brightness(x, 0.0, rng=0), x)


def test_transforms_are_reproducible_and_compose():
    x = _images()
    pipeline = data.Compose([data.RandomShift(1), data.RandomHorizontalFlip(), data.RandomBrightness(0.1)])
    a = pipeline(x, np.random.default_rng(4))
    b = pipeline(x, np.random.default_rng(4))
    c = pipeline(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert "RandomShift(max_shift=1" in repr(pipeline)


def test_augmentation_in_a_data_loader():
    x = _images(n=20)
    y = np.arange(20)
    loader = data.DataLoader(x, y, batch_size=8, shuffle=True, seed=0, transform=data.RandomShift(2))
    for xb, yb in loader:
        for img, label in zip(xb, yb):
            assert any(np.array_equal(img, _shifted(x[label], dy, dx)) for dy in range(-2, 3) for dx in range(-2, 3))


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.random_shift(np.zeros((4, 784), np.float32), 2)
    with pytest.raises(TypeError, match="NumPy array"):
        data.random_horizontal_flip([[[[0.0]]]])
    with pytest.raises(ValueError, match="below the image size"):
        data.random_shift(np.zeros((1, 1, 3, 3), np.float32), 3)
    with pytest.raises(ValueError, match="non-negative int"):
        data.random_shift(np.zeros((1, 1, 3, 3), np.float32), -1)
    with pytest.raises(ValueError, match="p must be in"):
        data.random_horizontal_flip(np.zeros((1, 1, 3, 3), np.float32), p=1.5)
    with pytest.raises(TypeError, match="float images"):
        data.random_brightness(np.zeros((1, 1, 3, 3), np.uint8), 0.1)
    with pytest.raises(ValueError, match="max_delta"):
        data.random_brightness(np.zeros((1, 1, 3, 3), np.float32), -0.1)
    with pytest.raises(TypeError, match="not callable"):
        data.Compose([data.RandomShift(1), 3])
