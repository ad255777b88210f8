// Run-time CPU feature selection and the thread count.
//
// AVX2/FMA kernels live in *_avx2.cpp translation units compiled with -mavx2 -mfma. They may only
// be called when use_avx2() is true: the CPU supports AVX2 and FMA, the build included them, and the
// user has not forced the portable path (FASTNN_SIMD=portable in the environment, or set_simd()).
// AVX-512 kernels (*_avx512.cpp, -mavx512f) exist where they pay (the GEMM micro-kernel) and may
// only be called when use_avx512() is true; everything else keeps its AVX2 kernel on such a CPU.
// Levels: 0 portable, 1 AVX2/FMA, 2 AVX-512 (which implies 1). FASTNN_SIMD=portable|avx2|avx512
// caps the level at start-up (never above what the CPU and the build have).
#pragma once
#include <cstdint>

namespace fastnn {

enum SimdLevel : int { kSimdPortable = 0, kSimdAvx2 = 1, kSimdAvx512 = 2 };

bool cpu_supports_avx2_fma();       // what the CPU can do (and the build has kernels for)
bool cpu_supports_avx512();
int best_simd_level();              // the highest level the CPU and the build allow
bool use_avx2();                    // AVX2 kernels may run now (level >= 1)
bool use_avx512();                  // AVX-512 kernels run now (level 2)
void set_simd(bool allow_avx2);     // false forces the portable kernels; true the best level
void set_simd_level(int level);     // min(level, best_simd_level()) (for testing every path)
const char* simd_name();            // "avx512", "avx2" or "portable"
const char* simd_level_name(int level);     // the name of a level
int simd_level_from_name(const char* name);  // its level, or -1 for an unknown name

// Bytes of the largest cache level this CPU's core 0 reports (Linux sysfs, else sysconf), or 8 MiB
// when neither says. (sysfs, not sysconf: on a virtual machine glibc's sysconf may count the L3 of
// the whole package, 256 MiB on a 32 MiB-per-CCX EPYC, where sysfs gives the slice a core uses.)
int64_t last_level_cache_bytes();

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
