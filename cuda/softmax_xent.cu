// Fused softmax cross-entropy, CUDA. See softmax_xent.h for the math.
//
// Memory passes: forward reads the scores once (online softmax keeps a running max m and a running
// sum s of exp(x - m) per thread, rescaling s only when m grows), backward reads the scores once and
// writes dscores once. Loads are coalesced: consecutive lanes read consecutive elements of a row.
#include <cfloat>
#include <cmath>

#include "cuda_check.h"
#include "softmax_xent.h"

namespace fastnn {
namespace cuda {

// ------------------------------------------------------------------------------------------ kernels

__device__ __forceinline__ float exp_t(float x) { return expf(x); }
__device__ __forceinline__ double exp_t(double x) { return exp(x); }
__device__ __forceinline__ float log_t(float x) { return logf(x); }
__device__ __forceinline__ double log_t(double x) { return log(x); }

template <typename T>
__device__ __forceinline__ T neg_inf() { return -INFINITY; }

// Adds x to the running (m, s) pair: s = sum exp(x_k - m) over what was seen, m = max seen.
template <typename T>
__device__ __forceinline__ void online_add(T& m, T& s, T x) {
    if (x > m) {
        s = s * exp_t(m - x) + T(1);
        m = x;
    } else if (x != neg_inf<T>()) {  // -inf adds nothing (and -inf - -inf would be NaN)
        s += exp_t(x - m);             // NaN lands here too (x > m is false) and poisons s
    }
}

// Merges two (m, s) pairs. m is never NaN (NaN fails x > m in online_add); a NaN score poisons s
// instead. A pair with m = -inf has seen only -inf and NaN, so its s is 0 or NaN: it is carried
// through unscaled, which adds nothing or the NaN (scaling it by exp(-inf - mm) = 0 would drop a
// NaN and give a finite, wrong loss).
template <typename T>
__device__ __forceinline__ void online_merge(T& m, T& s, T m2, T s2) {
    T mm = m > m2 ? m : m2;
    if (mm == neg_inf<T>()) {  // both sides: only -inf and NaN so far
        s = s + s2;
        return;
    }
    T a = (m == neg_inf<T>()) ? s : s * exp_t(m - mm);
    T b = (m2 == neg_inf<T>()) ? s2 : s2 * exp_t(m2 - mm);
    m = mm;
    s = a + b;
}

template <typename T>
__device__ __forceinline__ void warp_merge(T& m, T& s) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        T m2 = __shfl_xor_sync(0xffffffffu, m, offset);
        T s2 = __shfl_xor_sync(0xffffffffu, s, offset);
        online_merge(m, s, m2, s2);
    }
}

// Runs online_add over x[first], x[first + stride], ... below `classes`, issuing four independent
// loads before the dependent math so that each thread keeps four requests in flight (one at a
// time is not enough bytes in flight per SM to come near the copy bandwidth).
template <typename T>
__device__ __forceinline__ void online_add_strided(T& m, T& s, const T* __restrict__ x,
                                                   int64_t first, int64_t stride, int64_t classes) {
    int64_t j = first;
    for (; j + 3 * stride < classes; j += 4 * stride) {
        const T a = x[j], b = x[j + stride], c = x[j + 2 * stride], d = x[j + 3 * stride];
        online_add(m, s, a);
        online_add(m, s, b);
        online_add(m, s, c);
        online_add(m, s, d);
    }
    for (; j < classes; j += stride) online_add(m, s, x[j]);
}

// dx[j] = scale * (exp(x[j] - lse) - [j == y]) over the same strided elements, four loads in flight.
template <typename T>
__device__ __forceinline__ void backward_strided(const T* __restrict__ x, T* __restrict__ dx, T lse,
                                                 T scale, int64_t y, int64_t first, int64_t stride,
                                                 int64_t classes) {
    int64_t j = first;
    for (; j + 3 * stride < classes; j += 4 * stride) {
        T v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) v[u] = x[j + u * stride];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const int64_t k = j + u * stride;
            dx[k] = scale * (exp_t(v[u] - lse) - (k == y ? T(1) : T(0)));
        }
    }
    for (; j < classes; j += stride) dx[j] = scale * (exp_t(x[j] - lse) - (j == y ? T(1) : T(0)));
}

template <typename T>
__device__ __forceinline__ void write_row_result(const T* x, const int64_t* labels, T* lse,
                                                 double* row_loss, int64_t row, int64_t classes,
                                                 T m, T s) {
    T l = m + log_t(s);
    lse[row] = l;
    int64_t y = labels[row];
    row_loss[row] = (y >= 0 && y < classes) ? (double)l - (double)x[y] : (double)NAN;
}

// One warp per row: for C up to kWarpRowMaxClasses.
template <typename T>
__global__ void softmax_xent_forward_warp_kernel(const T* __restrict__ scores,
                                                 const int64_t* __restrict__ labels,
                                                 T* __restrict__ lse, double* __restrict__ row_loss,
                                                 int64_t rows, int64_t classes) {
    int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;  // whole warps exit together: row is uniform across a warp
    const T* x = scores + row * classes;
    T m = neg_inf<T>(), s = T(0);
    online_add_strided(m, s, x, lane, 32, classes);
    warp_merge(m, s);
    if (lane == 0) write_row_result(x, labels, lse, row_loss, row, classes, m, s);
}

