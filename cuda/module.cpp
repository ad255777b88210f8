// fastnn._cuda: the CUDA kernels. Arrays arrive from CuPy as device pointers (integers) with CuPy's
// current stream; the Python layer (fastnn.functional) has checked dtypes, shapes and devices and
// allocated outputs and scratch. Kernels launch on that stream; nothing here synchronises.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "batch_norm.h"
#include "conv2d.h"
#include "cuda_check.h"
#include "gemm.h"
#include "lstm.h"
#include "pool.h"
#include "softmax_xent.h"

namespace py = pybind11;
using namespace fastnn::cuda;

// A device pointer from Python as a T*. The Python layer passes C-contiguous, aligned CuPy arrays; a
// pointer not aligned to T (a view at an odd byte offset) would fault the kernel with a misaligned
// address, which poisons the CUDA context, so it is refused here.
template <typename T>
static T* ptr(std::uintptr_t p) {
    if (p % alignof(T) != 0)
        throw py::value_error("device array not aligned to its element size (pass a copy of it)");
    return reinterpret_cast<T*>(p);
}

// The batch-norm partials scratch as a double*: the kernels read and write it as double2, 16-byte
// loads and stores, so a float64 view 8 bytes into an allocation (which ptr<double> would pass)
// would fault with a misaligned address.
static double* partials_ptr(std::uintptr_t p) {
    if (p % alignof(double2) != 0)
        throw py::value_error("batch_norm partials scratch not aligned to 16 bytes (pass a fresh float64 array)");
    return reinterpret_cast<double*>(p);
}

static cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

static bool is_double(const std::string& dtype) {
    if (dtype == "float64") return true;
    if (dtype == "float32") return false;
    throw py::type_error("expected dtype float32 or float64, got " + dtype);
}

// Calls f with a null double* or float*, so one generic lambda body serves both dtypes.
template <typename F>
static void with_dtype(bool use_double, F&& f) {
    if (use_double)
        f(static_cast<double*>(nullptr));
    else
        f(static_cast<float*>(nullptr));
}

// Shapes arrive as tuples: (N, C, H, W, K, R, S, stride_h, stride_w, pad_h, pad_w, P, Q).
static Conv2dShape conv2d_shape(const py::tuple& t) {
    if (t.size() != 13) throw py::value_error("conv2d shape: expected 13 integers");
    auto v = [&](size_t i) { return t[i].cast<int64_t>(); };
    return {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8), v(9), v(10), v(11), v(12)};
}

// (N, C, H, W, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, P, Q)
static Pool2dShape pool2d_shape(const py::tuple& t) {
    if (t.size() != 12) throw py::value_error("pool2d shape: expected 12 integers");
    auto v = [&](size_t i) { return t[i].cast<int64_t>(); };
    return {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8), v(9), v(10), v(11)};
}

