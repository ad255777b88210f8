// conv2d forward / backward-data / backward-weight on the packed GEMM. See conv2d.h for the math.
#include "conv2d.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include "buffer_cache.h"
#include "cpu_features.h"
#include "gemm.h"

namespace fastnn {

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The product of the (non-negative) factors, INT64_MAX where it would overflow int64. For the
// padded-image sizes that choose the in-place paths: the binding bounds each padded extent by 2^31,
// not their product, so C * (H + 2 ph) * (W + 2 pw) * sizeof(T) can pass 2^63 (16 channels padded to
// 2^30 x 2^30: 2^66 bytes, which wrapped around to 0 and sent the gathered forward to index a
// "0-byte" padded image at c * 2^60).
static int64_t saturating_product(std::initializer_list<int64_t> factors) {
    int64_t product = 1;
    for (int64_t f : factors)
        if (__builtin_mul_overflow(product, f, &product)) return INT64_MAX;
    return product;
}

static bool is_pointwise(const Conv2dShape& s) {
    return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}

// Whole images per thread when that balances the team; otherwise one image at a time, each GEMM
// threaded (a batch smaller than the team, or an odd remainder that would idle a thread).
static bool images_in_parallel(int64_t images) {
    const int64_t threads = get_num_threads();
    return threads > 1 && (images % threads == 0 || images >= 4 * threads);
}

// one_image(n) for every image; whole images per thread when there are several (the in-place paths).
template <typename F>
static void for_each_image(int64_t images, const F& one_image) {
#pragma omp parallel for schedule(static) if (get_num_threads() > 1 && images > 1)
    for (int64_t n = 0; n < images; ++n) one_image(n);
}

template <typename T>
static bool all_finite(const T* v, int64_t count) {
    // Exponent bits all ones <=> inf or NaN. Integer compares, so the loop vectorises.
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    const Bits exponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
    Bits bad = 0;
    for (int64_t k = 0; k < count; ++k) {
        Bits bits;
        std::memcpy(&bits, v + k, sizeof(T));
        bad |= Bits((bits & exponent) == exponent);
    }
    return bad == 0;
}

// ------------------------------------------------------------------------- im2col by runs
// Columns [col, col + count) of cols_n's row r = (c, i, j), starting at output position (oh, ow),
// visited one output row at a time: along a row the source x[c, oh*sh - ph + i, ow*sw - pw + j] is a
// strided run of one image row (contiguous for stride 1), with zeros where it falls in the padding.

// Run positions u in [0, run) with 0 <= z0 + u*step < width are exactly u in [lo, hi).
// (Divisions only for strides > 1: at a few runs per output row they would dominate small images.)
static void valid_run(int64_t z0, int64_t step, int64_t width, int64_t run, int64_t& lo, int64_t& hi) {
    if (step == 1) {
        lo = z0 >= 0 ? 0 : -z0;
        hi = width - z0;
    } else {
        lo = z0 >= 0 ? 0 : ceil_div(-z0, step);
        hi = z0 >= width ? 0 : (width - 1 - z0) / step + 1;
    }
    lo = std::min(lo, run);
    hi = std::max(lo, std::min(hi, run));
}

// Copies a short run. Image rows are tens of elements, where a call to the library memcpy (which
// the compiler would make of a plain copy loop) costs more than the copy: fixed 4-element moves
// are inlined as vector moves.
template <typename T>
static inline void copy_run(T* dst, const T* src, int64_t count) {
    int64_t u = 0;
    for (; u + 4 <= count; u += 4) std::memcpy(dst + u, src + u, 4 * sizeof(T));
    if (u < count) dst[u] = src[u];
    if (u + 1 < count) dst[u + 1] = src[u + 1];
    if (u + 2 < count) dst[u + 2] = src[u + 2];
}

// dst[t * dst_stride] = cols_n[r][col + t] for t in [0, count); xc is channel c of image n.
template <typename T>
static void gather_columns(const T* xc, const Conv2dShape& s, int64_t i, int64_t j, int64_t oh, int64_t ow,
                           int64_t count, T* dst, int64_t dst_stride) {
    for (int64_t t = 0; t < count; ++oh, ow = 0) {
        const int64_t run = std::min(s.OW - ow, count - t);
        T* d = dst + t * dst_stride;
        const int64_t y = oh * s.sh - s.ph + i;
        int64_t lo = 0, hi = 0;
        if (y >= 0 && y < s.H) {
            const int64_t z0 = ow * s.sw - s.pw + j;
            valid_run(z0, s.sw, s.W, run, lo, hi);
            const T* src = xc + y * s.W + z0;
            if (s.sw == 1 && dst_stride == 1)
                copy_run(d + lo, src + lo, hi - lo);
            else
                for (int64_t u = lo; u < hi; ++u) d[u * dst_stride] = src[u * s.sw];
        }
        for (int64_t u = 0; u < lo; ++u) d[u * dst_stride] = T(0);
        for (int64_t u = hi; u < run; ++u) d[u * dst_stride] = T(0);
        t += run;
    }
}

// The adjoint of gather_columns: dxc[...] += src[t] (col2im; padding positions are dropped).
template <typename T>
static void scatter_add_columns(T* dxc, const Conv2dShape& s, int64_t i, int64_t j, int64_t oh, int64_t ow,
                                int64_t count, const T* src) {
    for (int64_t t = 0; t < count; ++oh, ow = 0) {
        const int64_t run = std::min(s.OW - ow, count - t);
        const int64_t y = oh * s.sh - s.ph + i;
        if (y >= 0 && y < s.H) {
            const int64_t z0 = ow * s.sw - s.pw + j;
            int64_t lo, hi;
            valid_run(z0, s.sw, s.W, run, lo, hi);
            T* d = dxc + y * s.W + z0;
            const T* g = src + t;
            if (s.sw == 1)
                for (int64_t u = lo; u < hi; ++u) d[u] += g[u];
            else
                for (int64_t u = lo; u < hi; ++u) d[u * s.sw] += g[u];
        }
        t += run;
    }
}

// B operand of the forward GEMM: Q(p = r, q = column) = cols_n[r][column]. For each r the block's
// nq columns are gathered in one call, as whole runs of image rows, into an L1-resident row, which
// is then cut into the panels' `width`-wide pieces (gathering panel by panel would pay the run
// bookkeeping once per `width` elements).
template <typename T>
struct Im2colOperand final : GemmOperand<T> {
    const T* x;  // image n (C, H, W)
    const Conv2dShape& s;
    Im2colOperand(const T* x_, const Conv2dShape& s_) : x(x_), s(s_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override {
        const int64_t taps = s.kh * s.kw, panels = ceil_div(nq, width);
        T* row = thread_scratch<T>(kScratchConvRow, panels * width);
        std::fill(row + nq, row + panels * width, T(0));  // the last panel's missing columns
        const int64_t oh = q0 / s.OW, ow = q0 - oh * s.OW;
        for (int64_t p = 0; p < kc; ++p) {
            const int64_t r = p0 + p, c = r / taps, i = (r - c * taps) / s.kw, j = r - c * taps - i * s.kw;
            gather_columns(x + c * s.H * s.W, s, i, j, oh, ow, nq, row, 1);
            if (width == GemmTraits<T>::NR)  // a constant size: inlined as two or four vector moves
                for (int64_t t = 0; t < panels; ++t)
                    std::memcpy(dst + (t * kc + p) * width, row + t * width, GemmTraits<T>::NR * sizeof(T));
            else
                for (int64_t t = 0; t < panels; ++t)
                    std::memcpy(dst + (t * kc + p) * width, row + t * width, (size_t)width * sizeof(T));
        }
    }
};

// B operand of the weight-gradient GEMM: Q(p = column, q = r) = cols_n[r][column] (cols_n^T). Each
// lane of a panel is one r: its kc columns are gathered as contiguous runs of image rows into a
// small L1-resident buffer, and the buffer is transposed into the panel with vector shuffles
// (writing the panel directly would be one scalar store per element, `width` apart).
template <typename T>
struct Im2colTransposedOperand final : GemmOperand<T> {
    const T* x;
    const Conv2dShape& s;
    Im2colTransposedOperand(const T* x_, const Conv2dShape& s_) : x(x_), s(s_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override {
        constexpr int64_t capacity = GemmTraits<T>::NR * (GemmTraits<T>::KC + 8);  // kc <= KC + 7 (gemm.cpp)
        alignas(64) T runs[capacity];
        const int64_t taps = s.kh * s.kw;
        const int64_t oh = p0 / s.OW, ow = p0 - oh * s.OW;
        const bool staged = width * kc <= capacity;
        for (int64_t t = 0; t * width < nq; ++t) {
            T* panel = dst + t * kc * width;
            const int64_t lanes = std::min<int64_t>(width, nq - t * width);
            for (int64_t l = 0; l < lanes; ++l) {
                const int64_t r = q0 + t * width + l, c = r / taps, i = (r - c * taps) / s.kw,
                              j = r - c * taps - i * s.kw;
                if (staged)
                    gather_columns(x + c * s.H * s.W, s, i, j, oh, ow, kc, runs + l * kc, 1);
                else
                    gather_columns(x + c * s.H * s.W, s, i, j, oh, ow, kc, panel + l, width);
            }
            if (staged) {
                pack_panel_transposed(runs, 1, kc, kc, lanes, width, panel);
            } else if (lanes < width) {
                for (int64_t p = 0; p < kc; ++p)
                    for (int64_t l = lanes; l < width; ++l) panel[p * width + l] = T(0);
            }
        }
    }
};

// ------------------------------------------------------------------------- direct (stride 1, small)
// For stride 1, with the image zero-padded into a (C, Hp, Wp) buffer and the output computed on the
// padded width (columns p' = oh*Wp + ow, ow < Wp, of which ow >= OW are discarded), the unfolded
// matrix is  cols'[(c, i, j), p'] = xpad[c*Hp*Wp + i*Wp + j + p'] : each row is a shifted window of
// the buffer. The micro-kernel then reads B in place (sgemm_kernel_indirect_avx2) and nothing is
// packed but the weights. It pays when few output channels reuse each unfolded element (packing would
// cost as much as the arithmetic: LeNet's layers) and the padded image stays in L1/L2; the price is
// the (Wp - OW) discarded columns per row.
static constexpr int64_t kDirectMaxChannelsOut = 32;
static constexpr int64_t kDirectMaxSmallImageBytes = 128 * 1024;
static constexpr int64_t kDirectMaxImageBytes = 2 * 1024 * 1024;
static constexpr int64_t kDirectMaxWastePercent = 105;  // computed columns / kept columns, in percent

static bool direct_applies(const Conv2dShape& s, int64_t elem_bytes) {
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw;
    if (s.sh != 1 || s.sw != 1 || is_pointwise(s)) return false;
    // At least 4 output channels: the 6-row register block would mostly compute padding below that.
    if (s.K < 4) return false;
    // Few output channels: packing would cost as much as the arithmetic, so reading in place wins
    // even with many discarded columns, as long as the padded image stays in L2.
    const int64_t image_bytes = saturating_product({s.C, hp, wp, elem_bytes});
    if (s.K <= kDirectMaxChannelsOut && image_bytes <= kDirectMaxSmallImageBytes) return true;
    // Otherwise only when the discarded columns are few (wide images: ResNet's 56x56 layers) and the
    // padded image stays in the last-level cache (checked first: it bounds hp * wp, so the column
    // counts below cannot overflow).
    if (image_bytes > kDirectMaxImageBytes) return false;
    const int64_t cols = (s.OH - 1) * wp + s.OW;
    return cols * 100 <= s.OH * s.OW * kDirectMaxWastePercent;
}

template <typename T>
static void indirect_kernel_portable(int64_t kc, const T* a, const T* base, const int64_t* offsets, T* tile) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    T acc[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p, a += MR) {
        const T* b = base + offsets[p];
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) tile[i * NR + j] = acc[i][j];
}

template <typename T>
static void indirect_kernel(int64_t kc, const T* a, const T* base, const int64_t* offsets, T* tile) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx512()) return sgemm_kernel_indirect_avx512(kc, a, base, offsets, tile);
    }
