// Measured machine ceilings that benchmark results are reported against:
//   - peak FMA throughput: a register-resident loop of independent fused multiply-adds on every thread;
//   - memory copy bandwidth: a large buffer copied by every thread (bytes read + bytes written per second).
#pragma once
#include <cstdint>

namespace fastnn {

// Returns GFLOP/s (one FMA = 2 flops) over `iterations` loop trips per thread, all threads running.
double measure_fma_peak_gflops(int64_t iterations);
// The loop uses the widest vectors the kernels run with now (AVX-512, AVX2/FMA or portable code).
double measure_fma_peak_gflops_avx2(int64_t iterations);    // ceilings_avx2.cpp
double measure_fma_peak_gflops_avx512(int64_t iterations);  // ceilings_avx512.cpp

// Copies `bytes` from src to dst with all threads; returns GB/s counting read + write traffic.
// Caller times repeats; this function times one copy.
double copy_bandwidth_gbs(const float* src, float* dst, int64_t count);

}  // namespace fastnn
