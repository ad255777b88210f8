#include <array>
#include <limits>
#include <string>

#include <pybind11/stl.h>

#include "binding_utils.h"
#include "bindings.h"
#include "pool.h"

namespace fastnn {

using Pair = std::array<int64_t, 2>;

// The pooling geometry, checked again here so no parameter can send a kernel out of bounds.
static Pool2dShape pool_shape(int64_t n, int64_t c, int64_t h, int64_t w, Pair kernel, Pair stride, Pair pad) {
    for (int a = 0; a < 2; ++a) {
        if (kernel[a] < 1 || stride[a] < 1 || pad[a] < 0 || pad[a] > kernel[a] / 2)
            throw py::value_error("pool2d: need kernel_size >= 1, stride >= 1, 0 <= padding <= kernel_size / 2");
    }
    if (n < 1 || c < 1 || h < 1 || w < 1) throw py::value_error("pool2d: x must not be empty");
    // (the sums only once their terms are known to be small: binding_utils.h)
    if (!under_max_geometry({kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1]}))
        throw py::value_error("pool2d: kernel_size, stride and padding must be under 2^31");
    if (!under_max_geometry({h, w}) || !under_max_geometry({h + 2 * pad[0], w + 2 * pad[1]}))
        throw py::value_error("pool2d: the padded input must be under 2^31 along each axis");
    if (h + 2 * pad[0] < kernel[0] || w + 2 * pad[1] < kernel[1])
        throw py::value_error("pool2d: the window is larger than the padded input");
    if (h * w > std::numeric_limits<int32_t>::max())
        throw py::value_error("pool2d: H * W must fit in int32 (argmax indices are int32)");
    return Pool2dShape{n * c, h, w, (h + 2 * pad[0] - kernel[0]) / stride[0] + 1,
                       (w + 2 * pad[1] - kernel[1]) / stride[1] + 1, kernel[0], kernel[1],
                       stride[0], stride[1], pad[0], pad[1]};
}

template <typename T>
static py::tuple max_forward(const py::array& x, Pair kernel, Pair stride, Pair pad) {
    if (x.ndim() != 4) throw py::value_error("x: expected a 4-D array (N, C, H, W)");
    const int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
    const T* xd = checked_data<T>(x, "x", {n, c, h, w});
    const Pool2dShape s = pool_shape(n, c, h, w, kernel, stride, pad);
    py::array_t<T> out = output_array<T>({n, c, s.out_height, s.out_width});
    py::array_t<int32_t> argmax = output_array<int32_t>({n, c, s.out_height, s.out_width});
    T* od = out.mutable_data();
    int32_t* ad = argmax.mutable_data();
    int64_t nan_count;
    {
        py::gil_scoped_release release;
        nan_count = max_pool2d_forward<T>(xd, od, ad, s);
    }
    return py::make_tuple(out, argmax, nan_count);
}

template <typename T>
static py::array max_backward(const py::array& dout, const py::array& argmax, int64_t h, int64_t w,
                              Pair kernel, Pair stride, Pair pad) {
    if (dout.ndim() != 4) throw py::value_error("dout: expected a 4-D array (N, C, Ho, Wo)");
    const int64_t n = dout.shape(0), c = dout.shape(1);
    const Pool2dShape s = pool_shape(n, c, h, w, kernel, stride, pad);
    const T* gd = checked_data<T>(dout, "dout", {n, c, s.out_height, s.out_width});
    const int32_t* ad = checked_data<int32_t>(argmax, "argmax", {n, c, s.out_height, s.out_width});
    py::array_t<T> dx = output_array<T>({n, c, h, w});
    T* dd = dx.mutable_data();
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = max_pool2d_backward<T>(gd, ad, dd, s);
    }
    if (bad) throw py::value_error("argmax: " + std::to_string(bad) + " entries lie outside the input plane");
    return dx;
}

template <typename T>
static py::tuple avg_forward(const py::array& x, Pair kernel, Pair stride, Pair pad) {
    if (x.ndim() != 4) throw py::value_error("x: expected a 4-D array (N, C, H, W)");
    const int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
    const T* xd = checked_data<T>(x, "x", {n, c, h, w});
    const Pool2dShape s = pool_shape(n, c, h, w, kernel, stride, pad);
    py::array_t<T> out = output_array<T>({n, c, s.out_height, s.out_width});
    T* od = out.mutable_data();
    int64_t nan_count;
    {
        py::gil_scoped_release release;
        nan_count = avg_pool2d_forward<T>(xd, od, s);
    }
    return py::make_tuple(out, nan_count);
}

template <typename T>
static py::array avg_backward(const py::array& dout, int64_t h, int64_t w, Pair kernel, Pair stride, Pair pad) {
    if (dout.ndim() != 4) throw py::value_error("dout: expected a 4-D array (N, C, Ho, Wo)");
    const int64_t n = dout.shape(0), c = dout.shape(1);
    const Pool2dShape s = pool_shape(n, c, h, w, kernel, stride, pad);
    const T* gd = checked_data<T>(dout, "dout", {n, c, s.out_height, s.out_width});
    py::array_t<T> dx = output_array<T>({n, c, h, w});
    T* dd = dx.mutable_data();
    {
        py::gil_scoped_release release;
        avg_pool2d_backward<T>(gd, dd, s);
    }
    return dx;
}

void bind_pool(py::module_& m) {
    m.def(
        "max_pool2d_forward",
        [](const py::array& x, Pair kernel, Pair stride, Pair pad) {
            return dispatch_float(x, "x", [&](auto t) { return max_forward<decltype(t)>(x, kernel, stride, pad); });
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        "Max pooling of x (N, C, H, W), C-contiguous. Returns (out, argmax int32 flat index into each "
        "plane, number of NaN outputs).");
    m.def(
        "max_pool2d_backward",
        [](const py::array& dout, const py::array& argmax, int64_t h, int64_t w, Pair kernel, Pair stride,
           Pair pad) {
            return dispatch_float(dout, "dout", [&](auto t) {
                return max_backward<decltype(t)>(dout, argmax, h, w, kernel, stride, pad);
            });
        },
        py::arg("dout"), py::arg("argmax"), py::arg("height"), py::arg("width"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), "Max pooling backward: dx (N, C, H, W) from dout and argmax.");
    m.def(
        "avg_pool2d_forward",
        [](const py::array& x, Pair kernel, Pair stride, Pair pad) {
            return dispatch_float(x, "x", [&](auto t) { return avg_forward<decltype(t)>(x, kernel, stride, pad); });
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        "Average pooling of x (N, C, H, W), zero padding counted. Returns (out, number of NaN outputs).");
    m.def(
        "avg_pool2d_backward",
        [](const py::array& dout, int64_t h, int64_t w, Pair kernel, Pair stride, Pair pad) {
            return dispatch_float(dout, "dout", [&](auto t) {
                return avg_backward<decltype(t)>(dout, h, w, kernel, stride, pad);
            });
        },
        py::arg("dout"), py::arg("height"), py::arg("width"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), "Average pooling backward: dx (N, C, H, W) from dout.");
}

}  // namespace fastnn