#endif
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return sgemm_kernel_indirect_avx2(kc, a, base, offsets, tile);
    }
#endif
    indirect_kernel_portable(kc, a, base, offsets, tile);
}

// Zero-pads image n into xpad (C, hp, wp), followed by `slack` zeros: the image at row ph and column
// pw of planes of hp >= H + ph rows (by default H + 2ph) and wp >= W + pw columns (by default W + 2pw).
template <typename T>
static void pad_image(const T* x, int64_t n, const Conv2dShape& s, T* xpad, int64_t slack, int64_t wp = 0,
                      int64_t hp = 0) {
    if (wp == 0) wp = s.W + 2 * s.pw;
    if (hp == 0) hp = s.H + 2 * s.ph;
    const int64_t plane = hp * wp;
    std::fill(xpad, xpad + s.C * plane + slack, T(0));
    for (int64_t c = 0; c < s.C; ++c)
        for (int64_t y = 0; y < s.H; ++y)
            std::copy_n(x + ((n * s.C + c) * s.H + y) * s.W, s.W, xpad + c * plane + (y + s.ph) * wp + s.pw);
}

// Weight gradient of a stride-1 convolution on the padded width (see the direct forward above):
//   dw[k, (c, i, j)] += sum_{p'} dout'[k, p'] * xpad[c*Hp*Wp + i*Wp + j + p']
// with dout' = dout_n spread onto the padded width (zeros in the discarded columns). Computed as
// dw^T tiles (6 rows r x 16 filters k): A's rows are read in place from the padded image by the
// row-pointer kernel, B = dout'^T is packed once per image (K x P' values, reused by all R rows).
static constexpr int64_t kDirectWeightMaxK = 64;  // (a multiple of both dtypes' NR)

