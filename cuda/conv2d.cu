// 2-D convolution, CUDA, as implicit GEMM. See conv2d.h for the math.
//
// - One tiled GEMM kernel serves all three passes. A "problem" struct says how to gather an element
//   of the left operand A (rows x red), of the right operand B (red x cols) and where a result goes;
//   the image is never unfolded in memory (im2col happens on the way into shared memory).
// - Tiling: a block of 256 threads owns a BM x BN output tile and walks the reduction in steps of
//   BK. Each step gathers a BK x BM slice of A and a BK x BN slice of B into shared memory; each
//   thread then keeps a TM x TN block of results in registers (register blocking) and reads
//   TM + TN values from shared memory per TM * TN multiply-adds, as 16-byte vector loads.
// - Index arithmetic: the gathers split flat indices into (c, r, s) or (n, p, q) with
//   multiply-high-and-shift divisions by the fixed sizes (FastDivisor), not integer division.
// - Software pipelining: the gathers for step t+1 are issued into registers before the
//   multiply-adds of step t, so global latency hides behind arithmetic.
// - Tile shapes are picked by the width of the output (K or C): LeNet's 6 and 16 channels would
//   waste most of a 64-wide tile.
// - Backward-weight reduces over N*P*Q, which is long while its output (C*R*S x K) is small: the
//   reduction is cut into fixed slices (split-K), each writing its own partial tile, and a second
//   kernel adds the slices in a fixed order. No atomics anywhere, so every pass is bit-reproducible.
#include <algorithm>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>

#include "conv2d.h"
#include "cuda_check.h"

namespace fastnn {
namespace cuda {

namespace {

constexpr int kGemmThreads = 256;

// ------------------------------------------------------------------------------------------ problems

// n / d for 0 <= n < 2^31 by a multiply-high and a shift instead of a ~20-instruction integer
// division; the gathers divide by the same few sizes millions of times. With p = 31 + ceil(log2 d)
// and m = ceil(2^p / d) < 2^32, floor(n m / 2^p) = floor(n / d) for every n < 2^31
// (Granlund & Montgomery 1994; the same scheme as CUTLASS's FastDivmod).
struct FastDivisor {
    int divisor;
    unsigned multiplier, shift;

    FastDivisor() = default;
    explicit FastDivisor(int d) : divisor(d), multiplier(0), shift(0) {
        if (d == 1) return;
        unsigned log2_ceil = 0;
        while ((1u << log2_ceil) < (unsigned)d) ++log2_ceil;
        const unsigned p = 31 + log2_ceil;
        multiplier = (unsigned)(((1ull << p) + (unsigned)d - 1) / (unsigned)d);
        shift = p - 32;
    }
    __device__ __forceinline__ int div(int n) const {
        return divisor == 1 ? n : (int)(__umulhi((unsigned)n, multiplier) >> shift);
    }
};

// Sizes as 32-bit ints: conv2d_check_shape guarantees every array holds fewer than 2^31 elements.
struct ConvDims {
    int n, c, h, w, k, r, s, sh, sw, ph, pw, p, q;
    int hw, pq, rs, crs;
    FastDivisor by_w, by_q, by_s, by_hw, by_pq, by_rs, by_sh, by_sw;
};

ConvDims make_dims(const Conv2dShape& g) {
    ConvDims d;
    d.n = (int)g.n; d.c = (int)g.c; d.h = (int)g.h; d.w = (int)g.w;
    d.k = (int)g.k; d.r = (int)g.r; d.s = (int)g.s;
    d.sh = (int)g.stride_h; d.sw = (int)g.stride_w; d.ph = (int)g.pad_h; d.pw = (int)g.pad_w;
    d.p = (int)g.p; d.q = (int)g.q;
    d.hw = d.h * d.w; d.pq = d.p * d.q; d.rs = d.r * d.s; d.crs = d.c * d.rs;
    d.by_w = FastDivisor(d.w); d.by_q = FastDivisor(d.q); d.by_s = FastDivisor(d.s);
    d.by_hw = FastDivisor(d.hw); d.by_pq = FastDivisor(d.pq); d.by_rs = FastDivisor(d.rs);
    d.by_sh = FastDivisor(d.sh); d.by_sw = FastDivisor(d.sw);
    return d;
}

// Forward: A[m, crs] = x[n, c, p*sh - ph + r, q*sw - pw + s] (m = (n, p, q)), B[crs, k] = w[k, crs],
// result[m, k] + b[k] -> out[n, k, p, q].
template <typename T>
struct ForwardProblem {
    const T* __restrict__ x;
    const T* __restrict__ w;
    const T* __restrict__ b;
    T* __restrict__ out;
    ConvDims d;
    int rows, cols, red, red_per_split;

    struct AContext {
        const T* image;  // x[n]
        int h0, w0;      // top-left tap of this output pixel's window (may be negative: padding)
    };
    __device__ AContext a_context(int m) const {
        int n = d.by_pq.div(m), pq = m - n * d.pq;
        int p = d.by_q.div(pq), q = pq - p * d.q;
        return {x + (size_t)n * d.c * d.hw, p * d.sh - d.ph, q * d.sw - d.pw};
    }
    __device__ T load_a(const AContext& a, int crs) const {
        int c = d.by_rs.div(crs), rs = crs - c * d.rs;
        int r = d.by_s.div(rs), s = rs - r * d.s;
        int h = a.h0 + r, v = a.w0 + s;
        if ((unsigned)h >= (unsigned)d.h || (unsigned)v >= (unsigned)d.w) return T(0);
        return __ldg(a.image + c * d.hw + h * d.w + v);
    }
    using BContext = const T*;
    __device__ BContext b_context(int k) const { return w + (size_t)k * d.crs; }
    __device__ T load_b(BContext filter, int crs) const { return __ldg(filter + crs); }
    __device__ void store(int m, int k, T value, int /*split*/) const {
        int n = d.by_pq.div(m), pq = m - n * d.pq;
        out[((size_t)n * d.k + k) * d.pq + pq] = b ? value + __ldg(b + k) : value;
    }
};

// Backward data: A[m, krs] = dout[n, k, (h + ph - r)/sh, (v + pw - s)/sw] where exact and inside,
// else 0 (m = (n, h, v)), B[krs, c] = w[k, c, r, s], result[m, c] -> dx[n, c, h, v].
template <typename T>
struct BackwardDataProblem {
    const T* __restrict__ dout;
    const T* __restrict__ w;
    T* __restrict__ dx;
    ConvDims d;
    int rows, cols, red, red_per_split;

    struct AContext {
        const T* grad;  // dout[n]
        int h_padded, w_padded;  // h + ph, v + pw
    };
    __device__ AContext a_context(int m) const {
        int n = d.by_hw.div(m), hv = m - n * d.hw;
        int h = d.by_w.div(hv), v = hv - h * d.w;
        return {dout + (size_t)n * d.k * d.pq, h + d.ph, v + d.pw};
    }
    __device__ T load_a(const AContext& a, int krs) const {
        int k = d.by_rs.div(krs), rs = krs - k * d.rs;
        int r = d.by_s.div(rs), s = rs - r * d.s;
        int ph = a.h_padded - r, pw = a.w_padded - s;  // = p*sh and q*sw when tap (r, s) hit (h, v)
        if (ph < 0 || pw < 0) return T(0);
        int p = d.by_sh.div(ph), q = d.by_sw.div(pw);
        if (p * d.sh != ph || q * d.sw != pw || p >= d.p || q >= d.q) return T(0);
        return __ldg(a.grad + k * d.pq + p * d.q + q);
    }
    using BContext = const T*;
    __device__ BContext b_context(int c) const { return w + (size_t)c * d.rs; }
    __device__ T load_b(BContext filter_c, int krs) const {
        int k = d.by_rs.div(krs), rs = krs - k * d.rs;
        return __ldg(filter_c + k * d.crs + rs);
    }
    __device__ void store(int m, int c, T value, int /*split*/) const {
        int n = d.by_hw.div(m), hv = m - n * d.hw;
        dx[((size_t)n * d.c + c) * d.hw + hv] = value;
    }
};

// Backward weight: A[crs, m] = x[n, c, p*sh - ph + r, q*sw - pw + s] (m = (n, p, q)),
// B[m, k] = dout[n, k, p, q], result[crs, k] -> partial[split, k, crs].
template <typename T>
struct BackwardWeightProblem {
    const T* __restrict__ x;
    const T* __restrict__ dout;
    T* __restrict__ partial;
    ConvDims d;
    int rows, cols, red, red_per_split;

