// Winograd convolutions for float, 3x3 filters (compiled with -mavx2 -mfma; called only when
// use_avx2() is true). Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), for
// stride 1; for stride 2 the same minimal filtering applied to the even and odd phases of the input.
//
// A scheme cuts the output into T x T tiles; tile (ty, tx) is computed from the P x P input patch at
// rows in_y0 + S ty .. + P - 1 and columns in_x0 + S tx .. + P - 1 (zeros outside the input). In one
// dimension it is three small linear maps: V = B^T d (P inputs -> n values), U = G f (the 3 taps ->
// n), Y = A^T m (n products -> T outputs), with Y = A^T (U (.) V) the T outputs of the 1-D
// correlation ((.) elementwise). In two dimensions each map is applied along rows, then columns:
//
//   U[o, i] = G g[o, i] G^T     (n x n, each filter transformed once per call)
//   V[i, t] = B^T d[i, t] B     (n x n, the patch of tile t in input channel i)
//   Y[o, t] = A^T ( sum_i U[o, i] (.) V[i, t] ) A      (T x T, output tile t of output channel o)
//
// The sum over i is, for each of the n^2 positions xi, a matrix product M_xi (out, tiles) =
// U_xi (out, in) V_xi (in, tiles): n^2 GEMMs instead of 9 T^2 multiply-adds per tile and channel pair.
// The transforms are additions and small multiples, and run on 8 tiles at once (one ymm lane each).
// The weight gradient runs the same schemes backwards (see weight_grad below).
//
//   F(2x2, 3x3), stride 1 (n 4, P 4, S 2, T 2): 16 terms for 36 products, 2.25x fewer.
//     B^T d = [d0 - d2, d1 + d2, d2 - d1, d1 - d3]   G f = [f0, (f0 + f1 + f2)/2, (f0 - f1 + f2)/2, f2]
//     A^T m = [m0 + m1 + m2, m1 - m2 - m3]
//   F(4x4, 3x3), stride 1 (n 6, P 6, S 4, T 4; points 0, +-1, +-2, inf): 36 terms for 144 products,
//   4x fewer. Taken when its tiles fit the output (winograd_applies), else F(2x2, 3x3).
//     B^T d = [4 d0 - 5 d2 + d4, -4 d1 - 4 d2 + d3 + d4, 4 d1 - 4 d2 - d3 + d4, -2 d1 - d2 + 2 d3 + d4,
//              2 d1 - d2 - 2 d3 + d4, 4 d1 - 5 d3 + d5]
//     G f = [f0/4, -(f0 + f1 + f2)/6, -(f0 - f1 + f2)/6, f0/24 + f1/12 + f2/6, f0/24 - f1/12 + f2/6, f2]
//     A^T m = [m0 + m1 + m2 + m3 + m4, m1 - m2 + 2 m3 - 2 m4, m1 + m2 + 4 m3 + 4 m4, m1 - m2 + 8 m3 - 8 m4 + m5]
//   Stride 2, forward (n 5, P 5, S 4, T 2): y0 = d0 f0 + d1 f1 + d2 f2, y1 = d2 f0 + d3 f1 + d4 f2. The
//   even inputs d0 d2 d4 meet only f0 and f2 (a 2-tap correlation, F(2, 2): 3 products for 4), the
//   odd ones d1 d3 only f1 (2 products): 25 terms for 36 products, 1.44x fewer.
//     B^T d = [d0 - d2, d2, d4 - d2, d1, d3]   G f = [f0, f0 + f2, f2, f1, f1]   A^T m = [m0 + m1 + m3, m1 + m2 + m4]
//   Stride 2, backward data (n 5, P 3, S 2, T 4): the input gradient at rows q = 4t + 1 .. 4t + 4
//   (q = row + padding) from dout rows 2t .. 2t + 2 (e0 e1 e2): z0 = e0 f1, z1 = e0 f2 + e1 f0,
//   z2 = e1 f1, z3 = e1 f2 + e2 f0. The same split: 25 terms for 36 products.
//     B^T e = [e0 - e1, e1, e2 - e1, e0, e1]   G f = [f2, f0 + f2, f0, f1, f1]   A^T m = [m3, m0 + m1, m4, m1 + m2]
//
// Work unit: a group of 8 consecutive tiles of the batch (tile order: image, tile row, tile column),
// so groups are full however many tiles a row has; only the very last group can be partial. Each
// thread takes an equal share of the groups and walks it in blocks of a few groups: transform the
// block's patches into V (packed as the GEMM micro-kernel's 16-wide B panels), run the n^2 GEMMs with
// the transformed filters packed as 6-row A panels, transform M back into output tiles. A block's V
// and M stay in the cache between the three steps. The patches are read from zero-padded copies of
// the images, two per thread (a group spans at most two images: every image has >= 8 tiles).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "buffer_cache.h"
#include "conv2d.h"
#include "cpu_features.h"
#include "gemm.h"

namespace fastnn {

namespace {

constexpr int64_t kLanes = 8;  // tiles per group: one ymm lane each
constexpr int64_t kMR = 6, kNR = 16;
constexpr int64_t kKcStep = 256;  // reduction block over input channels (the GEMM's KC)

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Distance between consecutive terms of a per-term array of `floats` floats each. The transforms
// write (and the weight gradient's last step reads) all n^2 terms of one tile or filter together;
// with terms a multiple of 4 KB apart those accesses would all fall in one L1 set (8 ways for 16 to
// 36 streams). 4 KB multiples plus one cache line spread them over consecutive sets.
inline int64_t spread(int64_t floats) { return ceil_div64(floats, 1024) * 1024 + 16; }

// out = M d M^T for a 1-D linear map M (`map`: In values -> Out values): M applied to the rows of d,
// each as soon as row(r, d_r) has loaded it, then to the columns of the result. The 2-D form of
// every transform below.
template <int In, int Out, class Row, class Map>
inline __attribute__((always_inline)) void map_2d(Row row, Map map, __m256 (&out)[Out][Out]) {
    __m256 rows[In][Out];
    for (int r = 0; r < In; ++r) {
        __m256 d[In];
        row(r, d);
        map(d, rows[r]);
    }
    for (int j = 0; j < Out; ++j) {
        __m256 column[In], mapped[Out];
        for (int r = 0; r < In; ++r) column[r] = rows[r][j];
        map(column, mapped);
        for (int a = 0; a < Out; ++a) out[a][j] = mapped[a];
    }
}

// Rows r0 .. r0 + rows - 1 and columns c0 .. c0 + width - 1 of a plane_h x plane_w plane, zero outside
// the plane (everywhere when plane is null), to dst: row r at dst + r * row_stride, column q at
// q * kColStride (1: a padded image; 8: one lane of a channel-blocked one).
template <int kColStride>
void copy_window(const float* plane, int64_t plane_h, int64_t plane_w, int64_t r0, int64_t c0, int64_t rows,
                 int64_t width, float* dst, int64_t row_stride) {
    const int64_t lo = min64(width, max64(0, -c0)), hi = max64(lo, min64(width, plane_w - c0));
    for (int64_t r = 0; r < rows; ++r) {
        float* d = dst + r * row_stride;
        const int64_t y = r0 + r;
        if (!plane || y < 0 || y >= plane_h) {
            for (int64_t q = 0; q < width; ++q) d[q * kColStride] = 0.0f;
            continue;
        }
        const float* src = plane + y * plane_w + c0;
        for (int64_t q = 0; q < lo; ++q) d[q * kColStride] = 0.0f;
        for (int64_t q = lo; q < hi; ++q) d[q * kColStride] = src[q];
        for (int64_t q = hi; q < width; ++q) d[q * kColStride] = 0.0f;
    }
}

struct StrideOneF2 {
    static constexpr int n = 4, P = 4, S = 2, T = 2;
    static void in(const __m256* d, __m256* v) {
        v[0] = _mm256_sub_ps(d[0], d[2]);
        v[1] = _mm256_add_ps(d[1], d[2]);
        v[2] = _mm256_sub_ps(d[2], d[1]);
        v[3] = _mm256_sub_ps(d[1], d[3]);
    }
    static void filter(float f0, float f1, float f2, float* u) {
        u[0] = f0;
        u[1] = 0.5f * (f0 + f1 + f2);
        u[2] = 0.5f * (f0 - f1 + f2);
        u[3] = f2;
    }
    static void out(const __m256* m, __m256* y) {
        y[0] = _mm256_add_ps(_mm256_add_ps(m[0], m[1]), m[2]);
        y[1] = _mm256_sub_ps(_mm256_sub_ps(m[1], m[2]), m[3]);
    }
    // The transposes, for the weight gradient: m = A y (T -> n) and g = G^T u (n -> 3).
    static void out_t(const __m256* y, __m256* m) {
        m[0] = y[0];
        m[1] = _mm256_add_ps(y[0], y[1]);
        m[2] = _mm256_sub_ps(y[0], y[1]);
        m[3] = _mm256_sub_ps(_mm256_setzero_ps(), y[1]);
    }
    static void filter_t(const __m256* u, __m256* g) {  // (GCC/Clang vector arithmetic on __m256)
        const __m256 half = _mm256_set1_ps(0.5f), mid = half * (u[1] + u[2]);
        g[0] = u[0] + mid;
        g[1] = half * (u[1] - u[2]);
        g[2] = mid + u[3];
    }
};

struct StrideOneF4 {
    static constexpr int n = 6, P = 6, S = 4, T = 4;
    static void in(const __m256* d, __m256* v) {
        const __m256 four = _mm256_set1_ps(4.0f), two = _mm256_set1_ps(2.0f);
        const __m256 d42 = _mm256_sub_ps(d[4], d[2]), d31 = _mm256_sub_ps(d[3], d[1]);
        v[0] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[0], d[2]), d42);
        v[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
        v[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
        v[3] = _mm256_fmadd_ps(two, d31, d42);
        v[4] = _mm256_fnmadd_ps(two, d31, d42);
        v[5] = _mm256_fnmadd_ps(four, d31, _mm256_sub_ps(d[5], d[3]));
    }
    static void filter(float f0, float f1, float f2, float* u) {
        // Products with the reciprocals (divisions would dominate the filter transform).
        const float sixth = 1.0f / 6, even = 0.25f * sixth * f0 + sixth * f2, odd = 0.5f * sixth * f1;
        u[0] = 0.25f * f0;
        u[1] = -sixth * (f0 + f1 + f2);
        u[2] = -sixth * (f0 - f1 + f2);
        u[3] = even + odd;
        u[4] = even - odd;
        u[5] = f2;
    }
    static void out(const __m256* m, __m256* y) {
        const __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
        const __m256 c = _mm256_add_ps(m[3], m[4]), e = _mm256_sub_ps(m[3], m[4]);
        y[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
        y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), e, b);
        y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
        y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), e, b), m[5]);
    }
    static void out_t(const __m256* y, __m256* m) {
        const __m256 even = _mm256_add_ps(y[0], y[2]), odd = _mm256_add_ps(y[1], y[3]);
        const __m256 even4 = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), y[2], y[0]);
        const __m256 odd4 = _mm256_fmadd_ps(_mm256_set1_ps(8.0f), y[3], _mm256_add_ps(y[1], y[1]));
        m[0] = y[0];
        m[1] = _mm256_add_ps(even, odd);
        m[2] = _mm256_sub_ps(even, odd);
        m[3] = _mm256_add_ps(even4, odd4);
        m[4] = _mm256_sub_ps(even4, odd4);
        m[5] = y[3];
    }
    static void filter_t(const __m256* u, __m256* g) {
        const __m256 sixth = _mm256_set1_ps(1.0f / 6), quarter = _mm256_set1_ps(0.25f), half = _mm256_set1_ps(0.5f);
        const __m256 a = u[1] + u[2], b = u[3] + u[4];
        g[0] = quarter * u[0] + sixth * (quarter * b - a);
        g[1] = sixth * ((u[2] - u[1]) + half * (u[3] - u[4]));
        g[2] = sixth * (b - a) + u[5];
    }
};

