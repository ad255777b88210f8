#include "binding_utils.h"
#include "bindings.h"
#include "optim.h"

namespace fastnn {

// Every array: T, C-contiguous and aligned (any shape), as many elements as w; the written ones writeable.
template <typename T>
static T* elements(const py::array& a, const char* name, int64_t n, bool written) {
    if (!has_dtype<T>(a))
        throw py::type_error(std::string(name) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())));
    check_layout<T>(a, name);
    if (a.size() != n) throw py::value_error(std::string(name) + ": size differs from w");
    if (written && !a.writeable()) throw py::value_error(std::string(name) + ": read-only array");
    return static_cast<T*>(const_cast<void*>(a.data()));
}

template <typename T>
static T* optional_elements(const py::object& a, const char* name, int64_t n) {
    return a.is_none() ? nullptr : elements<T>(a.cast<py::array>(), name, n, true);
}

template <typename T>
static void sgd(py::array& w, const py::array& g, const py::object& v, double wd, double l1, double keep, double lr,
                double mu, bool nesterov) {
    const int64_t n = w.size();
    T* wd_ = elements<T>(w, "w", n, true);
    const T* gd = elements<T>(g, "g", n, false);
    T* vd = optional_elements<T>(v, "v", n);
    py::gil_scoped_release release;
    sgd_update<T>(wd_, gd, vd, n, Regularisers<T>{(T)wd, (T)l1, (T)keep}, (T)lr, (T)mu, nesterov);
}

template <typename T>
static void adaptive(py::array& w, const py::array& g, const py::object& m, py::array& s, double wd, double l1,
                     double keep, double b1, double one_minus_b1, double rho, double c, double step_size,
                     double inv_sqrt_bc2, double eps) {
    const int64_t n = w.size();
    T* wd_ = elements<T>(w, "w", n, true);
    const T* gd = elements<T>(g, "g", n, false);
    T* md = optional_elements<T>(m, "m", n);
    T* sd = elements<T>(s, "s", n, true);
    py::gil_scoped_release release;
    adaptive_update<T>(wd_, gd, md, sd, n, Regularisers<T>{(T)wd, (T)l1, (T)keep}, (T)b1, (T)one_minus_b1, (T)rho,
                       (T)c, (T)step_size, (T)inv_sqrt_bc2, (T)eps);
}

template <typename T>
static double squares(const py::array& g) {
    const T* d = elements<T>(g, "g", g.size(), false);
    py::gil_scoped_release release;
    return sum_squares<T>(d, g.size());
}

void bind_optim(py::module_& m) {
    m.def(
        "sgd_update",
        [](py::array& w, const py::array& g, const py::object& v, double wd, double l1, double keep, double lr,
           double mu, bool nesterov) {
            return dispatch_float(w, "w", [&](auto t) {
                return sgd<decltype(t)>(w, g, v, wd, l1, keep, lr, mu, nesterov);
            });
        },
        py::arg("w"), py::arg("g"), py::arg("v").none(true), py::arg("wd"), py::arg("l1"), py::arg("keep"),
        py::arg("lr"), py::arg("mu"), py::arg("nesterov"),
        "Fused SGD / momentum / Nesterov update in place (see optim.h). C-contiguous arrays of w's dtype.");
    m.def(
        "adaptive_update",
        [](py::array& w, const py::array& g, const py::object& mo, py::array& s, double wd, double l1, double keep,
           double b1, double one_minus_b1, double rho, double c, double step_size, double inv_sqrt_bc2, double eps) {
            return dispatch_float(w, "w", [&](auto t) {
                return adaptive<decltype(t)>(w, g, mo, s, wd, l1, keep, b1, one_minus_b1, rho, c, step_size,
                                             inv_sqrt_bc2, eps);
            });
        },
        py::arg("w"), py::arg("g"), py::arg("m").none(true), py::arg("s"), py::arg("wd"), py::arg("l1"),
        py::arg("keep"), py::arg("b1"), py::arg("one_minus_b1"), py::arg("rho"), py::arg("c"), py::arg("step_size"),
        py::arg("inv_sqrt_bc2"), py::arg("eps"),
        "Fused Adagrad / RMSProp / Adam update in place (see optim.h). C-contiguous arrays of w's dtype.");
    m.def(
        "sum_squares",
        [](const py::array& g) {
            return dispatch_float(g, "g", [&](auto t) { return squares<decltype(t)>(g); });
        },
        py::arg("g"), "Sum of squares of a C-contiguous float array, accumulated in double, independent of threads.");
}

}  // namespace fastnn