// One block per row: for long rows.
template <typename T, int kThreads>
__global__ void softmax_xent_forward_block_kernel(const T* __restrict__ scores,
                                                  const int64_t* __restrict__ labels,
                                                  T* __restrict__ lse,
                                                  double* __restrict__ row_loss, int64_t classes) {
    __shared__ T shared_m[kThreads / 32], shared_s[kThreads / 32];
    int64_t row = blockIdx.x;
    const T* x = scores + row * classes;
    T m = neg_inf<T>(), s = T(0);
    online_add_strided(m, s, x, threadIdx.x, kThreads, classes);
    warp_merge(m, s);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        shared_m[warp] = m;
        shared_s[warp] = s;
    }
    __syncthreads();
    if (warp == 0) {
        m = lane < kThreads / 32 ? shared_m[lane] : neg_inf<T>();
        s = lane < kThreads / 32 ? shared_s[lane] : T(0);
        warp_merge(m, s);
        if (lane == 0) write_row_result(x, labels, lse, row_loss, row, classes, m, s);
    }
}

// loss = sum(row_loss) / N by a single block, in a fixed order: the same bits on every run.
template <typename T, int kThreads>
__global__ void mean_reduce_kernel(const double* __restrict__ row_loss, int64_t rows,
                                   T* __restrict__ loss) {
    __shared__ double partial[kThreads];
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < rows; i += kThreads) sum += row_loss[i];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) *loss = (T)(partial[0] / (double)rows);
}

template <typename T>
__device__ __forceinline__ T backward_scale(const T* dloss_ptr, double dloss_value, int64_t rows) {
    return (dloss_ptr ? *dloss_ptr : (T)dloss_value) / (T)rows;
}

template <typename T>
__global__ void softmax_xent_backward_warp_kernel(const T* __restrict__ scores,
                                                  const int64_t* __restrict__ labels,
                                                  const T* __restrict__ lse,
                                                  const T* __restrict__ dloss_ptr,
                                                  double dloss_value, T* __restrict__ dscores,
                                                  int64_t rows, int64_t classes) {
    int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const T scale = backward_scale(dloss_ptr, dloss_value, rows);
    const T l = lse[row];
    const int64_t y = labels[row];
    const T* x = scores + row * classes;
    T* dx = dscores + row * classes;
    backward_strided(x, dx, l, scale, y, lane, 32, classes);
}

template <typename T, int kThreads>
__global__ void softmax_xent_backward_block_kernel(const T* __restrict__ scores,
                                                   const int64_t* __restrict__ labels,
                                                   const T* __restrict__ lse,
                                                   const T* __restrict__ dloss_ptr,
                                                   double dloss_value, T* __restrict__ dscores,
                                                   int64_t rows, int64_t classes) {
    int64_t row = blockIdx.x;
    const T scale = backward_scale(dloss_ptr, dloss_value, rows);
    const T l = lse[row];
    const int64_t y = labels[row];
    const T* x = scores + row * classes;
    T* dx = dscores + row * classes;
    backward_strided(x, dx, l, scale, y, threadIdx.x, kThreads, classes);
}

// ---------------------------------------------------------------------------------------- launchers

constexpr int kWarpKernelThreads = 256;  // 8 rows per block
constexpr int kBlockKernelThreads = 512;
constexpr int kReduceThreads = 512;

template <typename T>
void softmax_xent_forward(const T* scores, const int64_t* labels, T* lse, double* row_loss,
                          T* loss, int64_t rows, int64_t classes, cudaStream_t stream) {
    if (classes <= kWarpRowMaxClasses) {
        const int64_t rows_per_block = kWarpKernelThreads / 32;
        dim3 grid((unsigned)((rows + rows_per_block - 1) / rows_per_block));
        softmax_xent_forward_warp_kernel<T><<<grid, kWarpKernelThreads, 0, stream>>>(
            scores, labels, lse, row_loss, rows, classes);
    } else {
        softmax_xent_forward_block_kernel<T, kBlockKernelThreads>
            <<<(unsigned)rows, kBlockKernelThreads, 0, stream>>>(scores, labels, lse, row_loss,
                                                                 classes);
    }
    check_launch("softmax_xent_forward");
    mean_reduce_kernel<T, kReduceThreads><<<1, kReduceThreads, 0, stream>>>(row_loss, rows, loss);
    check_launch("softmax_xent_forward (mean)");
}

template <typename T>
void softmax_xent_backward(const T* scores, const int64_t* labels, const T* lse,
                           const T* dloss_ptr, double dloss_value, T* dscores, int64_t rows,
                           int64_t classes, cudaStream_t stream) {
    if (classes <= kWarpRowMaxClasses) {
        const int64_t rows_per_block = kWarpKernelThreads / 32;
        dim3 grid((unsigned)((rows + rows_per_block - 1) / rows_per_block));
        softmax_xent_backward_warp_kernel<T><<<grid, kWarpKernelThreads, 0, stream>>>(
            scores, labels, lse, dloss_ptr, dloss_value, dscores, rows, classes);
    } else {
        softmax_xent_backward_block_kernel<T, kBlockKernelThreads>
            <<<(unsigned)rows, kBlockKernelThreads, 0, stream>>>(
                scores, labels, lse, dloss_ptr, dloss_value, dscores, rows, classes);
    }
    check_launch("softmax_xent_backward");
}

template void softmax_xent_forward<float>(const float*, const int64_t*, float*, double*, float*,
                                          int64_t, int64_t, cudaStream_t);
template void softmax_xent_forward<double>(const double*, const int64_t*, double*, double*,
                                           double*, int64_t, int64_t, cudaStream_t);
template void softmax_xent_backward<float>(const float*, const int64_t*, const float*,
                                           const float*, double, float*, int64_t, int64_t,
                                           cudaStream_t);
template void softmax_xent_backward<double>(const double*, const int64_t*, const double*,
                                            const double*, double, double*, int64_t, int64_t,
                                            cudaStream_t);

}  // namespace cuda
}  // namespace fastnn
