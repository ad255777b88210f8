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

// The float 6 x 16 register block every float kernel below shares. For reduction step p, b_at(p)
// gives the address of B's row p (16 floats; `AlignedB`: a packed panel, 32-byte aligned) and
// a_at(p, i) the address of A[i][p]. The twelve accumulators stay in registers for the whole
// reduction and are handed to the caller's epilogue in acc.
template <bool AlignedB, class AAt, class BAt>
static inline __attribute__((always_inline)) void sgemm_block_6x16(int64_t kc, AAt a_at, BAt b_at,
                                                                   __m256 acc[6][2]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p) {
        const float* b = b_at(p);
        const __m256 b0 = AlignedB ? _mm256_load_ps(b) : _mm256_loadu_ps(b);
        const __m256 b1 = AlignedB ? _mm256_load_ps(b + 8) : _mm256_loadu_ps(b + 8);
        __m256 ai = _mm256_broadcast_ss(a_at(p, 0));
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a_at(p, 1));
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a_at(p, 2));
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a_at(p, 3));
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a_at(p, 4));
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a_at(p, 5));
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
    }
    acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11;
    acc[2][0] = c20, acc[2][1] = c21, acc[3][0] = c30, acc[3][1] = c31;
    acc[4][0] = c40, acc[4][1] = c41, acc[5][0] = c50, acc[5][1] = c51;
}

// Epilogue of the tile kernels: the 6 x 16 block to a contiguous tile (ldc 16).
static inline __attribute__((always_inline)) void store_tile_6x16(const __m256 acc[6][2], float* tile) {
    for (int i = 0; i < 6; ++i) {
        _mm256_storeu_ps(tile + 16 * i, acc[i][0]);
        _mm256_storeu_ps(tile + 16 * i + 8, acc[i][1]);
    }
}

// Epilogue of the C kernels: rows 0..R-1 of the block into C (ldc), added to C (accumulate) or to
// the row's bias (or zero).
template <int R>
static inline __attribute__((always_inline)) void store_rows(const __m256 acc[][2], float* c, int64_t ldc,
                                                             bool accumulate, const float* row_bias) {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
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

void sgemm_kernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       bool accumulate, const float* row_bias) {
    // C is touched only after the reduction: start fetching its rows now so the final
    // load/store does not wait on memory.
    for (int i = 0; i < 6; ++i) {
        _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(c + i * ldc + 15), _MM_HINT_T0);
    }
    __m256 acc[6][2];
    sgemm_block_6x16<true>(
        kc, [a](int64_t p, int i) { return a + 6 * p + i; }, [b](int64_t p) { return b + 16 * p; }, acc);
    store_rows<6>(acc, c, ldc, accumulate, row_bias);
}

// Fewer rows (R < 6) of the same block, for the last panel of an M that is not a multiple of 6:
// only R rows of FMAs, written straight to C (the 6-row kernel would compute 6 and drop 6 - R).
template <int R>
static void sgemm_kernel_rows_partial(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                      bool accumulate, const float* row_bias) {
    __m256 acc[R][2];
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 16) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    store_rows<R>(acc, c, ldc, accumulate, row_bias);
}

void sgemm_kernel_rows_partial_avx2(int rows, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                    bool accumulate, const float* row_bias) {
    switch (rows) {
        case 1: return sgemm_kernel_rows_partial<1>(kc, a, b, c, ldc, accumulate, row_bias);
        case 2: return sgemm_kernel_rows_partial<2>(kc, a, b, c, ldc, accumulate, row_bias);
        case 3: return sgemm_kernel_rows_partial<3>(kc, a, b, c, ldc, accumulate, row_bias);
        case 4: return sgemm_kernel_rows_partial<4>(kc, a, b, c, ldc, accumulate, row_bias);
        case 5: return sgemm_kernel_rows_partial<5>(kc, a, b, c, ldc, accumulate, row_bias);
        default: return sgemm_kernel_avx2(kc, a, b, c, ldc, accumulate, row_bias);
    }
}

// Streaming variant, for a C written once and not read soon (the first and only reduction block of
// a C larger than the caches): non-temporal stores send the tile's six 64-byte rows straight to
// memory, so C's lines are not first read in (half of the traffic of writing a fresh C). C's rows
// must be 64-byte aligned; `accumulate` must be false. The caller fences (stream_fence_avx2) before
// another thread reads C.
void sgemm_kernel_stream_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                              bool /*accumulate*/, const float* row_bias) {
    __m256 acc[6][2];
    sgemm_block_6x16<true>(
        kc, [a](int64_t p, int i) { return a + 6 * p + i; }, [b](int64_t p) { return b + 16 * p; }, acc);
    for (int i = 0; i < 6; ++i) {
        float* row = c + i * ldc;
        const __m256 start = row_bias ? _mm256_set1_ps(row_bias[i]) : _mm256_setzero_ps();
        _mm256_stream_ps(row, _mm256_add_ps(start, acc[i][0]));
        _mm256_stream_ps(row + 8, _mm256_add_ps(start, acc[i][1]));
    }
}

void stream_fence_avx2() { _mm_sfence(); }

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

