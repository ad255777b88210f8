"""A NumPy-backed stand-in for the part of CuPy that fastnn uses (developer tool, see ../README.md).

With the CUDA kernels built for host emulation (tools/cuda_emu) as fastnn._cuda, it lets fastnn's
GPU code paths (the *_cuda.py wrappers, cuda/module.cpp, the optimizers' elementwise kernels,
Module.to("cuda"), the training loop) run on a machine without a GPU. "Device" memory is host
memory: ndarray.data.ptr is the address of a NumPy buffer, which the emulated kernels read and
write directly.

It keeps the CuPy rules that catch mistakes: an ndarray is not a numpy.ndarray (isinstance checks
tell them apart), it refuses implicit conversion to NumPy (np.asarray(a) raises, as in CuPy; use
cupy.asnumpy or a.get()), ufuncs refuse to mix it with NumPy arrays, and reductions and scalar
indexing return 0-d arrays, not NumPy scalars.

Stream capture (cupy.cuda.Stream.begin_capture / end_capture, Graph.launch) is emulated so that the
mistakes a CUDA graph punishes fail here too. During a capture every device operation runs and is
recorded, with its array arguments bound by address and its scalar arguments by value, as a real
graph bakes them; end_capture puts every buffer that existed before the capture back as it was (a
real capture executes nothing), and Graph.launch replays the recording. A synchronising call
(float(a), a.get(), a.set(host), cupy.asarray(host), Stream.synchronize, ...), random numbers, or
work on another stream while a stream captures raise StreamCaptureError, and cuBLAS-backed calls
(matmul, dot, ...) raise NotImplementedError, as CuPy does.
"""
import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import types

import numpy as _np

# dtypes and constants, as in CuPy
from numpy import (bool_, dtype, float16, float32, float64, inf, int8, int16, int32, int64, nan, newaxis,  # noqa: F401
                   pi, uint8, uint16, uint32, uint64, e)

__version__ = "0.0-fake"


