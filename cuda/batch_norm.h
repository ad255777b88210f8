// Batch normalisation on the GPU (launchers; kernels in batch_norm.cu).
//
//   x, y, dout, dx: (N, C, L) row-major device pointers, L = H*W for (N, C, H, W) and L = 1 for
//   (N, C); gamma, beta, running and saved statistics: (C,). M = N*L values per channel.
//   training forward: mean_c = (1/M) sum x,  var_c = (1/M) sum (x - mean_c)^2  (biased),
//                     invstd_c = 1 / sqrt(var_c + eps),  y = (x - mean_c) * invstd_c * gamma_c + beta_c,
//                     running_mean = (1 - momentum) running_mean + momentum mean_c,
//                     running_var  = (1 - momentum) running_var  + momentum var_c * M / (M - 1).
//   eval forward:     the same y with the given mean_c and invstd_c (from the running statistics).
//   backward:         dbeta_c = sum dout,  dgamma_c = invstd_c sum dout (x - mean_c),
//                     training: dx = gamma_c invstd_c (dout - dbeta_c / M - xhat dgamma_c / M),
//                               xhat = (x - mean_c) invstd_c,
//                     eval:     dx = gamma_c invstd_c dout (the statistics are constants).
// Reductions are deterministic: each channel's M values are cut into fixed chunks, each chunk is
// summed by one block in a fixed order into double-precision partials (partials: C * chunks
// double2), and the consumers merge the chunks in order 0, 1, 2, ... The forward sums are shifted
// by the channel's first value (sum (x - x0), sum (x - x0)^2), so the variance does not cancel
// catastrophically when |mean| >> std.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn {
namespace cuda {

struct BatchNormShape {
    int64_t n, c, l;  // (N, C, L)
};

// Throws std::invalid_argument for empty or too large shapes (indices are 32-bit per channel).
void batch_norm_check_shape(const BatchNormShape& shape);

// Chunks per channel, and so the partials scratch: C * chunks double2 (2 * C * chunks doubles).
int64_t batch_norm_chunks(const BatchNormShape& shape);

// Training: y, save_mean, save_invstd written; running_mean / running_var updated in place when
// not null. partials: scratch of 2 * C * batch_norm_chunks(shape) doubles, 16-byte aligned (the
// kernels use it as double2). Needs M >= 2.
template <typename T>
void batch_norm_forward_training(const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                                 T* save_invstd, T* running_mean, T* running_var, double* partials,
                                 double momentum, double eps, const BatchNormShape& shape,
                                 cudaStream_t stream);

// Eval: y = (x - mean_c) * invstd_c * gamma_c + beta_c with the given per-channel mean and invstd.
template <typename T>
void batch_norm_forward_eval(const T* x, const T* gamma, const T* beta, const T* mean,
                             const T* invstd, T* y, const BatchNormShape& shape, cudaStream_t stream);

// Backward of either mode: dx, dgamma, dbeta written. partials as in the forward pass.
template <typename T>
void batch_norm_backward(const T* dout, const T* x, const T* gamma, const T* mean, const T* invstd,
                         T* dx, T* dgamma, T* dbeta, double* partials, bool training,
                         const BatchNormShape& shape, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastnn
