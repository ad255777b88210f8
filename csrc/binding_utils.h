// Helpers for the thin pybind11 bindings: every array that reaches a kernel is checked here for
// dtype, C-contiguity and exact shape, so a kernel never reads or writes out of bounds whatever
// Python hands it. (The Python layer checks first and gives friendlier messages; this is the backstop.)
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "buffer_cache.h"

namespace fastnn {
namespace py = pybind11;

// A kernel's own check found NaN or inf, as opposed to a wrong shape or parameter: raised in Python
// as fastnn._C.NonFiniteError (a ValueError subclass, registered in module.cpp), which the
// functional layer passes on as fastnn.functional.NonFiniteError.
struct NonFiniteInput : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <typename T>
inline bool has_dtype(const py::array& a) {
    return py::isinstance<py::array_t<T>>(a);
}

// Checks `a` is C-contiguous and its data aligned to T, as the kernels' element loads assume (a NumPy
// view at an odd byte offset, e.g. np.zeros(9, np.uint8)[1:].view(np.float32), is contiguous but not
// aligned: reading it through a T* is undefined behaviour). The Python layer copies such arrays first.
template <typename T>
inline void check_layout(const py::array& a, const char* name) {
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a C-contiguous array");
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
        throw py::value_error(std::string(name) + ": expected an array aligned to its element size, got one at " +
                              "an unaligned address (copy it, e.g. numpy.require(a, requirements='CA'))");
}

// Checks `a` is a C-contiguous, aligned array of T with exactly `shape` (-1 = any extent) and returns
// its data.
template <typename T>
inline T* checked_data(const py::array& a, const char* name, std::initializer_list<int64_t> shape) {
    if (!has_dtype<T>(a))
        throw py::type_error(std::string(name) + ": expected dtype " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             std::string(py::str(a.dtype())));
    check_layout<T>(a, name);
    if (a.ndim() != (py::ssize_t)shape.size())
        throw py::value_error(std::string(name) + ": expected " + std::to_string(shape.size()) +
                              " dimensions, got " + std::to_string(a.ndim()));
    py::ssize_t axis = 0;
    for (int64_t extent : shape) {
        if (extent >= 0 && a.shape(axis) != extent)
            throw py::value_error(std::string(name) + ": dimension " + std::to_string(axis) +
                                  " is " + std::to_string(a.shape(axis)) + ", expected " +
                                  std::to_string(extent));
        ++axis;
    }
    return static_cast<T*>(const_cast<void*>(a.data()));
}

// Calls fn(T{}) with T = float or double, a's dtype (the kernels' two element types): bindings write
// `dispatch_float(x, "x", [&](auto t) { return op<decltype(t)>(...); })`. Any other dtype is a
// TypeError naming the argument.
template <typename Fn>
inline auto dispatch_float(const py::array& a, const char* name, Fn&& fn) {
    if (has_dtype<float>(a)) return fn(float{});
    if (has_dtype<double>(a)) return fn(double{});
    throw py::type_error(std::string(name) + ": expected float32 or float64");
}

// Geometry arguments (extents passed as numbers, kernel sizes, strides, padding, padded extents) at or
// above this are refused before any arithmetic on them: H + 2 ph and H * W must not wrap around in
// int64 (2^63 - 1 padding once did, and a padded copy of x was written past its buffer).
constexpr int64_t kMaxGeometry = int64_t(1) << 31;
inline bool under_max_geometry(std::initializer_list<int64_t> values) {
    for (int64_t v : values)
        if (v >= kMaxGeometry) return false;
    return true;
}

// A new C-contiguous output array. Large ones (>= kMinCachedBytes) come from the buffer cache and go
// back to it when NumPy frees the array (buffer_cache.h); small ones are NumPy's own.
template <typename T>
inline py::array_t<T> output_array(const std::vector<py::ssize_t>& shape) {
    // The element count and size are checked for overflow (extents from huge geometry arguments
    // could wrap the product around to a small buffer): std::bad_alloc, a MemoryError in Python.
    size_t count = 1, bytes = 0;
    for (py::ssize_t extent : shape)
        if (extent < 0 || __builtin_mul_overflow(count, (size_t)extent, &count)) throw std::bad_alloc();
    if (__builtin_mul_overflow(count, sizeof(T), &bytes) || bytes > (size_t)PTRDIFF_MAX) throw std::bad_alloc();
    if (bytes < kMinCachedBytes) return py::array_t<T>(shape);
    void* data = cached_alloc(bytes);
    py::capsule owner(data, [](void* p) { cached_free(p); });
    return py::array_t<T>(shape, static_cast<T*>(data), owner);
}

}  // namespace fastnn
