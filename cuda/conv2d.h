// 2-D convolution on the GPU as implicit GEMM (launchers; kernels in conv2d.cu).
//
//   x (N, C, H, W), w (K, C, R, S), b (K,) or null, out (N, K, P, Q), all NCHW row-major device
//   pointers; P = (H + 2 pad_h - R) / stride_h + 1, Q = (W + 2 pad_w - S) / stride_w + 1.
//
//   forward:          out[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n, c, p*sh - ph + r, q*sw - pw + s]
//                     GEMM (N*P*Q) x K, reduced over C*R*S; x is gathered (im2col) on the fly.
//   backward data:    dx[n,c,h,v] = sum_{k,r,s} w[k,c,r,s] dout[n, k, (h + ph - r)/sh, (v + pw - s)/sw]
//                     over the (r, s) where the divisions are exact and land inside (P, Q).
//                     GEMM (N*H*W) x C, reduced over K*R*S.
//   backward weight:  dw[k,c,r,s] = sum_{n,p,q} dout[n,k,p,q] x[n, c, p*sh - ph + r, q*sw - pw + s]
//                     GEMM (C*R*S) x K, reduced over N*P*Q in `splits` fixed slices: each slice
//                     writes its partial dw to scratch (splits, K, C*R*S), and a second kernel sums
//                     the slices in order 0, 1, 2, ... so the bits do not depend on scheduling.
//                     db[k] = sum_{n,p,q} dout[n,k,p,q]: blocks sum fixed image chunks into scratch,
//                     and the chunks are added in order.
//   Out-of-image taps (padding) read as zero. Indices are 32-bit: every array must hold fewer than
//   2^31 elements (the launchers throw std::invalid_argument otherwise).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn {
namespace cuda {

struct Conv2dShape {
    int64_t n, c, h, w;      // input
    int64_t k, r, s;         // filters (K, C, R, S)
    int64_t stride_h, stride_w, pad_h, pad_w;
    int64_t p, q;            // output height, width
};

// Throws std::invalid_argument when the shape is inconsistent or too large for 32-bit indexing.
void conv2d_check_shape(const Conv2dShape& shape);

// How many reduction slices backward-weight cuts N*P*Q into.
int64_t conv2d_backward_weight_splits(const Conv2dShape& shape);

// Elements of scratch backward-weight needs: the partial dw of every slice when there is more
// than one, then the partial db of every image chunk.
int64_t conv2d_backward_weight_scratch(const Conv2dShape& shape);

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* out, const Conv2dShape& shape,
                    cudaStream_t stream);

template <typename T>
void conv2d_backward_data(const T* dout, const T* w, T* dx, const Conv2dShape& shape,
                          cudaStream_t stream);

// scratch: conv2d_backward_weight_scratch(shape) elements. db may be null (no bias).
template <typename T>
void conv2d_backward_weight(const T* dout, const T* x, T* dw, T* db, T* scratch,
                            const Conv2dShape& shape, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastnn
