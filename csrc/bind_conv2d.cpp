// Bindings for conv2d and the GEMM under it. Every geometry check that keeps the kernels in bounds is
// repeated here (the Python layer checks first, with friendlier messages).
#include <pybind11/stl.h>

#include <string>

#include "binding_utils.h"
#include "bindings.h"
#include "conv2d.h"
#include "cpu_features.h"
#include "gemm.h"

namespace fastnn {

static Conv2dShape make_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t kh, int64_t kw,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    if (N < 1 || C < 1 || H < 1 || W < 1 || K < 1 || kh < 1 || kw < 1)
        throw py::value_error("conv2d: every extent of x and w must be at least 1");
    if (sh < 1 || sw < 1) throw py::value_error("conv2d: stride must be at least 1");
    if (ph < 0 || pw < 0) throw py::value_error("conv2d: padding must be non-negative");
    // (the sums only once their terms are known to be small: binding_utils.h)
    if (!under_max_geometry({H, W, kh, kw, sh, sw, ph, pw}) || !under_max_geometry({H + 2 * ph, W + 2 * pw}))
        throw py::value_error("conv2d: the padded input, kernel and stride must be under 2^31 along each axis");
    if (kh > H + 2 * ph || kw > W + 2 * pw)
        throw py::value_error("conv2d: the kernel is larger than the padded input");
    return Conv2dShape{N, C, H, W, K, kh, kw, sh, sw, ph, pw, (H + 2 * ph - kh) / sh + 1, (W + 2 * pw - kw) / sw + 1};
}

static void need_4d(const py::array& a, const char* name) {
    if (a.ndim() != 4) throw py::value_error(std::string(name) + ": expected a 4-D array");
}

template <typename T>
static py::tuple forward(const py::array& x, const py::array& w, const py::object& b, int64_t sh, int64_t sw,
                         int64_t ph, int64_t pw) {
    need_4d(x, "x");
    need_4d(w, "w");
    const Conv2dShape s = make_shape(x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2),
                                     w.shape(3), sh, sw, ph, pw);
    const T* xd = checked_data<T>(x, "x", {s.N, s.C, s.H, s.W});
    const T* wd = checked_data<T>(w, "w", {s.K, s.C, s.kh, s.kw});
    const T* bd = b.is_none() ? nullptr : checked_data<T>(b.cast<py::array>(), "b", {s.K});
    py::array_t<T> out = output_array<T>({s.N, s.K, s.OH, s.OW});
    T* od = out.mutable_data();
    bool finite;
    {
        py::gil_scoped_release release;
        finite = conv2d_forward<T>(xd, wd, bd, od, s);
    }
    return py::make_tuple(out, finite);
}

template <typename T>
static py::array backward_data(const py::array& dout, const py::array& w, int64_t H, int64_t W, int64_t sh,
                               int64_t sw, int64_t ph, int64_t pw) {
    need_4d(dout, "dout");
    need_4d(w, "w");
    const Conv2dShape s =
        make_shape(dout.shape(0), w.shape(1), H, W, w.shape(0), w.shape(2), w.shape(3), sh, sw, ph, pw);
    const T* gd = checked_data<T>(dout, "dout", {s.N, s.K, s.OH, s.OW});
    const T* wd = checked_data<T>(w, "w", {s.K, s.C, s.kh, s.kw});
    py::array_t<T> dx = output_array<T>({s.N, s.C, s.H, s.W});
    T* dxd = dx.mutable_data();
    {
        py::gil_scoped_release release;
        conv2d_backward_data<T>(gd, wd, dxd, s);
    }
    return dx;
}

template <typename T>
static py::tuple backward_weight(const py::array& dout, const py::array& x, int64_t kh, int64_t kw, int64_t sh,
                                 int64_t sw, int64_t ph, int64_t pw, bool with_bias) {
    need_4d(dout, "dout");
    need_4d(x, "x");
    const Conv2dShape s =
        make_shape(x.shape(0), x.shape(1), x.shape(2), x.shape(3), dout.shape(1), kh, kw, sh, sw, ph, pw);
    const T* gd = checked_data<T>(dout, "dout", {s.N, s.K, s.OH, s.OW});
    const T* xd = checked_data<T>(x, "x", {s.N, s.C, s.H, s.W});
    py::array_t<T> dw({s.K, s.C, s.kh, s.kw});
    T* dwd = dw.mutable_data();
    py::object db = py::none();
    T* dbd = nullptr;
    if (with_bias) {
        py::array_t<T> db_array(s.K);
        dbd = db_array.mutable_data();
        db = db_array;
    }
    bool finite;
    {
        py::gil_scoped_release release;
        finite = conv2d_backward_weight<T>(gd, xd, dwd, dbd, s);
    }
    return py::make_tuple(dw, db, finite);
}