struct StrideTwoForward {
    static constexpr int n = 5, P = 5, S = 4, T = 2;
    static void in(const __m256* d, __m256* v) {
        v[0] = _mm256_sub_ps(d[0], d[2]);
        v[1] = d[2];
        v[2] = _mm256_sub_ps(d[4], d[2]);
        v[3] = d[1];
        v[4] = d[3];
    }
    static void filter(float f0, float f1, float f2, float* u) {
        u[0] = f0;
        u[1] = f0 + f2;
        u[2] = f2;
        u[3] = f1;
        u[4] = f1;
    }
    static void out(const __m256* m, __m256* y) {
        y[0] = _mm256_add_ps(_mm256_add_ps(m[0], m[1]), m[3]);
        y[1] = _mm256_add_ps(_mm256_add_ps(m[1], m[2]), m[4]);
    }
    static void out_t(const __m256* y, __m256* m) {
        m[0] = y[0];
        m[1] = _mm256_add_ps(y[0], y[1]);
        m[2] = y[1];
        m[3] = y[0];
        m[4] = y[1];
    }
    static void filter_t(const __m256* u, __m256* g) {
        g[0] = u[0] + u[1];
        g[1] = u[3] + u[4];
        g[2] = u[1] + u[2];
    }
};

struct StrideTwoBackwardData {
    static constexpr int n = 5, P = 3, S = 2, T = 4;
    static void in(const __m256* e, __m256* v) {
        v[0] = _mm256_sub_ps(e[0], e[1]);
        v[1] = e[1];
        v[2] = _mm256_sub_ps(e[2], e[1]);
        v[3] = e[0];
        v[4] = e[1];
    }
    static void filter(float f0, float f1, float f2, float* u) {
        u[0] = f2;
        u[1] = f0 + f2;
        u[2] = f0;
        u[3] = f1;
        u[4] = f1;
    }
    static void out(const __m256* m, __m256* z) {
        z[0] = m[3];
        z[1] = _mm256_add_ps(m[0], m[1]);
        z[2] = m[4];
        z[3] = _mm256_add_ps(m[1], m[2]);
    }
};

// One convolution in the schemes' terms: `in` (N, in_ch, in_h, in_w) -> `out` (N, out_ch, out_h, out_w).
struct Problem {
    int64_t N, in_ch, out_ch, in_h, in_w, out_h, out_w;
    int64_t in_y0, in_x0;    // the patch of tile (0, 0) starts at this input row and column (< 0: padding)
    int64_t out_y0, out_x0;  // tile (0, 0) covers the outputs from this row and column on (< 0: clipped)
    const float* w;          // the 3x3 filter of (output channel o, input channel i) at w + o*w_out + i*w_in
    int64_t w_out, w_in;
};

struct Geometry {
    int64_t tiles_h, tiles_w, image_tiles, tiles;  // per image and in the batch
    int64_t hp, wp, plane;                        // zero-padded input plane: hp x wp
    int64_t k_rows;                               // out_ch rounded up to whole 6-row panels
    int64_t term_stride;                          // floats from one term's transformed filters to the next's
    int64_t block_groups;                         // groups per block (even: two groups fill one panel)
};

template <class S>
Geometry geometry(const Problem& p) {
    Geometry g;
    g.tiles_h = ceil_div64(p.out_h - p.out_y0, S::T);
    g.tiles_w = ceil_div64(p.out_w - p.out_x0, S::T);
    g.image_tiles = g.tiles_h * g.tiles_w;
    g.tiles = p.N * g.image_tiles;
    // Every patch lies inside; the loads read 4 columns from each patch's first (load4) and P = 5 one more.
    g.hp = S::S * (g.tiles_h - 1) + S::P;
    g.wp = S::S * (g.tiles_w - 1) + (S::P > 4 ? S::P : 4);
    g.plane = g.hp * g.wp;
    g.k_rows = ceil_div64(p.out_ch, kMR) * kMR;
    g.term_stride = spread(g.k_rows * p.in_ch);
    // V and M of one block together about 1 MB (they are written, then read back from the cache).
    const int64_t bytes_per_group = S::n * S::n * (p.in_ch + g.k_rows) * kLanes * (int64_t)sizeof(float);
    int64_t groups = ((int64_t(1) << 20) / bytes_per_group) & ~int64_t(1);
    g.block_groups = groups < 2 ? 2 : (groups > 16 ? 16 : groups);
    return g;
}