def _unwrap(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return ndarray._of(x)
    if isinstance(x, _np.generic):
        return ndarray._of(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class CUDARuntimeError(RuntimeError):
    """cupy.cuda.runtime.CUDARuntimeError (cupy_backends/cuda/api/runtime.pyx: a RuntimeError)."""


# ---- stream capture (see the module docstring)
class StreamCaptureError(CUDARuntimeError):
    """What CUDA reports (cudaErrorStreamCaptureUnsupported/Implicit) for an operation a capture forbids.
    Real CuPy raises its CUDARuntimeError for these, so this is one (a name only the fake has: catch
    cupy.cuda.runtime.CUDARuntimeError in code meant for both)."""


_capture = None  # the _Capture under way, if any


def _root(a):
    while isinstance(a.base, _np.ndarray):
        a = a.base
    return a


def _arrays_in(values):
    for v in values:
        if isinstance(v, _np.ndarray):
            yield v
        elif isinstance(v, ndarray):
            yield v._a
        elif isinstance(v, (list, tuple)):
            yield from _arrays_in(v)


class _Capture:
    def __init__(self, stream):
        self.stream, self.ops = stream, []
        self.invalidated = None  # what broke the capture: CUDA then fails end_capture too
        self.fresh, self.saved = {}, {}  # id(buffer) -> buffer made in the capture / (buffer, its contents before)

    def touch(self, a):
        root = _root(a)
        if id(root) not in self.fresh and id(root) not in self.saved:
            self.saved[id(root)] = (root, root.copy())

    def allocated(self, a):
        root = _root(a)
        if id(root) not in self.saved:
            self.fresh.setdefault(id(root), root)

    def restore(self):
        for root, before in self.saved.values():
            root[...] = before


def _sync_point(what):
    if _capture is not None:
        # CUDA refuses the call (cudaErrorStreamCaptureUnsupported) and invalidates the capture, so that
        # end_capture fails as well (cudaErrorStreamCaptureInvalidated).
        _capture.invalidated = what
        raise StreamCaptureError(f"{what} waits for the device or copies between host and device, which is not "
                                 f"allowed while stream {_capture.stream.ptr:#x} is capturing")


def _check_stream(what):
    if _capture is not None and _current_stream() is not _capture.stream:
        raise StreamCaptureError(f"{what} on stream {_current_stream().ptr:#x} while stream "
                                 f"{_capture.stream.ptr:#x} is capturing: it would run outside the graph")


# What CuPy computes with cuBLAS, which it refuses during a stream capture.
_CUBLAS = {_np.matmul, _np.dot, _np.tensordot, _np.einsum, _np.inner, _np.vdot}


# ---- misaligned element access (see ../README.md)
def _check_aligned(what, arrays):
    """A GPU kernel loads and stores whole elements: at an address that is not a multiple of the
    element size that faults (cudaErrorMisalignedAddress). Raised here for any misaligned array in
    `arrays` (NumPy's aligned flag: data pointer and strides multiples of the element alignment)."""
    for a in arrays:
        if not a.flags.aligned:
            raise CUDARuntimeError(f"cudaErrorMisalignedAddress: misaligned address ({what} on a {a.dtype} array "
                                   f"at {a.__array_interface__['data'][0]:#x}, strides {a.strides})")


# What reads no element of its array arguments: CuPy works these out from shapes and dtypes.
_NO_ELEMENT_ACCESS = {_np.empty_like, _np.zeros_like, _np.ones_like, _np.full_like, _np.shape, _np.ndim, _np.size,
                      _np.result_type, _np.may_share_memory, _np.shares_memory}


def _runs_kernel(fn, args, kwargs, raw):
    """Whether fn(*args, **kwargs) -> raw ran a CuPy kernel over its array arguments, as opposed to
    making a view of one of them (reshape, transpose, basic indexing, astype/ascontiguousarray that
    return their argument) or reading only shapes. Ufuncs and writes are kernels."""
    if fn in _NO_ELEMENT_ACCESS:
        return False
    if isinstance(getattr(fn, "__self__", None), _np.ufunc) or fn in (_np.ndarray.__setitem__, _np.copyto):
        return True
    if fn is _np.ndarray.fill:  # fill(0) of a contiguous array is a memset
        return not (args[1] == 0 and args[0].flags.c_contiguous)
    if isinstance(raw, _np.ndarray):
        roots = {id(_root(a)) for a in _arrays_in(args + tuple(kwargs.values()))}
        return id(_root(raw)) not in roots
    return True


def _call(fn, args, kwargs):
    """fn(*args, **kwargs); CUDARuntimeError after it when it was a kernel over a misaligned array."""
    raw = fn(*args, **kwargs)
    misaligned = [a for a in _arrays_in(args + tuple(kwargs.values())) if not a.flags.aligned]
    if misaligned and _runs_kernel(fn, args, kwargs, raw):
        _check_aligned(getattr(fn, "__name__", "an operation"), misaligned)
    return raw


def _run(fn, *args, **kwargs):
    """fn(*args, **kwargs) on NumPy values, the result wrapped; during a capture also recorded: the
    replay runs fn again on the same buffers and writes its results into the buffers returned now.
    A kernel over a misaligned array raises CUDARuntimeError (see _check_aligned)."""
    if _capture is None:
        return _wrap(_call(fn, args, kwargs))
    _check_stream(getattr(fn, "__name__", "an operation"))
    if fn in _CUBLAS or getattr(fn, "__self__", None) in _CUBLAS:
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")
    for a in _arrays_in(args + tuple(kwargs.values())):
        _capture.touch(a)
    raw = _call(fn, args, kwargs)
    result = _wrap(raw)
    many = isinstance(raw, (tuple, list))
    outs = [(i, r._a) for i, r in enumerate(result if many else (result,)) if isinstance(r, ndarray)]
    for _, a in outs:
        _capture.allocated(a)

    def replay():
        again = fn(*args, **kwargs)
        again = again if many else (again,)
        for i, a in outs:
            if again[i] is not a:
                _np.copyto(a, again[i])

    _capture.ops.append(replay)
    return result


def _kernel_call(name, launch, arrays=()):
    """launch() now; during a capture it is also recorded, to run again at every Graph.launch (the
    arrays it works on are touched first: see _Capture.touch)."""
    if _capture is not None:
        _check_stream(name)
        for a in _arrays_in(arrays):
            _capture.touch(a)
        _capture.ops.append(launch)
    return launch()


def _recorded(fn, name):
    """fn, a fastnn._cuda kernel launcher, through _kernel_call: its arguments are pointers (ints),
    whose buffers were touched when their .data was read."""
    def launcher(*args, **kwargs):
        return _kernel_call(name, lambda: fn(*args, **kwargs))

    launcher.__name__ = name
    launcher._fake_cupy_recorded = True
    return launcher


def _record_native_launchers():
    module = sys.modules.get("fastnn._cuda")
    if module is None or getattr(module, "_fake_cupy_recorded", False):
        return
    for name in dir(module):
        fn = getattr(module, name)
        if callable(fn) and not name.startswith("_") and not isinstance(fn, type):
            setattr(module, name, _recorded(fn, name))
    module._fake_cupy_recorded = True


def _refuse_numpy(values, what):
    for v in values:
        if isinstance(v, _np.ndarray) and not isinstance(v, ndarray):
            raise TypeError(f"Unsupported type {type(v)} in {what}: a numpy.ndarray mixed with cupy arrays")
        if isinstance(v, (list, tuple)):
            _refuse_numpy(v, what)


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]


class _Pointer:
    """cupy.cuda.MemoryPointer: the address of an array's first element (.ptr) in its buffer."""

    def __init__(self, a):
        if _capture is not None:  # a kernel is about to use this buffer
            _capture.touch(a)
        self._buffer = _root(a)  # the allocation, which a real MemoryPointer also keeps alive
        self.ptr = a.__array_interface__["data"][0]

    def _bytes_left(self):
        start = self._buffer.__array_interface__["data"][0]
        return start + self._buffer.nbytes - self.ptr

    def copy_from_device_async(self, src, size, stream=None):
        """Copies size bytes from src (a MemoryPointer) on stream (default: the current one), as
        cudaMemcpyAsync: bytes, so any alignment will do. Refuses a copy past either allocation
        (CUDA reports cudaErrorInvalidValue for one it can see)."""
        if not isinstance(src, _Pointer):
            raise TypeError(f"Argument 'src' has incorrect type (expected cupy.cuda.memory.MemoryPointer, "
                            f"got {type(src).__name__})")
        size = int(size)
        if size < 0 or size > self._bytes_left() or size > src._bytes_left():
            raise CUDARuntimeError(f"cudaErrorInvalidValue: a copy of {size} bytes runs past its source or destination")
        if stream is not None and stream is not _current_stream():
            with stream:
                return self.copy_from_device_async(src, size)
        dst_ptr, src_ptr = self.ptr, src.ptr
        _kernel_call("copy_from_device_async", lambda: ctypes.memmove(dst_ptr, src_ptr, size), (self._buffer,))


class ndarray:
    """A CuPy-like array holding a NumPy array (._a) as its "device" memory."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is None:
            if strides is not None:
                raise ValueError("memptr is required if strides is given.")
            self._a = _np.empty(shape, dtype=dtype, order=order)
            if _capture is not None:
                _capture.allocated(self._a)
            return
        if not isinstance(memptr, _Pointer):
            raise TypeError(f"memptr must be a cupy.cuda.MemoryPointer, got {type(memptr).__name__}")
        # A view of memptr's allocation. CuPy does not check that it stays inside; NumPy does (a view
        # past the allocation would read or write out of bounds on a GPU).
        buffer = memptr._buffer
        offset = memptr.ptr - buffer.__array_interface__["data"][0]
        self._a = _np.ndarray(shape, dtype=dtype, buffer=buffer.reshape(-1, order="A").view(_np.uint8),
                              offset=offset, strides=strides, order=order)

    @classmethod
    def _of(cls, a):
        obj = cls.__new__(cls)
        obj._a = a
        return obj

    # ---- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _Pointer(self._a))
    device = property(lambda self: cuda.Device(0))
    T = property(lambda self: ndarray._of(self._a.T))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    # ---- conversions
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:  # CuPy's checks (cupy/_core/core.pyx, ndarray.get): no casting, no broadcasting
            if not isinstance(out, _np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
        _sync_point("ndarray.get")
        if not (self.flags.c_contiguous or self.flags.f_contiguous):  # CuPy copies it to a contiguous one first
            _check_aligned("ndarray.get", [self._a])
        if out is not None:
            out[...] = self._a
            return out
        return _np.array(self._a, order=order)

    def set(self, arr, stream=None):
        # CuPy's checks (cupy/_core/core.pyx, ndarray.set): a NumPy array of the same dtype and shape, into
        # a contiguous array; it neither casts nor broadcasts.
        if not isinstance(arr, _np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if not (self.flags.c_contiguous or self.flags.f_contiguous):
            raise RuntimeError("Cannot set to non-contiguous array")
        _sync_point("ndarray.set (a host-to-device copy)")
        self._a[...] = arr

    def item(self):
        _sync_point("ndarray.item")
        return self._a.item()

    def tolist(self):
        _sync_point("ndarray.tolist")
        return self._a.tolist()

    def __float__(self):
        _sync_point("float(ndarray)")
        return float(self._a)

    def __int__(self):
        _sync_point("int(ndarray)")
        return int(self._a)

    def __bool__(self):
        _sync_point("bool(ndarray)")
        return bool(self._a)

    def __index__(self):
        _sync_point("using an ndarray as an index")
        return self._a.__index__()

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for row in self._a:
            yield _wrap(row)

    def __repr__(self):
        _sync_point("repr(ndarray)")
        return "fake-cupy " + repr(self._a)

    def __str__(self):
        _sync_point("str(ndarray)")
        return str(self._a)

    # ---- indexing
    def __getitem__(self, key):
        key = _unwrap(key)
        if isinstance(key, tuple) or not isinstance(key, _np.ndarray):
            # An element is a 0-d view, as in CuPy (NumPy would copy it out as a scalar).
            full = key if isinstance(key, tuple) else (key,)
            if all(isinstance(k, (int, _np.integer)) for k in full) and len(full) == self._a.ndim:
                return _run(_np.ndarray.__getitem__, self._a, full + (Ellipsis,))
        return _run(_np.ndarray.__getitem__, self._a, key)

    def __setitem__(self, key, value):
        # With a basic index (a[...], a[1:3]) CuPy assigns anything that is not a CuPy array with
        # fill(), which takes only scalars and 0-d NumPy arrays: a[...] = numpy_array raises there.
        # Refused here for every index (stricter than CuPy's advanced-index path, which copies it).
        if isinstance(value, _np.ndarray) and value.shape != ():
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        _run(_np.ndarray.__setitem__, self._a, _unwrap(key), _unwrap(value))

    # ---- methods: NumPy's, with arrays unwrapped and results wrapped
    def __getattr__(self, name):
        if name in ("__array_interface__", "__array_struct__"):  # NumPy would read the data through these
            raise AttributeError(name)                          # without __array__'s refusal
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            _refuse_numpy(args, f"ndarray.{name}")
            unbound = getattr(_np.ndarray, name)
            return _run(unbound, self._a, *_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})

        return method

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None:  # as CuPy (cupy/_core/core.pyx, ndarray._astype)
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        return _run(_np.ndarray.astype, self._a, dtype, order=order, copy=copy)

    def copy(self, order="C"):
        return _run(_np.ndarray.copy, self._a, order=order)

    def view(self, dtype=None):
        if dtype is not None and _np.dtype(dtype).itemsize != self.itemsize:  # CuPy's rules, stricter than NumPy's
            if self.ndim == 0:
                raise ValueError("Changing the dtype of a 0d array is only supported if the itemsize is unchanged")
            if not self.flags.c_contiguous:
                raise ValueError("To change to a dtype of a different size, the array must be C-contiguous")
        return ndarray._of(self._a.view() if dtype is None else self._a.view(dtype))

    # ---- NumPy protocols: ufuncs and functions act on the held arrays
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_numpy(inputs, f"ufunc {ufunc.__name__}")
        out = kwargs.get("out")
        if out is not None:
            _refuse_numpy(out, f"ufunc {ufunc.__name__} out")
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        result = _run(getattr(ufunc, method), *_unwrap(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_numpy(args, func.__name__)
        return _run(func, *_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})


def _operator(ufunc, reflected=False, inplace=False):
    if inplace:
        def op(self, other):
            return ufunc(self, other, out=(self,))
    elif reflected:
        def op(self, other):
            return ufunc(other, self)
    else:
        def op(self, other):
            return ufunc(self, other)
    return op


for _name, _ufunc in [("add", _np.add), ("sub", _np.subtract), ("mul", _np.multiply), ("truediv", _np.true_divide),
                      ("floordiv", _np.floor_divide), ("mod", _np.remainder), ("pow", _np.power),
                      ("matmul", _np.matmul), ("and", _np.bitwise_and), ("or", _np.bitwise_or),
                      ("xor", _np.bitwise_xor), ("lshift", _np.left_shift), ("rshift", _np.right_shift)]:
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
    setattr(ndarray, f"__r{_name}__", _operator(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_name}__", _operator(_ufunc, inplace=True))
for _name, _ufunc in [("lt", _np.less), ("le", _np.less_equal), ("gt", _np.greater), ("ge", _np.greater_equal),
                      ("eq", _np.equal), ("ne", _np.not_equal)]:
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
ndarray.__neg__ = lambda self: _np.negative(self)
ndarray.__pos__ = lambda self: _np.positive(self)
ndarray.__abs__ = lambda self: _np.absolute(self)
ndarray.__invert__ = lambda self: _np.invert(self)
ndarray.__hash__ = None


# ---- module functions
def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == _np.dtype(dtype) else a.astype(dtype)
    _sync_point("cupy.asarray of host data")
    return ndarray._of(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray):
        return _run(_np.array, obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
    _sync_point("cupy.array of host data")
    return ndarray._of(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    return _run(_np.ascontiguousarray, a._a, dtype=dtype)


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def copyto(dst, src, casting="same_kind", where=True):
    _run(_np.copyto, dst._a, _unwrap(src), casting=casting, where=_unwrap(where))


# ufunc.at: CuPy implements it for these ufuncs only, as its scatter kernels (cupy/_core/_kernel.pyx,
# ufunc.at -> _scatter_op), and, when the index holds an integer array, only for these dtypes
# (cupy/_core/_routines_indexing.pyx, _scatter_op_single: TypeError for any other).
_SCATTER_DTYPES = {
    "add": ("int32", "float16", "float32", "float64", "uint32", "uint64"),
    "subtract": ("int32", "uint32"),
    "maximum": ("int32", "float32", "float64", "uint32", "uint64"),
    "minimum": ("int32", "float32", "float64", "uint32", "uint64"),
    "bitwise_and": ("int32", "int64", "uint32", "uint64"),
    "bitwise_or": ("int32", "int64", "uint32", "uint64"),
    "bitwise_xor": ("int32", "int64", "uint32", "uint64"),
}


def _wrapped_index(key, shape):
    """key with integer index arrays wrapped into range, as CuPy's scatter kernels do (they do not
    raise for out-of-bounds indices); keys with Ellipsis or newaxis are left as they are."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis or k is None for k in parts) or len(parts) > len(shape):
        return key
    parts = tuple(k % shape[i] if isinstance(k, _np.ndarray) and k.dtype.kind in "iu" and shape[i] else k
                  for i, k in enumerate(parts))
    return parts if isinstance(key, tuple) else parts[0]


