// AVX2/FMA softmax rows (float) for the fused softmax cross-entropy. Compiled with -mavx2 -mfma and
// called only when use_avx2() is true. See softmax_xent.h for the math and the memory passes.
#include <algorithm>
#include <cmath>

#include "avx2_math.h"
#include "softmax_xent.h"

namespace fastnn {

// Rows this short go through the block path.
static constexpr int64_t kBlockPathMaxClasses = 64;
static constexpr int64_t kBlockPathMaxRows = 512;

// p[0..count) = exp(p[0..count)), in place.
static void exp_in_place(float* p, int64_t count) {
    int64_t k = 0;
    for (; k + 8 <= count; k += 8) _mm256_storeu_ps(p + k, avx2::exp_ps(_mm256_loadu_ps(p + k)));
    if (k < count) {
        const __m256i mask = avx2::tail_mask(count - k);
        _mm256_maskstore_ps(p + k, mask, avx2::exp_ps(_mm256_maskload_ps(p + k, mask)));
    }
}

// Short rows, a block at a time: the row-wise steps are scalar and cheap; the expensive exp and
// log run as flat vector loops over the whole block.
static void softmax_short_rows(const float* x, int64_t rows, int64_t classes, float* p,
                               float* inv_sum, float* lse) {
    alignas(32) float row_max[kBlockPathMaxRows], row_sum[kBlockPathMaxRows];
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * classes;
        float m = xr[0];
        for (int64_t j = 1; j < classes; ++j) m = xr[j] > m ? xr[j] : m;
        row_max[r] = m;
        float* pr = p + r * classes;
        for (int64_t j = 0; j < classes; ++j) pr[j] = xr[j] - m;
    }
    exp_in_place(p, rows * classes);
    for (int64_t r = 0; r < rows; ++r) {
        const float* pr = p + r * classes;
        float s = 0.0f;
        for (int64_t j = 0; j < classes; ++j) s += pr[j];
        row_sum[r] = s;
    }
    // lse = m + log(s) and 1/s for 8 rows at a time.
    int64_t r = 0;
    for (; r + 8 <= rows; r += 8) {
        __m256 s = _mm256_load_ps(row_sum + r);
        _mm256_storeu_ps(lse + r, _mm256_add_ps(_mm256_load_ps(row_max + r), avx2::log_ps(s)));
        _mm256_storeu_ps(inv_sum + r, _mm256_div_ps(_mm256_set1_ps(1.0f), s));
    }
    for (; r < rows; ++r) {
        lse[r] = row_max[r] + std::log(row_sum[r]);
        inv_sum[r] = 1.0f / row_sum[r];
    }
}

// Long rows, one at a time: sweep 1 finds the max, sweep 2 (from cache) writes exp(x - m) and sums it.
static void softmax_long_row(const float* x, int64_t classes, float* p, float* inv_sum, float* lse) {
    const int64_t full = classes & ~int64_t(7);
    const int64_t tail = classes - full;
    const __m256i mask = avx2::tail_mask(tail);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);

    __m256 m0 = neg_inf, m1 = neg_inf;
    int64_t j = 0;
    for (; j + 16 <= full; j += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + j + 8));
    }
    if (j < full) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
    if (tail)
        m1 = _mm256_max_ps(m1, _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + full, mask),
                                                _mm256_castsi256_ps(mask)));
    const float m = avx2::hmax(_mm256_max_ps(m0, m1));
    const __m256 vm = _mm256_set1_ps(m);

    // Two float accumulators of 8 lanes: sixteen partial sums keep long rows accurate.
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    j = 0;
    for (; j + 16 <= full; j += 16) {
        __m256 e0 = avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        __m256 e1 = avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm));
        _mm256_storeu_ps(p + j, e0);
        _mm256_storeu_ps(p + j + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    if (j < full) {
        __m256 e = avx2::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        _mm256_storeu_ps(p + j, e);
        s0 = _mm256_add_ps(s0, e);
    }
    if (tail) {
        __m256 e = _mm256_and_ps(avx2::exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + full, mask), vm)),
                                 _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(p + full, mask, e);
        s1 = _mm256_add_ps(s1, e);
    }
    const float s = avx2::hsum(_mm256_add_ps(s0, s1));
    *lse = m + std::log(s);
    *inv_sum = 1.0f / s;
}

void scaled_softmax_rows_avx2(const float* scores, const float* lse, float scale, int64_t rows,
                              int64_t classes, float* out) {
    // out = x - lse (scalar, row by row), then one flat vector pass: out = scale * exp(out).
    for (int64_t r = 0; r < rows; ++r) {
        const float* x = scores + r * classes;
        float* o = out + r * classes;
        const float l = lse[r];
        for (int64_t j = 0; j < classes; ++j) o[j] = x[j] - l;
    }
    const int64_t count = rows * classes;
    const __m256 vscale = _mm256_set1_ps(scale);
    int64_t k = 0;
    for (; k + 8 <= count; k += 8)
        _mm256_storeu_ps(out + k, _mm256_mul_ps(vscale, avx2::exp_ps(_mm256_loadu_ps(out + k))));
    if (k < count) {
        const __m256i mask = avx2::tail_mask(count - k);
        _mm256_maskstore_ps(out + k, mask,
                            _mm256_mul_ps(vscale, avx2::exp_ps(_mm256_maskload_ps(out + k, mask))));
    }
}

void softmax_rows_avx2(const float* scores, int64_t rows, int64_t classes, float* exps,
                       float* inv_sum, float* lse) {
    if (classes <= kBlockPathMaxClasses) {
        for (int64_t first = 0; first < rows; first += kBlockPathMaxRows) {
            const int64_t count = std::min(kBlockPathMaxRows, rows - first);
            softmax_short_rows(scores + first * classes, count, classes, exps + first * classes,
                               inv_sum + first, lse + first);
        }
    } else {
        for (int64_t i = 0; i < rows; ++i)
            softmax_long_row(scores + i * classes, classes, exps + i * classes, inv_sum + i, lse + i);
    }
}

}  // namespace fastnn
