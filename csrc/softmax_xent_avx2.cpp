// AVX2/FMA row kernels for softmax cross-entropy (float). Compiled with -mavx2 -mfma and called only
// when use_avx2() is true. See softmax_xent.h for the math and the memory passes.
#include <cmath>

#include "avx2_math.h"
#include "softmax_xent.h"

namespace fastnn {

float softmax_xent_row_lse_avx2(const float* x, int64_t classes) {
    const int64_t full = classes & ~int64_t(7);
    const int64_t tail = classes - full;
    const __m256i mask = avx2::tail_mask(tail);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);

    // Sweep 1: the row max (two accumulators to overlap the max latency).
    __m256 m0 = neg_inf, m1 = neg_inf;
    int64_t j = 0;
    for (; j + 16 <= full; j += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + j + 8));
    }
    if (j < full) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
    if (tail) m1 = _mm256_max_ps(m1, _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + full, mask),
                                                      _mm256_castsi256_ps(mask)));
    const float m = avx2::hmax(_mm256_max_ps(m0, m1));
    const __m256 vm = _mm256_set1_ps(m);

    // Sweep 2 (from cache): sum of exp(x - m). Sixteen float partial sums keep the rounding error
    // of long rows small.
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    j = 0;
    for (; j + 16 <= full; j += 16) {
        s0 = _mm256_add_ps(s0, avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm)));
        s1 = _mm256_add_ps(s1, avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm)));
    }
    if (j < full) s0 = _mm256_add_ps(s0, avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm)));
    if (tail) {
        __m256 e = avx2::exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + full, mask), vm));
        s1 = _mm256_add_ps(s1, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
    }
    return m + std::log(avx2::hsum(_mm256_add_ps(s0, s1)));
}

void softmax_xent_row_backward_avx2(const float* x, int64_t classes, float lse, float scale,
                                    float* dx) {
    const int64_t full = classes & ~int64_t(7);
    const __m256 vlse = _mm256_set1_ps(lse), vscale = _mm256_set1_ps(scale);
    for (int64_t j = 0; j < full; j += 8) {
        __m256 p = avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vlse));
        _mm256_storeu_ps(dx + j, _mm256_mul_ps(vscale, p));
    }
    if (classes > full) {
        const __m256i mask = avx2::tail_mask(classes - full);
        __m256 p = avx2::exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + full, mask), vlse));
        _mm256_maskstore_ps(dx + full, mask, _mm256_mul_ps(vscale, p));
    }
}

}  // namespace fastnn