// Indirect-B variant (no packed B): row p of the B tile is the 16 floats at base + offsets[p]. For a
// stride-1 convolution over a padded image those rows are shifted windows of the image itself, so
// the unfolded matrix is read in place instead of being packed. Writes the 6 x 16 tile (ldc 16).
void sgemm_kernel_indirect_avx2(int64_t kc, const float* a, const float* base, const int64_t* offsets,
                                float* tile) {
    __m256 acc[6][2];
    sgemm_block_6x16<false>(
        kc, [a](int64_t p, int i) { return a + 6 * p + i; },
        [base, offsets](int64_t p) { return base + offsets[p]; }, acc);
    store_tile_6x16(acc, tile);
}

// Row-pointer variant (no packed A): A's six rows are read in place from rows[0..5] (one broadcast
// each per step, which costs the same as broadcasting from a packed panel). For the weight gradient
// of a stride-1 convolution those rows are windows of the padded image; for the LSTM cell's input
// gradients, rows of the weights. Writes (or adds to) the 6 x 16 block of C.
void sgemm_kernel_rows_avx2(int64_t kc, const float* const* rows, const float* b, float* c, int64_t ldc,
                            bool accumulate) {
    const float* const a[6] = {rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]};
    __m256 acc[6][2];
    sgemm_block_6x16<true>(
        kc, [&a](int64_t p, int i) { return a[i] + p; }, [b](int64_t p) { return b + 16 * p; }, acc);
    store_rows<6>(acc, c, ldc, accumulate, nullptr);
}

// Gathered-A variant: A's six rows are output positions, A[i][p] = base[positions[i] + offsets[p]]
// (for a convolution: position i's window, tap p, read in place from the padded image), and B is a
// packed 16-wide panel of filters. Every vector load is an aligned load of the weights; the image
// is only ever broadcast, so no position is computed that is not kept. Writes the 6 x 16 tile, or adds to it.
void sgemm_kernel_gather_a_avx2(int64_t kc, const float* base, const int64_t* positions, const int64_t* offsets,
                                const float* b, float* tile, bool accumulate) {
    const float* const a[6] = {base + positions[0], base + positions[1], base + positions[2],
                               base + positions[3], base + positions[4], base + positions[5]};
    __m256 acc[6][2];
    sgemm_block_6x16<true>(
        kc, [&a, offsets](int64_t p, int i) { return a[i] + offsets[p]; },
        [b](int64_t p) { return b + 16 * p; }, acc);
    if (accumulate)
        for (int i = 0; i < 6; ++i) {
            acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(tile + 16 * i));
            acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(tile + 16 * i + 8));
        }
    store_tile_6x16(acc, tile);
}

// ------------------------------------------------------------------------- transposing pack
// 8 x 8 transpose of r0..r7 in registers (unpack / shuffle / permute2f128).
static inline void transpose8x8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5,
                                __m256& r6, __m256& r7) {
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
    r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
    r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
    r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
    r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
    r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
    r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
    r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void pack_panel_transposed_avx2(const float* src, int64_t stride_q, int64_t kc, int64_t lanes, int width,
                                float* panel) {
    // Lane l's values are src[l * stride_q + p], p in [0, kc): contiguous runs, one per lane. Eight
    // lanes x eight p at a time go through a register transpose, so both the loads and the stores
    // are full vectors (the scalar version is one 4-byte load and store per element).
    const int64_t full = kc & ~int64_t(7);
    for (int l0 = 0; l0 < width; l0 += 8) {
        const float* rows[8];
        for (int l = 0; l < 8; ++l) rows[l] = l0 + l < lanes ? src + (l0 + l) * stride_q : nullptr;
        const int store_lanes = width - l0 < 8 ? width - l0 : 8;
        for (int64_t p = 0; p < full; p += 8) {
            __m256 r[8];
            for (int l = 0; l < 8; ++l) r[l] = rows[l] ? _mm256_loadu_ps(rows[l] + p) : _mm256_setzero_ps();
            transpose8x8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
            float* out = panel + p * width + l0;
            if (store_lanes == 8) {
                for (int t = 0; t < 8; ++t) _mm256_storeu_ps(out + t * width, r[t]);
            } else if (store_lanes == 6) {  // the A panels (MR = 6): a 4-float and a 2-float store
                for (int t = 0; t < 8; ++t) {
                    _mm_storeu_ps(out + t * width, _mm256_castps256_ps128(r[t]));
                    _mm_storel_pi((__m64*)(out + t * width + 4), _mm256_extractf128_ps(r[t], 1));
                }
            } else {  // (vmaskmovps stores are microcoded and slow on AMD: stage through memory)
                alignas(32) float staged[8];
                for (int t = 0; t < 8; ++t) {
                    _mm256_store_ps(staged, r[t]);
                    for (int l = 0; l < store_lanes; ++l) out[t * width + l] = staged[l];
                }
            }
        }
        for (int64_t p = full; p < kc; ++p)
            for (int l = 0; l < store_lanes; ++l) panel[p * width + l0 + l] = rows[l] ? rows[l][p] : 0.0f;
    }
}

}  // namespace fastnn
