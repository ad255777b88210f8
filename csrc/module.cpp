// fastnn._C: the CPU kernels. Bindings stay thin: check, release the GIL, call a plain C++ function.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "binding_utils.h"
#include "bindings.h"
#include "buffer_cache.h"
#include "ceilings.h"
#include "cpu_features.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
    m.doc() = "fastnn CPU kernels (C++, OpenMP, AVX2/FMA chosen at run time)";
    py::register_exception<fastnn::NonFiniteInput>(m, "NonFiniteError", PyExc_ValueError);

    m.def("get_num_threads", &fastnn::get_num_threads, "Threads the CPU kernels use.");
    m.def("set_num_threads", &fastnn::set_num_threads, py::arg("n"),
          "Sets the threads the CPU kernels use (the default follows OMP_NUM_THREADS).");
    m.def("openmp_enabled", &fastnn::openmp_enabled, "Whether the module was built with OpenMP.");
    m.def("cpu_supports_avx2_fma", &fastnn::cpu_supports_avx2_fma);
    m.def("cpu_supports_avx512", &fastnn::cpu_supports_avx512,
          "Whether the CPU has AVX-512F and this build has AVX-512 kernels.");
    m.def("simd", &fastnn::simd_name, "Which kernels run now: 'avx512', 'avx2' or 'portable'.");
    m.def("set_simd", &fastnn::set_simd, py::arg("allow_avx2"),
          "False forces the portable kernels; True uses the best the CPU has (AVX-512, else AVX2/FMA).");
    m.def(
        "set_simd",
        [](const std::string& name) {
            const int level = fastnn::simd_level_from_name(name.c_str());
            if (level < 0)
                throw py::value_error("set_simd: expected 'avx512', 'avx2' or 'portable', got '" + name + "'");
            if (level > fastnn::best_simd_level())
                throw py::value_error("set_simd: this CPU (or build) has no " + name + " kernels; best is '" +
                                      fastnn::simd_level_name(fastnn::best_simd_level()) + "'");
            fastnn::set_simd_level(level);
        },
        py::arg("level"), "Chooses the kernels by name: 'avx512', 'avx2' or 'portable' (ValueError if the CPU lacks it).");

    m.def(
        "measure_fma_peak_gflops",
        [](int64_t iterations) {
            py::gil_scoped_release release;
            return fastnn::measure_fma_peak_gflops(iterations);
        },
        py::arg("iterations") = 20000000,
        "GFLOP/s of a register-resident FMA loop on all threads (the compute ceiling).");
    m.def(
        "copy_bandwidth_gbs",
        [](const py::array& src, py::array& dst) {
            const float* s = fastnn::checked_data<float>(src, "src", {-1});
            float* d = fastnn::checked_data<float>(dst, "dst", {src.shape(0)});
            if (!dst.writeable()) throw py::value_error("dst: read-only array");
            py::gil_scoped_release release;
            return fastnn::copy_bandwidth_gbs(s, d, (int64_t)src.shape(0));
        },
        py::arg("src"), py::arg("dst"),
        "Copies src into dst (1-D float32) on all threads; returns GB/s (read + write bytes).");

    m.def("buffer_cache_bytes", &fastnn::buffer_cache_bytes,
          "Bytes of freed large output arrays held for reuse (see buffer_cache.h).");
    m.def("clear_buffer_cache", &fastnn::clear_buffer_cache, "Returns the held buffers to the OS.");
    m.def("set_buffer_cache_limit", &fastnn::set_buffer_cache_limit, py::arg("bytes"),
          "Most bytes of freed buffers to hold (0: none); clears the cache.");
    m.def("buffer_cache_limit", &fastnn::buffer_cache_limit, "The limit (FASTNN_BUFFER_CACHE_MB at import, in bytes).");
    m.def(
        "set_buffer_cache_idle_seconds",
        [](double seconds) {
            if (!(seconds >= 0 && seconds <= 1e6))
                throw py::value_error("set_buffer_cache_idle_seconds: seconds must be a number in [0, 1e6]");
            fastnn::set_buffer_cache_idle_seconds(seconds);
        },
        py::arg("seconds"),
        "Blocks idle longer than this go back to the OS at the next allocation or free (default 10).");
    m.def("buffer_cache_idle_seconds", &fastnn::buffer_cache_idle_seconds, "The idle limit in seconds.");

    fastnn::bind_softmax_xent(m);
    fastnn::bind_conv2d(m);
    fastnn::bind_pool(m);
    fastnn::bind_batch_norm(m);
    fastnn::bind_lstm(m);
    fastnn::bind_optim(m);
    fastnn::bind_activation(m);
}
