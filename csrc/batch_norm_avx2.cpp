// AVX2/FMA helpers for batch normalization (float). Compiled with -mavx2 -mfma and called only when
// use_avx2() is true. See batch_norm.h for the math and the memory passes.
//
// The elementwise passes can write with streaming (non-temporal) stores: when the output is larger
// than the last-level cache it will be evicted before anyone reads it, so fetching its lines into
// cache first (the read-for-ownership of an ordinary store) is wasted traffic.
//
// Segment sums keep float partial sums in two vector accumulators (each lane adds count/16 values
// of x - K, small numbers of like size) and hand them to double once per segment. Row sums, where a
// column may collect a value from each of millions of rows, reach double every four rows.
#include <algorithm>
#include <cstdint>

#include "avx2_math.h"
#include "batch_norm.h"

namespace fastnn {

void bn_segment_sums_avx2(const float* x, int64_t count, float shift, double& sum, double& sum_sq) {
    const __m256 k = _mm256_set1_ps(shift);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= count; j += 16) {
        const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), k);
        const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), k);
        s0 = _mm256_add_ps(s0, d0);
        s1 = _mm256_add_ps(s1, d1);
        q0 = _mm256_fmadd_ps(d0, d0, q0);
        q1 = _mm256_fmadd_ps(d1, d1, q1);
    }
    for (; j < count; j += 8) {
        // Masked-off lanes load as 0 and must add 0, so they are zeroed after the subtraction.
        const __m256i mask = avx2::tail_mask(count - j);
        const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, mask), k), _mm256_castsi256_ps(mask));
        s0 = _mm256_add_ps(s0, d);
        q0 = _mm256_fmadd_ps(d, d, q0);
    }
    sum += (double)avx2::hsum(_mm256_add_ps(s0, s1));
    sum_sq += (double)avx2::hsum(_mm256_add_ps(q0, q1));
}

// Elements before out + j are 32-byte aligned for streaming stores: how many to peel off first.
static inline int64_t unaligned_head(const float* out, int64_t count) {
    const int64_t misalignment = (int64_t)(((uintptr_t)out & 31) / sizeof(float));
    return misalignment == 0 ? 0 : std::min<int64_t>(8 - misalignment, count);
}

int64_t bn_segment_affine_avx2(const float* x, int64_t count, float mean, float scale, float offset, float* out,
                               bool stream) {
    const __m256 mu = _mm256_set1_ps(mean), a = _mm256_set1_ps(scale), b = _mm256_set1_ps(offset);
    __m256 nan_seen = _mm256_setzero_ps();  // lanes that met a NaN: two instructions per vector, counted once
    int64_t j = 0;
    if (stream) {
        const int64_t head = unaligned_head(out, count);
        if (head > 0) {
            const __m256i mask = avx2::tail_mask(head);
            const __m256 y = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_maskload_ps(x, mask), mu), a, b);
            _mm256_maskstore_ps(out, mask, y);
            nan_seen = _mm256_or_ps(nan_seen, _mm256_and_ps(_mm256_cmp_ps(y, y, _CMP_UNORD_Q), _mm256_castsi256_ps(mask)));
            j = head;
        }
        for (; j + 8 <= count; j += 8) {
            const __m256 y = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mu), a, b);
            _mm256_stream_ps(out + j, y);
            nan_seen = _mm256_or_ps(nan_seen, _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
        }
        _mm_sfence();  // streaming stores are weakly ordered: make them visible before returning
    }
    for (; j + 8 <= count; j += 8) {
        const __m256 y = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mu), a, b);
        _mm256_storeu_ps(out + j, y);
        nan_seen = _mm256_or_ps(nan_seen, _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
    }
    if (j < count) {
        const __m256i mask = avx2::tail_mask(count - j);
        const __m256 y = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, mask), mu), a, b);
        _mm256_maskstore_ps(out + j, mask, y);
        nan_seen = _mm256_or_ps(nan_seen, _mm256_and_ps(_mm256_cmp_ps(y, y, _CMP_UNORD_Q), _mm256_castsi256_ps(mask)));
    }
    return __builtin_popcount((unsigned)_mm256_movemask_ps(nan_seen));
}

