#include "ceilings.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "cpu_features.h"

namespace fastnn {

double measure_fma_peak_gflops(int64_t iterations) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if (use_avx512()) return measure_fma_peak_gflops_avx512(iterations);
#endif
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if (use_avx2()) return measure_fma_peak_gflops_avx2(iterations);
#endif
    // Portable: 8 independent chains per thread hide the multiply-add latency; the compiler may
    // vectorise them for the baseline ISA, which is the ceiling the portable kernels can reach.
    double total_flops = 0;
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : total_flops)
    {
        float a[8] = {1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f};
        const float m = 0.9999999f, c = 1e-7f;
        for (int64_t it = 0; it < iterations; ++it)
            for (int k = 0; k < 8; ++k) a[k] = a[k] * m + c;
        float sink = 0;
        for (int k = 0; k < 8; ++k) sink += a[k];
        // The result must stay observable or the loop could be removed.
        total_flops += 2.0 * 8 * (double)iterations + (sink == 12345.0f ? 1.0 : 0.0);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return total_flops / seconds * 1e-9;
}

double copy_bandwidth_gbs(const float* src, float* dst, int64_t count) {
    auto t0 = std::chrono::steady_clock::now();
    // Each thread copies one contiguous slice, as a streaming kernel would.
#pragma omp parallel
    {
        int64_t begin, end;
        team_block(count, 1, begin, end);
        if (end > begin) std::memcpy(dst + begin, src + begin, (size_t)(end - begin) * sizeof(float));
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return 2.0 * (double)count * sizeof(float) / seconds * 1e-9;
}

}  // namespace fastnn