template <typename T>
static void direct_weight_gradient_image(const T* dout, const T* x, int64_t n, T* target, bool accumulate,
                                         const Conv2dShape& s) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t R = s.C * s.kh * s.kw, taps = s.kh * s.kw, P = s.OH * s.OW;
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw, plane = hp * wp;
    const int64_t cols = (s.OH - 1) * wp + s.OW;
    const int64_t k_panels = ceil_div(s.K, NR);
    T* xpad = thread_scratch<T>(kScratchConvColumns, s.C * plane);
    pad_image(x, n, s, xpad, 0);
    // packed[kp][p'][l] = dout_n[kp*NR + l, oh, ow], p' = oh*Wp + ow; zero in the columns past OW and
    // the lanes past K. Row by row, each a transposing panel pack (8x8 blocks on AVX2).
    T* packed = thread_scratch<T>(kScratchPackB, k_panels * cols * NR);
    for (int64_t kp = 0; kp < k_panels; ++kp) {
        const int64_t lanes = std::min<int64_t>(NR, s.K - kp * NR);
        T* panel = packed + kp * cols * NR;
        for (int64_t oh = 0; oh < s.OH; ++oh) {
            pack_panel_transposed(dout + (n * s.K + kp * NR) * P + oh * s.OW, 1, P, s.OW, lanes, NR,
                                  panel + oh * wp * NR);
            if (oh + 1 < s.OH) std::fill(panel + (oh * wp + s.OW) * NR, panel + (oh + 1) * wp * NR, T(0));
        }
    }
    if (!accumulate) std::fill(target, target + s.K * R, T(0));
    // One tile of `step` rows (as the row-pointer GEMM runs best: on AVX-512, pairs of panels, or 12
    // rows by a lone one) by all the filters (K <= kDirectWeightMaxK, the caller's condition).
    const int64_t width = k_panels * NR;
    const int step = gemm_rows_panels_rows<T>(k_panels);
    alignas(64) T tile[2 * MR * kDirectWeightMaxK];
    for (int64_t r0 = 0; r0 < R; r0 += step) {
        const int64_t rows_here = std::min<int64_t>(step, R - r0);
        const T* rows[2 * MR];
        for (int i = 0; i < step; ++i) {  // rows past R repeat the last one; their results are dropped
            const int64_t r = r0 + std::min<int64_t>(i, rows_here - 1);
            const int64_t c = r / taps, ii = (r - c * taps) / s.kw, jj = r - c * taps - ii * s.kw;
            rows[i] = xpad + c * plane + ii * wp + jj;
        }
        gemm_rows_panels<T>(cols, rows, step, packed, k_panels, cols * NR, tile, width, false);
        for (int64_t k = 0; k < s.K; ++k)
            for (int64_t i = 0; i < rows_here; ++i) target[k * R + r0 + i] += tile[i * width + k];
    }
}

// out (N, K, OH, OW) = conv(x, w) + b for stride 1, by the indirect kernel (see above).
template <typename T>
static void direct_forward(const T* x, const T* w, const T* b, T* out, const Conv2dShape& s) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t R = s.C * s.kh * s.kw, taps = s.kh * s.kw, P = s.OH * s.OW;
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw, plane = hp * wp;
    const int64_t cols = (s.OH - 1) * wp + s.OW;  // p' of the last output, plus one
    // Tiles read up to NR - 1 columns past `cols`: the buffer has that much zeroed slack.
    const int64_t buffer = s.C * plane + NR;
    std::vector<int64_t> offsets((size_t)R);
    for (int64_t r = 0; r < R; ++r) {
        const int64_t c = r / taps, i = (r - c * taps) / s.kw, j = r - c * taps - i * s.kw;
        offsets[(size_t)r] = c * plane + i * wp + j;
    }
    // Reduction blocks of about KC rows, so one block of B windows (kc x NR) stays in L1 while all
    // the filter panels pass over it.
    const int64_t kc_step = ceil_div(ceil_div(R, ceil_div(R, GemmTraits<T>::KC)), 8) * 8;
    const int64_t m_panels = ceil_div(s.K, MR);
    std::vector<T> packed_w((size_t)(m_panels * MR * R));  // block pc starts at pc * m_panels * MR
    for (int64_t pc = 0; pc < R; pc += kc_step)
        StridedOperand<T>(w, 1, R).pack(packed_w.data() + pc * m_panels * MR, pc, std::min(kc_step, R - pc), 0,
                                        s.K, MR);

    auto one_image = [&](int64_t n) {
        T* xpad = thread_scratch<T>(kScratchConvColumns, buffer);
        pad_image(x, n, s, xpad, NR);
        T* acc = thread_scratch<T>(kScratchConvRow, m_panels * MR * NR);
        T* on = out + n * s.K * P;
        alignas(64) T tile[MR * NR];
        for (int64_t col = 0; col < cols; col += NR) {
            const int64_t oh0 = col / wp, ow0 = col - oh0 * wp, count = std::min<int64_t>(NR, cols - col);
            for (int64_t pc = 0; pc < R; pc += kc_step) {
                const int64_t kc = std::min(kc_step, R - pc);
                for (int64_t ip = 0; ip < m_panels; ++ip) {
                    T* sum = acc + ip * MR * NR;
                    if (pc == 0) {
                        indirect_kernel(kc, packed_w.data() + ip * kc * MR, xpad + col, offsets.data(), sum);
                    } else {
                        indirect_kernel(kc, packed_w.data() + pc * m_panels * MR + ip * kc * MR, xpad + col,
                                        offsets.data() + pc, tile);
                        for (int e = 0; e < MR * NR; ++e) sum[e] += tile[e];
                    }
                }
            }
            // The tile's columns are runs of one padded row each; the first OW columns of a run
            // are outputs, the rest fall in the padding. Copy the runs' outputs (rows of acc are
            // the filters: panel k / MR, row k % MR, consecutive).
            for (int64_t t = 0, oh = oh0, ow = ow0; t < count;) {
                const int64_t run = std::min(count - t, wp - ow), valid = std::min(run, s.OW - ow);
                for (int64_t k = 0; valid > 0 && k < s.K; ++k) {
                    const T* src = acc + k * NR + t;
                    const T bias = b ? b[k] : T(0);
                    T* dst = on + k * P + oh * s.OW + ow;
                    for (int64_t u = 0; u < valid; ++u) dst[u] = src[u] + bias;
                }
                t += run;
                ow += run;
                if (ow == wp) ow = 0, ++oh;
            }
        }
    };
    for_each_image(s.N, one_image);
}

