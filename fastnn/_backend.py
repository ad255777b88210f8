"""Which native module serves an array: NumPy arrays go to fastnn._C, CuPy arrays to fastnn._cuda.

CuPy is imported only when a CuPy array is seen or the GPU is asked about, so `import fastnn`
works on machines without CuPy or a GPU.
"""
import contextlib
import numbers
import os
import warnings

import numpy as np

# How long idle OpenMP threads spin before they sleep. Sleeping at once (OMP_WAIT_POLICY=PASSIVE)
# costs a futex wake-up at every parallel region and barrier; libgomp's default spin (300,000) takes
# the cores from anything else that runs between our kernels. A short spin bridges the gaps between
# the kernels of one training step. Measured on 2 cores (LeNet-5 b64 / b256 / char-LSTM step, ms):
# PASSIVE 10.7 / 36.1 / 165, spin 10,000 9.2 / 31.9 / 145; with another process busy on one core
# PASSIVE 16.8 / 85 / 372, spin 10,000 23.7 / 70 / 546. libgomp reads this when fastnn._C loads it,
# so it is set first; a value the user set (either variable) is kept.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

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

SIMD_LEVELS = ("portable", "avx2", "avx512")  # the names FASTNN_SIMD takes (csrc/cpu_features.cpp)
if os.environ.get("FASTNN_SIMD", SIMD_LEVELS[0]) not in SIMD_LEVELS:
    # The native side ignores an unknown name (caps nothing); say so rather than run silently
    # on kernels the user meant to rule out.
    warnings.warn(f"FASTNN_SIMD={os.environ['FASTNN_SIMD']!r} is not one of {', '.join(SIMD_LEVELS)}; "
                  f"ignored, the CPU kernels use {_C.simd()}", RuntimeWarning, stacklevel=2)

# The native buffer cache starts at 1024 MiB; FASTNN_BUFFER_CACHE_MB (a whole number of MiB, at most
# 2^30) replaces that here, before anything is allocated. A bad value is ignored with a warning.
_cache_mb = os.environ.get("FASTNN_BUFFER_CACHE_MB")
if _cache_mb:
    if _cache_mb.isascii() and _cache_mb.isdigit() and int(_cache_mb) <= 1 << 30:
        _C.set_buffer_cache_limit(int(_cache_mb) << 20)
    else:
        warnings.warn(f"FASTNN_BUFFER_CACHE_MB={_cache_mb!r} is not a whole number of MiB from 0 to 2^30; "
                      f"ignored, the buffer cache holds up to {_C.buffer_cache_limit() >> 20} MiB",
                      RuntimeWarning, stacklevel=2)


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
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__} {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _C.set_num_threads(n)


def simd():
    """Which CPU kernels run: 'avx512' (the AVX-512 GEMM micro-kernel, AVX2/FMA elsewhere), 'avx2'
    (AVX2/FMA) or 'portable'. FASTNN_SIMD=avx2 or FASTNN_SIMD=portable caps the choice."""
    return _C.simd()


def is_cupy_array(a):
    if isinstance(a, np.ndarray):  # the common case, without the string work below
        return False
    return type(a).__module__.split(".", 1)[0] == "cupy"


def cupy_module(what="device='cuda'"):
    """CuPy, or a RuntimeError that says how to get it (not a bare ModuleNotFoundError)."""
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"{what} needs CuPy: pip install 'fastnn[cuda]'") from exc
    return cupy


def native_float_arrays(*arrays):
    """True when every array is a C-contiguous, aligned NumPy array of one float dtype (float32 or
    float64): what fastnn._C's elementwise kernels take as they are."""
    first = arrays[0]
    return all(isinstance(a, np.ndarray) and a.dtype == first.dtype and is_native_layout(a) for a in arrays) and (
        first.dtype in (np.float32, np.float64))


def is_native_layout(a):
    """True when a (NumPy or CuPy) is C-contiguous and its data aligned to its element size: what the
    native kernels read and write in place."""
    if isinstance(a, np.ndarray):
        flags = a.flags
        return flags.c_contiguous and flags.aligned
    return a.flags.c_contiguous and a.data.ptr % a.itemsize == 0