static void bind_conv2d(py::module_& m) {
    m.def(
        "conv2d_backward_weight_splits",
        [](const py::tuple& shape) {
            Conv2dShape g = conv2d_shape(shape);
            conv2d_check_shape(g);
            return conv2d_backward_weight_splits(g);
        },
        py::arg("shape"), "Slices conv2d backward-weight cuts its N*P*Q reduction into.");
    m.def(
        "conv2d_backward_weight_scratch",
        [](const py::tuple& shape) { return conv2d_backward_weight_scratch(conv2d_shape(shape)); },
        py::arg("shape"), "Elements of scratch conv2d_backward_weight needs.");
    m.def(
        "conv2d_forward",
        [](const std::string& dtype, std::uintptr_t x, std::uintptr_t w, std::uintptr_t b,
           std::uintptr_t out, const py::tuple& shape, std::uintptr_t stream) {
            Conv2dShape g = conv2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                conv2d_forward<T>(ptr<const T>(x), ptr<const T>(w), ptr<const T>(b), ptr<T>(out), g,
                                  as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"),
        py::arg("shape"), py::arg("stream"));
    m.def(
        "conv2d_backward_data",
        [](const std::string& dtype, std::uintptr_t dout, std::uintptr_t w, std::uintptr_t dx,
           const py::tuple& shape, std::uintptr_t stream) {
            Conv2dShape g = conv2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                conv2d_backward_data<T>(ptr<const T>(dout), ptr<const T>(w), ptr<T>(dx), g,
                                        as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("dout"), py::arg("w"), py::arg("dx"), py::arg("shape"),
        py::arg("stream"));
    m.def(
        "conv2d_backward_weight",
        [](const std::string& dtype, std::uintptr_t dout, std::uintptr_t x, std::uintptr_t dw,
           std::uintptr_t db, std::uintptr_t scratch, const py::tuple& shape,
           std::uintptr_t stream) {
            Conv2dShape g = conv2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                conv2d_backward_weight<T>(ptr<const T>(dout), ptr<const T>(x), ptr<T>(dw), ptr<T>(db),
                                          ptr<T>(scratch), g, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("dout"), py::arg("x"), py::arg("dw"), py::arg("db"),
        py::arg("scratch"), py::arg("shape"), py::arg("stream"));
}

static void bind_pool2d(py::module_& m) {
    m.def(
        "max_pool2d_forward",
        [](const std::string& dtype, std::uintptr_t x, std::uintptr_t out, std::uintptr_t argmax,
           const py::tuple& shape, std::uintptr_t stream) {
            Pool2dShape g = pool2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                max_pool2d_forward<T>(ptr<const T>(x), ptr<T>(out), ptr<int32_t>(argmax), g,
                                      as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("x"), py::arg("out"), py::arg("argmax"), py::arg("shape"),
        py::arg("stream"));
    m.def(
        "max_pool2d_backward",
        [](const std::string& dtype, std::uintptr_t dout, std::uintptr_t argmax, std::uintptr_t dx,
           const py::tuple& shape, std::uintptr_t stream) {
            Pool2dShape g = pool2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                max_pool2d_backward<T>(ptr<const T>(dout), ptr<const int32_t>(argmax), ptr<T>(dx), g,
                                       as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("dout"), py::arg("argmax"), py::arg("dx"), py::arg("shape"),
        py::arg("stream"));
    m.def(
        "avg_pool2d_forward",
        [](const std::string& dtype, std::uintptr_t x, std::uintptr_t out, const py::tuple& shape,
           std::uintptr_t stream) {
            Pool2dShape g = pool2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                avg_pool2d_forward<T>(ptr<const T>(x), ptr<T>(out), g, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("x"), py::arg("out"), py::arg("shape"), py::arg("stream"));
    m.def(
        "avg_pool2d_backward",
        [](const std::string& dtype, std::uintptr_t dout, std::uintptr_t dx, const py::tuple& shape,
           std::uintptr_t stream) {
            Pool2dShape g = pool2d_shape(shape);
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                avg_pool2d_backward<T>(ptr<const T>(dout), ptr<T>(dx), g, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("dout"), py::arg("dx"), py::arg("shape"), py::arg("stream"));
}

static void bind_batch_norm(py::module_& m) {
    m.def(
        "batch_norm_chunks",
        [](int64_t n, int64_t c, int64_t l) { return batch_norm_chunks({n, c, l}); },
        py::arg("n"), py::arg("c"), py::arg("l"),
        "Chunks per channel of the batch-norm reductions; the partials scratch holds 2*C*chunks doubles.");
    m.def(
        "batch_norm_forward_training",
        [](const std::string& dtype, std::uintptr_t x, std::uintptr_t gamma, std::uintptr_t beta,
           std::uintptr_t y, std::uintptr_t save_mean, std::uintptr_t save_invstd,
           std::uintptr_t running_mean, std::uintptr_t running_var, std::uintptr_t partials,
           double momentum, double eps, int64_t n, int64_t c, int64_t l, std::uintptr_t stream) {
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                batch_norm_forward_training<T>(
                    ptr<const T>(x), ptr<const T>(gamma), ptr<const T>(beta), ptr<T>(y),
                    ptr<T>(save_mean), ptr<T>(save_invstd), ptr<T>(running_mean),
                    ptr<T>(running_var), partials_ptr(partials), momentum, eps, {n, c, l},
                    as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("y"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("partials"), py::arg("momentum"), py::arg("eps"),
        py::arg("n"), py::arg("c"), py::arg("l"), py::arg("stream"));
    m.def(
        "batch_norm_forward_eval",
        [](const std::string& dtype, std::uintptr_t x, std::uintptr_t gamma, std::uintptr_t beta,
           std::uintptr_t mean, std::uintptr_t invstd, std::uintptr_t y, int64_t n, int64_t c,
           int64_t l, std::uintptr_t stream) {
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                batch_norm_forward_eval<T>(ptr<const T>(x), ptr<const T>(gamma), ptr<const T>(beta),
                                           ptr<const T>(mean), ptr<const T>(invstd), ptr<T>(y),
                                           {n, c, l}, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("mean"),
        py::arg("invstd"), py::arg("y"), py::arg("n"), py::arg("c"), py::arg("l"),
        py::arg("stream"));
    m.def(
        "batch_norm_backward",
        [](const std::string& dtype, std::uintptr_t dout, std::uintptr_t x, std::uintptr_t gamma,
           std::uintptr_t mean, std::uintptr_t invstd, std::uintptr_t dx, std::uintptr_t dgamma,
           std::uintptr_t dbeta, std::uintptr_t partials, bool training, int64_t n, int64_t c,
           int64_t l, std::uintptr_t stream) {
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                batch_norm_backward<T>(ptr<const T>(dout), ptr<const T>(x), ptr<const T>(gamma),
                                       ptr<const T>(mean), ptr<const T>(invstd), ptr<T>(dx),
                                       ptr<T>(dgamma), ptr<T>(dbeta), partials_ptr(partials),
                                       training, {n, c, l}, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("dout"), py::arg("x"), py::arg("gamma"), py::arg("mean"),
        py::arg("invstd"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"), py::arg("partials"),
        py::arg("training"), py::arg("n"), py::arg("c"), py::arg("l"), py::arg("stream"));
}

static void bind_lstm(py::module_& m) {
    m.def(
        "lstm_cell_forward",
        [](const std::string& dtype, std::uintptr_t gates, std::uintptr_t b, std::uintptr_t c_prev,
           std::uintptr_t c, std::uintptr_t h, std::uintptr_t tanh_c, int64_t n, int64_t hidden,
           std::uintptr_t stream) {
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                lstm_cell_forward<T>(ptr<T>(gates), ptr<const T>(b), ptr<const T>(c_prev), ptr<T>(c),
                                     ptr<T>(h), ptr<T>(tanh_c), n, hidden, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("gates"), py::arg("b"), py::arg("c_prev"), py::arg("c"),
        py::arg("h"), py::arg("tanh_c"), py::arg("n"), py::arg("hidden"), py::arg("stream"));
    m.def(
        "lstm_cell_backward",
        [](const std::string& dtype, std::uintptr_t acts, std::uintptr_t c_prev,
           std::uintptr_t tanh_c, std::uintptr_t dh, std::uintptr_t dc, std::uintptr_t dgates, std::uintptr_t dc_prev,
           int64_t n, int64_t hidden, std::uintptr_t stream) {
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                lstm_cell_backward<T>(ptr<const T>(acts), ptr<const T>(c_prev), ptr<const T>(tanh_c),
                                      ptr<const T>(dh), ptr<const T>(dc), ptr<T>(dgates),
                                      ptr<T>(dc_prev), n, hidden, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("acts"), py::arg("c_prev"), py::arg("tanh_c"), py::arg("dh"),
        py::arg("dc"), py::arg("dgates"), py::arg("dc_prev"), py::arg("n"), py::arg("hidden"),
        py::arg("stream"));
}

static void bind_gemm(py::module_& m) {
    m.def(
        "gemm",
        [](const std::string& dtype, std::uintptr_t a, std::uintptr_t b, std::uintptr_t c, int64_t rows,
           int64_t cols, int64_t inner, bool trans_a, bool trans_b, bool accumulate, std::uintptr_t stream) {
            const bool use_double = is_double(dtype);  // may raise: before the GIL is released
            if (rows < 0 || cols < 0 || inner < 0) throw py::value_error("gemm: negative dimension");
            if (rows > kGemmMaxRows)
                throw py::value_error("gemm: at most " + std::to_string(kGemmMaxRows) + " rows");
            py::gil_scoped_release release;
            with_dtype(use_double, [&](auto* tag) {
                using T = std::remove_pointer_t<decltype(tag)>;
                gemm<T>(ptr<const T>(a), ptr<const T>(b), ptr<T>(c), rows, cols, inner, trans_a, trans_b,
                        accumulate, as_stream(stream));
            });
        },
        py::arg("dtype"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("m"), py::arg("n"), py::arg("k"),
        py::arg("trans_a"), py::arg("trans_b"), py::arg("accumulate"), py::arg("stream"),
        "C (m x n) = op(A) op(B) (+= with accumulate); the GEMM used while a CUDA graph is captured.");
}

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "fastnn CUDA kernels (pointers from CuPy, launched on CuPy's current stream)";

    m.def("device_count", [] {
        int n = 0;
        // No driver or no GPU: report zero devices rather than raising.
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError();
            return 0;
        }
        return n;
    });
    // Why device_count() said zero: "" when the runtime found devices, else the CUDA error (e.g.
    // cudaErrorNoDevice, or cudaErrorInsufficientDriver when the driver is older than the runtime
    // this module was built with), so that `fastnn info` can say why the GPU path is off.
    m.def("device_count_error", [] {
        int n = 0;
        const cudaError_t e = cudaGetDeviceCount(&n);
        if (e == cudaSuccess) return std::string();
        cudaGetLastError();
        return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    });
    m.def("runtime_version", [] {
        int v = 0;
        cudaRuntimeGetVersion(&v);
        return v;
    });

    m.def(
        "softmax_xent_forward",
        [](const std::string& dtype, std::uintptr_t scores, std::uintptr_t labels,
           std::uintptr_t lse, std::uintptr_t row_loss, std::uintptr_t loss, int64_t rows,
           int64_t classes, std::uintptr_t stream) {
            if (rows < 1 || classes < 1) throw py::value_error("N and C must be at least 1");
            py::gil_scoped_release release;
            if (is_double(dtype))
                softmax_xent_forward<double>(ptr<const double>(scores), ptr<const int64_t>(labels),
                                             ptr<double>(lse), ptr<double>(row_loss),
                                             ptr<double>(loss), rows, classes, as_stream(stream));
            else
                softmax_xent_forward<float>(ptr<const float>(scores), ptr<const int64_t>(labels),
                                            ptr<float>(lse), ptr<double>(row_loss),
                                            ptr<float>(loss), rows, classes, as_stream(stream));
        },
        py::arg("dtype"), py::arg("scores"), py::arg("labels"), py::arg("lse"), py::arg("row_loss"),
        py::arg("loss"), py::arg("rows"), py::arg("classes"), py::arg("stream"));

    m.def(
        "softmax_xent_backward",
        [](const std::string& dtype, std::uintptr_t scores, std::uintptr_t labels,
           std::uintptr_t lse, std::uintptr_t dloss, double dloss_value, std::uintptr_t dscores,
           int64_t rows, int64_t classes, std::uintptr_t stream) {
            if (rows < 1 || classes < 1) throw py::value_error("N and C must be at least 1");
            py::gil_scoped_release release;
            if (is_double(dtype))
                softmax_xent_backward<double>(ptr<const double>(scores), ptr<const int64_t>(labels),
                                              ptr<const double>(lse), ptr<const double>(dloss),
                                              dloss_value, ptr<double>(dscores), rows, classes,
                                              as_stream(stream));
            else
                softmax_xent_backward<float>(ptr<const float>(scores), ptr<const int64_t>(labels),
                                             ptr<const float>(lse), ptr<const float>(dloss),
                                             dloss_value, ptr<float>(dscores), rows, classes,
                                             as_stream(stream));
        },
        py::arg("dtype"), py::arg("scores"), py::arg("labels"), py::arg("lse"), py::arg("dloss"),
        py::arg("dloss_value"), py::arg("dscores"), py::arg("rows"), py::arg("classes"),
        py::arg("stream"));

    bind_conv2d(m);
    bind_pool2d(m);
    bind_batch_norm(m);
    bind_lstm(m);
    bind_gemm(m);
}
