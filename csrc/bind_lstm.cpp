#include "binding_utils.h"
#include "bindings.h"
#include "lstm.h"

namespace fastnn {

template <typename T>
static py::tuple forward(py::array& ax, const py::array& ah, const py::array& b, const py::array& c_prev) {
    if (c_prev.ndim() != 2) throw py::value_error("c_prev: expected a 2-D array (B, H)");
    const int64_t batch = c_prev.shape(0), hidden = c_prev.shape(1);
    T* axd = checked_data<T>(ax, "ax", {batch, 4 * hidden});
    if (!ax.writeable()) throw py::value_error("ax: must be writeable (the gates are written over it)");
    const T* ahd = checked_data<T>(ah, "ah", {batch, 4 * hidden});
    const T* bd = checked_data<T>(b, "b", {4 * hidden});
    const T* cpd = checked_data<T>(c_prev, "c_prev", {batch, hidden});
    py::array_t<T> c({batch, hidden}), h({batch, hidden}), tanh_c({batch, hidden});
    T* cd = c.mutable_data();
    T* hd = h.mutable_data();
    T* td = tanh_c.mutable_data();
    int64_t nan_count;
    {
        py::gil_scoped_release release;
        nan_count = lstm_cell_forward_pointwise<T>(axd, ahd, bd, cpd, axd, cd, hd, td, batch, hidden);
    }
    return py::make_tuple(h, c, tanh_c, nan_count);
}

template <typename T>
static py::tuple backward(const py::object& dh, const py::object& dc, const py::array& gates, const py::array& c_prev,
                          const py::array& tanh_c) {
    if (c_prev.ndim() != 2) throw py::value_error("c_prev: expected a 2-D array (B, H)");
    const int64_t batch = c_prev.shape(0), hidden = c_prev.shape(1);
    const T* gd = checked_data<T>(gates, "gates", {batch, 4 * hidden});
    const T* cpd = checked_data<T>(c_prev, "c_prev", {batch, hidden});
    const T* td = checked_data<T>(tanh_c, "tanh_c", {batch, hidden});
    const T* dhd = dh.is_none() ? nullptr : checked_data<T>(dh.cast<py::array>(), "dh", {batch, hidden});
    const T* dcd = dc.is_none() ? nullptr : checked_data<T>(dc.cast<py::array>(), "dc", {batch, hidden});
    py::array_t<T> da({batch, 4 * hidden}), dc_prev({batch, hidden}), db(4 * hidden);
    T* dad = da.mutable_data();
    T* dcpd = dc_prev.mutable_data();
    T* dbd = db.mutable_data();
    {
        py::gil_scoped_release release;
        lstm_cell_backward_pointwise<T>(dhd, dcd, gd, cpd, td, dad, dcpd, dbd, batch, hidden);
    }
    return py::make_tuple(da, dc_prev, db);
}

void bind_lstm(py::module_& m) {
    m.def(
        "lstm_cell_forward_pointwise",
        [](py::array& ax, const py::array& ah, const py::array& b, const py::array& c_prev) {
            if (has_dtype<float>(c_prev)) return forward<float>(ax, ah, b, c_prev);
            if (has_dtype<double>(c_prev)) return forward<double>(ax, ah, b, c_prev);
            throw py::type_error("c_prev: expected float32 or float64");
        },
        py::arg("ax"), py::arg("ah"), py::arg("b"), py::arg("c_prev"),
        "Fused LSTM gates and cell update from the projections ax = x Wx and ah = h_prev Wh (B, 4H), "
        "gate order i, f, o, g. Writes the activated gates over ax; returns (h, c, tanh(c), NaN count of h and c).");
    m.def(
        "lstm_cell_backward_pointwise",
        [](const py::object& dh, const py::object& dc, const py::array& gates, const py::array& c_prev,
           const py::array& tanh_c) {
            if (has_dtype<float>(c_prev)) return backward<float>(dh, dc, gates, c_prev, tanh_c);
            if (has_dtype<double>(c_prev)) return backward<double>(dh, dc, gates, c_prev, tanh_c);
            throw py::type_error("c_prev: expected float32 or float64");
        },
        py::arg("dh").none(true), py::arg("dc").none(true), py::arg("gates"), py::arg("c_prev"), py::arg("tanh_c"),
        "Fused LSTM cell backward through the gates: returns (da (B, 4H), dc_prev, db). dh or dc None: zeros.");
}

}  // namespace fastnn
