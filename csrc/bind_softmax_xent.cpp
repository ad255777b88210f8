#include <string>
#include <tuple>

#include "binding_utils.h"
#include "bindings.h"
#include "softmax_xent.h"

namespace fastnn {

template <typename T>
static py::tuple forward(const py::array& scores, const py::array& labels) {
    if (scores.ndim() != 2) throw py::value_error("scores: expected a 2-D array (N, C)");
    const int64_t rows = scores.shape(0), classes = scores.shape(1);
    const T* s = checked_data<T>(scores, "scores", {rows, classes});
    const int64_t* y = checked_data<int64_t>(labels, "labels", {rows});
    if (rows == 0 || classes == 0) throw py::value_error("scores: N and C must be at least 1");
    py::array_t<T> exps = output_array<T>({rows, classes});
    py::array_t<T> inv_sum(rows), lse(rows);
    T* exps_data = exps.mutable_data();
    T* inv_sum_data = inv_sum.mutable_data();
    T* lse_data = lse.mutable_data();
    SoftmaxXentForwardResult r;
    {
        py::gil_scoped_release release;
        r = softmax_xent_forward<T>(s, y, exps_data, inv_sum_data, lse_data, rows, classes);
    }
    if (r.first_bad_label >= 0)
        throw py::value_error("labels: row " + std::to_string(r.first_bad_label) +
                              " is outside [0, " + std::to_string(classes) + ")");
    return py::make_tuple(r.loss_sum, exps, inv_sum, lse, r.first_nonfinite);
}

template <typename T>
static py::array backward_in_place(py::array& exps, const py::array& inv_sum,
                                   const py::array& labels, double scale) {
    if (exps.ndim() != 2) throw py::value_error("exps: expected a 2-D array (N, C)");
    const int64_t rows = exps.shape(0), classes = exps.shape(1);
    T* e = checked_data<T>(exps, "exps", {rows, classes});
    const T* z = checked_data<T>(inv_sum, "inv_sum", {rows});
    const int64_t* y = checked_data<int64_t>(labels, "labels", {rows});
    if (rows == 0 || classes == 0) throw py::value_error("exps: N and C must be at least 1");
    if (!exps.writeable()) throw py::value_error("exps: read-only array");
    {
        py::gil_scoped_release release;
        softmax_xent_backward_in_place<T>(e, z, y, (T)scale, rows, classes);
    }
    return exps;
}

template <typename T>
static py::array backward_recompute(const py::array& scores, const py::array& labels,
                                    const py::array& lse, double scale) {
    if (scores.ndim() != 2) throw py::value_error("scores: expected a 2-D array (N, C)");
    const int64_t rows = scores.shape(0), classes = scores.shape(1);
    const T* s = checked_data<T>(scores, "scores", {rows, classes});
    const int64_t* y = checked_data<int64_t>(labels, "labels", {rows});
    const T* l = checked_data<T>(lse, "lse", {rows});
    if (rows == 0 || classes == 0) throw py::value_error("scores: N and C must be at least 1");
    py::array_t<T> dscores = output_array<T>({rows, classes});
    T* d = dscores.mutable_data();
    {
        py::gil_scoped_release release;
        softmax_xent_backward_recompute<T>(s, y, l, (T)scale, d, rows, classes);
    }
    return dscores;
}

void bind_softmax_xent(py::module_& m) {
    m.def(
        "softmax_xent_forward",
        [](const py::array& scores, const py::array& labels) {
            return dispatch_float(scores, "scores", [&](auto t) { return forward<decltype(t)>(scores, labels); });
        },
        py::arg("scores"), py::arg("labels"),
        "Fused softmax cross-entropy forward. scores (N, C) float32/float64 C-contiguous, labels (N,) "
        "int64. Returns (sum of row losses, exp(s - rowmax) (N, C), 1 / row sums of those (N,), "
        "logsumexp (N,), first non-finite row or -1).");
    m.def(
        "softmax_xent_backward_in_place",
        [](py::array& exps, const py::array& inv_sum, const py::array& labels, double scale) {
            return dispatch_float(exps, "exps", [&](auto t) {
                return backward_in_place<decltype(t)>(exps, inv_sum, labels, scale);
            });
        },
        py::arg("exps"), py::arg("inv_sum"), py::arg("labels"), py::arg("scale"),
        "Overwrites exps (N, C) with scale * (exps * inv_sum[:, None] - onehot(labels)) and returns it.");
    m.def(
        "softmax_xent_backward_recompute",
        [](const py::array& scores, const py::array& labels, const py::array& lse, double scale) {
            return dispatch_float(scores, "scores", [&](auto t) {
                return backward_recompute<decltype(t)>(scores, labels, lse, scale);
            });
        },
        py::arg("scores"), py::arg("labels"), py::arg("lse"), py::arg("scale"),
        "scale * (exp(scores - lse) - onehot(labels)), a new (N, C) array.");
}

}  // namespace fastnn