// The filter rows i in [lo, hi) that put stride-1 output row oh on real image rows, not padding
// (hi <= lo: none).
static inline void real_filter_rows(const Conv2dShape& s, int64_t oh, int64_t& lo, int64_t& hi) {
    lo = std::max<int64_t>(0, s.ph - oh);
    hi = std::min<int64_t>(s.kh, s.ph + s.H - oh);
}

// Row tiles: the same indirect kernel, but each tile is 16 output columns of one output row, and
// the reduction runs only over the filter rows i that land on real image rows (i in [lo, hi) for
// output row oh; the others would multiply padding zeros). The taps are ordered (i, c, j), so those
// of rows [lo, hi) are one contiguous range of the packed filters and of the offsets. It pays when
// the padding is tall against the image: the stride-1 backward data of LeNet-5's second layer is a
// full convolution of a 10x10 gradient padded by 4, where half the taps of the flat path above
// read zeros.
template <typename T>
static void direct_forward_rows(const T* x, const T* w, const T* b, T* out, const Conv2dShape& s) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t R = s.C * s.kh * s.kw, taps = s.kh * s.kw, P = s.OH * s.OW, per_row = s.C * s.kw;
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw, plane = hp * wp;
    std::vector<int64_t> offsets((size_t)R);  // tap (i, c, j) at (i * C + c) * kw + j
    for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t c = 0; c < s.C; ++c)
            for (int64_t j = 0; j < s.kw; ++j) offsets[(size_t)((i * s.C + c) * s.kw + j)] = c * plane + i * wp + j;
    // Filter panels (R x 6, the taps in the same order), one block: any range of taps is contiguous.
    const int64_t m_panels = ceil_div(s.K, MR);
    std::vector<T> packed_w((size_t)(m_panels * R * MR), T(0));
    for (int64_t k = 0; k < s.K; ++k)
        for (int64_t c = 0; c < s.C; ++c)
            for (int64_t tap = 0; tap < taps; ++tap) {
                const int64_t i = tap / s.kw, j = tap - i * s.kw, q = (i * s.C + c) * s.kw + j;
                packed_w[(size_t)(((k / MR) * R + q) * MR + k % MR)] = w[(k * s.C + c) * taps + tap];
            }
    auto one_image = [&](int64_t n) {
        T* xpad = thread_scratch<T>(kScratchConvColumns, s.C * plane + NR);  // tiles read past the last row
        pad_image(x, n, s, xpad, NR);
        T* on = out + n * s.K * P;
        alignas(64) T tile[MR * NR];
        for (int64_t oh = 0; oh < s.OH; ++oh) {
            int64_t lo, hi;
            real_filter_rows(s, oh, lo, hi);
            const int64_t p0 = lo * per_row, kc = (hi - lo) * per_row;
            for (int64_t ow = 0; ow < s.OW; ow += NR) {
                const int64_t count = std::min<int64_t>(NR, s.OW - ow);
                for (int64_t ip = 0; ip < m_panels; ++ip) {
                    if (kc > 0)
                        indirect_kernel(kc, packed_w.data() + (ip * R + p0) * MR, xpad + oh * wp + ow,
                                        offsets.data() + p0, tile);
                    else
                        std::fill(tile, tile + MR * NR, T(0));
                    const int64_t ks = std::min<int64_t>(MR, s.K - ip * MR);
                    for (int64_t l = 0; l < ks; ++l) {
                        const int64_t k = ip * MR + l;
                        const T bias = b ? b[k] : T(0);
                        T* dst = on + (k * s.OH + oh) * s.OW + ow;
                        for (int64_t u = 0; u < count; ++u) dst[u] = tile[l * NR + u] + bias;
                    }
                }
            }
        }
    };
    for_each_image(s.N, one_image);
}

// Multiply-adds of the two direct paths (per image and filter panel), to choose between them.
static bool rows_beat_flat(const Conv2dShape& s) {
    const int64_t wp = s.W + 2 * s.pw, per_row = s.C * s.kw;
    const int64_t flat = ceil_div((s.OH - 1) * wp + s.OW, 16) * 16 * s.C * s.kh * s.kw;
    int64_t rows = 0;
    for (int64_t oh = 0; oh < s.OH; ++oh) {
        int64_t lo, hi;
        real_filter_rows(s, oh, lo, hi);
        rows += ceil_div(s.OW, 16) * 16 * std::max<int64_t>(0, hi - lo) * per_row;
    }
    return rows * 10 < flat * 9;  // a clear margin: the flat path has the longer, steadier reductions
}

// ------------------------------------------------------------------------- gathered (any stride)
// The transposed orientation: tiles of 6 output positions x 16 filters. Position i's window is read
// in place from the padded image, one broadcast per tap (base[position_i + offset_tap]); the filters
// are packed once per call as 16-wide panels of w^T, which every vector load reads aligned. Unlike
// the padded-width path above it computes no discarded columns, at any stride; it needs the filter
// count to fill 16-wide panels and enough taps (R) to amortise each tile's store.
static constexpr int64_t kGatheredMinTaps = 64;
static constexpr int64_t kGatheredBlock = 256;

static bool gathered_applies(const Conv2dShape& s, int64_t elem_bytes) {
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw, k_padded = ceil_div(s.K, 16) * 16;
    return !is_pointwise(s) && s.K >= 16 && (k_padded - s.K) * 10 <= s.K && s.C * s.kh * s.kw >= kGatheredMinTaps &&
           saturating_product({s.C, hp, wp, elem_bytes}) <= kDirectMaxImageBytes;
}

template <typename T>
static void gather_a_kernel(int64_t kc, const T* base, const int64_t* positions, const int64_t* offsets, const T* b,
                            T* tile, bool accumulate) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return sgemm_kernel_gather_a_avx2(kc, base, positions, offsets, b, tile, accumulate);
    }
