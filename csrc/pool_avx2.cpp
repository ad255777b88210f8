// AVX2/FMA row kernels for 2-D pooling (float). Compiled with -mavx2 -mfma and called only when
// use_avx2() is true. See pool.h for the math and the memory passes.
//
// Eight neighbouring output columns form one vector; the window loop (rows, then columns, the
// row-major order that decides argmax ties) runs outside it. For window column dj the eight inputs
// sit at b + k*sw (k = 0..7, b = j*sw - pw + dj): one load for stride 1, two loads and a shuffle for
// stride 2 (the common pooling stride), eight scalar loads otherwise.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "avx2_math.h"
#include "pool.h"

namespace fastnn {

// The row kernels prefetch each input row this many bytes ahead of where they read it (into L1): the
// planes are walked in memory order (input rows of an output row, then the next output row, then the
// next plane), so 4 KB ahead is a few output rows on. The hardware prefetcher alone left the forward
// at about half the read bandwidth of a plain sum over the same array (16x64x112x112, one thread:
// 2x2/2 avg 9.7 -> 6.8 ms, max 12.4 -> 9.0 ms; numpy's sum 4.7 ms).
static constexpr int64_t kPrefetchBytes = 4096;

// Inputs p[0], p[sw], ..., p[7 sw]. Reads nothing past p[7 sw].
template <int kStride>
// At stride 2 the lanes hold the outputs [0 1 4 5 | 2 3 6 7] (p[0], p[2], p[8], p[10] | p[4], ...):
// lo = p[0..7], hi = p[7..14], the even elements of lo and the odd ones of hi in one in-lane shuffle. Elementwise sums and maxima keep that order, so the
// cross-lane permute that restores it (unmix) runs once per block of 8 outputs, not once per tap.
static inline __m256 load_strided(const float* p, int64_t sw) {
    if constexpr (kStride == 1) {
        return _mm256_loadu_ps(p);
    } else if constexpr (kStride == 2) {
        const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 7);
        return _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 2, 0));  // p0 p2 p8 p10 | p4 p6 p12 p14
    } else {
        return _mm256_setr_ps(p[0], p[sw], p[2 * sw], p[3 * sw], p[4 * sw], p[5 * sw], p[6 * sw], p[7 * sw]);
    }
}

template <int kStride>
static inline __m256 unmix(__m256 v) {
    if constexpr (kStride == 2) return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
    return v;
}

static inline int64_t count_nan(__m256 v) {
    return __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

// Lanes k >= already_done, i.e. the columns an overlapping last block adds (NaN counted once).
static inline __m256 new_lanes(int64_t already_done) {
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                  _mm256_set1_epi32((int)already_done - 1)));
}

template <int kStride>
static int64_t max_row(const float* plane, float* out_row, int32_t* argmax_row, const Pool2dShape& s,
                       int64_t r0, int64_t r1, int64_t first, int64_t last) {
    const int64_t width = s.width, sw = s.stride_w;
    // Lane k's column offset, in load_strided's lane order.
    const __m256i lane_offset = _mm256_mullo_epi32(
        kStride == 2 ? _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7) : _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32((int)sw));
    int64_t nan_count = 0;
    for (int64_t block = first; block < last; block += 8) {
        // The last block ends at `last` and may overlap the one before: recomputing a few columns
        // beats a scalar tail.
        const int64_t j = block + 8 <= last ? block : last - 8;
        const int64_t c0 = j * sw - s.pad_w;
        __m256 best = _mm256_set1_ps(-INFINITY);
        __m256i index = _mm256_add_epi32(_mm256_set1_epi32((int)(r0 * width + c0)), lane_offset);
        for (int64_t r = r0; r < r1; ++r) {
            const float* row = plane + r * width + c0;
            _mm_prefetch((const char*)row + kPrefetchBytes, _MM_HINT_T0);
            for (int64_t dj = 0; dj < s.kernel_w; ++dj) {
                const __m256 v = load_strided<kStride>(row + dj, sw);
                // Strictly greater (first maximum wins ties), or NaN (so NaN reaches the output).
                const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                const __m256i here = _mm256_add_epi32(_mm256_set1_epi32((int)(r * width + c0 + dj)), lane_offset);
                best = _mm256_blendv_ps(best, v, take);
                index = _mm256_castps_si256(
                    _mm256_blendv_ps(_mm256_castsi256_ps(index), _mm256_castsi256_ps(here), take));
            }
        }
        best = unmix<kStride>(best);
        index = _mm256_castps_si256(unmix<kStride>(_mm256_castsi256_ps(index)));
        _mm256_storeu_ps(out_row + j, best);
        _mm256_storeu_si256((__m256i*)(argmax_row + j), index);
        nan_count += count_nan(block == j ? best : _mm256_blendv_ps(_mm256_setzero_ps(), best, new_lanes(block - j)));
    }
    return nan_count;
}

template <int kStride>
static int64_t avg_row(const float* plane, float* out_row, const Pool2dShape& s, int64_t r0, int64_t r1,
                       int64_t first, int64_t last) {
    const int64_t width = s.width, sw = s.stride_w;
    const __m256 inv_area = _mm256_set1_ps((float)(1.0 / ((double)s.kernel_h * (double)s.kernel_w)));
    int64_t nan_count = 0;
    for (int64_t block = first; block < last; block += 8) {
        const int64_t j = block + 8 <= last ? block : last - 8;  // an overlapping last block, as in max_row
        const int64_t c0 = j * sw - s.pad_w;
        __m256 sum = _mm256_setzero_ps();
        for (int64_t r = r0; r < r1; ++r) {
            const float* row = plane + r * width + c0;
            _mm_prefetch((const char*)row + kPrefetchBytes, _MM_HINT_T0);
            for (int64_t dj = 0; dj < s.kernel_w; ++dj) sum = _mm256_add_ps(sum, load_strided<kStride>(row + dj, sw));
        }
        const __m256 mean = _mm256_mul_ps(unmix<kStride>(sum), inv_area);
        _mm256_storeu_ps(out_row + j, mean);
        nan_count += count_nan(block == j ? mean : _mm256_blendv_ps(_mm256_setzero_ps(), mean, new_lanes(block - j)));
    }
    return nan_count;
}

