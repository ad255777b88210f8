// Weight gradient of a stride-1 convolution with few filters (float, AVX2/FMA; compiled with -mavx2
// -mfma and called only when use_avx2() is true). See conv2d.h.
//
//   dw[k, c, i, j] += sum_{oh, ow} dout[k, oh, ow] * xpad[c, oh + i, ow + j]
//
// The GEMM-shaped paths put the filters on a 16-wide vector, which LeNet-5's first layer (6
// filters, one channel) fills to 6/16. Here the vector runs along ow instead: for one (c, i) and a
// pair of filters, the 2 x kw sums live in registers while (oh, ow) sweep the image, each step
// one load of each filter's gradient row, kw shifted loads of the image row and 2 kw FMAs.
#include <immintrin.h>

#include <cstring>

#include "conv2d.h"

namespace fastnn {

namespace {

inline float hsum(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Filters k0 .. k0 + KB - 1, channel c, filter row i: dw[k, c, i, 0 .. KW-1] += the sums.
template <int KW, int KB>
void filter_row(const float* g, int64_t gw, const float* xrow0, int64_t xw, const Conv2dShape& s, int64_t k0,
                int64_t c, int64_t i, float* dw) {
    __m256 acc[KB][KW];
    for (int b = 0; b < KB; ++b)
        for (int j = 0; j < KW; ++j) acc[b][j] = _mm256_setzero_ps();
    const int64_t plane = s.OH * gw;
    for (int64_t oh = 0; oh < s.OH; ++oh) {
        const float* xr = xrow0 + (oh + i) * xw;
        const float* gr = g + k0 * plane + oh * gw;
        for (int64_t ow = 0; ow < gw; ow += 8) {
            __m256 d[KB];
            for (int b = 0; b < KB; ++b) d[b] = _mm256_load_ps(gr + b * plane + ow);
            for (int j = 0; j < KW; ++j) {
                const __m256 xv = _mm256_loadu_ps(xr + ow + j);
                for (int b = 0; b < KB; ++b) acc[b][j] = _mm256_fmadd_ps(d[b], xv, acc[b][j]);
            }
        }
    }
    for (int b = 0; b < KB; ++b)
        for (int j = 0; j < KW; ++j) dw[(((k0 + b) * s.C + c) * s.kh + i) * KW + j] += hsum(acc[b][j]);
}

template <int KW>
void image(const float* g, int64_t gw, const float* xpad, int64_t hp, int64_t xw, const Conv2dShape& s, float* dw) {
    for (int64_t c = 0; c < s.C; ++c)
        for (int64_t i = 0; i < s.kh; ++i) {
            const float* xrow0 = xpad + c * hp * xw;
            int64_t k = 0;
            for (; k + 2 <= s.K; k += 2) filter_row<KW, 2>(g, gw, xrow0, xw, s, k, c, i, dw);
            if (k < s.K) filter_row<KW, 1>(g, gw, xrow0, xw, s, k, c, i, dw);
        }
}

}  // namespace

bool conv2d_weight_grad_small_k_applies(const Conv2dShape& s) {
    return s.sh == 1 && s.sw == 1 && s.K <= kSmallKMaxFilters && s.kw >= 1 && s.kw <= kSmallKMaxWidth;
}

void conv2d_weight_grad_small_k_avx2(const float* g, int64_t gw, const float* xpad, int64_t hp, int64_t xw,
                                     const Conv2dShape& s, float* dw) {
    switch (s.kw) {
        case 1: return image<1>(g, gw, xpad, hp, xw, s, dw);
        case 2: return image<2>(g, gw, xpad, hp, xw, s, dw);
        case 3: return image<3>(g, gw, xpad, hp, xw, s, dw);
        case 4: return image<4>(g, gw, xpad, hp, xw, s, dw);
        case 5: return image<5>(g, gw, xpad, hp, xw, s, dw);
        default: return image<6>(g, gw, xpad, hp, xw, s, dw);
    }
}

}  // namespace fastnn
