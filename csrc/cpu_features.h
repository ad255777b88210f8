// Run-time CPU feature selection and the thread count.
//
// AVX2/FMA kernels live in *_avx2.cpp translation units compiled with -mavx2 -mfma. They may only
// be called when use_avx2() is true: the CPU supports AVX2 and FMA, the build included them, and the
// user has not forced the portable path (FASTNN_SIMD=portable in the environment, or set_simd()).
#pragma once
#include <cstdint>

namespace fastnn {

bool cpu_supports_avx2_fma();       // what the CPU can do
bool use_avx2();                    // what the kernels will use now
void set_simd(bool allow_avx2);     // false forces the portable kernels (for testing both paths)
const char* simd_name();            // "avx2" or "portable"

int get_num_threads();
void set_num_threads(int n);
bool openmp_enabled();

// Inside a parallel region: the calling thread's number and the team's size ({0, 1} outside one,
// or without OpenMP).
struct TeamPosition {
    int thread, threads;
};
TeamPosition team_position();

// Inside a parallel region: the calling thread's share [begin, end) of [0, total), contiguous and a
// multiple of `granule` wide (only the last share may be shorter; late threads may get none).
void team_block(int64_t total, int64_t granule, int64_t& begin, int64_t& end);

}  // namespace fastnn
