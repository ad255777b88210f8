#include "cpu_features.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>  // sysconf
#endif

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

// A sysfs cache size such as "32768K" or "8M", in bytes (0 when unreadable).
static int64_t sysfs_cache_bytes(const std::string& text) {
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() || value <= 0) return 0;
    switch (*end) {
        case 'K': return (int64_t)value << 10;
        case 'M': return (int64_t)value << 20;
        case 'G': return (int64_t)value << 30;
        default: return (int64_t)value;
    }
}

int64_t last_level_cache_bytes() {
    static const int64_t bytes = [] {
        int best_level = 0;
        int64_t best = 0;
        for (int index = 0; index < 16; ++index) {
            const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
            std::ifstream level_file(dir + "level"), type_file(dir + "type"), size_file(dir + "size");
            int level = 0;
            std::string type, size;
            if (!(level_file >> level) || !(type_file >> type) || !(size_file >> size)) break;
            if (type == "Instruction") continue;
            const int64_t b = sysfs_cache_bytes(size);
            if (b > 0 && level >= best_level) best_level = level, best = b;
        }
#ifdef _SC_LEVEL3_CACHE_SIZE
        if (best == 0) best = std::max<long>(0, sysconf(_SC_LEVEL3_CACHE_SIZE));
        if (best == 0) best = std::max<long>(0, sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
        return best > 0 ? best : int64_t(8) << 20;
    }();
    return bytes;
}

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