#endif
    T acc[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p, b += NR)
        for (int i = 0; i < MR; ++i) {
            const T a = base[positions[i] + offsets[p]];
            for (int j = 0; j < NR; ++j) acc[i][j] += a * b[j];
        }
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) tile[i * NR + j] = (accumulate ? tile[i * NR + j] : T(0)) + acc[i][j];
}

// Reduction blocks of about kGatheredBlock taps, a multiple of 8.
static int64_t gathered_kc_step(int64_t R) { return ceil_div(ceil_div(R, ceil_div(R, kGatheredBlock)), 8) * 8; }

// tiles[ib] (MR positions x NR lanes) = sum_{r < R} base[positions[ib*MR + i] + offsets[r]] panel[r],
// for the position blocks ib < blocks. Long reductions are cut into blocks of kc_step taps, and each
// block of the panel (kc x 16 weights, 16 KB) stays in L1 while every position block passes over it.
template <typename T>
static void gathered_panel(const T* base, const int64_t* positions, int64_t blocks, const int64_t* offsets, int64_t R,
                           const T* panel, T* tiles) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t kc_step = gathered_kc_step(R);
    for (int64_t pc = 0; pc < R; pc += kc_step) {
        const int64_t kc = std::min(kc_step, R - pc);
        int64_t ib = 0;
#ifdef FASTNN_HAVE_AVX512_KERNELS
        if constexpr (std::is_same_v<T, float>) {
            if (use_avx512())  // two blocks at a time: their tiles are adjacent, one 12 x 16 tile
                for (; ib + 2 <= blocks; ib += 2)
                    sgemm_kernel_gather_a12_avx512(kc, base, positions + ib * MR, offsets + pc, panel + pc * NR,
                                                   tiles + ib * MR * NR, pc > 0);
        }
#endif
        for (; ib < blocks; ++ib)
            gather_a_kernel<T>(kc, base, positions + ib * MR, offsets + pc, panel + pc * NR, tiles + ib * MR * NR,
                               pc > 0);
    }
}

// Work items (image n, item) for n < images, item < per_image, in contiguous shares per thread (so a
// thread meets each of its images in one run): prepare(n) when a thread reaches a new image, then
// one_item(n, item). Parallel over the items, so a single image still keeps the team busy.
template <typename Prepare, typename Item>
static void for_each_image_item(int64_t images, int64_t per_image, const Prepare& prepare, const Item& one_item) {
    const int64_t items = images * per_image;
#pragma omp parallel if (get_num_threads() > 1 && items > 1)
    {
        int64_t prepared = -1;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; ++it) {
            const int64_t n = it / per_image;
            if (n != prepared) {
                prepare(n);
                prepared = n;
            }
            one_item(n, it - n * per_image);
        }
    }
}

template <typename T>
static void gathered_forward(const T* x, const T* w, const T* b, T* out, const Conv2dShape& s) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t R = s.C * s.kh * s.kw, taps = s.kh * s.kw, P = s.OH * s.OW;
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw, plane = hp * wp;
    std::vector<int64_t> offsets((size_t)R);
    for (int64_t r = 0; r < R; ++r) {
        const int64_t c = r / taps, i = (r - c * taps) / s.kw, j = r - c * taps - i * s.kw;
        offsets[(size_t)r] = c * plane + i * wp + j;
    }
    // Window origins of every output, padded to whole blocks by repeating the last (results dropped).
    const int64_t blocks = ceil_div(P, MR);
    std::vector<int64_t> positions((size_t)(blocks * MR));
    for (int64_t p = 0; p < blocks * MR; ++p) {
        const int64_t q = std::min(p, P - 1), oh = q / s.OW, ow = q - oh * s.OW;
        positions[(size_t)p] = oh * s.sh * wp + ow * s.sw;
    }
    // Panel jp: R x NR of w^T.
    const int64_t k_panels = ceil_div(s.K, NR);
    auto packed_w = cached_buffer<T>((size_t)(k_panels * R * NR));  // 64-byte aligned, as the kernel loads it
    StridedOperand<T>(w, 1, R).pack(packed_w.get(), 0, R, 0, s.K, NR);
    // One item = one image's outputs of one filter panel; the thread's padded image stays in its
    // scratch slot (same slot, same size: the same buffer) for all the items of that image.
    for_each_image_item(
        s.N, k_panels, [&](int64_t n) { pad_image(x, n, s, thread_scratch<T>(kScratchConvColumns, s.C * plane), 0); },
        [&](int64_t n, int64_t jp) {
            const T* xpad = thread_scratch<T>(kScratchConvColumns, s.C * plane);
            T* tiles = thread_scratch<T>(kScratchConvRow, blocks * MR * NR);
            gathered_panel(xpad, positions.data(), blocks, offsets.data(), R, packed_w.get() + jp * R * NR, tiles);
            const int64_t ks = std::min<int64_t>(NR, s.K - jp * NR);
            for (int64_t l = 0; l < ks; ++l) {
                const int64_t k = jp * NR + l;
                const T bias = b ? b[k] : T(0);
                T* ok = out + (n * s.K + k) * P;
                for (int64_t p = 0; p < P; ++p) ok[p] = tiles[p * NR + l] + bias;  // block-major tiles: row p at p * NR
            }
        });
}

// ------------------------------------------------------------------------- backward data by phases
// With stride > 1, input pixel (y, x) receives only the taps (i, j) with i = a (mod sh) and
// j = b (mod sw), where a = (y + ph) mod sh and b = (x + pw) mod sw: the pixels fall into sh*sw phase
// classes, and within one class dx is a stride-1 correlation of dout with the class's sub-filter,
//   dx[c, y, x] = sum_{k, t, t'} dout[k, U - t, V - t'] w[k, c, a + sh t, b + sw t'],
//   U = (y + ph) div sh, V = (x + pw) div sw  (dout is 0 outside its OH x OW).
// Each class runs on the gathered kernel (tiles of 6 pixels of the class x 16 channels, dout read in
// place from a zero-padded copy, R = K x the class's taps) and is written straight into its pixels
// of dx: the flops of GEMM + col2im, without the unfolded matrix, the scatter or a zero fill (only
// the pixels of a class with no taps, when the stride exceeds the filter, are set to 0).
struct PhaseClass {
    int64_t a, b;          // the phase: taps i = a + sh t (t < taps_h), j = b + sw t' (t' < taps_w)
    int64_t taps_h, taps_w;
    int64_t u0, rows;      // U = u0 .. u0 + rows - 1: the pixel rows y = U sh + a - ph of the class
    int64_t v0, cols;
};

