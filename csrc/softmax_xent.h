// Fused softmax cross-entropy on the CPU.
//
//   scores  (N, C) row-major, float or double       labels (N,) int64 in [0, C)
//   forward:  lse_i  = log sum_j exp(s_ij)          (computed as m_i + log sum_j exp(s_ij - m_i),
//             loss_i = lse_i - s_{i, y_i}            m_i = max_j s_ij, so nothing overflows)
//             returns sum_i loss_i; writes lse (N,) for the backward pass
//   backward: dscores_ij = scale * (exp(s_ij - lse_i) - [j == y_i]),   scale = dloss / N
//
// Passes over memory: the forward pass streams the scores from DRAM once (each row is swept twice,
// for its max and then for its sum of exponentials, but the second sweep hits the cache); the
// backward pass reads the scores once and writes dscores once. Nothing of size N*C is stored
// between the passes: the N log-sum-exps are enough to rebuild the softmax.
// Rows are independent: one row per task across OpenMP threads.
#pragma once
#include <cstdint>

namespace fastnn {

struct SoftmaxXentForwardResult {
    double loss_sum;          // sum over rows of loss_i (NaN if a row is non-finite or has a bad label)
    int64_t first_bad_label;  // first row whose label is outside [0, C), or -1
    int64_t first_nonfinite;  // first row whose loss is NaN or inf, or -1
};

template <typename T>
SoftmaxXentForwardResult softmax_xent_forward(const T* scores, const int64_t* labels, T* lse,
                                              int64_t rows, int64_t classes);

template <typename T>
void softmax_xent_backward(const T* scores, const int64_t* labels, const T* lse, T scale,
                           T* dscores, int64_t rows, int64_t classes);

// One row each; the AVX2/FMA versions (float only) live in softmax_xent_avx2.cpp.
float softmax_xent_row_lse_avx2(const float* x, int64_t classes);
void softmax_xent_row_backward_avx2(const float* x, int64_t classes, float lse, float scale,
                                    float* dx);

}  // namespace fastnn