def c_array(a, dtype=None):
    """a as the native kernels take it: C-contiguous, its data aligned to its element size, of dtype
    when given (NumPy or CuPy, as a is). a itself when it already is; a copy otherwise. (A contiguous
    view at an odd byte offset, e.g. np.zeros(9, np.uint8)[1:].view(np.float32), is not aligned: the
    kernels' loads from it would be undefined behaviour, and on a GPU a misaligned-address fault.)"""
    if type(a) is np.ndarray and (dtype is None or a.dtype == dtype) and is_native_layout(a):  # the common case
        return a
    if not is_cupy_array(a):
        return np.require(a, dtype, ("C", "A"))
    return cupy_module().ascontiguousarray(cupy_aligned(a), dtype)


# Misaligned CuPy arrays. A view at an odd byte offset (or with strides that are not multiples of the
# element size) puts its elements at addresses a GPU cannot load them from as a whole: every CuPy
# kernel that reads or writes them element-wise (its copy, astype, a[...] = b, cuBLAS) faults with
# cudaErrorMisalignedAddress, which spoils the CUDA context for the rest of the process. Such arrays
# are therefore only ever copied as bytes here.

def cupy_is_aligned(a):
    """True when every element of CuPy array a lies at an address that is a multiple of its size."""
    size = a.itemsize
    return a.size == 0 or (a.data.ptr % size == 0 and all(
        s % size == 0 for s, n in zip(a.strides, a.shape) if n > 1))


def cupy_aligned(a):
    """CuPy array a itself when its elements are aligned (see cupy_is_aligned), else an aligned
    C-contiguous copy of it, copied as bytes."""
    if cupy_is_aligned(a):
        return a
    return cupy_copy_into(cupy_module().empty(a.shape, a.dtype), a)


def cupy_copy_into(dst, src):
    """dst[...] = src for CuPy arrays of one shape and dtype, either of which may be misaligned; dst.
    Aligned ones take CuPy's element copy; otherwise the bytes are copied on the current stream: one
    device-to-device memcpy when both are C-contiguous, else CuPy's copy of the arrays' uint8 views
    (1-byte elements are aligned anywhere)."""
    if dst.shape != src.shape or dst.dtype != src.dtype:
        raise ValueError(f"cupy_copy_into: {src.dtype} {src.shape} into {dst.dtype} {dst.shape}: "
                         "shapes and dtypes must match")
    if cupy_is_aligned(dst) and cupy_is_aligned(src):
        dst[...] = src
    elif dst.flags.c_contiguous and src.flags.c_contiguous:
        cp = cupy_module()
        dst.data.copy_from_device_async(src.data, src.nbytes, cp.cuda.get_current_stream())
    else:
        _cupy_bytes(dst)[...] = _cupy_bytes(src)
    return dst


def _cupy_bytes(a):
    """The bytes of CuPy array a as a uint8 view of shape a.shape + (itemsize,) (any strides)."""
    cp = cupy_module()
    return cp.ndarray(a.shape + (a.itemsize,), cp.uint8, memptr=a.data, strides=a.strides + (1,))


def array_module(a):
    """numpy for NumPy arrays, cupy for CuPy arrays."""
    return cupy_module() if is_cupy_array(a) else np


def like(ref, a, copy=False):
    """a (NumPy, CuPy, or anything array-like) as an array on ref's device with ref's dtype: a itself
    when it already is one (unless copy), else a copy; across devices, a host<->device transfer."""
    if is_cupy_array(ref):
        cp = cupy_module()
        return cp.array(a, dtype=ref.dtype) if copy else cp.asarray(a, dtype=ref.dtype)
    if is_cupy_array(a):
        a = a.get()
    return np.array(a, dtype=ref.dtype) if copy else np.asarray(a, dtype=ref.dtype)


