// Batch normalization on the CPU, over channel axis 1 of x viewed as (N, C, S), S = H*W (1 for (N, C)).
//
//   x, out, dy, dx (N, C, S) row-major; gamma, beta, mean, var, inv_std, dgamma, dbeta (C,); M = N*S
//   forward, training:   mean_c = (1/M) sum x,  var_c = (1/M) sum (x - mean_c)^2   (biased)
//   forward, evaluation: mean_c, var_c = the running statistics passed in
//   both:                inv_std_c = 1 / sqrt(var_c + eps),  out = (x - mean_c) gamma_c inv_std_c + beta_c
//   backward:            dbeta_c = sum dy,  dgamma_c = inv_std_c sum dy (x - mean_c)
//                        training:   dx = gamma_c inv_std_c (dy - dbeta_c / M - xhat dgamma_c / M)
//                        evaluation: dx = gamma_c inv_std_c dy
//   Both forms of dx are one fused multiply-add chain per element: dx = a dy + k1 (x - mean_c) + k0,
//   a = gamma_c inv_std_c, k1 = -a inv_std_c dgamma_c / M, k0 = -a dbeta_c / M (k1 = k0 = 0 in evaluation).
//
// Variance: the sums are taken of x - K_c, K_c the channel's first value, so they stay of the size
// of the spread and E[(x-K)^2] - E[x-K]^2 does not cancel away (as E[x^2] - E[x]^2 would when the
// mean is large against the spread); per-segment partial sums are added in double.
//
// Passes over memory, per direction: one streaming read of x (and dy) for the statistics, then one
// more read of the same channel (from cache: a thread finishes one channel before the next; for
// (N, C) input, from the last-level cache when x fits there, and rows beyond L2 are revisited back
// to front, most recently read first) and one write of out (dx). So DRAM sees x (and dy) once and
// out once; (N, C, H, W) outputs larger than the last-level cache are written with streaming
// stores, so they are not also read in first.
// Threads split the channels of (N, C, H, W) input, so every sum has one owner and a fixed order.
// (N, C) input is split into at most 8 blocks of whole rows that depend only on N, with partial
// sums per block added in block order (batch_norm.cpp). Either way the results do not depend on
// the thread count.
#pragma once
#include <cstdint>

namespace fastnn {

struct BatchNormShape {
    int64_t batch, channels, spatial;  // N, C, S
};

struct BatchNormForwardResult {
    int64_t nan_outputs;            // > 0 when some output is NaN (NaN in x or in the statistics)
    int64_t first_bad_statistic;    // training: first channel whose mean or var is not finite, or -1
};

// Writes out, mean and inv_std (C,). In training mode, and only when every batch statistic is
// finite, it then updates the running statistics in place:
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var  + momentum var M / (M - 1)      (unbiased)
// In evaluation mode mean and var are the running statistics, which are only read.
template <typename T>
BatchNormForwardResult batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean,
                                          T* running_var, bool training, double momentum, double eps, T* out,
                                          T* mean, T* inv_std, const BatchNormShape& s);

template <typename T>
void batch_norm_backward(const T* x, const T* dy, const T* gamma, const T* mean, const T* inv_std,
                         bool training, T* dx, T* dgamma, T* dbeta, const BatchNormShape& s);

// AVX2/FMA helpers (float), in batch_norm_avx2.cpp. A "segment" is `count` contiguous values of
// one channel; a "row" is the values of one sample of (N, C) input over `count` columns, with one
// parameter per column ("rows": `rows` of them, `stride` apart, summed into per-column accumulators). Affine: out = (x - mean) scale + offset, subtracting first so a large
// mean cancels exactly; dx: a dy + k1 (x - mean) + k0. The affine forms return a positive number
// (at most the NaN count) when some output is NaN, else 0.
// stream: write with non-temporal stores (for outputs larger than the last-level cache).
void bn_segment_sums_avx2(const float* x, int64_t count, float shift, double& sum, double& sum_sq);
int64_t bn_segment_affine_avx2(const float* x, int64_t count, float mean, float scale, float offset, float* out,
                               bool stream);
void bn_segment_grad_sums_avx2(const float* dy, const float* x, int64_t count, float mean, double& sum_dy,
                               double& sum_dy_xc);
void bn_segment_dx_avx2(const float* dy, const float* x, int64_t count, float mean, float a, float k1, float k0,
                        float* dx, bool stream);
void bn_rows_sums_avx2(const float* x, int64_t rows, int64_t stride, const float* shift, int64_t count, double* sum,
                       double* sum_sq);
int64_t bn_rows_affine_avx2(const float* x, int64_t rows, int64_t stride, const float* mean, const float* scale,
                            const float* offset, int64_t count, float* out);
void bn_rows_grad_sums_avx2(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean,
                            int64_t count, double* sum_dy, double* sum_dy_xc);
void bn_rows_dx_avx2(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean, const float* a,
                     const float* k1, const float* k0, int64_t count, float* dx);
// The same four row passes with AVX-512 (batch_norm_avx512.cpp).
void bn_rows_sums_avx512(const float* x, int64_t rows, int64_t stride, const float* shift, int64_t count, double* sum,
                         double* sum_sq);
int64_t bn_rows_affine_avx512(const float* x, int64_t rows, int64_t stride, const float* mean, const float* scale,
                              const float* offset, int64_t count, float* out);
void bn_rows_grad_sums_avx512(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean,
                              int64_t count, double* sum_dy, double* sum_dy_xc);
void bn_rows_dx_avx512(const float* dy, const float* x, int64_t rows, int64_t stride, const float* mean,
                       const float* a, const float* k1, const float* k0, int64_t count, float* dx);

}  // namespace fastnn
