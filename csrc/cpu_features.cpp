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

// The choice is made once, at first use, from the CPU and FASTNN_SIMD; set_simd() changes it later.
static int& simd_choice() {
    static int choice = [] {
        const char* env = std::getenv("FASTNN_SIMD");
        bool forced_portable = env && std::strcmp(env, "portable") == 0;
        return (!forced_portable && cpu_supports_avx2_fma()) ? 1 : 0;
    }();
    return choice;
}

bool use_avx2() { return simd_choice() == 1; }

void set_simd(bool allow_avx2) { simd_choice() = (allow_avx2 && cpu_supports_avx2_fma()) ? 1 : 0; }

const char* simd_name() { return use_avx2() ? "avx2" : "portable"; }

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