def matmul(a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
    """op(a) @ op(b) for 2-D arrays, op = transpose where trans_* is set; into out (out += ... with
    accumulate) when given. NumPy float32/float64 runs our packed GEMM (fastnn._C.gemm): the layers'
    GEMMs then share the kernels' OpenMP threads instead of waking OpenBLAS's, whose idle threads
    spin and take the cores from the next kernel. CuPy (and anything else) goes to xp.matmul."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.dtype in (
            np.float32, np.float64) and (out is None or (isinstance(out, np.ndarray) and out.dtype == a.dtype
                                                         and is_native_layout(out))):
        return _C.gemm(c_array(a), c_array(b), trans_a, trans_b, out, accumulate)
    if _capturing_cuda_graph and is_cupy_array(a):
        return _graph_matmul(a, b, trans_a, trans_b, out, accumulate)
    xp = array_module(a)
    if xp is not np:  # cuBLAS takes misaligned operands no better than CuPy's own kernels
        a, b = (cupy_aligned(v) if is_cupy_array(v) else v for v in (a, b))
    result = xp.matmul(a.T if trans_a else a, b.T if trans_b else b)
    if out is None:
        return result
    if accumulate:
        out += result
    else:
        out[...] = result
    return out


# True inside capturing_cuda_graph(): CuPy refuses cuBLAS calls during stream capture
# (NotImplementedError), so matmul then runs fastnn's own tiled GEMM kernel (cuda/gemm.cu).
_capturing_cuda_graph = False


@contextlib.contextmanager
def capturing_cuda_graph():
    """The CuPy work inside is being captured into a CUDA graph (fastnn.training.CudaGraphStep): ops
    that would use cuBLAS or look at device values on the host take their capturable forms."""
    global _capturing_cuda_graph
    _capturing_cuda_graph = True
    try:
        yield
    finally:
        _capturing_cuda_graph = False


def _graph_matmul(a, b, trans_a, trans_b, out, accumulate):
    """matmul on CuPy arrays through fastnn._cuda.gemm (see _capturing_cuda_graph)."""
    if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"matmul during a CUDA-graph capture takes two 2-D float arrays of one dtype, "
                        f"got {a.dtype} {a.shape} and {b.dtype} {b.shape}")
    m, k = a.shape[::-1] if trans_a else a.shape
    k2, n = b.shape[::-1] if trans_b else b.shape
    if k != k2:
        raise ValueError(f"matmul: inner dimensions differ ({k} and {k2})")
    cp = cupy_module()
    a, b = c_array(a), c_array(b)
    direct = out is not None and out.dtype == a.dtype and out.shape == (m, n) and is_native_layout(out)
    c = out if direct else cp.empty((m, n), dtype=a.dtype)
    require_cuda_module().gemm(str(a.dtype), a.data.ptr, b.data.ptr, c.data.ptr, m, n, k, bool(trans_a),
                               bool(trans_b), bool(accumulate and direct), cp.cuda.get_current_stream().ptr)
    if out is None or direct:
        return c
    if accumulate:
        out += c
    else:
        out[...] = c
    return out


def load_graph_gemm(dtypes):
    """Launches fastnn's GEMM kernel once, on a 1 x 1 x 1 product, per float dtype in dtypes. That
    kernel runs only inside CUDA-graph captures (eager steps use cuBLAS), and with CUDA's lazy loading
    (the default from CUDA 12.2) a kernel is loaded at its first launch, which would then fall in the
    middle of a capture; CudaGraphStep calls this before it begins one."""
    cp = cupy_module()
    for dtype in {np.dtype(d) for d in dtypes} & {np.dtype(np.float32), np.dtype(np.float64)}:
        one = cp.ones((1, 1), dtype)
        _graph_matmul(one, one, False, False, None, False)


def require_cuda_module():
    if _cuda is None:
        raise RuntimeError(
            "a CuPy array was passed but fastnn was built without its CUDA module "
            "(no nvcc at build time); rebuild with nvcc on PATH, or use NumPy arrays"
        )
    return _cuda
