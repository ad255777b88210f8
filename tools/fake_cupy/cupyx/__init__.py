"""The cupyx functions fastnn uses, for the NumPy-backed fake CuPy (see ../README.md)."""
import numpy as _np

import cupy as _cp


def scatter_add(a, slices, value):
    """a[slices] += value, adding every occurrence of a repeated index (as CuPy's atomic adds do)."""
    _cp._refuse_numpy((a, slices, value), "cupyx.scatter_add")
    _cp._run(_np.add.at, a._a, _cp._unwrap(slices), _cp._unwrap(value))
