// Batch normalisation, CUDA. See batch_norm.h for the math.
//
// Two kernels per pass, each one pass over memory:
//   1. partial sums: every block sums one chunk of one channel (or of 32 channels, for (N, C)
//      input) in a fixed order and writes a double2 partial. Reads x (forward) or dout and x
//      (backward) once.
//   2. apply: every block first merges its channel's partials in chunk order (a few dozen double2
//      from L2), turns them into per-channel coefficients, then streams its slice of the channel:
//          out = k2 * (x - mean) + k3 (+ k1 * dout in backward)
//      Reads x (and dout) once more and writes y (or dx) once. The one block that owns the first
//      slice of a channel also writes that channel's saved statistics, running statistics or
//      dgamma/dbeta, so those are written exactly once, with no extra launch.
// Layouts: for L > 1 a block walks contiguous planes x[n, c, :]; for L = 1 ((N, C) input) a block of
// 32 x 8 threads walks rows with the 32 lanes on 32 consecutive channels, so loads coalesce.
#include <algorithm>
#include <initializer_list>
#include <limits>
#include <stdexcept>

#include "batch_norm.h"
#include "cuda_check.h"

namespace fastnn {
namespace cuda {

namespace {

constexpr int kPlaneThreads = 256;
constexpr int kPlaneSpan = kPlaneThreads * 8;  // elements of a plane per apply block
constexpr int kColumnLanes = 32, kColumnRows = 8;
constexpr int kColumnRowsPerApplyBlock = 64;
constexpr int kMinColumnRowsPerChunk = 64;
// Every apply block merges its channel's chunks serially, so their number stays small.
constexpr int64_t kMaxChunks = 64;

struct Chunking {
    int chunks, rows_per_chunk;
};

// Chunks along N per channel (or per 32-channel group): enough blocks in all to fill a large GPU,
// from the shape alone so that the summation order, and so the bits, are the same everywhere.
Chunking chunking(const BatchNormShape& g) {
    int64_t chunks;
    if (g.l > 1) {
        chunks = std::min<int64_t>({(1024 + g.c - 1) / g.c, g.n, kMaxChunks});
    } else {
        int64_t groups = (g.c + kColumnLanes - 1) / kColumnLanes;
        chunks = std::min<int64_t>({(512 + groups - 1) / groups,
                                    (g.n + kMinColumnRowsPerChunk - 1) / kMinColumnRowsPerChunk,
                                    kMaxChunks});
    }
    chunks = std::max<int64_t>(chunks, 1);
    int64_t rows = (g.n + chunks - 1) / chunks;
    return {(int)((g.n + rows - 1) / rows), (int)rows};
}

// --------------------------------------------------------------------------- per-element sum terms

// Forward: s1 = sum (x - x0), s2 = sum (x - x0)^2 with x0 the channel's first value.
template <typename T>
struct StatsTerms {
    const T* __restrict__ x;
    int l;
    __device__ double reference(int c) const { return (double)x[(size_t)c * l]; }
    __device__ void add(size_t i, double x0, double& s1, double& s2) const {
        double a = (double)x[i] - x0;
        s1 += a;
        s2 += a * a;
    }
};

// Backward: s1 = sum dout, s2 = sum dout * (x - mean).
template <typename T>
struct GradTerms {
    const T* __restrict__ dout;
    const T* __restrict__ x;
    const T* __restrict__ mean;
    __device__ double reference(int c) const { return (double)mean[c]; }
    __device__ void add(size_t i, double m, double& s1, double& s2) const {
        double g = (double)dout[i];
        s1 += g;
        s2 += g * ((double)x[i] - m);
    }
};

__device__ __forceinline__ double2 merge_chunks(const double2* __restrict__ partials, int c,
                                                int chunks) {
    double2 total = make_double2(0.0, 0.0);
    for (int k = 0; k < chunks; ++k) {
        double2 p = partials[(size_t)c * chunks + k];
        total.x += p.x;
        total.y += p.y;
    }
    return total;
}

// ------------------------------------------------------------------------ per-channel coefficients

template <typename T>
struct Coefficients {
    T mean, k1, k2, k3;  // out = k2 * (x - mean) + k3 + k1 * dout
};

template <typename T>
struct TrainingForward {
    const double2* __restrict__ partials;
    int chunks;
    double count;  // M
    const T* __restrict__ x;
    int l;
    const T* __restrict__ gamma;
    const T* __restrict__ beta;
    T* __restrict__ save_mean;
    T* __restrict__ save_invstd;
    T* __restrict__ running_mean;
    T* __restrict__ running_var;
    double momentum, eps;

    __device__ Coefficients<T> operator()(int c, bool owner) const {
        double2 s = merge_chunks(partials, c, chunks);
        double shifted_mean = s.x / count;
        double mean = (double)x[(size_t)c * l] + shifted_mean;
        // Clamps rounding below zero, but keeps a NaN (from a NaN or inf in the channel): fmax
        // would turn it into 0 and give a finite invstd and running_var, unlike the CPU kernel
        // (std::max) and the reference, which propagate it.
        const double raw_var = s.y / count - shifted_mean * shifted_mean;
        double var = raw_var < 0.0 ? 0.0 : raw_var;
        double invstd = 1.0 / sqrt(var + eps);
        if (owner) {
            save_mean[c] = (T)mean;
            save_invstd[c] = (T)invstd;
            if (running_mean)
                running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c] + momentum * mean);
            if (running_var)
                running_var[c] = (T)((1.0 - momentum) * (double)running_var[c] +
                                     momentum * var * count / (count - 1.0));
        }
        return {(T)mean, T(0), (T)invstd * gamma[c], beta[c]};
    }
};

template <typename T>
struct EvalForward {
    const T* __restrict__ mean;
    const T* __restrict__ invstd;
    const T* __restrict__ gamma;
    const T* __restrict__ beta;
    __device__ Coefficients<T> operator()(int c, bool) const {
        return {mean[c], T(0), invstd[c] * gamma[c], beta[c]};
    }
};

template <typename T>
struct Backward {
    const double2* __restrict__ partials;
    int chunks;
    double count;
    const T* __restrict__ mean;
    const T* __restrict__ invstd;
    const T* __restrict__ gamma;
    T* __restrict__ dgamma;
    T* __restrict__ dbeta;
    bool training;

    __device__ Coefficients<T> operator()(int c, bool owner) const {
        double2 s = merge_chunks(partials, c, chunks);
        double istd = (double)invstd[c], g = (double)gamma[c];
        double db = s.x, dg = s.y * istd;
        if (owner) {
            dbeta[c] = (T)db;
            dgamma[c] = (T)dg;
        }
        double k1 = g * istd;
        if (!training) return {mean[c], (T)k1, T(0), T(0)};
        // dx = g istd (dout - db/M - (x - mean) istd dg/M)
        return {mean[c], (T)k1, (T)(-k1 * istd * dg / count), (T)(-k1 * db / count)};
    }
};

// ------------------------------------------------------------------------------------------ kernels

// Fixed-order block sum of (s1, s2) over kThreads threads; the result is valid in thread 0.
template <int kThreads>
__device__ __forceinline__ void block_sum(double& s1, double& s2) {
    __shared__ double warp_s1[kThreads / 32], warp_s2[kThreads / 32];
    for (int offset = 16; offset > 0; offset >>= 1) {
        s1 += __shfl_xor_sync(0xffffffffu, s1, offset);
        s2 += __shfl_xor_sync(0xffffffffu, s2, offset);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        warp_s1[warp] = s1;
        warp_s2[warp] = s2;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        s1 = 0.0;
        s2 = 0.0;
        for (int k = 0; k < kThreads / 32; ++k) {
            s1 += warp_s1[k];
            s2 += warp_s2[k];
        }
    }
}

// grid (C, chunks): block (c, chunk) sums planes [chunk*rows, (chunk+1)*rows) of channel c.
template <class Terms>
__global__ void __launch_bounds__(kPlaneThreads)
    partial_sums_planes_kernel(const Terms terms, double2* __restrict__ partials, int n, int channels,
                               int l, int chunks, int rows_per_chunk) {
    const int c = blockIdx.x, chunk = blockIdx.y;
    const double ref = terms.reference(c);
    const int n_begin = chunk * rows_per_chunk, n_end = min(n, n_begin + rows_per_chunk);
    double s1 = 0.0, s2 = 0.0;
    for (int img = n_begin; img < n_end; ++img) {
        const size_t base = ((size_t)img * channels + c) * l;
        for (int i = threadIdx.x; i < l; i += kPlaneThreads) terms.add(base + i, ref, s1, s2);
    }
    block_sum<kPlaneThreads>(s1, s2);
    if (threadIdx.x == 0) partials[(size_t)c * chunks + chunk] = make_double2(s1, s2);
}

// (N, C) input. grid (ceil(C/32), chunks), block (32, 8): lane x on channel, y strides the rows.
template <class Terms>
__global__ void __launch_bounds__(kColumnLanes * kColumnRows)
    partial_sums_columns_kernel(const Terms terms, double2* __restrict__ partials, int n,
                                int channels, int chunks, int rows_per_chunk) {
    __shared__ double shared_s1[kColumnRows][kColumnLanes], shared_s2[kColumnRows][kColumnLanes];
    const int c = blockIdx.x * kColumnLanes + threadIdx.x, chunk = blockIdx.y;
    double s1 = 0.0, s2 = 0.0;
    if (c < channels) {
        const double ref = terms.reference(c);
        const int n_begin = chunk * rows_per_chunk, n_end = min(n, n_begin + rows_per_chunk);
        for (int row = n_begin + threadIdx.y; row < n_end; row += kColumnRows)
            terms.add((size_t)row * channels + c, ref, s1, s2);
    }
    shared_s1[threadIdx.y][threadIdx.x] = s1;
    shared_s2[threadIdx.y][threadIdx.x] = s2;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
        s1 = 0.0;
        s2 = 0.0;
        for (int k = 0; k < kColumnRows; ++k) {
            s1 += shared_s1[k][threadIdx.x];
            s2 += shared_s2[k][threadIdx.x];
        }
        partials[(size_t)c * chunks + chunk] = make_double2(s1, s2);
    }
}

// grid (N*C planes, ceil(L / kPlaneSpan)): out = k2 (x - mean) + k3 (+ k1 dout) over one span.
template <typename T, class Coefs, bool kHasDout>
__global__ void __launch_bounds__(kPlaneThreads)
    apply_planes_kernel(const Coefs coefs, const T* __restrict__ x, const T* __restrict__ dout,
                        T* __restrict__ out, int channels, int l) {
    __shared__ Coefficients<T> k;
    const int plane = blockIdx.x, c = plane % channels;
    if (threadIdx.x == 0) k = coefs(c, plane == c && blockIdx.y == 0);  // image 0, first span
    __syncthreads();
    const size_t base = (size_t)plane * l;
    const int end = min(l, (int)(blockIdx.y + 1) * kPlaneSpan);
    for (int i = blockIdx.y * kPlaneSpan + threadIdx.x; i < end; i += kPlaneThreads) {
        T value = k.k2 * (x[base + i] - k.mean) + k.k3;
        if (kHasDout) value += k.k1 * dout[base + i];
        out[base + i] = value;
    }
}

// (N, C) input. grid (ceil(C/32), ceil(N/64)), block (32, 8).
template <typename T, class Coefs, bool kHasDout>
__global__ void __launch_bounds__(kColumnLanes * kColumnRows)
    apply_columns_kernel(const Coefs coefs, const T* __restrict__ x, const T* __restrict__ dout,
                         T* __restrict__ out, int n, int channels) {
    __shared__ Coefficients<T> k[kColumnLanes];
    const int c = blockIdx.x * kColumnLanes + threadIdx.x;
    if (threadIdx.y == 0 && c < channels) k[threadIdx.x] = coefs(c, blockIdx.y == 0);
    __syncthreads();
    if (c >= channels) return;
    const Coefficients<T> kc = k[threadIdx.x];
    const int row_end = min(n, (int)(blockIdx.y + 1) * kColumnRowsPerApplyBlock);
    for (int row = blockIdx.y * kColumnRowsPerApplyBlock + threadIdx.y; row < row_end;
         row += kColumnRows) {
        const size_t i = (size_t)row * channels + c;
        T value = kc.k2 * (x[i] - kc.mean) + kc.k3;
        if (kHasDout) value += kc.k1 * dout[i];
        out[i] = value;
    }
}

// ---------------------------------------------------------------------------------------- launchers

template <class Terms>
void partial_sums(const Terms& terms, double2* partials, const BatchNormShape& g,
                  cudaStream_t stream, const char* what) {
    const Chunking ch = chunking(g);
    if (g.l > 1) {
        dim3 grid((unsigned)g.c, (unsigned)ch.chunks);
        partial_sums_planes_kernel<Terms><<<grid, kPlaneThreads, 0, stream>>>(
            terms, partials, (int)g.n, (int)g.c, (int)g.l, ch.chunks, ch.rows_per_chunk);
    } else {
        dim3 grid((unsigned)((g.c + kColumnLanes - 1) / kColumnLanes), (unsigned)ch.chunks);
        dim3 block(kColumnLanes, kColumnRows);
        partial_sums_columns_kernel<Terms><<<grid, block, 0, stream>>>(
            terms, partials, (int)g.n, (int)g.c, ch.chunks, ch.rows_per_chunk);
    }
    check_launch(what);
}

