// fastnn._cuda: the CUDA kernels. Arrays arrive from CuPy as device pointers (integers) with CuPy's
// current stream; the Python layer (fastnn.functional) has checked dtypes, shapes and devices and
// allocated outputs and scratch. Kernels launch on that stream; nothing here synchronises.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "cuda_check.h"
#include "softmax_xent.h"

namespace py = pybind11;
using namespace fastnn::cuda;

template <typename T>
static T* ptr(std::uintptr_t p) {
    return reinterpret_cast<T*>(p);
}

static cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

static bool is_double(const std::string& dtype) {
    if (dtype == "float64") return true;
    if (dtype == "float32") return false;
    throw py::type_error("expected dtype float32 or float64, got " + dtype);
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
}
