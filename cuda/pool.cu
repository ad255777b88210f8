// Max and average 2-D pooling, CUDA. See pool.h for the math.
//
// Memory passes: forward reads each input element about (kh/sh)*(kw/sw) times (once for the usual
// non-overlapping windows; neighbouring threads share the rest through L1/L2) and writes out (and
// argmax) once. Backward reads dout (and argmax) for the ceil(kh/sh)*ceil(kw/sw) windows covering
// each input element and writes dx once. One thread per output (forward) or input (backward)
// element, consecutive threads on consecutive columns, so loads and stores are coalesced.
#include <algorithm>
#include <limits>
#include <stdexcept>

#include "cuda_check.h"
#include "pool.h"

namespace fastnn {
namespace cuda {

namespace {

struct PoolDims {
    int planes, h, w, kh, kw, sh, sw, ph, pw, p, q;
};

PoolDims make_dims(const Pool2dShape& g) {
    return {(int)(g.n * g.c), (int)g.h, (int)g.w, (int)g.kernel_h, (int)g.kernel_w,
            (int)g.stride_h, (int)g.stride_w, (int)g.pad_h, (int)g.pad_w, (int)g.p, (int)g.q};
}

// First and one-past-last output row (or column) whose window covers input row h:
// p*sh - ph <= h <= p*sh - ph + kh - 1.
__device__ __forceinline__ void covering_range(int h, int pad, int kernel, int stride, int out_size,
                                               int& begin, int& end) {
    int hp = h + pad;
    begin = hp < kernel ? 0 : (hp - kernel) / stride + 1;
    end = min(out_size, hp / stride + 1);
}

// ------------------------------------------------------------------------------------------ kernels

template <typename T>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ out,
                                          int32_t* __restrict__ argmax, const PoolDims d) {
    const int total = d.planes * d.p * d.q;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int plane = i / (d.p * d.q), pq = i - plane * (d.p * d.q);
        int p = pq / d.q, q = pq - p * d.q;
        int h0 = p * d.sh - d.ph, w0 = q * d.sw - d.pw;
        int h_begin = max(h0, 0), h_end = min(h0 + d.kh, d.h);
        int w_begin = max(w0, 0), w_end = min(w0 + d.kw, d.w);
        const T* image = x + (size_t)plane * d.h * d.w;
        // Padding is at most half the window, so every window holds at least one in-image tap.
        int best_index = h_begin * d.w + w_begin;
        T best = __ldg(image + best_index);
        for (int h = h_begin; h < h_end; ++h)
            for (int v = w_begin; v < w_end; ++v) {
                T value = __ldg(image + h * d.w + v);
                // Strictly greater keeps the first maximum; a NaN replaces a number, once.
                if (value > best || (value != value && best == best)) {
                    best = value;
                    best_index = h * d.w + v;
                }
            }
        out[i] = best;
        argmax[i] = best_index;
    }
}

template <typename T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ dout,
                                           const int32_t* __restrict__ argmax, T* __restrict__ dx,
                                           const PoolDims d) {
    const int total = d.planes * d.h * d.w;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int plane = i / (d.h * d.w), hv = i - plane * (d.h * d.w);
        int h = hv / d.w, v = hv - h * d.w;
        int p_begin, p_end, q_begin, q_end;
        covering_range(h, d.ph, d.kh, d.sh, d.p, p_begin, p_end);
        covering_range(v, d.pw, d.kw, d.sw, d.q, q_begin, q_end);
        const size_t plane_offset = (size_t)plane * d.p * d.q;
        T sum = T(0);
        for (int p = p_begin; p < p_end; ++p)
            for (int q = q_begin; q < q_end; ++q) {
                size_t o = plane_offset + p * d.q + q;
                if (__ldg(argmax + o) == hv) sum += __ldg(dout + o);
            }
        dx[i] = sum;
    }
}

template <typename T>
__global__ void avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ out,
                                          const PoolDims d) {
    const int total = d.planes * d.p * d.q;
    const T scale = T(1) / T(d.kh * d.kw);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int plane = i / (d.p * d.q), pq = i - plane * (d.p * d.q);
        int p = pq / d.q, q = pq - p * d.q;
        int h0 = p * d.sh - d.ph, w0 = q * d.sw - d.pw;
        int h_begin = max(h0, 0), h_end = min(h0 + d.kh, d.h);
        int w_begin = max(w0, 0), w_end = min(w0 + d.kw, d.w);
        const T* image = x + (size_t)plane * d.h * d.w;
        T sum = T(0);
        for (int h = h_begin; h < h_end; ++h)
            for (int v = w_begin; v < w_end; ++v) sum += __ldg(image + h * d.w + v);
        out[i] = sum * scale;
    }
}

template <typename T>
__global__ void avg_pool2d_backward_kernel(const T* __restrict__ dout, T* __restrict__ dx,
                                           const PoolDims d) {
    const int total = d.planes * d.h * d.w;
    const T scale = T(1) / T(d.kh * d.kw);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int plane = i / (d.h * d.w), hv = i - plane * (d.h * d.w);
        int h = hv / d.w, v = hv - h * d.w;
        int p_begin, p_end, q_begin, q_end;
        covering_range(h, d.ph, d.kh, d.sh, d.p, p_begin, p_end);
        covering_range(v, d.pw, d.kw, d.sw, d.q, q_begin, q_end);
        const T* grad = dout + (size_t)plane * d.p * d.q;
        T sum = T(0);
        for (int p = p_begin; p < p_end; ++p)
            for (int q = q_begin; q < q_end; ++q) sum += __ldg(grad + p * d.q + q);
        dx[i] = sum * scale;
    }
}

