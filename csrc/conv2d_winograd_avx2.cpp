// Winograd F(2x2, 3x3) forward convolution for float, 3x3 filters, stride 1 (compiled with -mavx2
// -mfma; called only when use_avx2() is true). Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks" (2016).
//
// The output is cut into 2x2 tiles; tile (ty, tx) reads the 4x4 input patch d at rows 2ty-ph..+3 and
// columns 2tx-pw..+3 of each channel. With
//
//   B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
//         [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
//         [0 -1  1  0]         [1/2 -1/2  1/2]
//         [0  1  0 -1]         [ 0    0    1 ]
//
//   U[k, c] = G g[k, c] G^T      (4x4, the filter transformed once per call)
//   V[c, t] = B^T d[c, t] B      (4x4, the patch of tile t transformed)
//   Y[k, t] = A^T ( sum_c U[k, c] (.) V[c, t] ) A      ((.) elementwise; Y is the 2x2 output tile)
//
// The sum over c is, for each of the 16 positions xi of the 4x4 transformed tile, a matrix product
// M_xi (K, tiles) = U_xi (K, C) V_xi (C, tiles): 16 GEMMs of 2*K*C flops per tile instead of the
// direct convolution's 9 * 2*K*C per 2x2 outputs, i.e. 2.25x fewer multiplications. The transforms
// are additions only, linear in the data, and run on 8 tiles at once (one ymm lane per tile).
//
// Work unit: a group of 8 horizontally adjacent tiles of one image row of tiles (rows of tiles are
// padded to a multiple of 8; the extra tiles read zeros and are not stored). Each thread takes an
// equal share of all groups of all images and walks it in blocks of a few groups: transform the
// block's patches into V (packed as the GEMM micro-kernel's 16-wide B panels), run the 16 GEMMs
// with the filters packed as 6-row A panels, transform M back into output tiles. A block's V and M
// stay in the cache between the three steps.
#include <immintrin.h>

#include <cstring>

#include "buffer_cache.h"
#include "conv2d.h"
#include "cpu_features.h"
#include "gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastnn {

namespace {

constexpr int64_t kLanes = 8;   // tiles per group: one ymm lane each
constexpr int64_t kTerms = 16;  // positions of the 4x4 transformed tile
constexpr int64_t kMR = 6, kNR = 16;
constexpr int64_t kKcStep = 256;  // reduction block over input channels (the GEMM's KC)

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Geometry {
    int64_t tiles_h, row_groups, image_groups;  // tile rows, groups per tile row, groups per image
    int64_t hp, wp, plane;                      // padded image: hp x wp per channel
    int64_t k_rows;                             // K rounded up to whole 6-row panels
    int64_t block_groups;                       // groups per block (even: two groups fill one panel)
};

Geometry geometry(const Conv2dShape& s) {
    Geometry g;
    g.tiles_h = ceil_div64(s.OH, 2);
    g.row_groups = ceil_div64(ceil_div64(s.OW, 2), kLanes);
    g.image_groups = g.tiles_h * g.row_groups;
    // Every patch of every (padded) tile lies inside: rows up to 2*tiles_h + 1, columns up to
    // 16*row_groups + 1. The image sits at (ph, pw); everything else is zero.
    g.hp = 2 * g.tiles_h + 2;
    g.wp = 2 * kLanes * g.row_groups + 2;
    g.plane = g.hp * g.wp;
    g.k_rows = ceil_div64(s.K, kMR) * kMR;
    // V and M of one block together about 1 MB (they are written, then read back from the cache).
    const int64_t bytes_per_group = kTerms * (s.C + g.k_rows) * kLanes * (int64_t)sizeof(float);
    int64_t groups = ((int64_t(1) << 20) / bytes_per_group) & ~int64_t(1);
    g.block_groups = groups < 2 ? 2 : (groups > 16 ? 16 : groups);
    return g;
}

// Zero-padded copy of image n: xpad[c][y + ph][z + pw] = x[n][c][y][z].
void pad_image(const float* x, int64_t n, const Conv2dShape& s, const Geometry& g, float* xpad) {
    const float* xn = x + n * s.C * s.H * s.W;
    for (int64_t c = 0; c < s.C; ++c) {
        float* dst = xpad + c * g.plane;
        std::memset(dst, 0, (size_t)(s.ph * g.wp) * sizeof(float));
        for (int64_t y = 0; y < s.H; ++y) {
            float* row = dst + (y + s.ph) * g.wp;
            std::memset(row, 0, (size_t)s.pw * sizeof(float));
            std::memcpy(row + s.pw, xn + (c * s.H + y) * s.W, (size_t)s.W * sizeof(float));
            std::memset(row + s.pw + s.W, 0, (size_t)(g.wp - s.pw - s.W) * sizeof(float));
        }
        std::memset(dst + (s.H + s.ph) * g.wp, 0, (size_t)((g.hp - s.H - s.ph) * g.wp) * sizeof(float));
    }
}

// [v0 v2 v4 ... v14] and [v1 v3 ... v15] of the 16 floats lo:hi.
inline void deinterleave(__m256 lo, __m256 hi, __m256& even, __m256& odd) {
    // shuffle gives [0 2 8 10 | 4 6 12 14]; the 64-bit permute puts the pairs in order.
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
}

// V = B^T d B for the 8 tiles whose patches start at columns 0, 2, ..., 14 of `src` (rows `ld` apart),
// written to v[xi * term_stride] (8 floats each).
inline void input_transform(const float* src, int64_t ld, float* v, int64_t term_stride) {
    __m256 t[4][4];  // t = d B, row by row
    for (int r = 0; r < 4; ++r) {
        const float* p = src + r * ld;
        __m256 d0, d1, d2, d3;
        deinterleave(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), d0, d1);       // columns 2u, 2u + 1
        deinterleave(_mm256_loadu_ps(p + 2), _mm256_loadu_ps(p + 10), d2, d3);  // columns 2u + 2, 2u + 3
        t[r][0] = _mm256_sub_ps(d0, d2);
        t[r][1] = _mm256_add_ps(d1, d2);
        t[r][2] = _mm256_sub_ps(d2, d1);
        t[r][3] = _mm256_sub_ps(d1, d3);
    }
    for (int j = 0; j < 4; ++j) {
        _mm256_store_ps(v + (0 * 4 + j) * term_stride, _mm256_sub_ps(t[0][j], t[2][j]));
        _mm256_store_ps(v + (1 * 4 + j) * term_stride, _mm256_add_ps(t[1][j], t[2][j]));
        _mm256_store_ps(v + (2 * 4 + j) * term_stride, _mm256_sub_ps(t[2][j], t[1][j]));
        _mm256_store_ps(v + (3 * 4 + j) * term_stride, _mm256_sub_ps(t[1][j], t[3][j]));
    }
}

// Y = A^T m A + bias for 8 tiles (m[xi] at m + xi * term_stride), stored as output rows oy and oy + 1
// (when < OH), columns ox .. ox + 15 clipped to OW.
inline void output_transform(const float* m, int64_t term_stride, float bias, float* out, int64_t OH, int64_t OW,
                             int64_t oy, int64_t ox) {
    __m256 s[4][2];  // s = m A, row by row
    for (int r = 0; r < 4; ++r) {
        const __m256 m0 = _mm256_load_ps(m + (r * 4 + 0) * term_stride);
        const __m256 m1 = _mm256_load_ps(m + (r * 4 + 1) * term_stride);
        const __m256 m2 = _mm256_load_ps(m + (r * 4 + 2) * term_stride);
        const __m256 m3 = _mm256_load_ps(m + (r * 4 + 3) * term_stride);
        s[r][0] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        s[r][1] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
    }
    const __m256 b = _mm256_set1_ps(bias);
    const int64_t count = min64(2 * kLanes, OW - ox);
    for (int i = 0; i < 2 && oy + i < OH; ++i) {
        __m256 y0, y1;  // output columns 2u and 2u + 1 of the row
        if (i == 0) {
            y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0][0], s[1][0]), s[2][0]), b);
            y1 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0][1], s[1][1]), s[2][1]), b);
        } else {
            y0 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[1][0], s[2][0]), s[3][0]), b);
            y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[1][1], s[2][1]), s[3][1]), b);
        }
        // Interleave: [y0_0 y1_0 y0_1 y1_1 ...]: unpack works within 128-bit halves, the permute joins them.
        const __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
        const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
        float* row = out + (oy + i) * OW + ox;
        if (count == 2 * kLanes) {
            _mm256_storeu_ps(row, first);
            _mm256_storeu_ps(row + 8, second);
        } else {
            alignas(32) float staged[2 * kLanes];
            _mm256_store_ps(staged, first);
            _mm256_store_ps(staged + 8, second);
            std::memcpy(row, staged, (size_t)count * sizeof(float));
        }
    }
}

