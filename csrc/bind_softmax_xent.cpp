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
    py::array_t<T> probs({rows, classes});
    py::array_t<T> lse(rows);
    T* probs_data = probs.mutable_data();
    T* lse_data = lse.mutable_data();
    SoftmaxXentForwardResult r;
    {
        py::gil_scoped_release release;
        r = softmax_xent_forward<T>(s, y, probs_data, lse_data, rows, classes);
    }
    if (r.first_bad_label >= 0)
        throw py::value_error("labels: row " + std::to_string(r.first_bad_label) +
                              " is outside [0, " + std::to_string(classes) + ")");
    return py::make_tuple(r.loss_sum, probs, lse, r.first_nonfinite);
}

template <typename T>
static py::array backward(const py::array& probs, const py::array& labels, double scale) {
    if (probs.ndim() != 2) throw py::value_error("probs: expected a 2-D array (N, C)");
    const int64_t rows = probs.shape(0), classes = probs.shape(1);
    const T* p = checked_data<T>(probs, "probs", {rows, classes});
    const int64_t* y = checked_data<int64_t>(labels, "labels", {rows});
    py::array_t<T> dscores({rows, classes});
    T* d = dscores.mutable_data();
    {
        py::gil_scoped_release release;
        softmax_xent_backward<T>(p, y, (T)scale, d, rows, classes);
    }
    return dscores;
}

void bind_softmax_xent(py::module_& m) {
    m.def(
        "softmax_xent_forward",
        [](const py::array& scores, const py::array& labels) {
            if (has_dtype<float>(scores)) return forward<float>(scores, labels);
            if (has_dtype<double>(scores)) return forward<double>(scores, labels);
            throw py::type_error("scores: expected float32 or float64");
        },
        py::arg("scores"), py::arg("labels"),
        "Fused softmax cross-entropy forward. scores (N, C) float32/float64 C-contiguous, labels (N,) "
        "int64. Returns (sum of row losses, softmax probabilities (N, C), logsumexp (N,), first "
        "non-finite row or -1).");
    m.def(
        "softmax_xent_backward",
        [](const py::array& probs, const py::array& labels, double scale) {
            if (has_dtype<float>(probs)) return backward<float>(probs, labels, scale);
            if (has_dtype<double>(probs)) return backward<double>(probs, labels, scale);
            throw py::type_error("probs: expected float32 or float64");
        },
        py::arg("probs"), py::arg("labels"), py::arg("scale"),
        "Fused softmax cross-entropy backward: scale * (probs - onehot(labels)).");
}

}  // namespace fastnn
