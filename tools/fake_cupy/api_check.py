"""Self-check of the fake CuPy's API against real CuPy's (see README.md, "The fake CuPy keeps CuPy's
rules"): where CuPy refuses an argument, warns, or spells something its own way, the fake must too, or
code that passes under it can still fail on the first real GPU run. Each rule names the CuPy source
that shows it.

    bash tools/fake_cupy/run.sh python tools/fake_cupy/api_check.py
"""
import warnings

import numpy as np

import cupy as cp
import cupyx
from capture_check import expect_error  # this folder is on PYTHONPATH under run.sh


def main():
    a = cp.zeros(4, cp.float32)

    # ndarray.set / get(out=) (cupy/_core/core.pyx): a NumPy array of the same dtype and shape, no
    # casting or broadcasting; set into a non-contiguous array is refused.
    a.set(np.arange(4, dtype=np.float32))
    expect_error(TypeError, lambda: a.set(np.arange(4, dtype=np.float64)), "set() of another dtype")
    expect_error(ValueError, lambda: a.set(np.zeros(2, np.float32)), "set() of another shape")
    expect_error(TypeError, lambda: a.set([0.0, 1.0, 2.0, 3.0]), "set() of a list")
    expect_error(RuntimeError, lambda: a[::2].set(np.zeros(2, np.float32)), "set() into a strided view")
    expect_error(TypeError, lambda: a.get(out=np.empty(4, np.float64)), "get(out=) of another dtype")
    np.testing.assert_array_equal(a.get(out=np.empty(4, np.float32)), [0, 1, 2, 3])

    # ufunc.at (cupy/_core/_kernel.pyx -> _routines_indexing.pyx _scatter_op): repeated indices add up,
    # out-of-bounds ones wrap, and with an index array only the atomicAdd dtypes are taken.
    g = cp.zeros((3, 2), cp.float32)
    cp.add.at(g, cp.asarray(np.array([0, 2, 0, 5])), cp.ones((4, 2), cp.float32))
    np.testing.assert_array_equal(g.get(), [[2, 2], [0, 0], [2, 2]])  # 5 wraps to 2
    expect_error(TypeError, lambda: cp.add.at(cp.zeros(3, cp.int64), cp.asarray(np.array([1])), 1),
                 "add.at on int64")
    expect_error(NotImplementedError, lambda: cp.multiply.at(g, cp.asarray(np.array([0])), 2.0), "multiply.at")
    # cupyx.scatter_add goes through the deprecated ndarray.scatter_add (cupyx/_scatter.py).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cupyx.scatter_add(g, cp.asarray(np.array([1])), cp.ones((1, 2), cp.float32))
    assert any(issubclass(w.category, DeprecationWarning) for w in caught), "cupyx.scatter_add did not warn"

    # cupy.random (cupy/random/_generator.py, _check_and_get_dtype): float32 and float64 only.
    rs = cp.random.RandomState(0)
    assert rs.random_sample((2,), dtype=np.float32).dtype == np.float32
    expect_error(TypeError, lambda: rs.random_sample((2,), dtype=np.float16), "random_sample of float16")

    # Events (cupy/cuda/stream.pyx, cudaEventElapsedTime): no timing from disable_timing events.
    start, stop = cp.cuda.Event(), cp.cuda.Event(disable_timing=True)
    start.record()
    stop.record()
    expect_error(cp.cuda.runtime.CUDARuntimeError, lambda: cp.cuda.get_elapsed_time(start, stop),
                 "get_elapsed_time of a disable_timing event")
    expect_error(ValueError, lambda: cp.cuda.Event(interprocess=True), "an interprocess event with timing")

    # Streams compare by handle (cupy/cuda/stream.pyx, _BaseStream.__eq__).
    assert cp.cuda.Stream(null=True) == cp.cuda.Stream.null
    assert cp.cuda.get_current_stream() == cp.cuda.Stream.null

    print("api_check: ok (set/get, ufunc.at, scatter_add, random dtypes, events, streams)")


if __name__ == "__main__":
    main()
