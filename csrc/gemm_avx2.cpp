// AVX2/FMA GEMM micro-kernels (compiled with -mavx2 -mfma, called only when use_avx2() is true).
//
// float 6 x 16: per reduction step, two 8-float loads of the B panel, six broadcasts of A and twelve
// FMAs into twelve ymm accumulators (12 + 2 + 1 = 15 of the 16 ymm registers). Twelve independent
// accumulator chains cover the FMA latency (4-5 cycles) times the FMA ports (2).
// double 6 x 8: the same shape of register block with 4-double vectors.
// The accumulators meet C only once, after the whole KC reduction: one load/store of C per KC
// block instead of one per FMA.
#include <immintrin.h>

#include "gemm.h"

namespace fastnn {

void sgemm_kernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       bool accumulate, const float* row_bias) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 16) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 ai = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
    }
    const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < 6; ++i) {
        float* row = c + i * ldc;
        __m256 start0, start1;
        if (accumulate) {
            start0 = _mm256_loadu_ps(row);
            start1 = _mm256_loadu_ps(row + 8);
        } else {
            start0 = start1 = row_bias ? _mm256_set1_ps(row_bias[i]) : _mm256_setzero_ps();
        }
        _mm256_storeu_ps(row, _mm256_add_ps(start0, acc[i][0]));
        _mm256_storeu_ps(row + 8, _mm256_add_ps(start1, acc[i][1]));
    }
}

void dgemm_kernel_avx2(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       bool accumulate, const double* row_bias) {
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 8) {
        const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
        __m256d ai = _mm256_broadcast_sd(a + 0);
        c00 = _mm256_fmadd_pd(ai, b0, c00);
        c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a + 1);
        c10 = _mm256_fmadd_pd(ai, b0, c10);
        c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a + 2);
        c20 = _mm256_fmadd_pd(ai, b0, c20);
        c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a + 3);
        c30 = _mm256_fmadd_pd(ai, b0, c30);
        c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a + 4);
        c40 = _mm256_fmadd_pd(ai, b0, c40);
        c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a + 5);
        c50 = _mm256_fmadd_pd(ai, b0, c50);
        c51 = _mm256_fmadd_pd(ai, b1, c51);
    }
    const __m256d acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < 6; ++i) {
        double* row = c + i * ldc;
        __m256d start0, start1;
        if (accumulate) {
            start0 = _mm256_loadu_pd(row);
            start1 = _mm256_loadu_pd(row + 4);
        } else {
            start0 = start1 = row_bias ? _mm256_set1_pd(row_bias[i]) : _mm256_setzero_pd();
        }
        _mm256_storeu_pd(row, _mm256_add_pd(start0, acc[i][0]));
        _mm256_storeu_pd(row + 4, _mm256_add_pd(start1, acc[i][1]));
    }
}

}  // namespace fastnn
