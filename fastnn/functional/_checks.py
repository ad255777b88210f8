"""Input validation shared by the functional ops.

Every op checks its inputs here before any kernel runs: TypeError for a wrong array type, dtype or
device, ValueError for shapes and parameter values. Non-contiguous arrays are accepted and copied to
C order (the kernels read rows as contiguous memory).
"""
import math
import numbers

import numpy as np

from .._backend import is_cupy_array

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32, _FLOAT64 = FLOAT_DTYPES


class NonFiniteError(ValueError):
    """An op's own check found NaN or inf (in its inputs, its output or a gradient), as opposed to a
    wrong shape or parameter. A ValueError subclass, so code catching ValueError still catches it;
    fastnn.training.Trainer turns it into NonFiniteLossError naming the training step."""


def _is_array(a):
    return isinstance(a, np.ndarray) or is_cupy_array(a)


def float_array(name, a, ndim=None):
    """A NumPy or CuPy float32/float64 array with `ndim` dimensions (an int or a tuple of allowed ints)."""
    # (These checks run on every op call: the common case, a NumPy array of a built-in float dtype,
    # is settled by identity tests before any slower comparison.)
    if type(a) is not np.ndarray and not _is_array(a):
        raise TypeError(f"{name}: expected a NumPy or CuPy array, got {type(a).__name__}")
    dtype = a.dtype
    if dtype is not _FLOAT32 and dtype is not _FLOAT64 and dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {a.dtype}")
    if ndim is not None:
        allowed = (ndim,) if type(ndim) is int else tuple(ndim)
        if a.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name}: expected {want} dimensions, got shape {tuple(a.shape)}")
    return a


def numpy_floats(*arrays):
    """The checks' fast path: True when every array is a NumPy ndarray (not a subclass) whose dtype
    is the same built-in float32 or float64 object. Then float_array's type and dtype checks,
    same_device and same_dtype all pass, and an op may skip them (it still checks dimensions and
    shapes). False says nothing: run the full checks, which explain what is wrong."""
    dtype = arrays[0].dtype if type(arrays[0]) is np.ndarray else None
    if dtype is not _FLOAT32 and dtype is not _FLOAT64:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype is not dtype:
            return False
    return True


def int_array(name, a, ndim=1):
    """A NumPy or CuPy array of integers (bool is refused)."""
    if not _is_array(a):
        raise TypeError(f"{name}: expected a NumPy or CuPy array of integers, got {type(a).__name__}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer dtype, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {tuple(a.shape)}")
    return a


def same_device(**arrays):
    """All arrays NumPy, or all CuPy on the current device. Returns True for CuPy."""
    for a in arrays.values():  # the common case, all NumPy, checked fast
        if not isinstance(a, np.ndarray):
            break
    else:
        return False
    names = list(arrays)
    on_gpu = [is_cupy_array(arrays[n]) for n in names]
    if any(on_gpu) and not all(on_gpu):
        where = ", ".join(f"{n} on {'GPU (CuPy)' if g else 'CPU (NumPy)'}" for n, g in zip(names, on_gpu))
        raise TypeError(f"arrays must all be NumPy or all CuPy: {where}")
    if on_gpu and all(on_gpu):
        import cupy

        current = cupy.cuda.Device().id
        for n in names:
            if arrays[n].device.id != current:
                raise TypeError(f"{n} is on GPU {arrays[n].device.id} but the current device is GPU {current}")
        return True
    return False


def same_dtype(**arrays):
    names = list(arrays)
    first = arrays[names[0]].dtype
    for n in names[1:]:
        dtype = arrays[n].dtype
        if dtype is not first and dtype != first:
            raise TypeError(f"{n} has dtype {dtype} but {names[0]} has {first}: use one dtype")


def scalar(name, value):
    """A real number given as a Python/NumPy scalar or a 0-d array; returned unchanged."""
    if type(value) in (float, int) or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return value
    if _is_array(value) and value.ndim == 0 and value.dtype.kind in "fiu":
        return value
    raise TypeError(f"{name}: expected a real scalar or a 0-d array, got {type(value).__name__}")


# Padded extents and strides from 2^31 up are refused before any arithmetic on them (the native
# bindings refuse them too, csrc/binding_utils.h kMaxGeometry): sums like H + 2 ph once wrapped around
# in int64 and sent a kernel out of bounds.
MAX_GEOMETRY = 2**31


def int_pair(name, value, minimum=None):
    """An int, or a tuple or list of two ints, as (h, w); each at least `minimum` when given.
    bool is refused (an int in Python), and so are sets, dicts and arrays (a set's order is arbitrary)."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name}: expected an int or a pair (h, w), got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
        if minimum is not None and v < minimum:
            raise ValueError(f"{name}: every value must be at least {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def int_at_least(owner, name, value, minimum=1):
    """A size or count as an int >= minimum: TypeError for a non-integer (bool and a float such as 4.7
    or 2.0 included, never truncated), ValueError below minimum. 0-d integer arrays (np.load) count."""
    number = integer_or_none(value)
    if number is None:
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if number < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {number}")
    return number


def geometry_in_range(op, h, w, padding, stride):
    """ValueError unless H + 2 ph, W + 2 pw and both strides are under MAX_GEOMETRY."""
    if max(h + 2 * padding[0], w + 2 * padding[1], *stride) >= MAX_GEOMETRY:
        raise ValueError(
            f"{op}: the padded input ({h + 2 * padding[0]}, {w + 2 * padding[1]}) and the stride {stride} must be "
            f"under 2^31 along each axis"
        )


def integer_or_none(value):
    """`value` as an int when it is an integer: a Python or NumPy integer, or a 0-d integer array (as
    np.load gives). None for anything else, bool and 2.0 included: the caller raises its own error."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def real_number(owner, name, value, above=None, at_least=None, below=None, at_most=None, finite=True):
    """`value` as a float: a Python or NumPy real number or a 0-d numeric array (as np.load gives).
    The one check for hyperparameters (layers, optimizers, schedules, initialisers): NaN and +-inf
    are refused (they would make every output NaN, or every step a no-op, without an error) unless
    finite=False (then only NaN), and so is anything outside the given bounds
    (value > above, >= at_least, < below, <= at_most).

    Raises:
        TypeError: not a real number (bool, str, None, arrays of more than one value, ...).
        ValueError: NaN, inf or out of range; the message names owner, name, the rule and the value.
    """
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, numbers.Real) or (
            isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf")):
        shown = repr(value) if isinstance(value, (bool, np.bool_)) else type(value).__name__
        raise TypeError(f"{owner}: {name} must be a real number, got {shown}")
    number = float(value)
    low = above if above is not None else at_least
    high = below if below is not None else at_most
    ok = not math.isnan(number) and (not finite or math.isfinite(number))
    ok = ok and (above is None or number > above) and (at_least is None or number >= at_least)
    ok = ok and (below is None or number < below) and (at_most is None or number <= at_most)
    if not ok:
        if low is not None and high is not None:
            rule = f"in {'(' if above is not None else '['}{low:g}, {high:g}{')' if below is not None else ']'}"
        else:
            bound = (f" and > {above:g}" if above is not None else f" and >= {at_least:g}" if at_least is not None
                     else f" and < {below:g}" if below is not None else f" and <= {at_most:g}" if at_most is not None
                     else "")
            rule = ("finite" if finite else "a number (not NaN)") + bound
        raise ValueError(f"{owner}: {name} must be {rule}, got {value}")
    return number