class ufunc:
    """cupy.ufunc (cupy/_core/_kernel.pyx) on NumPy's ufunc of the same name: calling it, and the
    methods fastnn may use, at (CuPy's scatter kernels) and reduce (add and multiply only)."""

    def __init__(self, np_ufunc):
        self._np = np_ufunc
        self.__name__ = self.name = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __repr__(self):
        return f"<ufunc 'cupy_{self.name}'>"

    def __call__(self, *args, **kwargs):
        _refuse_numpy(args, self.name)
        out = kwargs.get("out")
        if out is not None:
            _refuse_numpy((out,), f"{self.name} out")
        return _run(self._np, *_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})

    def at(self, a, indices, b=None):
        if self.name not in _SCATTER_DTYPES:
            raise NotImplementedError(f"`cupy_{self.name}.at` is not supported yet")
        if not isinstance(a, ndarray):
            raise TypeError(f"{self.name}.at: a must be a cupy.ndarray, got {type(a).__name__}")
        _refuse_numpy((indices, b), f"{self.name}.at")
        parts = indices if isinstance(indices, tuple) else (indices,)
        if any(isinstance(k, ndarray) and k.dtype.kind in "iu" for k in parts) and (
                a.dtype.name not in _SCATTER_DTYPES[self.name]):
            raise TypeError(f"cupy.{self.name}.at only supports {', '.join(_SCATTER_DTYPES[self.name])} "
                            f"as data type")
        np_at = self._np.at

        def scatter(target, key, value):
            # The wrap and the cast run with the scatter (in a capture they are part of the kernel and
            # read the index and value buffers at every replay, not their contents now).
            np_at(target, _wrapped_index(key, target.shape), _np.asarray(value).astype(target.dtype, copy=False))

        scatter.__name__ = f"{self.name}.at"
        _run(scatter, a._a, _unwrap(indices), _unwrap(b))

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        if self.name not in ("add", "multiply"):
            raise NotImplementedError(f"`cupy_{self.name}.reduce` is not supported yet")
        return (array.sum if self.name == "add" else array.prod)(axis=axis, dtype=dtype, out=out, keepdims=keepdims)


