// AVX-512 versions of the (N, C) row passes of batch normalization (float), compiled with -mavx512f
// and called only when use_avx512() is true. The same arithmetic as batch_norm_avx2.cpp column by
// column (float sums over a group of rows, then double), 16 columns per vector instead of 8, and the
// columns past the last whole vector through masked loads and stores instead of scalar loops. On an
// L2-resident (256, 1024) batch these passes are bound by instructions per element, not by bytes.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "batch_norm.h"

namespace fastnn {

// Lanes [0, n) of a 16-lane vector (n >= 16: all).
static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// Adds the 16 float lanes of v into sum[0..16) in double (only the lanes in `m`).
static inline void add_to_double(double* sum, __m512 v, __mmask16 m) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __mmask8 m_lo = (__mmask8)(m & 0xFF), m_hi = (__mmask8)(m >> 8);
    _mm512_mask_storeu_pd(sum, m_lo, _mm512_add_pd(_mm512_maskz_loadu_pd(m_lo, sum), lo));
    _mm512_mask_storeu_pd(sum + 8, m_hi, _mm512_add_pd(_mm512_maskz_loadu_pd(m_hi, sum + 8), hi));
}

// Row groups as in the AVX2 file: four rows' float sums reach double once.
static constexpr int64_t kRowGroup = 4, kAffineRows = 4, kDxRows = 2;

void bn_rows_sums_avx512(const float* x, int64_t rows, int64_t stride, const float* shift, int64_t count, double* sum,
                         double* sum_sq) {
    for (int64_t n = 0; n < rows; n += kRowGroup) {
        const int64_t group = std::min(kRowGroup, rows - n);
        const float* first = x + n * stride;
        for (int64_t j = 0; j < count; j += 16) {
            const __mmask16 m = lanes(count - j);
            const __m512 k = _mm512_maskz_loadu_ps(m, shift + j);
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, first + j), k);
            __m512 s = d, q = _mm512_mul_ps(d, d);
            for (int64_t r = 1; r < group; ++r) {
                d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, first + r * stride + j), k);
                s = _mm512_add_ps(s, d);
                q = _mm512_fmadd_ps(d, d, q);
            }
            add_to_double(sum + j, s, m);
            add_to_double(sum_sq + j, q, m);
        }
    }
}

int64_t bn_rows_affine_avx512(const float* x, int64_t rows, int64_t stride, const float* mean, const float* scale,
                              const float* offset, int64_t count, float* out) {
    int64_t nan_count = 0;
    for (int64_t n = 0; n < rows; n += kAffineRows) {
        const int64_t group = std::min(kAffineRows, rows - n);
        const float* xg = x + n * stride;
        float* og = out + n * stride;
        __mmask16 nan_seen = 0;  // lanes that met a NaN in this group: counted once per group
        for (int64_t j = 0; j < count; j += 16) {
            const __mmask16 m = lanes(count - j);
            const __m512 mu = _mm512_maskz_loadu_ps(m, mean + j), a = _mm512_maskz_loadu_ps(m, scale + j);
            const __m512 b = _mm512_maskz_loadu_ps(m, offset + j);
            for (int64_t r = 0; r < group; ++r) {
                const __m512 y = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xg + r * stride + j), mu), a, b);
                _mm512_mask_storeu_ps(og + r * stride + j, m, y);
                nan_seen |= _mm512_mask_cmp_ps_mask(m, y, y, _CMP_UNORD_Q);
            }
        }
        nan_count += __builtin_popcount((unsigned)nan_seen);
    }
    return nan_count;
}

void bn_rows_grad_sums_avx512(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean,
                              int64_t count, double* sum_dy, double* sum_dy_xc) {
    for (int64_t n = 0; n < rows; n += kRowGroup) {
        const int64_t group = std::min(kRowGroup, rows - n);
        const float* dy_first = dy + n * stride;
        const float* x_first = x + n * stride;
        for (int64_t j = 0; j < count; j += 16) {
            const __mmask16 m = lanes(count - j);
            const __m512 mu = _mm512_maskz_loadu_ps(m, mean + j);
            __m512 g = _mm512_maskz_loadu_ps(m, dy_first + j);
            __m512 s = g, p = _mm512_mul_ps(g, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x_first + j), mu));
            for (int64_t r = 1; r < group; ++r) {
                g = _mm512_maskz_loadu_ps(m, dy_first + r * stride + j);
                s = _mm512_add_ps(s, g);
                p = _mm512_fmadd_ps(g, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x_first + r * stride + j), mu), p);
            }
            add_to_double(sum_dy + j, s, m);
            add_to_double(sum_dy_xc + j, p, m);
        }
    }
}

void bn_rows_dx_avx512(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean,
                       const float* a, const float* k1, const float* k0, int64_t count, float* dx) {
    for (int64_t n = 0; n < rows; n += kDxRows) {
        const int64_t group = std::min(kDxRows, rows - n);
        const int64_t at = n * stride;
        for (int64_t j = 0; j < count; j += 16) {
            const __mmask16 m = lanes(count - j);
            const __m512 mu = _mm512_maskz_loadu_ps(m, mean + j), va = _mm512_maskz_loadu_ps(m, a + j);
            const __m512 vk1 = _mm512_maskz_loadu_ps(m, k1 + j), vk0 = _mm512_maskz_loadu_ps(m, k0 + j);
            for (int64_t r = 0; r < group; ++r) {
                const int64_t e = at + r * stride + j;
                const __m512 xc = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + e), mu);
                _mm512_mask_storeu_ps(dx + e, m,
                                      _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, dy + e), _mm512_fmadd_ps(vk1, xc, vk0)));
            }
        }
    }
}

}  // namespace fastnn
