// AVX2/FMA row kernels for the LSTM cell's pointwise math (float). Compiled with -mavx2 -mfma and
// called only when use_avx2() is true. See lstm.h for the math and the memory passes. Eight hidden
// units per vector; a masked tail finishes the range.
#include <algorithm>
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

static void backward_block(const float* dh, const float* dc, const float* gates, const float* c_prev,
                           const float* tanh_c, float* da, float* dc_prev, int64_t hidden, int64_t k0, int64_t k1) {
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
    }
}

// The four gates of a row lie `hidden` floats apart. When hidden * 4 bytes is a multiple of 4 KB the
// kernels' gate streams (four each of ax, ah, b and gates, or of gates, da and db) all fall in one
// L1 set, more than its eight ways: each line is evicted before its second half is read, and the
// forward ran 2.4x slower per unit at H = 1024 than at H = 1000. So the row goes through the kernels
// in chunks of kChunk units, each gate's run copied whole into a small buffer (and back), one gate at
// a time; the kernels then work on the buffer with a gate distance of kChunk.
static constexpr int64_t kChunk = 64;

// dst[gate * kChunk + j] = src[gate * hidden + j] (+ add1[...]) (+ add2[...]), j < len; any of add1,
// add2 may be null.
static void gather_gates(const float* src, const float* add1, const float* add2, int64_t hidden, int64_t len,
                         float* dst) {
    for (int64_t gate = 0; gate < 4; ++gate) {
        const int64_t at = gate * hidden;
        for (int64_t j = 0; j < len; j += 8) {
            const bool full = j + 8 <= len;
            const __m256i mask = avx2::tail_mask(len - j);
            __m256 v = load(src + at + j, mask, full);
            if (add1) v = _mm256_add_ps(v, load(add1 + at + j, mask, full));
            if (add2) v = _mm256_add_ps(v, load(add2 + at + j, mask, full));
            _mm256_store_ps(dst + gate * kChunk + j, v);
        }
    }
}

// dst[gate * hidden + j] = src[gate * kChunk + j] (and acc[gate * hidden + j] += the same if acc), j < len.
static void scatter_gates(const float* src, int64_t len, int64_t hidden, float* dst, float* acc) {
    for (int64_t gate = 0; gate < 4; ++gate) {
        const int64_t at = gate * hidden;
        for (int64_t j = 0; j < len; j += 8) {
            const bool full = j + 8 <= len;
            const __m256i mask = avx2::tail_mask(len - j);
            const __m256 v = _mm256_load_ps(src + gate * kChunk + j);
            store(dst + at + j, v, mask, full);
            if (acc) store(acc + at + j, _mm256_add_ps(load(acc + at + j, mask, full), v), mask, full);
        }
    }
}

// The forward works on the buffer in phases: the sigmoid of the i, f and o runs (contiguous there),
// the tanh of the g run, then the cell update. Each phase's vectors are independent of each other,
// so the core overlaps their long exp-divide chains; one vector at a time through all five
// nonlinearities (a chain of about 150 cycles) left it waiting on latency (one thread, 64 x 1024
// units: 0.94 ms before, 0.77 ms in phases).
int64_t lstm_forward_row_avx2(const float* ax, const float* ah, const float* b, const float* c_prev, float* gates,
                              float* c, float* h, float* tanh_c, int64_t hidden, int64_t k0, int64_t k1) {
    alignas(32) float buffer[4 * kChunk];
    int64_t nan_count = 0;
    for (int64_t k = k0; k < k1; k += kChunk) {
        const int64_t len = std::min(kChunk, k1 - k);
        const int64_t padded = (len + 7) / 8 * 8;  // lanes past len hold 0 from the gather's masked loads
        gather_gates(ax + k, ah ? ah + k : nullptr, b ? b + k : nullptr, hidden, len, buffer);
        for (int gate = 0; gate < 3; ++gate)
            for (int64_t j = 0; j < padded; j += 8) {
                float* at = buffer + gate * kChunk + j;
                _mm256_store_ps(at, avx2::sigmoid_ps(_mm256_load_ps(at)));
            }
        for (int64_t j = 0; j < padded; j += 8) {
            float* at = buffer + 3 * kChunk + j;
            _mm256_store_ps(at, avx2::tanh_ps(_mm256_load_ps(at)));
        }
        for (int64_t j = 0; j < padded; j += 8) {
            const bool full = j + 8 <= len;
            const __m256i mask = avx2::tail_mask(len - j);
            const __m256 i = _mm256_load_ps(buffer + j), f = _mm256_load_ps(buffer + kChunk + j);
            const __m256 o = _mm256_load_ps(buffer + 2 * kChunk + j), g = _mm256_load_ps(buffer + 3 * kChunk + j);
            const __m256 c_new = _mm256_fmadd_ps(f, load(c_prev + k + j, mask, full), _mm256_mul_ps(i, g));
            const __m256 tc = avx2::tanh_ps(c_new);
            const __m256 h_new = _mm256_mul_ps(o, tc);
            store(c + k + j, c_new, mask, full);
            store(tanh_c + k + j, tc, mask, full);
            store(h + k + j, h_new, mask, full);
            const __m256 nan = _mm256_or_ps(_mm256_cmp_ps(c_new, c_new, _CMP_UNORD_Q), _mm256_cmp_ps(h_new, h_new, _CMP_UNORD_Q));
            nan_count += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_and_ps(nan, _mm256_castsi256_ps(mask))));
        }
        scatter_gates(buffer, len, hidden, gates + k, nullptr);
    }
    return nan_count;
}

void lstm_backward_row_avx2(const float* dh, const float* dc, const float* gates, const float* c_prev,
                            const float* tanh_c, float* da, float* dc_prev, float* db, int64_t hidden, int64_t k0,
                            int64_t k1) {
    alignas(32) float gate_buffer[4 * kChunk], da_buffer[4 * kChunk];
    for (int64_t k = k0; k < k1; k += kChunk) {
        const int64_t len = std::min(kChunk, k1 - k);
        gather_gates(gates + k, nullptr, nullptr, hidden, len, gate_buffer);
        backward_block(dh ? dh + k : nullptr, dc ? dc + k : nullptr, gate_buffer, c_prev + k, tanh_c + k, da_buffer,
                       dc_prev + k, kChunk, 0, len);
        scatter_gates(da_buffer, len, hidden, da + k, db ? db + k : nullptr);
    }
}

}  // namespace fastnn