    struct AContext {
        const T* channel;  // x[0, c]
        int r_off, s_off;  // r - ph, s - pw
    };
    __device__ AContext a_context(int crs) const {
        int c = d.by_rs.div(crs), rs = crs - c * d.rs;
        int r = d.by_s.div(rs), s = rs - r * d.s;
        return {x + (size_t)c * d.hw, r - d.ph, s - d.pw};
    }
    __device__ T load_a(const AContext& a, int m) const {
        int n = d.by_pq.div(m), pq = m - n * d.pq;
        int p = d.by_q.div(pq), q = pq - p * d.q;
        int h = p * d.sh + a.r_off, v = q * d.sw + a.s_off;
        if ((unsigned)h >= (unsigned)d.h || (unsigned)v >= (unsigned)d.w) return T(0);
        return __ldg(a.channel + (size_t)n * d.c * d.hw + h * d.w + v);
    }
    using BContext = const T*;
    __device__ BContext b_context(int k) const { return dout + (size_t)k * d.pq; }
    __device__ T load_b(BContext grad_k, int m) const {
        int n = d.by_pq.div(m), pq = m - n * d.pq;
        return __ldg(grad_k + (size_t)n * d.k * d.pq + pq);
    }
    __device__ void store(int crs, int k, T value, int split) const {
        partial[((size_t)split * d.k + k) * d.crs + crs] = value;
    }
};

// ------------------------------------------------------------------------------------------ kernels

// V consecutive elements of shared memory read as one 8- or 16-byte load (LDS.64 / LDS.128).
template <typename T, int V>
struct alignas(sizeof(T) * V) SharedVector {
    T v[V];
};

// result[row, col] = sum over kk in this block's slice of A[row, kk] * B[kk, col].
// blockIdx.x: BM-row tile, blockIdx.y: BN-column tile, blockIdx.z: reduction slice.
template <typename T, class Problem, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__(kGemmThreads) implicit_gemm_kernel(const Problem prob) {
    constexpr int kThreadsM = BM / TM, kThreadsN = BN / TN;
    static_assert(kThreadsM * kThreadsN == kGemmThreads, "one result block per thread");
    static_assert(kGemmThreads % BM == 0 && kGemmThreads % BK == 0, "loads tile evenly");
    constexpr int kARowsPerPass = kGemmThreads / BM;  // reduction rows of A gathered per pass
    constexpr int kALoads = BK / kARowsPerPass;
    constexpr int kBColsPerPass = kGemmThreads / BK;
    constexpr int kBLoads = BN / kBColsPerPass;
    static_assert(kALoads * kARowsPerPass == BK && kBLoads * kBColsPerPass == BN, "even tiles");
    // Each thread reads its TM values of A (and TN of B) per kk as runs of kVecA (kVecB)
    // consecutive elements, one 16-byte (or 8-byte) shared load per run.
    constexpr int kMaxVec = 16 / (int)sizeof(T);
    constexpr int kVecA = TM < kMaxVec ? TM : kMaxVec, kVecB = TN < kMaxVec ? TN : kMaxVec;
    static_assert(TM % kVecA == 0 && TN % kVecB == 0, "whole vectors");
    // Run g of thread tm covers rows g*kRunStrideA + tm*kVecA .. + kVecA - 1: within a warp the
    // runs of neighbouring threads are adjacent, so a warp's loads are contiguous (no bank conflicts).
    constexpr int kRunStrideA = kThreadsM * kVecA, kRunStrideB = kThreadsN * kVecB;

    __shared__ __align__(16) T a_tile[BK][BM];
    // The gathers write B column-wise (consecutive threads, consecutive kk); the kVecB padding
    // spreads those writes over the banks while keeping every row 16-byte aligned for the reads.
    __shared__ __align__(16) T b_tile[BK][BN + kVecB];

    const int tid = threadIdx.x;
    const int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
    const int red_begin = blockIdx.z * prob.red_per_split;
    const int red_end = min(prob.red, red_begin + prob.red_per_split);

    // Gather roles. A: consecutive threads take consecutive rows (coalesced along output pixels
    // or filter taps); each thread keeps its row for the whole reduction, so its index
    // decomposition is done once. B: consecutive threads take consecutive kk.
    const int a_row_local = tid % BM, a_kk_local = tid / BM;
    const bool a_row_ok = row0 + a_row_local < prob.rows;
    const typename Problem::AContext a_ctx = prob.a_context(a_row_ok ? row0 + a_row_local : 0);
    const int b_kk_local = tid % BK, b_col_local = tid / BK;
    typename Problem::BContext b_ctx[kBLoads];
    bool b_col_ok[kBLoads];
#pragma unroll
    for (int j = 0; j < kBLoads; ++j) {
        int col = col0 + b_col_local + j * kBColsPerPass;
        b_col_ok[j] = col < prob.cols;
        b_ctx[j] = prob.b_context(b_col_ok[j] ? col : 0);
    }

    T a_next[kALoads], b_next[kBLoads];
    auto gather = [&](int kk0) {
#pragma unroll
        for (int i = 0; i < kALoads; ++i) {
            int kk = kk0 + a_kk_local + i * kARowsPerPass;
            a_next[i] = (a_row_ok && kk < red_end) ? prob.load_a(a_ctx, kk) : T(0);
        }
#pragma unroll
        for (int j = 0; j < kBLoads; ++j) {
            int kk = kk0 + b_kk_local;
            b_next[j] = (b_col_ok[j] && kk < red_end) ? prob.load_b(b_ctx[j], kk) : T(0);
        }
    };

    const int tm = tid % kThreadsM, tn = tid / kThreadsM;
    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

    if (red_begin < red_end) gather(red_begin);
    for (int kk0 = red_begin; kk0 < red_end; kk0 += BK) {
        __syncthreads();  // everyone is done reading the previous tiles
#pragma unroll
        for (int i = 0; i < kALoads; ++i) a_tile[a_kk_local + i * kARowsPerPass][a_row_local] = a_next[i];
#pragma unroll
        for (int j = 0; j < kBLoads; ++j) b_tile[b_kk_local][b_col_local + j * kBColsPerPass] = b_next[j];
        __syncthreads();
        if (kk0 + BK < red_end) gather(kk0 + BK);  // in flight while we multiply
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            T a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < TM / kVecA; ++g) {
                const auto run = *reinterpret_cast<const SharedVector<T, kVecA>*>(
                    &a_tile[kk][g * kRunStrideA + tm * kVecA]);
#pragma unroll
                for (int v = 0; v < kVecA; ++v) a[g * kVecA + v] = run.v[v];
            }
#pragma unroll
            for (int g = 0; g < TN / kVecB; ++g) {
                const auto run = *reinterpret_cast<const SharedVector<T, kVecB>*>(
                    &b_tile[kk][g * kRunStrideB + tn * kVecB]);
#pragma unroll
                for (int v = 0; v < kVecB; ++v) b[g * kVecB + v] = run.v[v];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int row = row0 + (i / kVecA) * kRunStrideA + tm * kVecA + i % kVecA;
        if (row >= prob.rows) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int col = col0 + (j / kVecB) * kRunStrideB + tn * kVecB + j % kVecB;
            if (col < prob.cols) prob.store(row, col, acc[i][j], blockIdx.z);
        }
    }
}

// dw[i] = sum_{split = 0, 1, ...} partial[split, i]: a fixed order, so the same bits every run.
// The index is 64-bit: size may come within one grid stride (up to 2^20) of 2^31, where a 32-bit
// i += stride would overflow and wrap to a negative index.
template <typename T>
__global__ void sum_splits_kernel(const T* __restrict__ partial, T* __restrict__ dw, int size,
                                  int splits) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < size;
         i += (int64_t)gridDim.x * blockDim.x) {
        T sum = T(0);
        for (int split = 0; split < splits; ++split) sum += partial[(size_t)split * size + i];
        dw[i] = sum;
    }
}

