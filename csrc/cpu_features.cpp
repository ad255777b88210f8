#include "cpu_features.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastnn {

bool cpu_supports_avx2_fma() {
#if defined(FASTNN_HAVE_AVX2_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

bool cpu_supports_avx512() {
#if defined(FASTNN_HAVE_AVX512_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    // (libgcc's check includes the OS saving the zmm state, from XGETBV.)
    __builtin_cpu_init();
    return cpu_supports_avx2_fma() && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

int best_simd_level() { return cpu_supports_avx512() ? kSimdAvx512 : cpu_supports_avx2_fma() ? kSimdAvx2 : kSimdPortable; }

// The choice is made once, at first use, from the CPU and FASTNN_SIMD; set_simd() changes it later.
static int& simd_choice() {
    static int choice = [] {
        const char* env = std::getenv("FASTNN_SIMD");
        const int cap = env ? simd_level_from_name(env) : -1;  // (an unknown name caps nothing)
        return cap < 0 ? best_simd_level() : std::min(cap, best_simd_level());
    }();
    return choice;
}

bool use_avx2() { return simd_choice() >= kSimdAvx2; }

bool use_avx512() { return simd_choice() >= kSimdAvx512; }

void set_simd(bool allow_avx2) { simd_choice() = allow_avx2 ? best_simd_level() : kSimdPortable; }

void set_simd_level(int level) { simd_choice() = std::max<int>(kSimdPortable, std::min(level, best_simd_level())); }

static const char* const kSimdNames[] = {"portable", "avx2", "avx512"};  // by level

const char* simd_level_name(int level) { return kSimdNames[std::max<int>(kSimdPortable, std::min<int>(level, kSimdAvx512))]; }

int simd_level_from_name(const char* name) {
    for (int level = kSimdPortable; level <= kSimdAvx512; ++level)
        if (std::strcmp(name, kSimdNames[level]) == 0) return level;
    return -1;
}

const char* simd_name() { return simd_level_name(simd_choice()); }

int get_num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

TeamPosition team_position() {
#ifdef _OPENMP
    return {omp_get_thread_num(), omp_get_num_threads()};
#else
    return {0, 1};
#endif
}

void team_block(int64_t total, int64_t granule, int64_t& begin, int64_t& end) {
    const auto [thread, threads] = team_position();
    const int64_t width = ((total + threads - 1) / threads + granule - 1) / granule * granule;
    begin = std::min<int64_t>(thread * width, total);
    end = std::min<int64_t>(begin + width, total);
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace fastnn