def __getattr__(name):
    """Any other name: NumPy's function of that name, on unwrapped arguments, results wrapped (a NumPy
    ufunc as a cupy.ufunc)."""
    target = getattr(_np, name)
    if isinstance(target, _np.ufunc):
        return ufunc(target)
    if isinstance(target, type) or not callable(target):
        return target

    def function(*args, **kwargs):
        _refuse_numpy(args, name)
        return _run(target, *_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})

    function.__name__ = name
    return function


class RandomState:
    """CuPy's RandomState on NumPy's generator: the float methods take a dtype, as CuPy's do, and only
    float32 or float64 (cupy/random/_generator.py, _check_and_get_dtype: cuRAND makes no other)."""

    def __init__(self, seed=None):
        self._rs = _np.random.RandomState(seed)

    def _floats(self, values, dtype):
        if _capture is not None:  # a captured generator kernel would draw the same numbers at every replay
            raise StreamCaptureError("random numbers drawn in a captured graph repeat at every replay")
        if _np.dtype(dtype).char not in "fd":
            raise TypeError(f"cupy.random only supports float32 and float64, got {_np.dtype(dtype)}")
        return ndarray._of(_np.asarray(values, dtype=dtype))

    def _ints(self, values, dtype):
        if _capture is not None:
            raise StreamCaptureError("random numbers drawn in a captured graph repeat at every replay")
        return ndarray._of(_np.asarray(values, dtype=dtype))

    def random_sample(self, size=None, dtype=float):
        return self._floats(self._rs.random_sample(size), dtype)

    def rand(self, *size, dtype=float):
        return self._floats(self._rs.random_sample(size), dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return self._floats(self._rs.uniform(low, high, size), dtype)

    def standard_normal(self, size=None, dtype=float):
        return self._floats(self._rs.standard_normal(size), dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return self._floats(self._rs.normal(loc, scale, size), dtype)

    def randint(self, low, high=None, size=None, dtype=int):
        return self._ints(self._rs.randint(low, high, size, dtype=dtype), dtype)


class _Random:
    RandomState = RandomState

    def __init__(self):
        self._global = RandomState()

    def seed(self, seed=None):
        self._global = RandomState(seed)

    def __getattr__(self, name):
        return getattr(self._global, name)


random = _Random()


# ---- ElementwiseKernel: the CUDA C body compiled with the host C++ compiler, one loop over the elements
_kernel_cache = os.environ.get("FAKE_CUPY_CACHE", os.path.join(tempfile.gettempdir(), "fake_cupy_kernels"))
_C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t", "bool": "bool",
            "float": "float", "double": "double", "int": "int32_t"}
_C_DTYPES = {"float": _np.float32, "double": _np.float64, "int32_t": _np.int32, "int64_t": _np.int64, "bool": _np.bool_}
_C_NAMES = {_np.dtype(v): k for k, v in _C_DTYPES.items()}


def _parse_params(text):
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        *type_words, name = part.split()
        params.append((" ".join(w for w in type_words if w not in ("raw", "const")), name))
    return params


class ElementwiseKernel:
    """ElementwiseKernel(in_params, out_params, operation, name): `operation` runs once per element,
    with every array parameter bound to its element (outputs by reference) and scalars by value.
    Type placeholders (a one-letter type such as T) take the dtype of the first array given for them."""

    def __init__(self, in_params, out_params, operation, name="kernel", **_):
        self.inputs, self.outputs = _parse_params(in_params), _parse_params(out_params)
        self.operation, self.name = operation, name
        self._compiled = {}

    def _library(self, ctypes_of):
        key = tuple(sorted(ctypes_of.items()))
        if key in self._compiled:
            return self._compiled[key]
        lines = ["#include <cmath>", "#include <cstdint>", "using std::sqrt; using std::exp; using std::log;",
                 "using std::abs; using std::tanh; using std::max; using std::min;"]
        lines += [f"typedef {c} {t};" for t, c in ctypes_of.items() if t not in _C_TYPES]
        lines.append('extern "C" void run(int64_t n, void** p, const int64_t* step) {')
        lines.append("  for (int64_t i = 0; i < n; ++i) {")
        for k, (t, name) in enumerate(self.inputs):
            ct = _C_TYPES.get(t, t)
            lines.append(f"    const {ct} {name} = static_cast<const {ct}*>(p[{k}])[i * step[{k}]];")
        for k, (t, name) in enumerate(self.outputs, start=len(self.inputs)):
            ct = _C_TYPES.get(t, t)
            lines.append(f"    {ct}& {name} = static_cast<{ct}*>(p[{k}])[i * step[{k}]];")
        lines += ["    " + self.operation, "  }", "}"]
        source = "\n".join(lines) + "\n"
        digest = hashlib.sha256(source.encode()).hexdigest()[:20]
        os.makedirs(_kernel_cache, exist_ok=True)
        path = os.path.join(_kernel_cache, f"{self.name}_{digest}.so")
        if not os.path.exists(path):
            src_path = path[:-3] + ".cpp"
            with open(src_path, "w") as f:
                f.write(source)
            tmp = path + f".{os.getpid()}.tmp"
            subprocess.run([os.environ.get("CXX", "g++"), "-O1", "-shared", "-fPIC", "-std=c++17", src_path, "-o", tmp],
                           check=True)
            os.replace(tmp, path)
        lib = ctypes.CDLL(path)
        lib.run.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)]
        self._compiled[key] = lib
        return lib

    def __call__(self, *args):
        return _kernel_call(self.name, lambda: self._launch(args), args)

    def _launch(self, args):
        params = self.inputs + self.outputs
        if len(args) != len(params):
            raise TypeError(f"{self.name}: expected {len(params)} arguments (outputs included), got {len(args)}")
        _refuse_numpy(args, self.name)
        ctypes_of, size = {}, None
        for (t, name), a in zip(params, args):
            if isinstance(a, ndarray):
                if t not in _C_TYPES and t not in ctypes_of:
                    ctypes_of[t] = _C_NAMES[a.dtype]
                if a.size != 1 or a.ndim > 0:
                    if size is not None and a.size != size:
                        raise ValueError(f"{self.name}: {name} has {a.size} elements, another array {size}")
                    size = a.size
        if size is None:
            size = 1
        holders, pointers, steps = [], [], []
        for (t, name), a in zip(params, args):
            want = _np.dtype(_C_DTYPES[ctypes_of.get(t) or _C_TYPES[t]])
            if isinstance(a, ndarray) and (a.ndim > 0 or (t, name) in self.outputs):
                if a.dtype != want or not a.flags.c_contiguous:
                    raise TypeError(f"{self.name}: {name} must be a C-contiguous {want} array, got {a.dtype}")
                _check_aligned(self.name, [a._a])
                pointers.append(a.data.ptr)
                steps.append(1 if a.size == size else 0)
            else:
                held = _np.array(_unwrap(a), dtype=want).reshape(1)
                holders.append(held)
                pointers.append(held.ctypes.data)
                steps.append(0)
        lib = self._library(ctypes_of)
        lib.run(size, (ctypes.c_void_p * len(pointers))(*pointers), (ctypes.c_int64 * len(steps))(*steps))
        outs = args[len(self.inputs):]
        return outs[0] if len(outs) == 1 else outs