static PhaseClass phase_class(const Conv2dShape& s, int64_t a, int64_t b) {
    auto axis = [](int64_t a, int64_t k, int64_t st, int64_t pad, int64_t size, int64_t& taps, int64_t& u0,
                   int64_t& count) {
        taps = a < k ? ceil_div(k - a, st) : 0;
        u0 = pad > a ? ceil_div(pad - a, st) : 0;                 // first U with y = U st + a - pad >= 0
        const int64_t last = size - 1 + pad - a;                   // y <= size - 1
        count = last < 0 ? 0 : std::max<int64_t>(0, last / st - u0 + 1);
    };
    PhaseClass p{a, b, 0, 0, 0, 0, 0, 0};
    axis(a, s.kh, s.sh, s.ph, s.H, p.taps_h, p.u0, p.rows);
    axis(b, s.kw, s.sw, s.pw, s.W, p.taps_w, p.v0, p.cols);
    return p;
}

static bool phased_applies(const Conv2dShape& s, int64_t elem_bytes) {
    if (s.sh == 1 && s.sw == 1) return false;
    const int64_t c_padded = ceil_div(s.C, 16) * 16;
    const int64_t fewest_taps = s.K * std::max<int64_t>(1, s.kh / s.sh) * std::max<int64_t>(1, s.kw / s.sw);
    const int64_t hp = ceil_div(s.kh, s.sh) - 1 + std::max(s.OH, (s.H - 1 + s.ph) / s.sh + 1);
    const int64_t wp = ceil_div(s.kw, s.sw) - 1 + std::max(s.OW, (s.W - 1 + s.pw) / s.sw + 1);
    return s.C >= 16 && (c_padded - s.C) * 10 <= s.C && fewest_taps >= kGatheredMinTaps &&
           saturating_product({s.K, hp, wp, elem_bytes}) <= kDirectMaxImageBytes;
}

template <typename T>
static void phased_backward_data(const T* dout, const T* w, T* dx, const Conv2dShape& s) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    // dout padded by th rows on top and tw columns on the left (the largest t, t'), and below and to
    // the right up to the largest U, V: row U - t of dout is row U + th - t of the copy.
    const int64_t th = ceil_div(s.kh, s.sh) - 1, tw = ceil_div(s.kw, s.sw) - 1;
    const int64_t hp = th + std::max(s.OH, (s.H - 1 + s.ph) / s.sh + 1);
    const int64_t wp = tw + std::max(s.OW, (s.W - 1 + s.pw) / s.sw + 1), plane = hp * wp;
    const int64_t c_panels = ceil_div(s.C, NR), image = s.C * s.H * s.W;
    const Conv2dShape dout_image{s.N, s.K, s.OH, s.OW, s.C, s.kh, s.kw, 1, 1, th, tw, s.H, s.W};  // for pad_image
    struct Work {
        PhaseClass phase;
        int64_t R, blocks;
        std::vector<int64_t> offsets, positions;
        std::unique_ptr<T[], CachedFree> panels;  // c_panels x R x NR, 64-byte aligned
    };
    std::vector<Work> classes;
    bool empty_class = false;
    for (int64_t a = 0; a < s.sh; ++a)
        for (int64_t b = 0; b < s.sw; ++b) {
            const PhaseClass phase = phase_class(s, a, b);
            if (phase.rows == 0 || phase.cols == 0) continue;
            if (phase.taps_h == 0 || phase.taps_w == 0) {
                empty_class = true;
                continue;
            }
            Work work;
            work.phase = phase;
            const int64_t taps = phase.taps_h * phase.taps_w, pixels = phase.rows * phase.cols;
            work.R = s.K * taps;
            work.offsets.resize((size_t)work.R);
            for (int64_t k = 0; k < s.K; ++k)
                for (int64_t t = 0; t < phase.taps_h; ++t)
                    for (int64_t u = 0; u < phase.taps_w; ++u)
                        work.offsets[(size_t)((k * phase.taps_h + t) * phase.taps_w + u)] =
                            k * plane + (th - t) * wp + (tw - u);
            // Pixels of the class in row-major order, padded to whole blocks by repeating the last.
            work.blocks = ceil_div(pixels, MR);
            work.positions.resize((size_t)(work.blocks * MR));
            for (int64_t q = 0; q < work.blocks * MR; ++q) {
                const int64_t last = std::min(q, pixels - 1), r = last / phase.cols;
                work.positions[(size_t)q] = (phase.u0 + r) * wp + phase.v0 + (last - r * phase.cols);
            }
            // Panel cp, row (k, t, t'), lane l: w[k, cp NR + l, a + sh t, b + sw t'] (0 past C).
            work.panels = cached_buffer<T>((size_t)(c_panels * work.R * NR));
            T* panel = work.panels.get();
            for (int64_t cp = 0; cp < c_panels; ++cp)
                for (int64_t r = 0; r < work.R; ++r, panel += NR) {
                    const int64_t k = r / taps, t = (r - k * taps) / phase.taps_w, u = r - k * taps - t * phase.taps_w;
                    for (int64_t l = 0; l < NR; ++l) {
                        const int64_t c = cp * NR + l;
                        panel[l] = c < s.C ? w[((k * s.C + c) * s.kh + a + s.sh * t) * s.kw + b + s.sw * u] : T(0);
                    }
                }
            classes.push_back(std::move(work));
        }
    if (empty_class) std::fill(dx, dx + s.N * image, T(0));
    const int64_t per_image = (int64_t)classes.size() * c_panels;
    for_each_image_item(
        s.N, per_image,
        [&](int64_t n) { pad_image(dout, n, dout_image, thread_scratch<T>(kScratchConvColumns, s.K * plane), 0, wp, hp); },
        [&](int64_t n, int64_t item) {
            const Work& work = classes[(size_t)(item / c_panels)];
            const int64_t cp = item % c_panels;
            const PhaseClass& phase = work.phase;
            const T* pad = thread_scratch<T>(kScratchConvColumns, s.K * plane);
            T* tiles = thread_scratch<T>(kScratchConvRow, work.blocks * MR * NR);
            gathered_panel(pad, work.positions.data(), work.blocks, work.offsets.data(), work.R,
                           work.panels.get() + cp * work.R * NR, tiles);
            const int64_t lanes = std::min<int64_t>(NR, s.C - cp * NR);
            for (int64_t l = 0; l < lanes; ++l) {
                T* dxc = dx + n * image + (cp * NR + l) * s.H * s.W;
                for (int64_t r = 0, q = 0; r < phase.rows; ++r) {
                    T* row = dxc + ((phase.u0 + r) * s.sh + phase.a - s.ph) * s.W + phase.v0 * s.sw + phase.b - s.pw;
                    for (int64_t v = 0; v < phase.cols; ++v, ++q) row[v * s.sw] = tiles[q * NR + l];
                }
            }
        });
}

