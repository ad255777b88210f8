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

template <typename T>
static py::tuple input_grads(const py::array& da, const py::array& Wx, const py::array& Wh) {
    if (da.ndim() != 2 || Wx.ndim() != 2 || Wh.ndim() != 2)
        throw py::value_error("lstm_cell_input_grads: expected 2-D da (B, 4H), Wx (D, 4H) and Wh (H, 4H)");
    const int64_t batch = da.shape(0), G = da.shape(1), input = Wx.shape(0), hidden = Wh.shape(0);
    if (batch < 1 || input < 1 || hidden < 1 || G != 4 * hidden)
        throw py::value_error("lstm_cell_input_grads: da must be (B, 4H) with H = Wh.shape[0], all dimensions >= 1");
    const T* dad = checked_data<T>(da, "da", {batch, G});
    const T* wxd = checked_data<T>(Wx, "Wx", {input, G});
    const T* whd = checked_data<T>(Wh, "Wh", {hidden, G});
    py::array_t<T> dx({batch, input}), dh({batch, hidden});
    T* dxd = dx.mutable_data();
    T* dhd = dh.mutable_data();
    {
        py::gil_scoped_release release;
        lstm_cell_input_grads<T>(dad, wxd, whd, dxd, dhd, batch, input, hidden);
    }
    return py::make_tuple(dx, dh);
}

template <typename T>
static const T* optional_data(const py::object& a, const char* name, std::initializer_list<int64_t> shape) {
    return a.is_none() ? nullptr : checked_data<T>(a.cast<py::array>(), name, shape);
}

template <typename T>
static py::tuple layer_forward(const py::array& xs, const py::array& h0, const py::array& c0, const py::array& Wx,
                               const py::array& Wh, const py::array& b) {
    if (xs.ndim() != 3 || h0.ndim() != 2) throw py::value_error("xs: expected (T, B, D) and h0 (B, H)");
    const LstmLayerShape s{xs.shape(0), xs.shape(1), xs.shape(2), h0.shape(1)};
    if (s.steps < 1 || s.batch < 1 || s.input < 1 || s.hidden < 1) throw py::value_error("lstm layer: empty dimension");
    const int64_t G = 4 * s.hidden;
    const T* xd = checked_data<T>(xs, "xs", {s.steps, s.batch, s.input});
    const T* h0d = checked_data<T>(h0, "h0", {s.batch, s.hidden});
    const T* c0d = checked_data<T>(c0, "c0", {s.batch, s.hidden});
    const T* wxd = checked_data<T>(Wx, "Wx", {s.input, G});
    const T* whd = checked_data<T>(Wh, "Wh", {s.hidden, G});
    const T* bd = checked_data<T>(b, "b", {G});
    py::array_t<T> gates = output_array<T>({s.steps, G, s.batch}),
                   c_all = output_array<T>({s.steps, s.hidden, s.batch}),
                   tanh_c_all = output_array<T>({s.steps, s.hidden, s.batch}),
                   h_all = output_array<T>({s.steps, s.hidden, s.batch}),
                   hs = output_array<T>({s.steps, s.batch, s.hidden}),
                   c_last({s.batch, s.hidden});
    T *gd = gates.mutable_data(), *cd = c_all.mutable_data(), *td = tanh_c_all.mutable_data(),
      *had = h_all.mutable_data(), *hsd = hs.mutable_data(), *cld = c_last.mutable_data();
    int64_t nan_count;
    {
        py::gil_scoped_release release;
        nan_count = lstm_layer_forward<T>(xd, h0d, c0d, wxd, whd, bd, gd, cd, td, had, hsd, cld, s);
    }
    return py::make_tuple(hs, c_last, gates, c_all, tanh_c_all, nan_count);
}

template <typename T>
static py::tuple layer_backward(const py::object& dhs, const py::object& dh_last, const py::object& dc_last,
                                const py::array& xs, const py::array& h0, const py::array& c0, const py::array& Wx,
                                const py::array& Wh, const py::array& gates, const py::array& c_all,
                                const py::array& tanh_c_all, const py::array& hs) {
    if (xs.ndim() != 3 || h0.ndim() != 2) throw py::value_error("xs: expected (T, B, D) and h0 (B, H)");
    const LstmLayerShape s{xs.shape(0), xs.shape(1), xs.shape(2), h0.shape(1)};
    if (s.steps < 1 || s.batch < 1 || s.input < 1 || s.hidden < 1) throw py::value_error("lstm layer: empty dimension");
    const int64_t G = 4 * s.hidden;
    const T* dhsd = optional_data<T>(dhs, "dhs", {s.steps, s.batch, s.hidden});
    const T* dhld = optional_data<T>(dh_last, "dh_last", {s.batch, s.hidden});
    const T* dcld = optional_data<T>(dc_last, "dc_last", {s.batch, s.hidden});
    const T* xd = checked_data<T>(xs, "xs", {s.steps, s.batch, s.input});
    const T* h0d = checked_data<T>(h0, "h0", {s.batch, s.hidden});
    const T* c0d = checked_data<T>(c0, "c0", {s.batch, s.hidden});
    const T* wxd = checked_data<T>(Wx, "Wx", {s.input, G});
    const T* whd = checked_data<T>(Wh, "Wh", {s.hidden, G});
    const T* gd = checked_data<T>(gates, "gates", {s.steps, G, s.batch});
    const T* cd = checked_data<T>(c_all, "c_all", {s.steps, s.hidden, s.batch});
    const T* td = checked_data<T>(tanh_c_all, "tanh_c_all", {s.steps, s.hidden, s.batch});
    const T* hsd = checked_data<T>(hs, "hs", {s.steps, s.batch, s.hidden});
    py::array_t<T> dgates = output_array<T>({s.steps, G, s.batch}), dxs = output_array<T>({s.steps, s.batch, s.input}),
                   dh0({s.batch, s.hidden}),
        dc0({s.batch, s.hidden}), dW({s.input + s.hidden, G}), db(G);
    {
        py::gil_scoped_release release;
        lstm_layer_backward<T>(dhsd, dhld, dcld, xd, h0d, c0d, wxd, whd, gd, cd, td, hsd, dgates.mutable_data(),
                               dxs.mutable_data(), dh0.mutable_data(), dc0.mutable_data(), dW.mutable_data(),
                               db.mutable_data(), s);
    }
    // dWx and dWh: the two row blocks of dW, as views that keep it alive.
    const py::ssize_t row = G * (py::ssize_t)sizeof(T);
    py::array_t<T> dWx({s.input, G}, {row, (py::ssize_t)sizeof(T)}, dW.data(), dW),
        dWh({s.hidden, G}, {row, (py::ssize_t)sizeof(T)}, dW.data() + s.input * G, dW);
    return py::make_tuple(dxs, dh0, dc0, dWx, dWh, db);
}

