"""Random image augmentation for batches of images (N, C, H, W), each image drawn independently.

    random_shift:            out[n, c, i, j] = x[n, c, i - dy_n, j - dx_n]   (0 where that is outside)
                             dy_n, dx_n uniform integers in [-max_shift, max_shift]
    random_horizontal_flip:  out[n, c, i, j] = x[n, c, i, W-1-j] with probability p, else x[n, c, i, j]
    random_brightness:       out[n] = clip(x[n] + delta_n, lo, hi),  delta_n uniform in [-max_delta, max_delta]

Each function takes a NumPy Generator (or a seed) and returns a new array, leaving its input
untouched. The classes hold the parameters and are called as transform(images, rng), which is
what DataLoader's `transform` expects. Horizontal flips suit Fashion-MNIST's clothes, not digits
(a flipped 2 is no digit).
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _images(x, who):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who}: expected a NumPy array of images, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{who}: expected images of shape (N, C, H, W), got {x.shape} (load them unflattened)")
    return x


def _rng(rng):
    return np.random.default_rng(rng)


def _non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def random_shift(images, max_shift, rng=None, fill=0):
    """Each image moved by its own integer offset (dy, dx) in [-max_shift, max_shift]^2; pixels
    moved in from outside the image are `fill`. max_shift may be an int or a pair (rows, columns)."""
    x = _images(images, "random_shift")
    max_dy, max_dx = (max_shift, max_shift) if not isinstance(max_shift, (tuple, list)) else max_shift
    max_dy, max_dx = _non_negative_int("max_shift", max_dy), _non_negative_int("max_shift", max_dx)
    n, _, h, w = x.shape
    if max_dy >= h or max_dx >= w:
        raise ValueError(f"random_shift: max_shift ({max_dy}, {max_dx}) must be below the image size ({h}, {w})")
    gen = _rng(rng)
    dy = gen.integers(-max_dy, max_dy + 1, size=n)
    dx = gen.integers(-max_dx, max_dx + 1, size=n)
    padded = np.full((n, x.shape[1], h + 2 * max_dy, w + 2 * max_dx), fill, dtype=x.dtype)
    padded[:, :, max_dy:max_dy + h, max_dx:max_dx + w] = x
    # windows[n, c, a, b] is the h x w window of padded[n, c] whose top-left corner is (a, b), so
    # out[n] = windows[n, :, max_dy - dy_n, max_dx - dx_n]: one gather that copies whole windows
    # (five times faster than gathering single pixels along each axis).
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))
    return windows[np.arange(n), :, max_dy - dy, max_dx - dx]


def random_horizontal_flip(images, rng=None, p=0.5):
    """Each image mirrored left-right with probability p."""
    x = _images(images, "random_horizontal_flip")
    if not 0 <= p <= 1:
        raise ValueError(f"random_horizontal_flip: p must be in [0, 1], got {p}")
    flip = _rng(rng).random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip][..., ::-1]
    return out


def random_brightness(images, max_delta, rng=None, clip=(0.0, 1.0)):
    """Each image brightened or darkened by its own delta in [-max_delta, max_delta], then clipped
    to clip = (lo, hi) (None: no clipping). Float images only (pixels scaled to [0, 1])."""
    x = _images(images, "random_brightness")
    if x.dtype.kind != "f":
        raise TypeError(f"random_brightness: expected float images, got {x.dtype}")
    if not max_delta >= 0:
        raise ValueError(f"random_brightness: max_delta must be >= 0, got {max_delta}")
    delta = _rng(rng).uniform(-max_delta, max_delta, size=len(x)).astype(x.dtype)
    out = x + delta[:, None, None, None]
    if clip is not None:
        lo, hi = clip
        np.clip(out, lo, hi, out=out)
    return out


class RandomShift:
    """random_shift as a transform: RandomShift(2)(images, rng)."""

    def __init__(self, max_shift, fill=0):
        self.max_shift, self.fill = max_shift, fill

    def __call__(self, images, rng=None):
        return random_shift(images, self.max_shift, rng, self.fill)

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift!r}, fill={self.fill!r})"


class RandomHorizontalFlip:
    """random_horizontal_flip as a transform."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, images, rng=None):
        return random_horizontal_flip(images, rng, self.p)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p!r})"


class RandomBrightness:
    """random_brightness as a transform."""

    def __init__(self, max_delta, clip=(0.0, 1.0)):
        self.max_delta, self.clip = max_delta, clip

    def __call__(self, images, rng=None):
        return random_brightness(images, self.max_delta, rng, self.clip)

    def __repr__(self):
        return f"RandomBrightness(max_delta={self.max_delta!r}, clip={self.clip!r})"


class Compose:
    """Transforms applied in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, images, rng=None):
        gen = _rng(rng)
        for t in self.transforms:
            images = t(images, gen)
        return images

    def __repr__(self):
        return f"Compose({self.transforms!r})"
