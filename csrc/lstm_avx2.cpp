// AVX2/FMA row kernels for the LSTM cell's pointwise math (float). Compiled with -mavx2 -mfma and
// called only when use_avx2() is true. See lstm.h for the math and the memory passes. Eight hidden
// units per vector; a masked tail finishes the range.
#include <cstdint>

#include "avx2_math.h"
#include "lstm.h"

namespace fastnn {

static inline __m256 load(const float* p, __m256i mask, bool full) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

static inline void store(float* p, __m256 v, __m256i mask, bool full) {
    if (full)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, mask, v);
}

int64_t lstm_forward_row_avx2(const float* ax, const float* ah, const float* b, const float* c_prev, float* gates,
                              float* c, float* h, float* tanh_c, int64_t hidden, int64_t k0, int64_t k1) {
    int64_t nan_count = 0;
    for (int64_t k = k0; k < k1; k += 8) {
        const bool full = k + 8 <= k1;
        const __m256i mask = avx2::tail_mask(k1 - k);
        // All four pre-activations are loaded before any gate is stored: gates may alias ax.
        // (ah and b may be null: the layer path has added them into ax already.)
        __m256 a[4];
        for (int gate = 0; gate < 4; ++gate) {
            const int64_t at = gate * hidden + k;
            a[gate] = load(ax + at, mask, full);
            if (ah) a[gate] = _mm256_add_ps(a[gate], load(ah + at, mask, full));
            if (b) a[gate] = _mm256_add_ps(a[gate], load(b + at, mask, full));
        }
        const __m256 a_i = a[0], a_f = a[1], a_o = a[2], a_g = a[3];
        const __m256 i = avx2::sigmoid_ps(a_i), f = avx2::sigmoid_ps(a_f), o = avx2::sigmoid_ps(a_o);
        const __m256 g = avx2::tanh_ps(a_g);
        const __m256 c_new = _mm256_fmadd_ps(f, load(c_prev + k, mask, full), _mm256_mul_ps(i, g));
        const __m256 tc = avx2::tanh_ps(c_new);
        const __m256 h_new = _mm256_mul_ps(o, tc);
        store(gates + k, i, mask, full);
        store(gates + hidden + k, f, mask, full);
        store(gates + 2 * hidden + k, o, mask, full);
        store(gates + 3 * hidden + k, g, mask, full);
        store(c + k, c_new, mask, full);
        store(tanh_c + k, tc, mask, full);
        store(h + k, h_new, mask, full);
        const __m256 nan = _mm256_or_ps(_mm256_cmp_ps(c_new, c_new, _CMP_UNORD_Q), _mm256_cmp_ps(h_new, h_new, _CMP_UNORD_Q));
        nan_count += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_and_ps(nan, _mm256_castsi256_ps(mask))));
    }
    return nan_count;
}

void lstm_backward_row_avx2(const float* dh, const float* dc, const float* gates, const float* c_prev,
                            const float* tanh_c, float* da, float* dc_prev, float* db, int64_t hidden, int64_t k0,
                            int64_t k1) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (int64_t k = k0; k < k1; k += 8) {
        const bool full = k + 8 <= k1;
        const __m256i mask = avx2::tail_mask(k1 - k);
        const __m256 i = load(gates + k, mask, full), f = load(gates + hidden + k, mask, full);
        const __m256 o = load(gates + 2 * hidden + k, mask, full), g = load(gates + 3 * hidden + k, mask, full);
        const __m256 tc = load(tanh_c + k, mask, full);
        const __m256 dh_k = dh ? load(dh + k, mask, full) : zero;
        const __m256 dc_k = dc ? load(dc + k, mask, full) : zero;
        // dc_total = dc + dh o (1 - tc^2)
        const __m256 dc_total = _mm256_fmadd_ps(_mm256_mul_ps(dh_k, o), _mm256_fnmadd_ps(tc, tc, one), dc_k);
        const __m256 da_i = _mm256_mul_ps(_mm256_mul_ps(dc_total, g), _mm256_mul_ps(i, _mm256_sub_ps(one, i)));
        const __m256 da_f = _mm256_mul_ps(_mm256_mul_ps(dc_total, load(c_prev + k, mask, full)),
                                          _mm256_mul_ps(f, _mm256_sub_ps(one, f)));
        const __m256 da_o = _mm256_mul_ps(_mm256_mul_ps(dh_k, tc), _mm256_mul_ps(o, _mm256_sub_ps(one, o)));
        const __m256 da_g = _mm256_mul_ps(_mm256_mul_ps(dc_total, i), _mm256_fnmadd_ps(g, g, one));
        store(da + k, da_i, mask, full);
        store(da + hidden + k, da_f, mask, full);
        store(da + 2 * hidden + k, da_o, mask, full);
        store(da + 3 * hidden + k, da_g, mask, full);
        store(dc_prev + k, _mm256_mul_ps(dc_total, f), mask, full);
        // Masked-off lanes of da are zero here (their inputs loaded as zero), so db adds nothing there.
        if (db) {
            store(db + k, _mm256_add_ps(load(db + k, mask, full), da_i), mask, full);
            store(db + hidden + k, _mm256_add_ps(load(db + hidden + k, mask, full), da_f), mask, full);
            store(db + 2 * hidden + k, _mm256_add_ps(load(db + 2 * hidden + k, mask, full), da_o), mask, full);
            store(db + 3 * hidden + k, _mm256_add_ps(load(db + 3 * hidden + k, mask, full), da_g), mask, full);
        }
    }
}

}  // namespace fastnn