template <typename T, bool kHasDout, class Coefs>
void apply(const Coefs& coefs, const T* x, const T* dout, T* out, const BatchNormShape& g,
           cudaStream_t stream, const char* what) {
    if (g.l > 1) {
        dim3 grid((unsigned)(g.n * g.c), (unsigned)((g.l + kPlaneSpan - 1) / kPlaneSpan));
        apply_planes_kernel<T, Coefs, kHasDout><<<grid, kPlaneThreads, 0, stream>>>(
            coefs, x, dout, out, (int)g.c, (int)g.l);
    } else {
        dim3 grid((unsigned)((g.c + kColumnLanes - 1) / kColumnLanes),
                  (unsigned)((g.n + kColumnRowsPerApplyBlock - 1) / kColumnRowsPerApplyBlock));
        dim3 block(kColumnLanes, kColumnRows);
        apply_columns_kernel<T, Coefs, kHasDout><<<grid, block, 0, stream>>>(
            coefs, x, dout, out, (int)g.n, (int)g.c);
    }
    check_launch(what);
}

}  // namespace

void batch_norm_check_shape(const BatchNormShape& g) {
    if (g.n < 1 || g.c < 1 || g.l < 1)
        throw std::invalid_argument("batch_norm: N, C and H*W must be at least 1");
    const int64_t limit = std::numeric_limits<int32_t>::max() - kPlaneSpan;
    const int64_t max_grid_y = 65535;
    if (g.n >= limit || g.c >= limit || g.l >= limit || g.n * g.c >= limit ||
        (double)g.n * g.c * g.l >= (double)limit)
        throw std::invalid_argument("batch_norm: arrays of 2^31 elements or more are not supported on the GPU");
    if ((g.l + kPlaneSpan - 1) / kPlaneSpan > max_grid_y ||
        (g.n + kColumnRowsPerApplyBlock - 1) / kColumnRowsPerApplyBlock > max_grid_y)
        throw std::invalid_argument("batch_norm: too many rows or too large planes for one grid");
}

int64_t batch_norm_chunks(const BatchNormShape& shape) {
    batch_norm_check_shape(shape);
    return chunking(shape).chunks;
}

template <typename T>
void batch_norm_forward_training(const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                                 T* save_invstd, T* running_mean, T* running_var, double* partials,
                                 double momentum, double eps, const BatchNormShape& shape,
                                 cudaStream_t stream) {
    batch_norm_check_shape(shape);
    if (shape.n * shape.l < 2)
        throw std::invalid_argument("batch_norm: training needs at least 2 values per channel");
    double2* parts = reinterpret_cast<double2*>(partials);
    partial_sums(StatsTerms<T>{x, (int)shape.l}, parts, shape, stream,
                 "batch_norm_forward_training (sums)");
    TrainingForward<T> coefs{parts, chunking(shape).chunks, (double)(shape.n * shape.l), x,
                             (int)shape.l, gamma, beta, save_mean, save_invstd, running_mean,
                             running_var, momentum, eps};
    apply<T, false>(coefs, x, (const T*)nullptr, y, shape, stream, "batch_norm_forward_training");
}

template <typename T>
void batch_norm_forward_eval(const T* x, const T* gamma, const T* beta, const T* mean,
                             const T* invstd, T* y, const BatchNormShape& shape, cudaStream_t stream) {
    batch_norm_check_shape(shape);
    apply<T, false>(EvalForward<T>{mean, invstd, gamma, beta}, x, (const T*)nullptr, y, shape,
                    stream, "batch_norm_forward_eval");
}

template <typename T>
void batch_norm_backward(const T* dout, const T* x, const T* gamma, const T* mean, const T* invstd,
                         T* dx, T* dgamma, T* dbeta, double* partials, bool training,
                         const BatchNormShape& shape, cudaStream_t stream) {
    batch_norm_check_shape(shape);
    double2* parts = reinterpret_cast<double2*>(partials);
    partial_sums(GradTerms<T>{dout, x, mean}, parts, shape, stream, "batch_norm_backward (sums)");
    Backward<T> coefs{parts, chunking(shape).chunks, (double)(shape.n * shape.l), mean, invstd,
                      gamma, dgamma, dbeta, training};
    apply<T, true>(coefs, x, dout, dx, shape, stream, "batch_norm_backward");
}

#define FASTNN_INSTANTIATE_BATCH_NORM(T)                                                          \
    template void batch_norm_forward_training<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                                 double*, double, double, const BatchNormShape&,   \
                                                 cudaStream_t);                                    \
    template void batch_norm_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, T*, \
                                             const BatchNormShape&, cudaStream_t);                 \
    template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                         T*, double*, bool, const BatchNormShape&, cudaStream_t);
FASTNN_INSTANTIATE_BATCH_NORM(float)
FASTNN_INSTANTIATE_BATCH_NORM(double)
#undef FASTNN_INSTANTIATE_BATCH_NORM

}  // namespace cuda
}  // namespace fastnn