void bind_lstm(py::module_& m) {
    m.def(
        "lstm_cell_forward_pointwise",
        [](py::array& ax, const py::array& ah, const py::array& b, const py::array& c_prev) {
            return dispatch_float(c_prev, "c_prev", [&](auto t) { return forward<decltype(t)>(ax, ah, b, c_prev); });
        },
        py::arg("ax"), py::arg("ah"), py::arg("b"), py::arg("c_prev"),
        "Fused LSTM gates and cell update from the projections ax = x Wx and ah = h_prev Wh (B, 4H), "
        "gate order i, f, o, g. Writes the activated gates over ax; returns (h, c, tanh(c), NaN count of h and c).");
    m.def(
        "lstm_cell_backward_pointwise",
        [](const py::object& dh, const py::object& dc, const py::array& gates, const py::array& c_prev,
           const py::array& tanh_c) {
            return dispatch_float(c_prev, "c_prev", [&](auto t) {
                return backward<decltype(t)>(dh, dc, gates, c_prev, tanh_c);
            });
        },
        py::arg("dh").none(true), py::arg("dc").none(true), py::arg("gates"), py::arg("c_prev"), py::arg("tanh_c"),
        "Fused LSTM cell backward through the gates: returns (da (B, 4H), dc_prev, db). dh or dc None: zeros.");
    m.def(
        "lstm_cell_input_grads",
        [](const py::array& da, const py::array& Wx, const py::array& Wh) {
            return dispatch_float(da, "da", [&](auto t) { return input_grads<decltype(t)>(da, Wx, Wh); });
        },
        py::arg("da"), py::arg("Wx"), py::arg("Wh"),
        "Input gradients of an LSTM cell step from the gate gradients da (B, 4H): returns "
        "(dx = da Wx^T, dh_prev = da Wh^T), computed as one product with the weights read in place.");
    m.def(
        "lstm_layer_forward",
        [](const py::array& xs, const py::array& h0, const py::array& c0, const py::array& Wx, const py::array& Wh,
           const py::array& b) {
            return dispatch_float(xs, "xs", [&](auto t) {
                return layer_forward<decltype(t)>(xs, h0, c0, Wx, Wh, b);
            });
        },
        py::arg("xs"), py::arg("h0"), py::arg("c0"), py::arg("Wx"), py::arg("Wh"), py::arg("b"),
        "A whole LSTM layer, time-major xs (T, B, D), gate order i, f, o, g. Returns (hs (T, B, H), c_last, "
        "gates (T, 4H, B), c_all (T, H, B), tanh_c_all (T, H, B), NaN count of all h and c).");
    m.def(
        "lstm_layer_backward",
        [](const py::object& dhs, const py::object& dh_last, const py::object& dc_last, const py::array& xs,
           const py::array& h0, const py::array& c0, const py::array& Wx, const py::array& Wh, const py::array& gates,
           const py::array& c_all, const py::array& tanh_c_all, const py::array& hs) {
            return dispatch_float(xs, "xs", [&](auto t) {
                return layer_backward<decltype(t)>(dhs, dh_last, dc_last, xs, h0, c0, Wx, Wh, gates, c_all, tanh_c_all,
                                                   hs);
            });
        },
        py::arg("dhs").none(true), py::arg("dh_last").none(true), py::arg("dc_last").none(true), py::arg("xs"),
        py::arg("h0"), py::arg("c0"), py::arg("Wx"), py::arg("Wh"), py::arg("gates"), py::arg("c_all"),
        py::arg("tanh_c_all"), py::arg("hs"),
        "Backward through a whole LSTM layer from lstm_layer_forward's cache. dhs, dh_last, dc_last None: zeros. "
        "Returns (dxs, dh0, dc0, dWx, dWh, db).");
}

}  // namespace fastnn
