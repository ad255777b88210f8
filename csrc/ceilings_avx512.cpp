// AVX-512: compiled with -mavx512f, called only when use_avx512() is true.
#include <immintrin.h>

#include <chrono>

#include "ceilings.h"

namespace fastnn {

double measure_fma_peak_gflops_avx512(int64_t iterations) {
    // 12 independent zmm accumulators per thread: more than the FMA latency (4 cycles) times the
    // two 512-bit FMA ports, so the loop runs at the issue limit, all in registers.
    double total_flops = 0;
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : total_flops)
    {
        __m512 acc[12];
        for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(1.0f + 0.01f * k);
        const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
        for (int64_t it = 0; it < iterations; ++it) {
            for (int k = 0; k < 12; ++k) acc[k] = _mm512_fmadd_ps(acc[k], m, c);
        }
        __m512 s = acc[0];
        for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
        total_flops += 2.0 * 16 * 12 * (double)iterations + (_mm512_reduce_add_ps(s) == 12345.0f ? 1.0 : 0.0);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return total_flops / seconds * 1e-9;
}

}  // namespace fastnn