# ---- cupy.cuda
class Graph:
    """A captured sequence of operations; launch() replays it. As in CuPy (cupy/cuda/graph.pyx) it is
    made only by Stream.end_capture: Graph() raises NotImplementedError."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("currently this class cannot be initiated by the user and must be created via "
                                  "stream capture")

    @classmethod
    def _from_ops(cls, ops):
        graph = cls.__new__(cls)
        graph._ops = list(ops)
        return graph

    def launch(self, stream=None):
        _sync_point("Graph.launch inside a capture")
        for op in self._ops:
            op()

    def upload(self, stream=None):
        """cudaGraphUpload: makes the first launch cheaper; nothing to do here."""


class _Stream:
    """cupy.cuda.Stream: `with stream:` makes it current; the legacy null stream (ptr 0) cannot capture.
    As in cupy/cuda/stream.pyx, streams compare equal (and hash) by their handle, ptr."""

    _next_ptr = 0x5000
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        if null:
            self.ptr, self.device_id = 0, -1
        else:
            _Stream._next_ptr += 0x10
            self.ptr, self.device_id = _Stream._next_ptr, 0
        self.non_blocking = non_blocking

    def __eq__(self, other):
        return isinstance(other, _Stream) and other.ptr == self.ptr

    def __hash__(self):
        return self.ptr

    def __enter__(self):
        _stream_stack.append(self)
        return self

    def __exit__(self, *exc):
        _stream_stack.pop()
        return False

    def synchronize(self):
        _sync_point("Stream.synchronize")

    def record(self, event=None):
        event = _Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def begin_capture(self, mode=None):
        global _capture
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if _capture is not None:
            raise StreamCaptureError("a capture is already under way")
        _record_native_launchers()
        _capture = _Capture(self)

    def end_capture(self):
        global _capture
        if _capture is None or _capture.stream is not self:
            raise StreamCaptureError("end_capture: this stream is not capturing")
        capture, _capture = _capture, None
        capture.restore()
        if capture.invalidated is not None:  # CUDA ends the capture but returns no graph
            raise CUDARuntimeError(f"cudaErrorStreamCaptureInvalidated: operation failed due to a previous error "
                                   f"during capture ({capture.invalidated})")
        return Graph._from_ops(capture.ops)

    def is_capturing(self):
        """As runtime.streamIsCapturing (cupy_backends/cuda/api/runtime.pyx): a RuntimeError when an error
        has invalidated the capture under way."""
        if _capture is None or _capture.stream is not self:
            return False
        if _capture.invalidated is not None:
            raise RuntimeError("the stream was capturing, but an error has invalidated the capture sequence")
        return True


_Stream.null = _Stream(null=True)
_stream_stack = []


def _current_stream():
    return _stream_stack[-1] if _stream_stack else _Stream.null


class MemoryPool:
    """Allocation is NumPy's here; a pool only has to exist (CudaGraphStep keeps a private one)."""

    def malloc(self, size):
        raise NotImplementedError("fake cupy: memory comes from NumPy, not from a pool")