// U = G g G^T of every filter, packed as the A panels of the 16 GEMMs. Term xi holds k_rows x C
// values; its channel block pc (kc channels) starts at pc * k_rows, and within it panel ip (filters
// 6 ip .. 6 ip + 5) is the contiguous kc x 6 block at ip * 6 * kc: channel c, filter 6 ip + lane at
// (c - pc) * 6 + lane. Rows past K stay zero.
void transform_filters(const float* w, const Conv2dShape& s, const Geometry& g, float* u) {
    const int64_t per_term = g.k_rows * s.C;
    std::memset(u, 0, (size_t)(kTerms * per_term) * sizeof(float));
#pragma omp parallel for schedule(static) if (s.K * s.C > 4096)
    for (int64_t k = 0; k < s.K; ++k) {
        const int64_t ip = k / kMR, lane = k - ip * kMR;
        for (int64_t c = 0; c < s.C; ++c) {
            const float* f = w + (k * s.C + c) * 9;
            float gg[4][3];  // G f
            for (int j = 0; j < 3; ++j) {
                const float f0 = f[0 * 3 + j], f1 = f[1 * 3 + j], f2 = f[2 * 3 + j];
                gg[0][j] = f0;
                gg[1][j] = 0.5f * (f0 + f1 + f2);
                gg[2][j] = 0.5f * (f0 - f1 + f2);
                gg[3][j] = f2;
            }
            const int64_t pc = c / kKcStep * kKcStep, kc = min64(kKcStep, s.C - pc);
            float* dst = u + pc * g.k_rows + ip * kMR * kc + (c - pc) * kMR + lane;
            for (int a = 0; a < 4; ++a) {
                const float h0 = gg[a][0], h1 = gg[a][1], h2 = gg[a][2];
                const float row[4] = {h0, 0.5f * (h0 + h1 + h2), 0.5f * (h0 - h1 + h2), h2};
                for (int j = 0; j < 4; ++j) dst[(a * 4 + j) * per_term] = row[j];
            }
        }
    }
}


}  // namespace

bool winograd_applies(const Conv2dShape& s) {
    // The 2x2 tiles need stride 1 and a 3x3 filter; enough channels on both sides for the GEMMs to
    // dominate the transforms; and rows of tiles that fill their groups of 8 well enough (at most a
    // third computed in vain: a 7x7 output has 4 tiles per row computed as 8, 2x the work, and ran
    // 1.5x slower than the direct path (8 x 512 x 7 x 7); 9x9, 1.6x, ran 1.1x slower).
    if (s.kh != 3 || s.kw != 3 || s.sh != 1 || s.sw != 1 || s.C < 32 || s.K < 32) return false;
    const int64_t row_tiles = ceil_div64(s.OW, 2), computed = ceil_div64(row_tiles, kLanes) * kLanes;
    return computed * 3 <= row_tiles * 4;
}

