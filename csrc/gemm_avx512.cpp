// AVX-512 GEMM micro-kernels (compiled with -mavx512f, called only when use_avx512() is true).
//
// The packed layout is the AVX2 one (gemm.h: A panels 6 rows wide, B panels 16 columns wide), so
// every packer and pre-packed operand serves both; a 16-float B row is exactly one zmm register.
// The wide kernels take two B panels side by side (32 columns) and one or two A panels (6 or 12
// rows): per reduction step two zmm loads of B, 6 or 12 broadcasts of A and 12 or 24 FMAs into
// 12 or 24 zmm accumulators (24 + 2 + 1 of the 32 registers). 24 independent chains cover the FMA
// latency (4 cycles) times the two 512-bit FMA ports, and each B load feeds 12 FMAs, so the loop
// is bound by the FMA ports, not by loads. The tall kernels take one B panel (16 columns: the
// LSTM's per-step products have N = batch = 16) and four or two A panels (24 or 12 rows). On a
// 2-core Sapphire Rapids the AVX-512 FMA loop measured 1.9x the AVX2 one (one core: 241 vs 130
// GFLOP/s), which an AVX2 kernel cannot reach.
#include <immintrin.h>

#include "gemm.h"

namespace fastnn {

// The register block every kernel below but the indirect one shares: acc[i][q] = sum over p < kc
// of A(p, i) B(p, 16 q .. 16 q + 15), R rows by BP zmm. a_at(p, i) is the address of A(p, i) (one
// broadcast), b_at(p, q) that of B's 16 floats (one load). The accumulators stay in registers for
// the whole reduction and are handed to the caller's epilogue.
template <int R, int BP, class AAt, class BAt>
static inline __attribute__((always_inline)) void block_core(int64_t kc, AAt a_at, BAt b_at, __m512 (&acc)[R][BP]) {
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int q = 0; q < BP; ++q) acc[i][q] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; ++p) {
        __m512 bv[BP];
#pragma GCC unroll 2
        for (int q = 0; q < BP; ++q) bv[q] = _mm512_loadu_ps(b_at(p, q));
#pragma GCC unroll 24
        for (int i = 0; i < R; ++i) {
            const __m512 ai = _mm512_set1_ps(*a_at(p, i));
#pragma GCC unroll 2
            for (int q = 0; q < BP; ++q) acc[i][q] = _mm512_fmadd_ps(ai, bv[q], acc[i][q]);
        }
    }
}

// Epilogue of the row-pointer and gathered kernels: the block into C (ldc), added to C or not.
template <int R, int BP>
static inline __attribute__((always_inline)) void store_block(__m512 (&acc)[R][BP], float* c, int64_t ldc,
                                                              bool accumulate) {
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int q = 0; q < BP; ++q) {
            float* at = c + i * ldc + 16 * q;
            _mm512_storeu_ps(at, accumulate ? _mm512_add_ps(acc[i][q], _mm512_loadu_ps(at)) : acc[i][q]);
        }
}