class _UsingAllocator:
    def __init__(self, allocator=None):
        self.allocator = allocator

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Device:
    def __init__(self, device=0):
        self.id = int(device)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        pass

    def synchronize(self):
        _sync_point("Device.synchronize")

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class _Event:
    """Records the host clock: every emulated kernel has finished when its launch returns. Arguments as
    cupy.cuda.Event (cupy/cuda/stream.pyx)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")
        self.block, self.disable_timing = bool(block), bool(disable_timing)
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        _sync_point("Event.synchronize")


def _elapsed_ms(start, stop):
    """cupy.cuda.get_elapsed_time: cudaEventElapsedTime, which refuses (cudaErrorInvalidResourceHandle)
    events made with disable_timing=True or never recorded."""
    for event in (start, stop):
        if event.disable_timing or event.time is None:
            raise CUDARuntimeError("cudaErrorInvalidResourceHandle: invalid resource handle (an event that was "
                                   + ("made with disable_timing=True)" if event.disable_timing else "never recorded)"))
    return (stop.time - start.time) * 1e3


cuda = types.ModuleType("cupy.cuda")
cuda.Event = _Event
cuda.get_elapsed_time = _elapsed_ms
cuda.device = types.SimpleNamespace(get_cublas_handle=lambda: 0)
cuda.cublas = types.SimpleNamespace(CUBLAS_DEFAULT_MATH=0, getMathMode=lambda handle: 0,
                                    setMathMode=lambda handle, mode: None)
cuda.Device = _Device
cuda.Stream = _Stream
cuda.Graph = Graph
cuda.MemoryPool = MemoryPool
cuda.using_allocator = _UsingAllocator
cuda.get_current_stream = _current_stream
cuda.MemoryPointer = _Pointer
cuda.runtime = types.SimpleNamespace(CUDARuntimeError=CUDARuntimeError, getDeviceCount=lambda: 1, runtimeGetVersion=lambda: 13000,
                                     deviceSynchronize=lambda: _sync_point("runtime.deviceSynchronize"),
                                     getDeviceProperties=lambda i: {"name": b"fake-cupy host emulation"})
sys.modules["cupy.cuda"] = cuda