// Partial bias gradients: block (k, chunk) sums dout[n, k, :] over the images n of its chunk
// (each thread a strided serial sum, then a fixed shared-memory tree) into partial[chunk, k].
// sum_splits_kernel then adds the chunks in order. One block per k alone would leave most of the
// GPU idle for LeNet's 6 or 16 channels.
template <typename T, int kThreads>
__global__ void bias_grad_partial_kernel(const T* __restrict__ dout, T* __restrict__ partial, int n,
                                         int k, int pq, int images_per_chunk) {
    __shared__ T sums[kThreads];
    const int channel = blockIdx.x, chunk = blockIdx.y;
    const int img_end = min(n, (chunk + 1) * images_per_chunk);
    T sum = T(0);
    for (int img = chunk * images_per_chunk; img < img_end; ++img) {
        const T* plane = dout + ((size_t)img * k + channel) * pq;
        for (int i = threadIdx.x; i < pq; i += kThreads) sum += __ldg(plane + i);
    }
    sums[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) sums[threadIdx.x] += sums[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[(size_t)chunk * k + channel] = sums[0];
}

// ---------------------------------------------------------------------------------------- launchers

constexpr int kBK = 16;

template <typename T, class Problem, int BM, int BN, int TM, int TN>
void launch_gemm(const Problem& prob, int splits, cudaStream_t stream, const char* what) {
    int64_t row_tiles = ((int64_t)prob.rows + BM - 1) / BM;
    int64_t col_tiles = ((int64_t)prob.cols + BN - 1) / BN;
    if (col_tiles > 65535)
        throw std::invalid_argument(std::string(what) + ": too many output channels for one grid");
    dim3 grid((unsigned)row_tiles, (unsigned)col_tiles, (unsigned)splits);
    implicit_gemm_kernel<T, Problem, BM, BN, kBK, TM, TN><<<grid, kGemmThreads, 0, stream>>>(prob);
    check_launch(what);
}

// Tile shapes by output width: narrow outputs (LeNet's 6 or 16 channels) get tall thin tiles.
template <typename T, class Problem>
void launch_gemm_for_width(const Problem& prob, int splits, cudaStream_t stream, const char* what) {
    if (prob.cols <= 16)
        launch_gemm<T, Problem, 128, 16, 4, 2>(prob, splits, stream, what);
    else if (prob.cols <= 32)
        launch_gemm<T, Problem, 128, 32, 4, 4>(prob, splits, stream, what);
    else
        launch_gemm<T, Problem, 128, 64, 8, 4>(prob, splits, stream, what);
}

}  // namespace