// Zero-padded copy of image n: plane i, row r, column q holds in[n][i][in_y0 + r][in_x0 + q].
void pad_image(const float* in, int64_t n, const Problem& p, const Geometry& g, float* dst) {
    for (int64_t i = 0; i < p.in_ch; ++i)
        copy_window<1>(in + (n * p.in_ch + i) * p.in_h * p.in_w, p.in_h, p.in_w, p.in_y0, p.in_x0, g.hp, g.wp,
                       dst + i * g.plane, g.wp);
}

// Tile t of the batch: image n, tile row ty, tile column tx (tile order: image, row, column).
struct TilePos {
    int64_t n, ty, tx;
};
inline TilePos tile_pos(const Geometry& g, int64_t t) {
    const int64_t n = t / g.image_tiles, rest = t - n * g.image_tiles, ty = rest / g.tiles_w;
    return {n, ty, rest - ty * g.tiles_w};
}

// Columns 0..3 of the 8 patch rows at base + off[u] (lane u = tile u): a 4x4 transpose in each half.
inline void load4(const float* base, const int32_t* off, __m256* d) {
    auto pair = [&](int u) {
        return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(base + off[u])), _mm_loadu_ps(base + off[u + 4]), 1);
    };
    const __m256 a = pair(0), b = pair(1), c = pair(2), e = pair(3);
    const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
    const __m256 t2 = _mm256_unpacklo_ps(c, e), t3 = _mm256_unpackhi_ps(c, e);
    d[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    d[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    d[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    d[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

// V = B^T d B for 8 tiles of one input channel (patch of lane u at base + off[u], rows ld apart),
// written to v[xi * term_stride] (8 floats each).
template <class S>
inline void input_transform(const float* base, const int32_t* off, __m256i offsets, int64_t ld, float* v,
                            int64_t term_stride) {
    auto row = [&](int r, __m256* d) {
        __m256 e[4];
        load4(base + r * ld, off, e);
        for (int j = 0; j < 4 && j < S::P; ++j) d[j] = e[j];
        if constexpr (S::P == 5) d[4] = _mm256_i32gather_ps(base + r * ld + 4, offsets, 4);
        if constexpr (S::P == 6) {
            load4(base + r * ld + 2, off, e);
            d[4] = e[2];
            d[5] = e[3];
        }
    };
    __m256 t[S::n][S::n];
    map_2d<S::P, S::n>(row, [](const __m256* a, __m256* b) { S::in(a, b); }, t);
    for (int a = 0; a < S::n; ++a)
        for (int j = 0; j < S::n; ++j) _mm256_store_ps(v + (a * S::n + j) * term_stride, t[a][j]);
}

// Y = A^T m A + bias for 8 tiles of one output channel (m[xi] at m + xi * term_stride), stored at
// dst + off[u] (the tile's first output; rows ld apart). Tiles with full[u] false (past the last tile,
// or partly outside the output: rows/columns clipped to [row0, rows) x [col0, cols) relative to the
// tile's origin) are stored element by element.
struct TileStore {
    int64_t off[kLanes];
    int64_t rows[kLanes], cols[kLanes], row0[kLanes], col0[kLanes];  // stored part of each tile
    bool all_full;
};

template <class S>
inline void output_transform(const float* m, int64_t term_stride, float bias, float* dst, int64_t ld,
                             const TileStore& ts) {
    __m256 s[S::T][S::T];  // s[iy][jx]: output (iy, jx) of every tile
    auto row = [&](int a, __m256* d) {
        for (int j = 0; j < S::n; ++j) d[j] = _mm256_load_ps(m + (a * S::n + j) * term_stride);
    };
    map_2d<S::n, S::T>(row, [](const __m256* a, __m256* b) { S::out(a, b); }, s);
    const __m256 b = _mm256_set1_ps(bias);
    for (int iy = 0; iy < S::T; ++iy)
        for (int jx = 0; jx < S::T; ++jx) s[iy][jx] = _mm256_add_ps(s[iy][jx], b);
    if (ts.all_full) {
        for (int iy = 0; iy < S::T; ++iy) {
            if constexpr (S::T == 2) {
                const __m256 lo = _mm256_unpacklo_ps(s[iy][0], s[iy][1]), hi = _mm256_unpackhi_ps(s[iy][0], s[iy][1]);
                const __m128 l0 = _mm256_castps256_ps128(lo), l1 = _mm256_extractf128_ps(lo, 1);
                const __m128 h0 = _mm256_castps256_ps128(hi), h1 = _mm256_extractf128_ps(hi, 1);
                float* row = dst + iy * ld;
                _mm_storel_pi(reinterpret_cast<__m64*>(row + ts.off[0]), l0);
                _mm_storeh_pi(reinterpret_cast<__m64*>(row + ts.off[1]), l0);
                _mm_storel_pi(reinterpret_cast<__m64*>(row + ts.off[2]), h0);
                _mm_storeh_pi(reinterpret_cast<__m64*>(row + ts.off[3]), h0);
                _mm_storel_pi(reinterpret_cast<__m64*>(row + ts.off[4]), l1);
                _mm_storeh_pi(reinterpret_cast<__m64*>(row + ts.off[5]), l1);
                _mm_storel_pi(reinterpret_cast<__m64*>(row + ts.off[6]), h1);
                _mm_storeh_pi(reinterpret_cast<__m64*>(row + ts.off[7]), h1);
            } else {
                static_assert(S::T == 4, "tiles of 2 or 4 outputs");
                const __m256 t0 = _mm256_unpacklo_ps(s[iy][0], s[iy][1]), t1 = _mm256_unpackhi_ps(s[iy][0], s[iy][1]);
                const __m256 t2 = _mm256_unpacklo_ps(s[iy][2], s[iy][3]), t3 = _mm256_unpackhi_ps(s[iy][2], s[iy][3]);
                const __m256 r[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                                     _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
                float* row = dst + iy * ld;
                for (int u = 0; u < 4; ++u) {
                    _mm_storeu_ps(row + ts.off[u], _mm256_castps256_ps128(r[u]));
                    _mm_storeu_ps(row + ts.off[u + 4], _mm256_extractf128_ps(r[u], 1));
                }
            }
        }
        return;
    }
    alignas(32) float staged[S::T][S::T][kLanes];
    for (int iy = 0; iy < S::T; ++iy)
        for (int jx = 0; jx < S::T; ++jx) _mm256_store_ps(staged[iy][jx], s[iy][jx]);
    for (int u = 0; u < kLanes; ++u)
        for (int64_t iy = ts.row0[u]; iy < ts.rows[u]; ++iy)
            for (int64_t jx = ts.col0[u]; jx < ts.cols[u]; ++jx) dst[ts.off[u] + iy * ld + jx] = staged[iy][jx][u];
}

// U = G g G^T of every filter, packed as the A panels of the n^2 GEMMs. Term xi holds k_rows x in_ch
// values (from xi * term_stride); its channel block pc (kc channels) starts at pc * k_rows, and within
// it panel ip (output channels 6 ip .. 6 ip + 5) is the contiguous kc x 6 block at ip * 6 * kc: input
// channel i, output channel 6 ip + lane at (i - pc) * 6 + lane. Rows past out_ch are zero. One panel
// at a time, so that each term's values are written in order.
template <class S>
void transform_filters(const Problem& p, const Geometry& g, float* u) {
    constexpr int n = S::n;
    const int64_t per_term = g.term_stride;
#pragma omp parallel for schedule(static) if (p.out_ch * p.in_ch > 4096)
    for (int64_t ip = 0; ip < g.k_rows / kMR; ++ip) {
        for (int64_t i = 0; i < p.in_ch; ++i) {
            float terms[n * n][kMR];
            for (int64_t lane = 0; lane < kMR; ++lane) {
                const int64_t o = ip * kMR + lane;
                float gf[3][n] = {};  // gf[j] = G (column j of the filter); zero for the rows past out_ch
                if (o < p.out_ch) {
                    const float* f = p.w + o * p.w_out + i * p.w_in;
                    for (int j = 0; j < 3; ++j) S::filter(f[0 * 3 + j], f[1 * 3 + j], f[2 * 3 + j], gf[j]);
                }
                for (int a = 0; a < n; ++a) {
                    float row[n];
                    S::filter(gf[0][a], gf[1][a], gf[2][a], row);
                    for (int j = 0; j < n; ++j) terms[a * n + j][lane] = row[j];
                }
            }
            const int64_t pc = i / kKcStep * kKcStep, kc = min64(kKcStep, p.in_ch - pc);
            float* dst = u + pc * g.k_rows + ip * kMR * kc + (i - pc) * kMR;
            for (int xi = 0; xi < n * n; ++xi) std::memcpy(dst + xi * per_term, terms[xi], sizeof(terms[xi]));
        }
    }
}

template <class S>
void run(const Problem& p, const float* in, const float* bias, float* out) {
    constexpr int64_t terms = S::n * S::n;
    const Geometry g = geometry<S>(p);
    const int64_t per_term = g.term_stride;
    // From the buffer cache (6.5 MB at 256 x 256 channels and 25 terms). Plain calls, not
    // buffer_cache.h's templates: inline code instantiated in this -mavx2 file could be the copy the
    // linker keeps for all callers.
    struct Buffer {
        float* p;
        ~Buffer() { cached_free(p); }
    } u_buffer{static_cast<float*>(cached_alloc((size_t)(terms * per_term) * sizeof(float)))};
    float* u = u_buffer.p;
    transform_filters<S>(p, g, u);

    const int64_t groups = ceil_div64(g.tiles, kLanes), out_plane = p.out_h * p.out_w;
    const int64_t panels = g.block_groups / 2, ldm = panels * kNR;
    const int threads = get_num_threads();
#pragma omp parallel num_threads(threads) if (threads > 1 && groups > 1)
    {
        const auto [me, team] = team_position();
        const int64_t first = groups * me / team, last = groups * (me + 1) / team;
        const int64_t slot_size = p.in_ch * g.plane;  // two padded images: image n in slot n % 2
        float* slots = thread_scratch<float>(kScratchConvColumns, 2 * slot_size);
        int64_t held[2] = {-1, -1};
        // V: term xi, panel jp: in_ch x 16 (the micro-kernel's B panel). M: term xi: k_rows x ldm.
        const int64_t v_term = spread(panels * p.in_ch * kNR), m_term = spread(g.k_rows * ldm);
        float* v = thread_scratch<float>(kScratchPackB, terms * v_term);
        float* m = thread_scratch<float>(kScratchPackA, terms * m_term);
        for (int64_t block = first; block < last; block += g.block_groups) {
            const int64_t count = min64(g.block_groups, last - block), used_panels = ceil_div64(count, 2);
            // 1. Patches -> V. Lanes past the last tile repeat the group's first tile (never stored).
            for (int64_t q = 0; q < count; ++q) {
                alignas(32) int32_t off[kLanes];
                const int64_t tile0 = (block + q) * kLanes;
                for (int64_t l = 0; l < kLanes; ++l) {
                    const auto [n, ty, tx] = tile_pos(g, tile0 + l < g.tiles ? tile0 + l : tile0);
                    if (held[n % 2] != n) {
                        pad_image(in, n, p, g, slots + (n % 2) * slot_size);
                        held[n % 2] = n;
                    }
                    off[l] = (int32_t)((n % 2) * slot_size + S::S * (ty * g.wp + tx));
                }
                const __m256i offsets = _mm256_load_si256(reinterpret_cast<const __m256i*>(off));
                float* dst = v + (q / 2) * p.in_ch * kNR + (q % 2) * kLanes;
                for (int64_t i = 0; i < p.in_ch; ++i)
                    input_transform<S>(slots + i * g.plane, off, offsets, g.wp, dst + i * kNR,
                                       v_term);
            }
            if (count % 2)  // the last panel's second half: zeros (computed, never stored)
                for (int64_t xi = 0; xi < terms; ++xi)
                    for (int64_t i = 0; i < p.in_ch; ++i)
                        std::memset(v + xi * v_term + ((count / 2) * p.in_ch + i) * kNR + kLanes, 0,
                                    kLanes * sizeof(float));
            // 2. The n^2 GEMMs: M_xi (k_rows x 16*used_panels) = U_xi V_xi, over channel blocks.
            for (int64_t xi = 0; xi < terms; ++xi) {
                const float* uxi = u + xi * per_term;
                float* mxi = m + xi * m_term;
                for (int64_t pc = 0; pc < p.in_ch; pc += kKcStep) {
                    const int64_t kc = min64(kKcStep, p.in_ch - pc);
                    sgemm_whole_panels_avx(kc, uxi + pc * g.k_rows, g.k_rows / kMR, kMR * kc,
                                           v + xi * v_term + pc * kNR, used_panels, p.in_ch * kNR, mxi, ldm, pc > 0);
                }
            }
            // 3. M -> output tiles.
            for (int64_t q = 0; q < count; ++q) {
                TileStore ts;
                ts.all_full = true;
                const int64_t tile0 = (block + q) * kLanes;
                for (int64_t l = 0; l < kLanes; ++l) {
                    const int64_t t = tile0 + l;
                    if (t >= g.tiles) {  // nothing stored
                        ts.off[l] = 0;
                        ts.row0[l] = ts.col0[l] = ts.rows[l] = ts.cols[l] = 0;
                        ts.all_full = false;
                        continue;
                    }
                    const auto [n, ty, tx] = tile_pos(g, t);
                    const int64_t oy = p.out_y0 + S::T * ty, ox = p.out_x0 + S::T * tx;
                    ts.off[l] = n * p.out_ch * out_plane + oy * p.out_w + ox;
                    ts.row0[l] = max64(0, -oy);
                    ts.col0[l] = max64(0, -ox);
                    ts.rows[l] = min64(S::T, p.out_h - oy);
                    ts.cols[l] = min64(S::T, p.out_w - ox);
                    if (ts.row0[l] || ts.col0[l] || ts.rows[l] < S::T || ts.cols[l] < S::T) ts.all_full = false;
                }
                for (int64_t o = 0; o < p.out_ch; ++o)
                    output_transform<S>(m + o * ldm + q * kLanes, m_term, bias ? bias[o] : 0.0f,
                                        out + o * out_plane, p.out_w, ts);
            }
        }
    }
}

// Weight gradient. Y = A^T (sum_i U[o, i] (.) V[i, t]) A makes the gradient of U[o, i] the sum over
// tiles t of W[o, t] (.) V[i, t], with W = A dY A^T the output gradient's tile taken back through
// the output transform; and dg[o, i] = G^T dU[o, i] G. Per term xi that is one GEMM with the
// reduction over tiles, dU_xi (out, in) += W_xi (out, tiles) V_xi (in, tiles)^T.
//
// Here the transforms run with channels in the lanes (one tile at a time), so that their results
// are already the micro-kernel's panels: the input and the output gradient are copied per image into
// zero-padded, channel-blocked planes, (block, row, column) holding 8 input channels, or 6 output
// channels and 2 zeros. V goes straight into 16-wide B panels (two blocks of 8 channels); W into
// 6-row A panels, stored 8 wide: the 2 extra lanes land on the next tile's slot, which is written
// after (each panel has a spare slot for the last tile's). Each thread takes a range of the batch's
// tiles, walks it in blocks of kTileBlock tiles (the GEMMs' reduction), accumulates its own dU, and
// the partial dU are summed in thread order in the filter transform at the end.
constexpr int64_t kTileBlock = 64;

template <class S>
void weight_grad(const Problem& p, const float* x, const float* dout, float* dw) {
    constexpr int n = S::n, terms = n * n;
    const Geometry g = geometry<S>(p);
    const int64_t c16 = ceil_div64(p.in_ch, 16) * 16, c_panels = c16 / 16, c_blocks = c16 / 8;
    const int64_t k_rows = g.k_rows, k_panels = k_rows / kMR, slot_stride = (kTileBlock + 1) * kMR;
    const int64_t gy = g.tiles_h * S::T, gx = g.tiles_w * S::T;  // output gradient plane
    const int64_t x_image = c_blocks * g.plane * 8, y_image = k_panels * gy * gx * 8;
    const int64_t v_term = spread(c16 * kTileBlock), a_term = spread((k_panels + 1) * slot_stride);
    const int64_t du_term = spread(k_rows * c16), du_size = terms * du_term;
    const int threads = get_num_threads();
    std::vector<float*> partials((size_t)threads, nullptr);
    int team = 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const TeamPosition position = team_position();
        const int me = position.thread;
#pragma omp single
        team = position.threads;  // (for the sum of the partials after the region)
        const int64_t first = g.tiles * me / team, last = g.tiles * (me + 1) / team;
        float* du = thread_scratch<float>(kScratchConvWeightGrad, du_size);
        partials[(size_t)me] = du;
        if (first == last) std::memset(du, 0, (size_t)du_size * sizeof(float));  // else the first block writes it
        // The image of the tile being transformed (tiles are transformed in order, each at once).
        float* xb = thread_scratch<float>(kScratchConvColumns, x_image + y_image);
        float* yb = xb + x_image;
        int64_t held = -1;
        float* v = thread_scratch<float>(kScratchPackB, terms * v_term);
        float* a = thread_scratch<float>(kScratchPackA, terms * a_term);
        auto prepare = [&](int64_t img) {
            for (int64_t c = 0; c < c16; ++c)
                copy_window<8>(c < p.in_ch ? x + (img * p.in_ch + c) * p.in_h * p.in_w : nullptr, p.in_h, p.in_w,
                               p.in_y0, p.in_x0, g.hp, g.wp, xb + (c / 8) * g.plane * 8 + c % 8, g.wp * 8);
            for (int64_t kp = 0; kp < k_panels; ++kp)
                for (int64_t l = 0; l < 8; ++l) {
                    const int64_t k = kp * kMR + l;
                    copy_window<8>(l < kMR && k < p.out_ch ? dout + (img * p.out_ch + k) * p.out_h * p.out_w : nullptr,
                                   p.out_h, p.out_w, 0, 0, gy, gx, yb + kp * gy * gx * 8 + l, gx * 8);
                }
        };
        for (int64_t block = first; block < last; block += kTileBlock) {
            const int64_t count = min64(kTileBlock, last - block);
            // 1. Transforms, tile by tile.
            for (int64_t q = 0; q < count; ++q) {
                const auto [img, ty, tx] = tile_pos(g, block + q);
                if (held != img) {
                    prepare(img);
                    held = img;
                }
                for (int64_t cb = 0; cb < c_blocks; ++cb) {
                    const float* base = xb + (cb * g.plane + S::S * (ty * g.wp + tx)) * 8;
                    __m256 t[n][n];
                    auto row = [&](int r, __m256* d) {
                        for (int j = 0; j < S::P; ++j) d[j] = _mm256_load_ps(base + (r * g.wp + j) * 8);
                    };
                    map_2d<S::P, n>(row, [](const __m256* a, __m256* b) { S::in(a, b); }, t);
                    float* dst = v + ((cb / 2) * kTileBlock + q) * 16 + (cb % 2) * 8;
                    for (int i = 0; i < n; ++i)
                        for (int j = 0; j < n; ++j) _mm256_store_ps(dst + (i * n + j) * v_term, t[i][j]);
                }
                for (int64_t kp = 0; kp < k_panels; ++kp) {
                    const float* base = yb + ((kp * gy + S::T * ty) * gx + S::T * tx) * 8;
                    __m256 t[n][n];
                    auto row = [&](int r, __m256* d) {
                        for (int j = 0; j < S::T; ++j) d[j] = _mm256_load_ps(base + (r * gx + j) * 8);
                    };
                    map_2d<S::T, n>(row, [](const __m256* a, __m256* b) { S::out_t(a, b); }, t);
                    float* dst = a + kp * slot_stride + q * kMR;
                    for (int i = 0; i < n; ++i)
                        for (int j = 0; j < n; ++j) _mm256_storeu_ps(dst + (i * n + j) * a_term, t[i][j]);
                }
            }
            // 2. dU_xi += W_xi V_xi^T, the reduction over this block's tiles.
            for (int64_t xi = 0; xi < terms; ++xi)
                sgemm_whole_panels_avx(count, a + xi * a_term, k_panels, slot_stride, v + xi * v_term, c_panels,
                                       kTileBlock * 16, du + xi * du_term, c16, block > first);
        }
    }
    // dw[o, i] = G^T (sum over threads of dU[o, i]) G, 8 input channels at a time, the partials added
    // in thread order.
    const int64_t i_blocks = c16 / 8;
#pragma omp parallel for schedule(static) if (p.out_ch * p.in_ch > 4096)
    for (int64_t o = 0; o < p.out_ch; ++o)
        for (int64_t ib = 0; ib < i_blocks; ++ib) {
            __m256 g3[3][3];
            auto row = [&](int r, __m256* d) {  // row r of dU, summed over the threads
                for (int j = 0; j < n; ++j) {
                    const int64_t at = (r * n + j) * du_term + o * c16 + ib * 8;
                    d[j] = _mm256_load_ps(partials[0] + at);
                    for (int t = 1; t < team; ++t) d[j] = _mm256_add_ps(d[j], _mm256_load_ps(partials[(size_t)t] + at));
                }
            };
            map_2d<n, 3>(row, [](const __m256* a, __m256* b) { S::filter_t(a, b); }, g3);
            alignas(32) float taps[9][8];
            for (int r = 0; r < 3; ++r)
                for (int j = 0; j < 3; ++j) _mm256_store_ps(taps[r * 3 + j], g3[r][j]);
            const int64_t lanes = min64(8, p.in_ch - ib * 8);
            for (int64_t l = 0; l < lanes; ++l) {
                float* f = dw + (o * p.in_ch + ib * 8 + l) * 9;
                for (int tap = 0; tap < 9; ++tap) f[tap] = taps[tap][l];
            }
        }
}

// The problems: forward (x -> out, filters as given) and, at stride 2, backward data (dout -> dx:
// input channels K, output channels C, each filter read as (c, k)).
Problem forward_problem(const Conv2dShape& s, const float* w) {
    return Problem{s.N, s.C, s.K, s.H, s.W, s.OH, s.OW, -s.ph, -s.pw, 0, 0, w, s.C * 9, 9};
}

// Backward data, stride 2, along one dimension: tile t covers input rows 4t + 1 - pad .. 4t + 4 - pad
// from dout rows 2t .. 2t + 2. With pad 0 the first tile would start at row 1: the tiles are then
// numbered from -1 (origin 3 rows up, dout origin 2 rows up).
void backward_origin(int64_t pad, int64_t& out0, int64_t& in0) {
    out0 = 1 - pad;
    in0 = 0;
    if (out0 > 0) {
        out0 -= 4;
        in0 -= 2;
    }
}

Problem backward_data_problem(const Conv2dShape& s, const float* w) {
    Problem p{s.N, s.K, s.C, s.OH, s.OW, s.H, s.W, 0, 0, 0, 0, w, 9, s.C * 9};
    backward_origin(s.ph, p.out_y0, p.in_y0);
    backward_origin(s.pw, p.out_x0, p.in_x0);
    return p;
}

// Enough channels for the GEMMs to dominate the transforms, every image at least one group of tiles
// (so a group spans at most two images), at most a third of the computed outputs outside the output
// (edge tiles), int32 offsets into the two padded images, and transformed filters (and, per thread,
// the weight gradient's dU, as large) of at most 128 MB: n^2 copies of the weights is where
// Winograd's memory goes (F(4x4, 3x3) at 1024 x 1024 channels: 151 MB; F(2x2, 3x3) takes over).
template <class S>
bool problem_fits(const Problem& p) {
    if (p.in_ch < 32 || p.out_ch < 32) return false;
    const Geometry g = geometry<S>(p);
    if (g.image_tiles < kLanes) return false;
    if (g.image_tiles * S::T * S::T * 3 > p.out_h * p.out_w * 4) return false;
    const int64_t filter_bytes = S::n * S::n * spread(g.k_rows * ceil_div64(p.in_ch, 16) * 16) * (int64_t)sizeof(float);
    if (filter_bytes > (int64_t(128) << 20)) return false;
    return 2 * p.in_ch * g.plane < INT32_MAX;
}

// The scheme of a forward (and of its weight gradient) at stride 1 or 2, handed to fn as a value of
// its type: at stride 1 F(4x4, 3x3) where its tiles fit (4x fewer products than the direct sum, 1.8x
// fewer than F(2x2, 3x3)), else F(2x2, 3x3); at stride 2 the polyphase scheme.
template <class Fn>
void with_forward_scheme(const Conv2dShape& s, Fn&& fn) {
    if (s.sh == 2) return fn(StrideTwoForward{});
    if (problem_fits<StrideOneF4>(forward_problem(s, nullptr))) return fn(StrideOneF4{});
    fn(StrideOneF2{});
}

}  // namespace

bool winograd_applies(const Conv2dShape& s) {
    if (s.kh != 3 || s.kw != 3 || s.sh != s.sw || (s.sh != 1 && s.sh != 2)) return false;
    bool fits = false;
    with_forward_scheme(s, [&](auto scheme) { fits = problem_fits<decltype(scheme)>(forward_problem(s, nullptr)); });
    return fits;
}

bool winograd_backward_data_applies(const Conv2dShape& s) {
    // Stride 1 runs as the forward of the flipped convolution (conv2d.cpp).
    if (s.kh != 3 || s.kw != 3 || s.sh != 2 || s.sw != 2 || s.ph > 4 || s.pw > 4) return false;
    return problem_fits<StrideTwoBackwardData>(backward_data_problem(s, nullptr));
}

void conv2d_winograd_forward_avx2(const float* x, const float* w, const float* b, float* out,
                                  const Conv2dShape& s) {
    with_forward_scheme(s, [&](auto scheme) { run<decltype(scheme)>(forward_problem(s, w), x, b, out); });
}

void conv2d_winograd_weight_grad_avx2(const float* dout, const float* x, float* dw, const Conv2dShape& s) {
    with_forward_scheme(s, [&](auto scheme) { weight_grad<decltype(scheme)>(forward_problem(s, nullptr), x, dout, dw); });
}

void conv2d_winograd_backward_data_avx2(const float* dout, const float* w, float* dx, const Conv2dShape& s) {
    run<StrideTwoBackwardData>(backward_data_problem(s, w), dout, nullptr, dx);
}

}  // namespace fastnn