// Winograd (conv2d_winograd_avx2.cpp): 2.25x fewer multiplications than the direct sum for 3x3
// stride-1 convolutions with many channels, 1.44x at stride 2; float on AVX2 only.
template <typename T>
static bool winograd_enabled(const Conv2dShape& s) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) return use_avx2() && winograd_applies(s);
#endif
    (void)s;
    return false;
}

// Forward convolution read in place from the (padded) image (no unfolding), when one of the
// in-place paths suits the shape. Returns false when none does.
template <typename T>
static bool forward_in_place(const T* x, const T* w, const T* b, T* out, const Conv2dShape& s) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (winograd_enabled<T>(s)) {
            conv2d_winograd_forward_avx2(x, w, b, out, s);
            return true;
        }
    }
#endif
    if (gathered_applies(s, sizeof(T))) {
        gathered_forward(x, w, b, out, s);
        return true;
    }
    if (direct_applies(s, sizeof(T))) {
        if (rows_beat_flat(s))
            direct_forward_rows(x, w, b, out, s);
        else
            direct_forward(x, w, b, out, s);
        return true;
    }
    return false;
}

// ------------------------------------------------------------------------- forward
template <typename T>
bool conv2d_forward(const T* x, const T* w, const T* b, T* out, const Conv2dShape& s) {
    const int64_t P = s.OH * s.OW, R = s.C * s.kh * s.kw, image = s.C * s.H * s.W;
    const StridedOperand<T> weights(w, 1, R);  // A = w (K, R): Q(p = r, q = k) = w[k*R + r]
    if (forward_in_place(x, w, b, out, s)) return all_finite(out, s.N * s.K * P);
    const bool pointwise = is_pointwise(s);
    auto one_image = [&](int64_t n, bool parallel) {
        const T* xn = x + n * image;
        T* on = out + n * s.K * P;
        if (pointwise)  // cols_n = x_n as a (C, H*W) matrix
            gemm<T>(s.K, P, R, weights, StridedOperand<T>(xn, P, 1), on, P, false, b, parallel);
        else
            gemm<T>(s.K, P, R, weights, Im2colOperand<T>(xn, s), on, P, false, b, parallel);
        // Checked while the image's output is still in cache.
        return all_finite(on, s.K * P);
    };
    int bad = 0;
    if (images_in_parallel(s.N)) {
#pragma omp parallel for schedule(static) reduction(| : bad)
        for (int64_t n = 0; n < s.N; ++n) bad |= !one_image(n, false);
    } else {
        for (int64_t n = 0; n < s.N; ++n) bad |= !one_image(n, true);
    }
    return !bad;
}

// ------------------------------------------------------------------------- backward data
template <typename T>
void conv2d_backward_data(const T* dout, const T* w, T* dx, const Conv2dShape& s) {
    constexpr int NR = GemmTraits<T>::NR;
    const int64_t P = s.OH * s.OW, R = s.C * s.kh * s.kw, image = s.C * s.H * s.W, taps = s.kh * s.kw;
    if (is_pointwise(s)) {
        // dx_n (C, HW) = w^T (C, K) dout_n (K, HW): no col2im.
        const StridedOperand<T> weights_t(w, s.C, 1);  // Q(p = k, q = c) = w[k*C + c]
        auto one_image = [&](int64_t n, bool parallel) {
            gemm<T>(s.C, P, s.K, weights_t, StridedOperand<T>(dout + n * s.K * P, P, 1), dx + n * image, P,
                    false, nullptr, parallel);
        };
        if (images_in_parallel(s.N)) {
#pragma omp parallel for schedule(static)
            for (int64_t n = 0; n < s.N; ++n) one_image(n, false);
        } else {
            for (int64_t n = 0; n < s.N; ++n) one_image(n, true);
        }
        return;
    }
    // dcols is produced in column chunks of about 2 MB (a share of the last-level cache) and
    // scattered into dx before the next chunk, so it is read back from cache, not from memory.
    const int64_t budget = std::max<int64_t>(NR, ((int64_t(2) << 20) / (R * (int64_t)sizeof(T))) / NR * NR);
    const int64_t chunks = ceil_div(P, budget);
    const int64_t chunk = std::min(P, ceil_div(ceil_div(P, chunks), NR) * NR);
    // Stride 1: dx is the forward convolution of dout, zero-padded by (kh-1-ph, kw-1-pw), with the
    // filters transposed (K <-> C) and flipped; with few input channels that is the direct path.
    const Conv2dShape flipped{s.N, s.K, s.OH, s.OW, s.C, s.kh, s.kw, 1, 1, s.kh - 1 - s.ph, s.kw - 1 - s.pw, s.H, s.W};
    if (s.sh == 1 && s.sw == 1 && s.ph < s.kh && s.pw < s.kw &&
        (winograd_enabled<T>(flipped) || gathered_applies(flipped, sizeof(T)) || direct_applies(flipped, sizeof(T)))) {
        std::vector<T> w_flipped((size_t)(s.C * s.K * taps));  // w'[c, k, i, j] = w[k, c, kh-1-i, kw-1-j]
        for (int64_t k = 0; k < s.K; ++k)
            for (int64_t c = 0; c < s.C; ++c)
                for (int64_t tap = 0; tap < taps; ++tap)
                    w_flipped[(size_t)((c * s.K + k) * taps + (taps - 1 - tap))] = w[(k * s.C + c) * taps + tap];
        forward_in_place<T>(dout, w_flipped.data(), nullptr, dx, flipped);
        return;
    }
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2() && winograd_backward_data_applies(s)) {
            conv2d_winograd_backward_data_avx2(dout, w, dx, s);
            return;
        }
    }
#endif
    if (phased_applies(s, sizeof(T))) {
        phased_backward_data(dout, w, dx, s);
        return;
    }
    const StridedOperand<T> weights_t(w, R, 1);  // A = w^T (R, K): Q(p = k, q = r) = w[k*R + r]
    auto one_image = [&](int64_t n, bool parallel) {
        T* dxn = dx + n * image;
        std::fill(dxn, dxn + image, T(0));
        T* dcols = thread_scratch<T>(kScratchConvColumns, R * chunk);
        for (int64_t col = 0; col < P; col += chunk) {
            const int64_t count = std::min(chunk, P - col);
            gemm<T>(R, count, s.K, weights_t, StridedOperand<T>(dout + n * s.K * P + col, P, 1), dcols, count,
                    false, nullptr, parallel);
            const int64_t oh = col / s.OW, ow = col - oh * s.OW;
            // Channels own disjoint planes of dx: they can be scattered by different threads.
#pragma omp parallel for schedule(static) if (parallel && get_num_threads() > 1 && R * count > (1 << 16))
            for (int64_t c = 0; c < s.C; ++c)
                for (int64_t tap = 0; tap < taps; ++tap)
                    scatter_add_columns(dxn + c * s.H * s.W, s, tap / s.kw, tap % s.kw, oh, ow, count,
                                        dcols + (c * taps + tap) * count);
        }
    };
    if (images_in_parallel(s.N)) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < s.N; ++n) one_image(n, false);
    } else {
        for (int64_t n = 0; n < s.N; ++n) one_image(n, true);
    }
}

