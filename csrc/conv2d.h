// 2-D convolution (cross-correlation) on the CPU, NCHW, built on our packed GEMM (gemm.h).
//
//   x (N, C, H, W)   w (K, C, kh, kw)   b (K,) or null   out / dout (N, K, OH, OW)
//   OH = (H + 2 ph - kh) / sh + 1,  OW = (W + 2 pw - kw) / sw + 1,  P = OH * OW,  R = C * kh * kw
//   cols_n (R, P): cols_n[(c, i, j), (oh, ow)] = xpad[n, c, oh*sh + i, ow*sw + j]   (im2col of image n)
//
//   forward:          out_n (K, P)  = w (K, R) * cols_n (R, P) + b          (one GEMM per image)
//   backward data:    dcols (R, P)  = w^T (R, K) * dout_n (K, P);  dx_n = col2im(dcols)  (scatter-add)
//   backward weight:  dw (K, R)    += dout_n (K, P) * cols_n^T (P, R);  db[k] = sum_{n, p} dout[n, k, p]
//
// cols_n is never stored whole. Which path runs (conv2d.cpp) depends on the shape:
//   - packed GEMM (gemm.h): the B packer reads the image directly (implicit im2col), so cols_n exists
//     only as cache-sized packed panels; a 1x1, stride-1, unpadded conv needs no unfolding at all
//     (cols_n is x_n seen as a (C, H*W) matrix). Backward data unfolds dcols in cache-sized column
//     chunks and scatters each chunk into dx (col2im) before the next.
//   - in place, from a zero-padded copy of the image (no unfolding, nothing packed but the weights):
//     "gathered" tiles of 6 output positions x 16 filters read each window by broadcasts (>= 16
//     filters, >= 64 taps, any stride), or "padded-width" tiles that read 16 consecutive columns of
//     the padded image as one vector and discard the columns past OW (few filters: LeNet's layers).
//     Backward data of a stride-1 conv is the forward conv of dout with the filters transposed and
//     flipped, so it takes the same paths. The weight gradient of a stride-1 conv with 12-64
//     filters on a small image reads the padded image in place too.
//   - Winograd (float, AVX2, 3x3 filters, >= 32 channels each side): F(4x4, 3x3) or F(2x2, 3x3) at
//     stride 1 and a polyphase scheme at stride 2, for the forward, the backward data and the weight
//     gradient, from zero-padded image copies too.
//
// Threads: on the GEMM paths, with at least as many images as threads, each thread takes whole images
// (single-threaded GEMMs, per-thread dw partials summed at the end in thread order, so results do not
// depend on scheduling); with fewer, the images run one after another and each GEMM uses the whole
// team. The in-place forward paths give each thread whole images.
#pragma once
#include <cstdint>

namespace fastnn {

struct Conv2dShape {
    int64_t N, C, H, W;     // input
    int64_t K, kh, kw;      // filters
    int64_t sh, sw, ph, pw; // stride, zero padding
    int64_t OH, OW;         // output (derived by the caller, checked by the binding)
};

// Returns false when the output holds NaN or inf (the caller reports it).
template <typename T>
bool conv2d_forward(const T* x, const T* w, const T* b, T* out, const Conv2dShape& s);

template <typename T>
void conv2d_backward_data(const T* dout, const T* w, T* dx, const Conv2dShape& s);

// db may be null (no bias). Returns false when dw or db holds NaN or inf.
template <typename T>
bool conv2d_backward_weight(const T* dout, const T* x, T* dw, T* db, const Conv2dShape& s);

// Weight gradient of a stride-1 convolution with few filters, vectorised along the output width
// (conv2d_weight_avx2.cpp; call only when use_avx2() is true). One image: g (K, OH, gw) is dout_n
// with its rows zero-padded to gw columns (a multiple of 8) and 32-byte aligned; xpad (C, hp, xw) is
// the zero-padded image, hp = H + 2 ph, with rows of xw >= max(W + 2 pw, gw + kw - 1) columns (the
// image at column pw, zeros elsewhere). Adds the image's dw (K, C, kh, kw) into dw.
constexpr int64_t kSmallKMaxFilters = 11, kSmallKMaxWidth = 6;
bool conv2d_weight_grad_small_k_applies(const Conv2dShape& s);
void conv2d_weight_grad_small_k_avx2(const float* g, int64_t gw, const float* xpad, int64_t hp, int64_t xw,
                                     const Conv2dShape& s, float* dw);

// Winograd convolutions (conv2d_winograd_avx2.cpp): float, 3x3 filters, with enough channels that
// their GEMMs dominate. Forward: F(2x2, 3x3) at stride 1, a polyphase F(2, 2) scheme at stride 2, any
// padding (winograd_applies). Backward data at stride 2 (winograd_backward_data_applies; stride 1 is
// the forward of the flipped convolution). Call only when use_avx2() is true.
bool winograd_applies(const Conv2dShape& s);
void conv2d_winograd_forward_avx2(const float* x, const float* w, const float* b, float* out,
                                  const Conv2dShape& s);
bool winograd_backward_data_applies(const Conv2dShape& s);
void conv2d_winograd_backward_data_avx2(const float* dout, const float* w, float* dx, const Conv2dShape& s);
// Weight gradient (dw overwritten; the bias gradient is the caller's), wherever the forward applies
// (winograd_applies).
void conv2d_winograd_weight_grad_avx2(const float* dout, const float* x, float* dw, const Conv2dShape& s);

}  // namespace fastnn
