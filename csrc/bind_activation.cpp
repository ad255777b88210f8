#include "activation.h"
#include "binding_utils.h"
#include "bindings.h"

namespace fastnn {

template <typename T>
static py::array forward(const py::array& x) {
    const T* xd = checked_data<T>(x, "x", {-1});
    py::array_t<T> y = output_array<T>({x.size()});
    T* yd = y.mutable_data();
    {
        py::gil_scoped_release release;
        relu_forward<T>(xd, yd, x.size());
    }
    return y;
}

template <typename T>
static py::array backward(const py::array& dy, const py::array& y) {
    const T* dyd = checked_data<T>(dy, "dy", {-1});
    const T* yd = checked_data<T>(y, "y", {dy.size()});
    py::array_t<T> dx = output_array<T>({dy.size()});
    T* dxd = dx.mutable_data();
    {
        py::gil_scoped_release release;
        relu_backward<T>(dyd, yd, dxd, dy.size());
    }
    return dx;
}

void bind_activation(py::module_& m) {
    m.def(
        "relu_forward",
        [](const py::array& x) {
            return dispatch_float(x, "x", [&](auto t) { return forward<decltype(t)>(x); });
        },
        py::arg("x"), "y = max(x, 0) (NaN stays NaN) over a 1-D C-contiguous array; returns y (1-D).");
    m.def(
        "relu_backward",
        [](const py::array& dy, const py::array& y) {
            return dispatch_float(dy, "dy", [&](auto t) { return backward<decltype(t)>(dy, y); });
        },
        py::arg("dy"), py::arg("y"), "dx = dy where y > 0, else 0 (1-D C-contiguous arrays of one dtype and size).");
}

}  // namespace fastnn