// a * b * ... < limit, without overflowing on the way (every factor is already below limit).
static bool product_below(std::initializer_list<int64_t> factors, int64_t limit) {
    int64_t product = 1;
    for (int64_t f : factors) {
        if (f != 0 && product > (limit - 1) / f) return false;
        product *= f;
    }
    return product < limit;
}

void conv2d_check_shape(const Conv2dShape& g) {
    if (g.n < 1 || g.c < 1 || g.h < 1 || g.w < 1 || g.k < 1 || g.r < 1 || g.s < 1)
        throw std::invalid_argument("conv2d: all sizes must be at least 1");
    if (g.stride_h < 1 || g.stride_w < 1 || g.pad_h < 0 || g.pad_w < 0)
        throw std::invalid_argument("conv2d: stride must be >= 1 and padding >= 0");
    const int64_t limit = std::numeric_limits<int32_t>::max() - 4096;
    if (g.stride_h >= limit || g.stride_w >= limit || g.pad_h >= limit || g.pad_w >= limit ||
        g.n >= limit || g.c >= limit || g.h >= limit || g.w >= limit || g.k >= limit ||
        g.r >= limit || g.s >= limit)
        throw std::invalid_argument("conv2d: a size, stride or padding of 2^31 or more");
    int64_t p = (g.h + 2 * g.pad_h - g.r) / g.stride_h + 1;
    int64_t q = (g.w + 2 * g.pad_w - g.s) / g.stride_w + 1;
    if (g.h + 2 * g.pad_h < g.r || g.w + 2 * g.pad_w < g.s || p != g.p || q != g.q)
        throw std::invalid_argument("conv2d: output size does not match input, kernel, stride, padding");
    // Indices inside the kernels are 32-bit; padded coordinates and a reduction index one tile
    // past the end must fit as well, hence the margin.
    if (!product_below({g.n, g.c, g.h, g.w}, limit) || !product_below({g.k, g.c, g.r, g.s}, limit) ||
        !product_below({g.n, g.k, g.p, g.q}, limit) || g.h + 2 * g.pad_h >= limit ||
        g.w + 2 * g.pad_w >= limit || !product_below({g.p, g.stride_h}, limit) ||
        !product_below({g.q, g.stride_w}, limit))
        throw std::invalid_argument("conv2d: arrays of 2^31 elements or more are not supported on the GPU");
}

int64_t conv2d_backward_weight_splits(const Conv2dShape& g) {
    // Enough blocks to fill a large GPU (a few hundred), but every slice at least 8 BK-steps long
    // so the partial sums stay worth their scratch traffic. Depends on the shape only, so results
    // are identical on every GPU.
    const int64_t red = g.n * g.p * g.q;
    const int64_t bm = 128, bn = g.k <= 16 ? 16 : g.k <= 32 ? 32 : 64;
    const int64_t tiles = ((g.c * g.r * g.s + bm - 1) / bm) * ((g.k + bn - 1) / bn);
    const int64_t target_blocks = 512, min_slice = 8 * kBK, max_splits = 64;
    int64_t splits = std::min({(target_blocks + tiles - 1) / tiles,
                               (red + min_slice - 1) / min_slice, max_splits});
    splits = std::max<int64_t>(splits, 1);
    // Slices are whole BK-steps; recount so that none is empty.
    int64_t per_split = ((red + splits - 1) / splits + kBK - 1) / kBK * kBK;
    return (red + per_split - 1) / per_split;
}

