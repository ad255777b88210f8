"""Which native module serves an array: NumPy arrays go to fastnn._C, CuPy arrays to fastnn._cuda.

CuPy is imported only when a CuPy array is seen or the GPU is asked about, so `import fastnn`
works on machines without CuPy or a GPU.
"""
import os

import numpy as np

# OpenMP threads that spin after a parallel region steal the cores from NumPy's OpenBLAS threads
# (Linear, LSTM gate GEMMs) and from any other busy process; on 2 cores a LeNet-5 training step
# measured 16x slower with spinning threads under load. Sleeping waiters cost a few microseconds
# per parallel region instead. libgomp reads this when fastnn._C loads it, so it is set first;
# a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    from . import _C
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fastnn's native module fastnn._C is missing. Install fastnn with `pip install .` from the "
        "repository root. If it is installed, this import found the unbuilt source tree instead: run "
        "from another directory, and run the tests with the `pytest` command, not `python -m pytest`."
    ) from exc

try:
    from . import _cuda
except ImportError:
    _cuda = None


def cuda_module_built():
    """True when fastnn was built with its CUDA module (nvcc was found at build time)."""
    return _cuda is not None


def cuda_available():
    """True when the CUDA module was built, CuPy imports, and at least one GPU is visible."""
    if _cuda is None or _cuda.device_count() < 1:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_num_threads():
    """Threads the CPU kernels use (the default follows OMP_NUM_THREADS)."""
    return _C.get_num_threads()


def set_num_threads(n):
    """Sets the threads the CPU kernels use."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _C.set_num_threads(n)


def simd():
    """Which CPU kernels run: 'avx2' (AVX2/FMA) or 'portable'. FASTNN_SIMD=portable forces the latter."""
    return _C.simd()


def is_cupy_array(a):
    return type(a).__module__.split(".", 1)[0] == "cupy"


def cupy_module():
    import cupy

    return cupy


def array_module(a):
    """numpy for NumPy arrays, cupy for CuPy arrays."""
    return cupy_module() if is_cupy_array(a) else np


def require_cuda_module():
    if _cuda is None:
        raise RuntimeError(
            "a CuPy array was passed but fastnn was built without its CUDA module "
            "(no nvcc at build time); rebuild with nvcc on PATH, or use NumPy arrays"
        )
    return _cuda