int64_t max_pool2d_plane_gather_avx2(const float* plane, float* out, int32_t* argmax, const int32_t* origins,
                                     int64_t count, const int32_t* taps, int64_t tap_count) {
    int64_t nan_count = 0;
    for (int64_t block = 0; block < count; block += 8) {
        const int64_t o = block + 8 <= count ? block : count - 8;  // an overlapping last block, as in max_row
        const __m256i origin = _mm256_loadu_si256((const __m256i*)(origins + o));
        __m256 best = _mm256_set1_ps(-INFINITY);
        __m256i index = origin;
        for (int64_t t = 0; t < tap_count; ++t) {  // row-major window order: the first maximum wins ties
            const __m256i here = _mm256_add_epi32(origin, _mm256_set1_epi32(taps[t]));
            const __m256 v = _mm256_i32gather_ps(plane, here, 4);
            const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            best = _mm256_blendv_ps(best, v, take);
            index = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(index), _mm256_castsi256_ps(here), take));
        }
        _mm256_storeu_ps(out + o, best);
        _mm256_storeu_si256((__m256i*)(argmax + o), index);
        nan_count += count_nan(block == o ? best : _mm256_blendv_ps(_mm256_setzero_ps(), best, new_lanes(block - o)));
    }
    return nan_count;
}

void stream_copy_avx2(const float* src, float* dst, int64_t count) {
    int64_t j = 0;
    // Plain stores up to the first 32-byte boundary of dst, which streaming stores need.
    while (j < count && ((uintptr_t)(dst + j) & 31) != 0) {
        dst[j] = src[j];
        ++j;
    }
    for (; j + 8 <= count; j += 8) _mm256_stream_ps(dst + j, _mm256_loadu_ps(src + j));
    for (; j < count; ++j) dst[j] = src[j];
    _mm_sfence();  // streaming stores are weakly ordered: make them visible before returning
}

void avg_pool2d_spread_row_s2_avx2(const float* g_row, const Pool2dShape& s, float* padded, float* spread_row) {
    // Column c = 2m + parity is held by window j = m + (parity + pad_w - dj) / 2 for each window
    // column dj of the same parity as c + pad_w: the even and the odd columns are each a sum of shifted
    // copies of the row, computed 8 at a time and interleaved. g_row is copied between zeros so that
    // shifted reads past either end see no window.
    const int64_t kw = s.kernel_w, pw = s.pad_w, lead = kw + 1, out_w = s.out_width, width = s.width;
    std::fill(padded, padded + lead, 0.0f);
    std::copy(g_row, g_row + out_w, padded + lead);
    std::fill(padded + lead + out_w, padded + avg_pool2d_spread_s2_scratch(s), 0.0f);
    const int64_t half = (width + 1) / 2;  // even columns; odd ones: width / 2
    for (int64_t m = 0; m < half; m += 8) {
        __m256 sums[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t dj = 0; dj < kw; ++dj) {
            const int parity = (int)((dj - pw) & 1);  // of the columns j*2 - pw + dj
            const int64_t shift = (parity + pw - dj) / 2;
            // shift >= -(kw - 1) / 2 > -lead; past the copy the reads see zeros (lanes past `half`
            // may read anything in the buffer: their columns are dropped below).
            sums[parity] = _mm256_add_ps(sums[parity], _mm256_loadu_ps(padded + lead + m + shift));
        }
        // Interleave: [e0 o0 e1 o1 ...] (unpack within 128-bit halves, then join the halves in order).
        const __m256 lo = _mm256_unpacklo_ps(sums[0], sums[1]), hi = _mm256_unpackhi_ps(sums[0], sums[1]);
        const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
        const int64_t c = 2 * m;
        if (c + 16 <= width) {
            _mm256_storeu_ps(spread_row + c, first);
            _mm256_storeu_ps(spread_row + c + 8, second);
        } else {
            alignas(32) float staged[16];
            _mm256_store_ps(staged, first);
            _mm256_store_ps(staged + 8, second);
            std::copy(staged, staged + (width - c), spread_row + c);
        }
    }
}

int64_t max_pool2d_row_interior_avx2(const float* plane, float* out_row, int32_t* argmax_row,
                                     const Pool2dShape& s, int64_t row_lo, int64_t row_hi,
                                     int64_t first, int64_t last) {
    if (s.stride_w == 1) return max_row<1>(plane, out_row, argmax_row, s, row_lo, row_hi, first, last);
    if (s.stride_w == 2) return max_row<2>(plane, out_row, argmax_row, s, row_lo, row_hi, first, last);
    return max_row<0>(plane, out_row, argmax_row, s, row_lo, row_hi, first, last);
}

int64_t avg_pool2d_row_interior_avx2(const float* plane, float* out_row, const Pool2dShape& s,
                                     int64_t row_lo, int64_t row_hi, int64_t first, int64_t last) {
    if (s.stride_w == 1) return avg_row<1>(plane, out_row, s, row_lo, row_hi, first, last);
    if (s.stride_w == 2) return avg_row<2>(plane, out_row, s, row_lo, row_hi, first, last);
    return avg_row<0>(plane, out_row, s, row_lo, row_hi, first, last);
}

}  // namespace fastnn