// Image chunks of the bias reduction: about 512 blocks in all, from the shape alone.
static int64_t bias_chunk_images(const Conv2dShape& g) {
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(g.n, (512 + g.k - 1) / g.k));
    return (g.n + chunks - 1) / chunks;
}

static int64_t bias_chunks(const Conv2dShape& g) {
    const int64_t per_chunk = bias_chunk_images(g);
    return (g.n + per_chunk - 1) / per_chunk;
}

int64_t conv2d_backward_weight_scratch(const Conv2dShape& g) {
    conv2d_check_shape(g);
    const int64_t splits = conv2d_backward_weight_splits(g);
    return (splits > 1 ? splits * g.k * g.c * g.r * g.s : 0) + bias_chunks(g) * g.k;
}

static int slice_length(int64_t red, int64_t splits) {
    return (int)(((red + splits - 1) / splits + kBK - 1) / kBK * kBK);
}

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* out, const Conv2dShape& shape,
                    cudaStream_t stream) {
    conv2d_check_shape(shape);
    ConvDims d = make_dims(shape);
    ForwardProblem<T> prob{x, w, b, out, d, d.n * d.pq, d.k, d.crs, d.crs};
    launch_gemm_for_width<T>(prob, 1, stream, "conv2d_forward");
}

template <typename T>
void conv2d_backward_data(const T* dout, const T* w, T* dx, const Conv2dShape& shape,
                          cudaStream_t stream) {
    conv2d_check_shape(shape);
    ConvDims d = make_dims(shape);
    const int red = d.k * d.rs;
    BackwardDataProblem<T> prob{dout, w, dx, d, d.n * d.hw, d.c, red, red};
    launch_gemm_for_width<T>(prob, 1, stream, "conv2d_backward_data");
}

template <typename T>
void conv2d_backward_weight(const T* dout, const T* x, T* dw, T* db, T* scratch,
                            const Conv2dShape& shape, cudaStream_t stream) {
    conv2d_check_shape(shape);
    ConvDims d = make_dims(shape);
    const int64_t splits = conv2d_backward_weight_splits(shape);
    const int red = d.n * d.pq;
    // One slice writes straight into dw; more go through the scratch and a fixed-order sum.
    T* dw_partial = scratch;
    T* target = splits == 1 ? dw : dw_partial;
    BackwardWeightProblem<T> prob{x, dout, target, d, d.crs, d.k, red, slice_length(red, splits)};
    launch_gemm_for_width<T>(prob, (int)splits, stream, "conv2d_backward_weight");
    if (splits > 1) {
        const int size = d.k * d.crs;
        const int threads = 256;
        const int blocks = std::min((size + threads - 1) / threads, 4096);
        sum_splits_kernel<T><<<blocks, threads, 0, stream>>>(dw_partial, dw, size, (int)splits);
        check_launch("conv2d_backward_weight (sum of slices)");
    }
    if (db) {
        constexpr int kBiasThreads = 256;
        T* bias_partial = scratch + (splits > 1 ? splits * d.k * d.crs : 0);
        const int chunks = (int)bias_chunks(shape);
        dim3 grid((unsigned)d.k, (unsigned)chunks);
        bias_grad_partial_kernel<T, kBiasThreads><<<grid, kBiasThreads, 0, stream>>>(
            dout, bias_partial, d.n, d.k, d.pq, (int)bias_chunk_images(shape));
        check_launch("conv2d_backward_weight (bias)");
        sum_splits_kernel<T><<<(d.k + 255) / 256, 256, 0, stream>>>(bias_partial, db, d.k, chunks);
        check_launch("conv2d_backward_weight (sum of bias chunks)");
    }
}

#define FASTNN_INSTANTIATE_CONV2D(T)                                                             \
    template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&,       \
                                    cudaStream_t);                                              \
    template void conv2d_backward_data<T>(const T*, const T*, T*, const Conv2dShape&,           \
                                          cudaStream_t);                                        \
    template void conv2d_backward_weight<T>(const T*, const T*, T*, T*, T*, const Conv2dShape&, \
                                            cudaStream_t);
FASTNN_INSTANTIATE_CONV2D(float)
FASTNN_INSTANTIATE_CONV2D(double)
#undef FASTNN_INSTANTIATE_CONV2D

}  // namespace cuda
}  // namespace fastnn