// ---------------------------------------------------------------------------------------- launchers

constexpr int kThreads = 256;

// Grid-stride loops: enough blocks to fill any current GPU many times over, capped so the grid
// size stays legal for any element count.
unsigned grid_for(int64_t total) {
    return (unsigned)std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 65535 * 16));
}

}  // namespace

void pool2d_check_shape(const Pool2dShape& g) {
    if (g.n < 1 || g.c < 1 || g.h < 1 || g.w < 1 || g.kernel_h < 1 || g.kernel_w < 1)
        throw std::invalid_argument("pool2d: sizes and kernel must be at least 1");
    if (g.stride_h < 1 || g.stride_w < 1 || g.pad_h < 0 || g.pad_w < 0)
        throw std::invalid_argument("pool2d: stride must be >= 1 and padding >= 0");
    // Padding of at most half the window keeps every window partly inside the image.
    if (2 * g.pad_h > g.kernel_h || 2 * g.pad_w > g.kernel_w)
        throw std::invalid_argument("pool2d: padding must be at most half the kernel size");
    const int64_t limit = std::numeric_limits<int32_t>::max() / 4;
    if (g.h >= limit || g.w >= limit || g.kernel_h >= limit || g.kernel_w >= limit ||
        g.stride_h >= limit || g.stride_w >= limit || g.n >= limit || g.c >= limit)
        throw std::invalid_argument("pool2d: a size, kernel or stride of 2^29 or more");
    if (g.h + 2 * g.pad_h < g.kernel_h || g.w + 2 * g.pad_w < g.kernel_w ||
        g.p != (g.h + 2 * g.pad_h - g.kernel_h) / g.stride_h + 1 ||
        g.q != (g.w + 2 * g.pad_w - g.kernel_w) / g.stride_w + 1)
        throw std::invalid_argument("pool2d: output size does not match input, kernel, stride, padding");
    // Element counts (and a grid-stride index one step past them) must fit in 32 bits.
    const double in = (double)g.n * g.c * g.h * g.w, out = (double)g.n * g.c * g.p * g.q;
    const double steps = (double)g.p * g.stride_h + (double)g.q * g.stride_w;
    if (in >= limit || out >= limit || steps >= limit || (double)g.kernel_h * g.kernel_w >= limit)
        throw std::invalid_argument("pool2d: arrays of 2^29 elements or more are not supported on the GPU");
}

template <typename T>
void max_pool2d_forward(const T* x, T* out, int32_t* argmax, const Pool2dShape& shape,
                        cudaStream_t stream) {
    pool2d_check_shape(shape);
    PoolDims d = make_dims(shape);
    max_pool2d_forward_kernel<T><<<grid_for((int64_t)d.planes * d.p * d.q), kThreads, 0, stream>>>(
        x, out, argmax, d);
    check_launch("max_pool2d_forward");
}

template <typename T>
void max_pool2d_backward(const T* dout, const int32_t* argmax, T* dx, const Pool2dShape& shape,
                         cudaStream_t stream) {
    pool2d_check_shape(shape);
    PoolDims d = make_dims(shape);
    max_pool2d_backward_kernel<T><<<grid_for((int64_t)d.planes * d.h * d.w), kThreads, 0, stream>>>(
        dout, argmax, dx, d);
    check_launch("max_pool2d_backward");
}

template <typename T>
void avg_pool2d_forward(const T* x, T* out, const Pool2dShape& shape, cudaStream_t stream) {
    pool2d_check_shape(shape);
    PoolDims d = make_dims(shape);
    avg_pool2d_forward_kernel<T><<<grid_for((int64_t)d.planes * d.p * d.q), kThreads, 0, stream>>>(
        x, out, d);
    check_launch("avg_pool2d_forward");
}

template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const Pool2dShape& shape, cudaStream_t stream) {
    pool2d_check_shape(shape);
    PoolDims d = make_dims(shape);
    avg_pool2d_backward_kernel<T><<<grid_for((int64_t)d.planes * d.h * d.w), kThreads, 0, stream>>>(
        dout, dx, d);
    check_launch("avg_pool2d_backward");
}

#define FASTNN_INSTANTIATE_POOL2D(T)                                                             \
    template void max_pool2d_forward<T>(const T*, T*, int32_t*, const Pool2dShape&, cudaStream_t); \
    template void max_pool2d_backward<T>(const T*, const int32_t*, T*, const Pool2dShape&,       \
                                         cudaStream_t);                                          \
    template void avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, cudaStream_t);         \
    template void avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, cudaStream_t);
FASTNN_INSTANTIATE_POOL2D(float)
FASTNN_INSTANTIATE_POOL2D(double)
#undef FASTNN_INSTANTIATE_POOL2D

}  // namespace cuda
}  // namespace fastnn