// C[0:Rows, 0:16*BP] (ldc) = (accumulate ? C : row_bias broadcast or 0) + sum over p < kc of
// A(p, i) B(p, j), A from packed panels `a_step` floats apart (row i in panel i / 6), B from BP
// packed panels `b_step` floats apart. Rows is 6 AP for AP whole panels, or 1-5 (a last A panel of
// an M that is not a multiple of 6).
// Stream: non-temporal stores (C rows 64-byte aligned, not accumulated; the caller fences).
// `mask` (BP = 1 only): the columns of C that exist (a last, narrow B panel: its packed panel is
// zero past them, so the FMAs run whole and only C's loads and stores are masked).
template <int AP, int BP, bool Stream, int Rows = 6 * AP>
static inline __attribute__((always_inline)) void sgemm_block(int64_t kc, const float* a, int64_t a_step,
                                                              const float* b, int64_t b_step, float* c, int64_t ldc,
                                                              bool accumulate, const float* row_bias,
                                                              __mmask16 mask = 0xFFFF) {
    constexpr int R = Rows;
    if (!Stream) {
        // C is touched only after the reduction: start fetching its rows now.
#pragma GCC unroll 24
        for (int i = 0; i < R; ++i) {
            _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
            if (BP == 2) _mm_prefetch((const char*)(c + i * ldc + 31), _MM_HINT_T0);
        }
    }
    __m512 acc[R][BP];
    block_core<R, BP>(
        kc, [&](int64_t p, int i) { return a + (i / 6) * a_step + 6 * p + i % 6; },
        [&](int64_t p, int q) { return b + q * b_step + 16 * p; }, acc);
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i) {
        float* row = c + i * ldc;
#pragma GCC unroll 2
        for (int q = 0; q < BP; ++q) {
            __m512 start;
            if (!Stream && accumulate) start = _mm512_maskz_loadu_ps(mask, row + 16 * q);
            else start = row_bias ? _mm512_set1_ps(row_bias[i]) : _mm512_setzero_ps();
            if (Stream) _mm512_stream_ps(row + 16 * q, _mm512_add_ps(start, acc[i][q]));
            else _mm512_mask_storeu_ps(row + 16 * q, mask, _mm512_add_ps(start, acc[i][q]));
        }
    }
}

void sgemm_kernel_wide12_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias) {
    sgemm_block<2, 2, false>(kc, a, a_step, b, b_step, c, ldc, accumulate, row_bias);
}

void sgemm_kernel_wide6_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                               int64_t ldc, bool accumulate, const float* row_bias) {
    sgemm_block<1, 2, false>(kc, a, a_step, b, b_step, c, ldc, accumulate, row_bias);
}

void sgemm_kernel_wide_rows_avx512(int rows, int64_t kc, const float* a, const float* b, int64_t b_step, float* c,
                                   int64_t ldc, bool accumulate, const float* row_bias) {
    switch (rows) {
        case 1: return sgemm_block<1, 2, false, 1>(kc, a, 0, b, b_step, c, ldc, accumulate, row_bias);
        case 2: return sgemm_block<1, 2, false, 2>(kc, a, 0, b, b_step, c, ldc, accumulate, row_bias);
        case 3: return sgemm_block<1, 2, false, 3>(kc, a, 0, b, b_step, c, ldc, accumulate, row_bias);
        case 4: return sgemm_block<1, 2, false, 4>(kc, a, 0, b, b_step, c, ldc, accumulate, row_bias);
        default: return sgemm_block<1, 2, false, 5>(kc, a, 0, b, b_step, c, ldc, accumulate, row_bias);
    }
}

void sgemm_kernel_wide12_stream_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                                       float* c, int64_t ldc, bool /*accumulate*/, const float* row_bias) {
    sgemm_block<2, 2, true>(kc, a, a_step, b, b_step, c, ldc, false, row_bias);
}

void sgemm_kernel_wide6_stream_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                                      float* c, int64_t ldc, bool /*accumulate*/, const float* row_bias) {
    sgemm_block<1, 2, true>(kc, a, a_step, b, b_step, c, ldc, false, row_bias);
}

void sgemm_kernel_tall24_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias) {
    sgemm_block<4, 1, false>(kc, a, a_step, b, b_step, c, ldc, accumulate, row_bias);
}

void sgemm_kernel_tall12_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias) {
    sgemm_block<2, 1, false>(kc, a, a_step, b, b_step, c, ldc, accumulate, row_bias);
}

void sgemm_kernel_tall_narrow_avx512(int a_panels, int cols, int64_t kc, const float* a, int64_t a_step, const float* b,
                                     float* c, int64_t ldc, bool accumulate, const float* row_bias) {
    const __mmask16 mask = (__mmask16)((1u << cols) - 1);
    switch (a_panels) {
        case 4: return sgemm_block<4, 1, false>(kc, a, a_step, b, 0, c, ldc, accumulate, row_bias, mask);
        case 2: return sgemm_block<2, 1, false>(kc, a, a_step, b, 0, c, ldc, accumulate, row_bias, mask);
        default: return sgemm_block<1, 1, false>(kc, a, a_step, b, 0, c, ldc, accumulate, row_bias, mask);
    }
}

// Row-pointer kernel, 6 rows x 32 columns: A's rows read in place (rows[i][p]), two packed B panels
// b and b + b_step. 12 zmm accumulators; per step two B loads and six broadcasts feed 12 FMAs.
void sgemm_kernel_rows_wide_avx512(int64_t kc, const float* const* rows, const float* b, int64_t b_step, float* c,
                                   int64_t ldc, bool accumulate) {
    const float* const a[6] = {rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]};
    __m512 acc[6][2];
    block_core<6, 2>(
        kc, [&](int64_t p, int i) { return a[i] + p; }, [&](int64_t p, int q) { return b + q * b_step + 16 * p; },
        acc);
    store_block<6, 2>(acc, c, ldc, accumulate);
}

// Gathered-A kernel, 12 positions (two 6-position blocks) x 16 filters: tile (12 x 16, row-major)
// = (accumulate ? tile : 0) + sum_p (base[positions[i] + offsets[p]], i < 12) x b[p], b a packed
// 16-wide panel. 12 zmm accumulators; per step one B load and 12 broadcasts.
void sgemm_kernel_gather_a12_avx512(int64_t kc, const float* base, const int64_t* positions, const int64_t* offsets,
                                    const float* b, float* tile, bool accumulate) {
    const float* a[12];
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = base + positions[i];
    __m512 acc[12][1];
    block_core<12, 1>(
        kc, [&](int64_t p, int i) { return a[i] + offsets[p]; }, [&](int64_t p, int) { return b + 16 * p; }, acc);
    store_block<12, 1>(acc, tile, 16, accumulate);
}

// Row-pointer kernel, 12 rows x 16 columns (one packed B panel): C[0:12, 0:16] (ldc) = (accumulate ?
// C : 0) + sum_p (rows[i][p], i < 12) x b[p]. For a lone B panel (16 filters), where the 6 x 32
// kernel has no pair to take.
void sgemm_kernel_rows12_avx512(int64_t kc, const float* const* rows, const float* b, float* c, int64_t ldc,
                                bool accumulate) {
    const float* a[12];
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = rows[i];
    __m512 acc[12][1];
    block_core<12, 1>(kc, [&](int64_t p, int i) { return a[i] + p; }, [&](int64_t p, int) { return b + 16 * p; }, acc);
    store_block<12, 1>(acc, c, ldc, accumulate);
}

// Indirect-B kernel, 6 x 16 (as sgemm_kernel_indirect_avx2): row p of B is the 16 floats at
// base + offsets[p], one unaligned zmm load. One zmm per row of the tile gives only 6 accumulator
// chains, too few for the FMA latency times two ports, so even and odd steps go to separate
// accumulators (12 chains), added at the end.
void sgemm_kernel_indirect_avx512(int64_t kc, const float* a, const float* base, const int64_t* offsets,
                                  float* tile) {
    __m512 even[6], odd[6];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) even[i] = odd[i] = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 2 <= kc; p += 2, a += 12) {
        const __m512 b0 = _mm512_loadu_ps(base + offsets[p]), b1 = _mm512_loadu_ps(base + offsets[p + 1]);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            even[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, even[i]);
            odd[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[6 + i]), b1, odd[i]);
        }
    }
    if (p < kc) {
        const __m512 b0 = _mm512_loadu_ps(base + offsets[p]);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) even[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, even[i]);
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) _mm512_storeu_ps(tile + 16 * i, _mm512_add_ps(even[i], odd[i]));
}

}  // namespace fastnn