// ------------------------------------------------------------------------- backward weight
template <typename T>
bool conv2d_backward_weight(const T* dout, const T* x, T* dw, T* db, const Conv2dShape& s) {
    const int64_t P = s.OH * s.OW, R = s.C * s.kh * s.kw, image = s.C * s.H * s.W, weights = s.K * R;
    const bool pointwise = is_pointwise(s);
    // Few filters reuse each unfolded element too little to pay for packing it: read the padded
    // image in place instead (stride 1, image small enough to stay in cache).
    const int64_t hp = s.H + 2 * s.ph, wp = s.W + 2 * s.pw;
    // (The padded-width column count is computed only once the image is known to be small.)
    const int64_t image_bytes = saturating_product({s.C, hp, wp, (int64_t)sizeof(T)});
    const bool direct = s.sh == 1 && s.sw == 1 && !pointwise && s.K >= 4 && s.K <= kDirectWeightMaxK &&
                        (image_bytes <= kDirectMaxSmallImageBytes ||
                         (image_bytes <= kDirectMaxImageBytes &&
                          ((s.OH - 1) * wp + s.OW) * 100 <= P * kDirectMaxWastePercent));  // padded-width columns
    // Fewer filters than fill a vector: the AVX2 kernel that vectorises along the output width.
    bool small_k = false;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    small_k = std::is_same_v<T, float> && use_avx2() && !pointwise && conv2d_weight_grad_small_k_applies(s);
#endif
    const bool winograd = winograd_enabled<T>(s);  // where the forward takes Winograd, so does dw
    const int64_t gw = ceil_div(s.OW, 8) * 8, xw = std::max(wp, gw + s.kw - 1);
    // target (K, R) (+)= dout_n (K, P) cols_n^T (P, R)
    auto one_image = [&](int64_t n, T* target, bool accumulate, bool parallel) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
        if constexpr (std::is_same_v<T, float>) {
            if (small_k) {
                T* g = thread_scratch<T>(kScratchConvRow, s.K * s.OH * gw);
                for (int64_t row = 0; row < s.K * s.OH; ++row) {
                    std::copy_n(dout + n * s.K * P + row * s.OW, s.OW, g + row * gw);
                    std::fill(g + row * gw + s.OW, g + (row + 1) * gw, T(0));
                }
                T* xpad = thread_scratch<T>(kScratchConvColumns, s.C * hp * xw);
                pad_image(x, n, s, xpad, 0, xw);
                if (!accumulate) std::fill(target, target + weights, T(0));
                return conv2d_weight_grad_small_k_avx2(g, gw, xpad, hp, xw, s, target);
            }
        }
#endif
        if (direct) return direct_weight_gradient_image(dout, x, n, target, accumulate, s);
        const StridedOperand<T> grads(dout + n * s.K * P, 1, P);  // Q(p = column, q = k) = dout_n[k*P + column]
        const T* xn = x + n * image;
        if (pointwise)  // Q(p = column, q = c) = x_n[c*P + column]
            gemm<T>(s.K, R, P, grads, StridedOperand<T>(xn, 1, P), target, R, accumulate, nullptr, parallel);
        else
            gemm<T>(s.K, R, P, grads, Im2colTransposedOperand<T>(xn, s), target, R, accumulate, nullptr, parallel);
    };
    if (winograd) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
        if constexpr (std::is_same_v<T, float>) conv2d_winograd_weight_grad_avx2(dout, x, dw, s);
#endif
    } else if (images_in_parallel(s.N)) {
        std::vector<T*> partials((size_t)get_num_threads(), nullptr);
        int team = 1;
#pragma omp parallel num_threads((int)partials.size())
        {
            const TeamPosition position = team_position();
            const int me = position.thread;
#pragma omp single
            team = position.threads;  // (for the sum of the partials after the region)
            T* mine = thread_scratch<T>(kScratchConvWeightGrad, weights);
            partials[(size_t)me] = mine;
            bool first = true;
#pragma omp for schedule(static)
            for (int64_t n = 0; n < s.N; ++n) {
                one_image(n, mine, !first, false);
                first = false;
            }
            if (first) std::fill(mine, mine + weights, T(0));
        }
        // Summed in thread order: the same result whatever the timing.
#pragma omp parallel for schedule(static) if (weights > (1 << 14))
        for (int64_t e = 0; e < weights; ++e) {
            T sum = partials[0][e];
            for (int t = 1; t < team; ++t) sum += partials[(size_t)t][e];
            dw[e] = sum;
        }
    } else {
        for (int64_t n = 0; n < s.N; ++n) one_image(n, dw, n > 0, true);
    }
    if (db) {
#pragma omp parallel for schedule(static) if (s.N * s.K * P > (1 << 16))
        for (int64_t k = 0; k < s.K; ++k) {
            // db sums N*OH*OW terms: accumulated in double, in eight independent chains (one chain
            // would wait on the add latency for every element).
            double sums[8] = {};
            for (int64_t n = 0; n < s.N; ++n) {
                const T* g = dout + (n * s.K + k) * P;
                int64_t p = 0;
                for (; p + 8 <= P; p += 8)
                    for (int u = 0; u < 8; ++u) sums[u] += g[p + u];
                for (; p < P; ++p) sums[p & 7] += g[p];
            }
            db[k] = (T)(((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7])));
        }
    }
    return all_finite(dw, weights) && (!db || all_finite(db, s.K));
}

template bool conv2d_forward<float>(const float*, const float*, const float*, float*, const Conv2dShape&);
template bool conv2d_forward<double>(const double*, const double*, const double*, double*, const Conv2dShape&);
template void conv2d_backward_data<float>(const float*, const float*, float*, const Conv2dShape&);
template void conv2d_backward_data<double>(const double*, const double*, double*, const Conv2dShape&);
template bool conv2d_backward_weight<float>(const float*, const float*, float*, float*, const Conv2dShape&);
template bool conv2d_backward_weight<double>(const double*, const double*, double*, double*, const Conv2dShape&);

}  // namespace fastnn