void bn_segment_grad_sums_avx2(const float* dy, const float* x, int64_t count, float mean, double& sum_dy,
                               double& sum_dy_xc) {
    const __m256 mu = _mm256_set1_ps(mean);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= count; j += 16) {
        const __m256 g0 = _mm256_loadu_ps(dy + j), g1 = _mm256_loadu_ps(dy + j + 8);
        s0 = _mm256_add_ps(s0, g0);
        s1 = _mm256_add_ps(s1, g1);
        p0 = _mm256_fmadd_ps(g0, _mm256_sub_ps(_mm256_loadu_ps(x + j), mu), p0);
        p1 = _mm256_fmadd_ps(g1, _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), mu), p1);
    }
    for (; j < count; j += 8) {
        const __m256i mask = avx2::tail_mask(count - j);
        const __m256 g = _mm256_maskload_ps(dy + j, mask);  // 0 in the masked-off lanes
        s0 = _mm256_add_ps(s0, g);
        p0 = _mm256_fmadd_ps(g, _mm256_sub_ps(_mm256_maskload_ps(x + j, mask), mu), p0);
    }
    sum_dy += (double)avx2::hsum(_mm256_add_ps(s0, s1));
    sum_dy_xc += (double)avx2::hsum(_mm256_add_ps(p0, p1));
}

void bn_segment_dx_avx2(const float* dy, const float* x, int64_t count, float mean, float a, float k1, float k0,
                        float* dx, bool stream) {
    const __m256 mu = _mm256_set1_ps(mean), va = _mm256_set1_ps(a), vk1 = _mm256_set1_ps(k1), vk0 = _mm256_set1_ps(k0);
    int64_t j = 0;
    if (stream) {
        const int64_t head = unaligned_head(dx, count);
        if (head > 0) {
            const __m256i mask = avx2::tail_mask(head);
            const __m256 xc = _mm256_sub_ps(_mm256_maskload_ps(x, mask), mu);
            _mm256_maskstore_ps(dx, mask, _mm256_fmadd_ps(va, _mm256_maskload_ps(dy, mask), _mm256_fmadd_ps(vk1, xc, vk0)));
            j = head;
        }
        for (; j + 8 <= count; j += 8) {
            const __m256 xc = _mm256_sub_ps(_mm256_loadu_ps(x + j), mu);
            _mm256_stream_ps(dx + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(dy + j), _mm256_fmadd_ps(vk1, xc, vk0)));
        }
        _mm_sfence();
    }
    for (; j + 8 <= count; j += 8) {
        const __m256 xc = _mm256_sub_ps(_mm256_loadu_ps(x + j), mu);
        _mm256_storeu_ps(dx + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(dy + j), _mm256_fmadd_ps(vk1, xc, vk0)));
    }
    if (j < count) {
        const __m256i mask = avx2::tail_mask(count - j);
        const __m256 xc = _mm256_sub_ps(_mm256_maskload_ps(x + j, mask), mu);
        _mm256_maskstore_ps(dx + j, mask, _mm256_fmadd_ps(va, _mm256_maskload_ps(dy + j, mask), _mm256_fmadd_ps(vk1, xc, vk0)));
    }
}

