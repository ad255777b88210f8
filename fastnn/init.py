"""Weight initialisers. Each fills a Parameter (or an array) in place and returns it.

Fans follow fastnn's weight layouts:
    2-D weights are (fan_in, fan_out), as in y = x W        (Linear, the RNN/LSTM/GRU matrices)
    k-D weights are (out, in, kh, kw, ...), as in conv:       fan_in = in * kh * kw, fan_out = out * kh * kw

    zeros, constant(value)
    normal(std):       w ~ N(0, std^2)
    uniform(a, b):     w ~ U(a, b)
    xavier_uniform:    w ~ U(-bound, bound), bound = sqrt(6 / (fan_in + fan_out))
    xavier_normal:     w ~ N(0, 2 / (fan_in + fan_out))
    he_normal:         w ~ N(0, 2 / fan_in)                  (ReLU layers; the default of Linear and Conv2d)
    he_uniform:        w ~ U(-bound, bound), bound = sqrt(6 / fan_in)   (variance 2 / fan_in)
    lecun_normal:      w ~ N(0, 1 / fan_in)                  (SELU layers)
    orthogonal(gain):  w = gain * Q, Q from the QR decomposition of a Gaussian matrix (sign-fixed so
                       Q is uniformly distributed), rows or columns orthonormal

Arguments are checked (ValueError): value, mean, a, b must be finite, std and gain finite and >= 0,
a <= b. An empty weight (a zero in its shape, e.g. (0, 3)) has nothing to fill: every initialiser
returns it unchanged, including the fan-based ones, whose fan_in or fan_in + fan_out is then 0 (the
arguments are still checked).

Random numbers come from `rng` (a numpy Generator) when given, else from this module's generator,
which manual_seed(seed) resets. They are drawn on the CPU and copied to the GPU for CuPy arrays, so a
seed gives the same weights on both devices.
"""
import math

import numpy as np

from . import _backend
from .functional._checks import real_number

_rng = np.random.default_rng()


def manual_seed(seed):
    """Makes the initialisers (and layers built afterwards) reproducible."""
    global _rng
    _rng = np.random.default_rng(seed)


def default_rng():
    return _rng


def _target(w):
    # A Parameter or a bare array; returns the array to fill.
    is_array = isinstance(w, np.ndarray) or _backend.is_cupy_array(w)
    data = w if is_array else getattr(w, "data", None)
    if not (isinstance(data, np.ndarray) or _backend.is_cupy_array(data)):
        raise TypeError(f"init: expected a Parameter or an array, got {type(w).__name__}")
    if data.dtype.kind != "f":
        raise TypeError(f"init: expected a float array, got {data.dtype}")
    return data


def _finite(name, value, low=None):
    """`value` as a float, finite and (when low is given) >= low: TypeError for a non-number,
    ValueError for NaN, inf or a value below low."""
    return real_number("init", name, value, at_least=low)


def _fill(w, values):
    # data[...] = values, across devices: CuPy's assignment takes no NumPy array (and would fault on a
    # misaligned view), NumPy's takes no CuPy array, so values are moved to data's device first.
    data = _target(w)
    values = _backend.like(data, values)
    if _backend.is_cupy_array(data):
        _backend.cupy_copy_into(data, _backend.cupy_module().broadcast_to(values, data.shape))
    else:
        data[...] = values
    return w


def fans(shape):
    """(fan_in, fan_out) of a weight of this shape (see the module docstring for the layouts)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"init: fans need a weight with at least 2 dimensions, got shape {shape}")
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def zeros(w):
    return constant(w, 0.0)


def constant(w, value):
    """w = value everywhere; value is a finite number, or an array of finite numbers that broadcasts
    to w's shape."""
    data = _target(w)
    if _backend.is_cupy_array(value) or np.ndim(value) > 0:
        xp = _backend.array_module(value)
        if not bool(xp.isfinite(xp.asarray(value)).all()):
            raise ValueError("init: constant value has non-finite entries (NaN or inf)")
    else:
        _finite("value", value)
    return _fill(w, value)


def normal(w, std=1.0, mean=0.0, rng=None):
    """w ~ N(mean, std^2); std finite and >= 0, mean finite."""
    data = _target(w)
    std, mean = _finite("std", std, low=0.0), _finite("mean", mean)
    return _fill(w, (rng or _rng).normal(mean, std, size=data.shape))


def uniform(w, a=0.0, b=1.0, rng=None):
    """w ~ U(a, b); a <= b, both finite."""
    data = _target(w)
    a, b = _finite("a", a), _finite("b", b)
    if a > b:
        raise ValueError(f"init: uniform needs a <= b, got a={a}, b={b}")
    return _fill(w, (rng or _rng).uniform(a, b, size=data.shape))


def _fans_or_none(w):
    """(fan_in, fan_out) of w's array, or None for an empty array (nothing to fill: fans can be 0)."""
    data = _target(w)
    fan_in, fan_out = fans(data.shape)
    return None if data.size == 0 else (fan_in, fan_out)


def xavier_uniform(w, gain=1.0, rng=None):
    """w ~ U(-bound, bound), bound = gain sqrt(6 / (fan_in + fan_out)); an empty w is returned unchanged."""
    gain = _finite("gain", gain, low=0.0)
    f = _fans_or_none(w)
    if f is None:
        return w
    bound = gain * math.sqrt(6.0 / (f[0] + f[1]))
    return uniform(w, -bound, bound, rng)


def xavier_normal(w, gain=1.0, rng=None):
    """w ~ N(0, gain^2 2 / (fan_in + fan_out)); an empty w is returned unchanged."""
    gain = _finite("gain", gain, low=0.0)
    f = _fans_or_none(w)
    if f is None:
        return w
    return normal(w, gain * math.sqrt(2.0 / (f[0] + f[1])), rng=rng)


def he_normal(w, rng=None):
    """w ~ N(0, 2 / fan_in); an empty w (fan_in may be 0) is returned unchanged."""
    f = _fans_or_none(w)
    if f is None:
        return w
    return normal(w, math.sqrt(2.0 / f[0]), rng=rng)


def he_uniform(w, rng=None):
    """w ~ U(-bound, bound), bound = sqrt(6 / fan_in); an empty w is returned unchanged."""
    f = _fans_or_none(w)
    if f is None:
        return w
    bound = math.sqrt(6.0 / f[0])
    return uniform(w, -bound, bound, rng)


def lecun_normal(w, rng=None):
    """w ~ N(0, 1 / fan_in); an empty w is returned unchanged."""
    f = _fans_or_none(w)
    if f is None:
        return w
    return normal(w, math.sqrt(1.0 / f[0]), rng=rng)


def orthogonal(w, gain=1.0, rng=None):
    """w = gain Q with orthonormal rows or columns (module docstring); an empty w is returned unchanged."""
    data = _target(w)
    gain = _finite("gain", gain, low=0.0)
    if data.ndim < 2:
        raise ValueError(f"orthogonal: needs at least 2 dimensions, got shape {tuple(data.shape)}")
    if data.size == 0:
        return w
    rows, cols = data.shape[0], math.prod(data.shape[1:])
    a = (rng or _rng).normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    # Multiplying column j by sign(r_jj) makes Q Haar-distributed instead of biased by QR's convention.
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(w, gain * q.reshape(data.shape))
