"""The cupyx functions fastnn has used, for the NumPy-backed fake CuPy (see ../README.md)."""
import warnings

import cupy as _cp


def scatter_add(a, slices, value):
    """a[slices] += value, adding every occurrence of a repeated index (as CuPy's atomic adds do).

    As in CuPy 12 and later, it goes through the deprecated ndarray.scatter_add, which warns
    (cupyx/_scatter.py, cupy/_core/core.pyx): use cupy.add.at(a, slices, value) instead."""
    warnings.warn("`ndarray.scatter_add` is deprecated. Please use `cupy.add.at` instead.", DeprecationWarning,
                  stacklevel=2)
    _cp.add.at(a, slices, value)