// Adds the 8 float lanes of v into sum[0..8) in double.
static inline void add_to_double(double* sum, __m256 v) {
    _mm256_storeu_pd(sum, _mm256_add_pd(_mm256_loadu_pd(sum), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(sum + 4, _mm256_add_pd(_mm256_loadu_pd(sum + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

// Rows go in groups of four: their float values are summed in registers and reach the double
// accumulators once per group, which quarters the accumulator traffic (the loop's bottleneck).
static constexpr int64_t kRowGroup = 4;

void bn_rows_sums_avx2(const float* x, int64_t rows, int64_t stride, const float* shift, int64_t count, double* sum,
                       double* sum_sq) {
    for (int64_t n = 0; n < rows; n += kRowGroup) {
        const int64_t group = std::min(kRowGroup, rows - n);
        const float* first = x + n * stride;
        int64_t j = 0;
        for (; j + 8 <= count; j += 8) {
            const __m256 k = _mm256_loadu_ps(shift + j);
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(first + j), k);
            __m256 s = d, q = _mm256_mul_ps(d, d);
            for (int64_t r = 1; r < group; ++r) {
                d = _mm256_sub_ps(_mm256_loadu_ps(first + r * stride + j), k);
                s = _mm256_add_ps(s, d);
                q = _mm256_fmadd_ps(d, d, q);
            }
            add_to_double(sum + j, s);
            add_to_double(sum_sq + j, q);
        }
        for (; j < count; ++j)
            for (int64_t r = 0; r < group; ++r) {
                const double d = (double)first[r * stride + j] - (double)shift[j];
                sum[j] += d;
                sum_sq[j] += d * d;
            }
    }
}

// Zen 1 splits every 256-bit load and store in two, so these passes are bound by their loads and
// stores: rows go in groups that share one load of the per-column parameters (four for the affine
// form; two for dx, whose three arrays per row would otherwise crowd one L1 set when C*4 bytes is a
// multiple of 4 KB).
static constexpr int64_t kAffineRows = 4, kDxRows = 2;

int64_t bn_rows_affine_avx2(const float* x, int64_t rows, int64_t stride, const float* mean, const float* scale,
                            const float* offset, int64_t count, float* out) {
    __m256 nan_seen = _mm256_setzero_ps();
    int64_t nan_tail = 0;
    for (int64_t n = 0; n < rows; n += kAffineRows) {
        const int64_t group = std::min(kAffineRows, rows - n);
        const float* xg = x + n * stride;
        float* og = out + n * stride;
        int64_t j = 0;
        for (; j + 8 <= count; j += 8) {
            const __m256 mu = _mm256_loadu_ps(mean + j), a = _mm256_loadu_ps(scale + j), b = _mm256_loadu_ps(offset + j);
            for (int64_t r = 0; r < group; ++r) {
                const __m256 y = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(xg + r * stride + j), mu), a, b);
                _mm256_storeu_ps(og + r * stride + j, y);
                nan_seen = _mm256_or_ps(nan_seen, _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
            }
        }
        for (; j < count; ++j)
            for (int64_t r = 0; r < group; ++r) {
                const float y = (xg[r * stride + j] - mean[j]) * scale[j] + offset[j];
                og[r * stride + j] = y;
                nan_tail += y != y;
            }
    }
    return nan_tail + __builtin_popcount((unsigned)_mm256_movemask_ps(nan_seen));
}

void bn_rows_grad_sums_avx2(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean,
                            int64_t count, double* sum_dy, double* sum_dy_xc) {
    for (int64_t n = 0; n < rows; n += kRowGroup) {
        const int64_t group = std::min(kRowGroup, rows - n);
        const float* dy_first = dy + n * stride;
        const float* x_first = x + n * stride;
        int64_t j = 0;
        for (; j + 8 <= count; j += 8) {
            const __m256 mu = _mm256_loadu_ps(mean + j);
            __m256 g = _mm256_loadu_ps(dy_first + j);
            __m256 s = g, p = _mm256_mul_ps(g, _mm256_sub_ps(_mm256_loadu_ps(x_first + j), mu));
            for (int64_t r = 1; r < group; ++r) {
                g = _mm256_loadu_ps(dy_first + r * stride + j);
                s = _mm256_add_ps(s, g);
                p = _mm256_fmadd_ps(g, _mm256_sub_ps(_mm256_loadu_ps(x_first + r * stride + j), mu), p);
            }
            add_to_double(sum_dy + j, s);
            add_to_double(sum_dy_xc + j, p);
        }
        for (; j < count; ++j)
            for (int64_t r = 0; r < group; ++r) {
                sum_dy[j] += (double)dy_first[r * stride + j];
                sum_dy_xc[j] += (double)dy_first[r * stride + j] * ((double)x_first[r * stride + j] - (double)mean[j]);
            }
    }
}

void bn_rows_dx_avx2(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean, const float* a,
                     const float* k1, const float* k0, int64_t count, float* dx) {
    for (int64_t n = 0; n < rows; n += kDxRows) {
        const int64_t group = std::min(kDxRows, rows - n);
        const int64_t at = n * stride;
        int64_t j = 0;
        for (; j + 8 <= count; j += 8) {
            const __m256 mu = _mm256_loadu_ps(mean + j), va = _mm256_loadu_ps(a + j);
            const __m256 vk1 = _mm256_loadu_ps(k1 + j), vk0 = _mm256_loadu_ps(k0 + j);
            for (int64_t r = 0; r < group; ++r) {
                const int64_t e = at + r * stride + j;
                const __m256 xc = _mm256_sub_ps(_mm256_loadu_ps(x + e), mu);
                _mm256_storeu_ps(dx + e, _mm256_fmadd_ps(va, _mm256_loadu_ps(dy + e), _mm256_fmadd_ps(vk1, xc, vk0)));
            }
        }
        for (; j < count; ++j)
            for (int64_t r = 0; r < group; ++r) {
                const int64_t e = at + r * stride + j;
                dx[e] = a[j] * dy[e] + k1[j] * (x[e] - mean[j]) + k0[j];
            }
    }
}

}  // namespace fastnn
