// Fused softmax cross-entropy on the CPU.
//
//   scores (N, C) row-major, float or double        labels (N,) int64 in [0, C)
//   forward:  m_i    = max_j s_ij
//             p_ij   = exp(s_ij - m_i) / sum_k exp(s_ik - m_i)     (written to probs, N x C)
//             lse_i  = m_i + log sum_k exp(s_ik - m_i)             (written to lse, N)
//             loss_i = lse_i - s_{i, y_i};  returns sum_i loss_i
//   backward: dscores_ij = scale * (p_ij - [j == y_i]),            scale = dloss / N
//
// Passes over memory (each row is small enough to stay in cache between its sweeps):
//   forward reads the scores once and writes the probabilities once; backward reads the
//   probabilities once and writes dscores once. Four passes, not the three of recomputing the
//   softmax in backward, because on a CPU exp costs more than a pass over memory: this way each
//   element goes through exp once. (The CUDA kernels, bandwidth-bound, recompute instead.)
// Parallelism: blocks of whole rows across OpenMP threads in forward; flat chunks in backward.
// Rows with few classes are handled a block at a time (one vector exp over the block's elements,
// one vector log over its row sums), since per-row vector code would be mostly overhead.
#pragma once
#include <cstdint>

namespace fastnn {

struct SoftmaxXentForwardResult {
    double loss_sum;          // sum over rows of loss_i (NaN if a row is non-finite or has a bad label)
    int64_t first_bad_label;  // first row whose label is outside [0, C), or -1
    int64_t first_nonfinite;  // first row whose loss is NaN or inf, or -1
};

template <typename T>
SoftmaxXentForwardResult softmax_xent_forward(const T* scores, const int64_t* labels, T* probs,
                                              T* lse, int64_t rows, int64_t classes);

template <typename T>
void softmax_xent_backward(const T* probs, const int64_t* labels, T scale, T* dscores,
                           int64_t rows, int64_t classes);

// softmax and log-sum-exp of `rows` consecutive rows; the AVX2/FMA version is float only.
void softmax_rows_avx2(const float* scores, int64_t rows, int64_t classes, float* probs, float* lse);

}  // namespace fastnn