void conv2d_winograd_forward_avx2(const float* x, const float* w, const float* b, float* out,
                                  const Conv2dShape& s) {
    const Geometry g = geometry(s);
    const int64_t per_term = g.k_rows * s.C;
    // From the buffer cache (4 MB at 256 x 256 channels). Plain calls, not buffer_cache.h's templates:
    // inline code instantiated in this -mavx2 file could be the copy the linker keeps for all callers.
    struct Buffer {
        float* p;
        ~Buffer() { cached_free(p); }
    } u_buffer{static_cast<float*>(cached_alloc((size_t)(kTerms * per_term) * sizeof(float)))};
    float* u = u_buffer.p;
    transform_filters(w, s, g, u);

    const int64_t total = s.N * g.image_groups, P = s.OH * s.OW;
    const int64_t panels = g.block_groups / 2, ldm = panels * kNR;
    const int threads = get_num_threads();
#pragma omp parallel num_threads(threads) if (threads > 1 && total > 1)
    {
        int me = 0, team = 1;
#ifdef _OPENMP
        me = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        const int64_t first = total * me / team, last = total * (me + 1) / team;
        float* xpad = thread_scratch<float>(kScratchConvColumns, s.C * g.plane);
        // V: term xi, panel jp: C x 16 (the micro-kernel's B panel). M: term xi: k_rows x ldm.
        float* v = thread_scratch<float>(kScratchPackB, kTerms * panels * s.C * kNR);
        float* m = thread_scratch<float>(kScratchPackA, kTerms * g.k_rows * ldm);
        int64_t padded = -1;  // the image now in xpad
        for (int64_t block = first; block < last; block += g.block_groups) {
            const int64_t count = min64(g.block_groups, last - block), used_panels = ceil_div64(count, 2);
            // 1. Patches -> V.
            for (int64_t q = 0; q < count; ++q) {
                const int64_t group = block + q, n = group / g.image_groups, rest = group - n * g.image_groups;
                const int64_t ty = rest / g.row_groups, tx = (rest - ty * g.row_groups) * kLanes;
                if (n != padded) {
                    pad_image(x, n, s, g, xpad);
                    padded = n;
                }
                const float* src = xpad + 2 * ty * g.wp + 2 * tx;
                float* dst = v + (q / 2) * s.C * kNR + (q % 2) * kLanes;
                for (int64_t c = 0; c < s.C; ++c)
                    input_transform(src + c * g.plane, g.wp, dst + c * kNR, panels * s.C * kNR);
            }
            if (count % 2)  // the last panel's second half: zeros (computed, never stored)
                for (int64_t xi = 0; xi < kTerms; ++xi)
                    for (int64_t c = 0; c < s.C; ++c)
                        std::memset(v + ((xi * panels + count / 2) * s.C + c) * kNR + kLanes, 0,
                                    kLanes * sizeof(float));
            // 2. The 16 GEMMs: M_xi (k_rows x 16*used_panels) = U_xi V_xi, over channel blocks.
            for (int64_t xi = 0; xi < kTerms; ++xi) {
                const float* uxi = u + xi * per_term;
                float* mxi = m + xi * g.k_rows * ldm;
                for (int64_t pc = 0; pc < s.C; pc += kKcStep) {
                    const int64_t kc = min64(kKcStep, s.C - pc);
                    for (int64_t jp = 0; jp < used_panels; ++jp) {
                        const float* vp = v + (xi * panels + jp) * s.C * kNR + pc * kNR;
                        for (int64_t ip = 0; ip < g.k_rows / kMR; ++ip)
                            sgemm_kernel_avx2(kc, uxi + pc * g.k_rows + ip * kMR * kc, vp,
                                              mxi + ip * kMR * ldm + jp * kNR, ldm, pc > 0, nullptr);
                    }
                }
            }
            // 3. M -> output tiles.
            for (int64_t q = 0; q < count; ++q) {
                const int64_t group = block + q, n = group / g.image_groups, rest = group - n * g.image_groups;
                const int64_t ty = rest / g.row_groups, tx = (rest - ty * g.row_groups) * kLanes;
                float* on = out + n * s.K * P;
                for (int64_t k = 0; k < s.K; ++k)
                    output_transform(m + k * ldm + q * kLanes, g.k_rows * ldm, b ? b[k] : 0.0f, on + k * P, s.OH,
                                     s.OW, 2 * ty, 2 * tx);
            }
        }
    }
}

}  // namespace fastnn