static bool overlaps(const py::array& x, const py::array& y) {
    const char* x0 = static_cast<const char*>(x.data());
    const char* y0 = static_cast<const char*>(y.data());
    return x0 < y0 + y.nbytes() && y0 < x0 + x.nbytes();
}

template <typename T>
static py::array gemm_checked(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                              const py::object& out, bool accumulate) {
    if (a.ndim() != 2 || b.ndim() != 2) throw py::value_error("gemm: a and b must be 2-D");
    const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t N = trans_b ? b.shape(0) : b.shape(1), Kb = trans_b ? b.shape(1) : b.shape(0);
    if (K != Kb) throw py::value_error("gemm: inner dimensions differ");
    const T* ad = checked_data<T>(a, "a", {a.shape(0), a.shape(1)});
    const T* bd = checked_data<T>(b, "b", {b.shape(0), b.shape(1)});
    py::array c;
    if (out.is_none()) {
        if (accumulate) throw py::value_error("gemm: accumulate needs out");
        c = output_array<T>({M, N});
    } else {
        c = out.cast<py::array>();
        checked_data<T>(c, "out", {M, N});
        if (!c.writeable()) throw py::value_error("gemm: out is read-only");
        if (overlaps(c, a) || overlaps(c, b)) throw py::value_error("gemm: out overlaps a or b");
    }
    T* cd = static_cast<T*>(c.mutable_data());
    {
        py::gil_scoped_release release;
        // A (M, K): Q(p, i) = a[i*K + p], or a (K, M) transposed: a[p*M + i]. Likewise for B.
        const StridedOperand<T> A = trans_a ? StridedOperand<T>(ad, M, 1) : StridedOperand<T>(ad, 1, K);
        const StridedOperand<T> B = trans_b ? StridedOperand<T>(bd, 1, K) : StridedOperand<T>(bd, N, 1);
        gemm<T>(M, N, K, A, B, cd, N, accumulate, nullptr, true);
    }
    return c;
}

void bind_conv2d(py::module_& m) {
    m.def(
        "conv2d_forward",
        [](const py::array& x, const py::array& w, const py::object& b, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw) {
            return dispatch_float(x, "x", [&](auto t) { return forward<decltype(t)>(x, w, b, sh, sw, ph, pw); });
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"),
        py::arg("pad_w"),
        "conv2d forward: x (N,C,H,W), w (K,C,kh,kw), b (K,) or None, C-contiguous, one dtype. "
        "Returns (out (N,K,OH,OW), whether out is finite).");
    m.def(
        "conv2d_backward_data",
        [](const py::array& dout, const py::array& w, int64_t H, int64_t W, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw) {
            return dispatch_float(dout, "dout", [&](auto t) {
                return backward_data<decltype(t)>(dout, w, H, W, sh, sw, ph, pw);
            });
        },
        py::arg("dout"), py::arg("w"), py::arg("H"), py::arg("W"), py::arg("stride_h"), py::arg("stride_w"),
        py::arg("pad_h"), py::arg("pad_w"), "conv2d gradient with respect to x: returns dx (N,C,H,W).");
    m.def(
        "conv2d_backward_weight",
        [](const py::array& dout, const py::array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw, bool with_bias) {
            return dispatch_float(dout, "dout", [&](auto t) {
                return backward_weight<decltype(t)>(dout, x, kh, kw, sh, sw, ph, pw, with_bias);
            });
        },
        py::arg("dout"), py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("stride_h"), py::arg("stride_w"),
        py::arg("pad_h"), py::arg("pad_w"), py::arg("with_bias"),
        "conv2d gradients with respect to w and b: returns (dw (K,C,kh,kw), db (K,) or None, whether both are "
        "finite).");
    m.def(
        "gemm",
        [](const py::array& a, const py::array& b, bool trans_a, bool trans_b, const py::object& out,
           bool accumulate) {
            return dispatch_float(a, "a", [&](auto t) {
                return gemm_checked<decltype(t)>(a, b, trans_a, trans_b, out, accumulate);
            });
        },
        py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("out") = py::none(), py::arg("accumulate") = false,
        "Our packed GEMM: op(a) @ op(b) with op = transpose when trans_* is set, written to a new array or to "
        "out (+= with accumulate). C-contiguous 2-D arrays of one dtype (float32 runs the AVX2/FMA 6x16 "
        "micro-kernel when available); out must not overlap a or b.");
    m.def("gemm_stream_bytes", &gemm_stream_bytes,
          "Bytes from which a C written once goes out with streaming stores (just over the last-level cache).");
    m.def("set_gemm_stream_bytes", &set_gemm_stream_bytes, py::arg("bytes"),
          "Sets that threshold (tests use it to reach the streaming kernels); returns the previous one.");
    m.def("last_level_cache_bytes", &last_level_cache_bytes,
          "Bytes of the largest cache level core 0 reports (sysfs, else sysconf; 8 MiB when neither says).");
}

}  // namespace fastnn
