// AVX2/FMA: compiled with -mavx2 -mfma, called only when use_avx2() is true.
#include <immintrin.h>

#include <chrono>

#include "ceilings.h"

namespace fastnn {

double measure_fma_peak_gflops_avx2(int64_t iterations) {
    // 10 independent accumulators per thread: enough to cover FMA latency (4-5 cycles) times the
    // two FMA ports of current x86 cores, so the loop runs at the issue limit, all in registers.
    double total_flops = 0;
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : total_flops)
    {
        __m256 acc[10];
        for (int k = 0; k < 10; ++k) acc[k] = _mm256_set1_ps(1.0f + 0.01f * k);
        const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
        for (int64_t it = 0; it < iterations; ++it) {
            for (int k = 0; k < 10; ++k) acc[k] = _mm256_fmadd_ps(acc[k], m, c);
        }
        __m256 s = acc[0];
        for (int k = 1; k < 10; ++k) s = _mm256_add_ps(s, acc[k]);
        float lanes[8];
        _mm256_storeu_ps(lanes, s);
        total_flops += 2.0 * 8 * 10 * (double)iterations + (lanes[0] == 12345.0f ? 1.0 : 0.0);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return total_flops / seconds * 1e-9;
}

}  // namespace fastnn
