#include <cmath>
#include <string>
#include <vector>

#include "batch_norm.h"
#include "binding_utils.h"
#include "bindings.h"

namespace fastnn {

// x is (N, C) or (N, C, H, W); the kernels see (N, C, S).
static BatchNormShape batch_norm_shape(const py::array& x, const char* name) {
    if (x.ndim() != 2 && x.ndim() != 4) throw py::value_error(std::string(name) + ": expected (N, C) or (N, C, H, W)");
    const int64_t spatial = x.ndim() == 4 ? (int64_t)(x.shape(2) * x.shape(3)) : 1;
    const BatchNormShape s{(int64_t)x.shape(0), (int64_t)x.shape(1), spatial};
    if (s.batch * s.channels * s.spatial == 0) throw py::value_error(std::string(name) + ": empty array");
    return s;
}

static std::vector<py::ssize_t> dims(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

template <typename T>
static const T* checked_nd(const py::array& a, const char* name, const py::array& like) {
    // Same dtype, C order and exact shape as `like` (2-D or 4-D).
    if (like.ndim() == 2) return checked_data<T>(a, name, {(int64_t)like.shape(0), (int64_t)like.shape(1)});
    return checked_data<T>(a, name, {(int64_t)like.shape(0), (int64_t)like.shape(1), (int64_t)like.shape(2),
                                     (int64_t)like.shape(3)});
}

// Parameters with NaN or inf (or a negative variance) are refused before any kernel runs.
template <typename T>
static void check_finite(const T* v, int64_t count, const char* name, bool non_negative) {
    for (int64_t k = 0; k < count; ++k) {
        if (!std::isfinite((double)v[k]))
            throw NonFiniteInput(std::string("batch_norm_forward: ") + name + " contains NaN or inf");
        if (non_negative && v[k] < 0)
            throw py::value_error(std::string("batch_norm_forward: ") + name + " has negative entries");
    }
}

template <typename T>
static py::tuple forward(const py::array& x, const py::array& gamma, const py::array& beta, py::array& running_mean,
                         py::array& running_var, bool training, double momentum, double eps) {
    const BatchNormShape s = batch_norm_shape(x, "x");
    const T* xd = checked_nd<T>(x, "x", x);
    const int64_t c = s.channels;
    const T* g = checked_data<T>(gamma, "gamma", {c});
    const T* b = checked_data<T>(beta, "beta", {c});
    T* rm = checked_data<T>(running_mean, "running_mean", {c});
    T* rv = checked_data<T>(running_var, "running_var", {c});
    if (!(eps > 0) || !std::isfinite(eps)) throw py::value_error("eps: must be positive and finite");
    if (!(momentum >= 0 && momentum <= 1)) throw py::value_error("momentum: must be in [0, 1]");
    if (training && s.batch * s.spatial < 2) throw py::value_error("x: training needs more than one value per channel");
    if (training && (!running_mean.writeable() || !running_var.writeable()))
        throw py::value_error("running_mean, running_var: must be writeable (training updates them in place)");
    check_finite(g, c, "gamma", false);
    check_finite(b, c, "beta", false);
    check_finite(rm, c, "running_mean", false);
    check_finite(rv, c, "running_var", true);
    py::array_t<T> out = output_array<T>(dims(x));
    py::array_t<T> mean(c), inv_std(c);
    T* od = out.mutable_data();
    T* md = mean.mutable_data();
    T* id = inv_std.mutable_data();
    BatchNormForwardResult r;
    {
        py::gil_scoped_release release;
        r = batch_norm_forward<T>(xd, g, b, rm, rv, training, momentum, eps, od, md, id, s);
    }
    if (r.first_bad_statistic >= 0)
        throw NonFiniteInput("batch_norm_forward: x contains NaN or inf (the batch statistics of channel " +
                              std::to_string(r.first_bad_statistic) +
                              " are not finite); the running statistics were left unchanged");
    if (r.nan_outputs > 0)
        throw NonFiniteInput("batch_norm_forward: x contains NaN (the output has NaN)");
    return py::make_tuple(out, mean, inv_std);
}

template <typename T>
static py::tuple backward(const py::array& x, const py::array& dy, const py::array& gamma, const py::array& mean,
                          const py::array& inv_std, bool training) {
    const BatchNormShape s = batch_norm_shape(x, "x");
    const T* xd = checked_nd<T>(x, "x", x);
    const T* gd = checked_nd<T>(dy, "dout", x);
    const int64_t c = s.channels;
    const T* gm = checked_data<T>(gamma, "gamma", {c});
    const T* md = checked_data<T>(mean, "mean", {c});
    const T* id = checked_data<T>(inv_std, "inv_std", {c});
    py::array_t<T> dx = output_array<T>(dims(x));
    py::array_t<T> dgamma(c), dbeta(c);
    T* dxd = dx.mutable_data();
    T* dgd = dgamma.mutable_data();
    T* dbd = dbeta.mutable_data();
    {
        py::gil_scoped_release release;
        batch_norm_backward<T>(xd, gd, gm, md, id, training, dxd, dgd, dbd, s);
    }
    return py::make_tuple(dx, dgamma, dbeta);
}

void bind_batch_norm(py::module_& m) {
    m.def(
        "batch_norm_forward",
        [](const py::array& x, const py::array& gamma, const py::array& beta, py::array& running_mean,
           py::array& running_var, bool training, double momentum, double eps) {
            return dispatch_float(x, "x", [&](auto t) {
                return forward<decltype(t)>(x, gamma, beta, running_mean, running_var, training, momentum, eps);
            });
        },
        py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("training"), py::arg("momentum"), py::arg("eps"),
        "Batch norm forward over axis 1 of x (N, C) or (N, C, H, W), all C-contiguous. Returns (out, mean, "
        "inv_std); in training mode updates running_mean and running_var in place. NonFiniteError (a ValueError) for NaN or inf "
        "in the parameters or the batch statistics (running statistics then untouched) or NaN outputs.");
    m.def(
        "batch_norm_backward",
        [](const py::array& x, const py::array& dy, const py::array& gamma, const py::array& mean,
           const py::array& inv_std, bool training) {
            return dispatch_float(x, "x", [&](auto t) {
                return backward<decltype(t)>(x, dy, gamma, mean, inv_std, training);
            });
        },
        py::arg("x"), py::arg("dout"), py::arg("gamma"), py::arg("mean"), py::arg("inv_std"), py::arg("training"),
        "Batch norm backward, fused closed form. Returns (dx, dgamma, dbeta).");
}

}  // namespace fastnn
