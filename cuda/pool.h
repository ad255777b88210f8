// Max and average 2-D pooling on the GPU (launchers; kernels in pool.cu).
//
//   x (N, C, H, W) NCHW row-major, out (N, C, P, Q), all device pointers, on `stream`;
//   P = (H + 2 pad_h - kh) / stride_h + 1, Q likewise. Windows start at (p*sh - ph, q*sw - pw).
//   max forward:  out[n,c,p,q] = max over the window's in-image taps; argmax[n,c,p,q] = h*W + v of
//                 the first maximum in row-major window order (int32). Padding never wins; a NaN
//                 in the window wins (and propagates), as in NumPy's max.
//   max backward: dx[n,c,h,v] = sum over the windows (p, q) that cover (h, v) and whose argmax is
//                 (h, v) of dout[n,c,p,q].
//   avg forward:  out[n,c,p,q] = (1 / (kh*kw)) sum over the window's in-image taps (the zero
//                 padding counts in the mean).
//   avg backward: dx[n,c,h,v] = (1 / (kh*kw)) sum over the windows (p, q) covering (h, v) of dout.
// Backward passes gather: one thread per input element adds the few windows that cover it, in a
// fixed order. No atomics, so the result is bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn {
namespace cuda {

struct Pool2dShape {
    int64_t n, c, h, w;
    int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int64_t p, q;
};

// Throws std::invalid_argument for inconsistent sizes, padding over half the window, or arrays of
// 2^31 elements or more (indices are 32-bit).
void pool2d_check_shape(const Pool2dShape& shape);

template <typename T>
void max_pool2d_forward(const T* x, T* out, int32_t* argmax, const Pool2dShape& shape,
                        cudaStream_t stream);
template <typename T>
void max_pool2d_backward(const T* dout, const int32_t* argmax, T* dx, const Pool2dShape& shape,
                         cudaStream_t stream);
template <typename T>
void avg_pool2d_forward(const T* x, T* out, const Pool2dShape& shape, cudaStream_t stream);
template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const Pool2dShape& shape, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastnn
