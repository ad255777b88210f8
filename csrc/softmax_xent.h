// Fused softmax cross-entropy on the CPU.
//
//   scores (N, C) row-major, float or double        labels (N,) int64 in [0, C)
//   forward:  m_i    = max_j s_ij
//             e_ij   = exp(s_ij - m_i)                             (written to exps, N x C)
//             z_i    = 1 / sum_k e_ik                              (written to inv_sum, N)
//             lse_i  = m_i + log sum_k e_ik                        (written to lse, N)
//             loss_i = lse_i - s_{i, y_i};  returns sum_i loss_i
//   backward: dscores_ij = scale * (p_ij - [j == y_i]),  p_ij = e_ij * z_i,  scale = dloss / N
//             written over the exponentials in place (the first backward of a forward), or
//             recomputed from the scores as scale * (exp(s_ij - lse_i) - [j == y_i]) (any later one)
//
// Passes over memory (each row is small enough to stay in cache between its sweeps):
//   forward reads the scores once and writes the exponentials once; backward reads them once and
//   writes dscores over them (normalising by z_i on the way, so the forward needs no third sweep
//   over each row). Four passes, not the three of recomputing
//   the softmax in backward, because on a CPU exp costs more than a pass over memory: this way
//   each element goes through exp once, and fwd+bwd allocates one N x C buffer, not two.
//   (The CUDA kernels, bandwidth-bound, recompute instead.)
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
SoftmaxXentForwardResult softmax_xent_forward(const T* scores, const int64_t* labels, T* exps,
                                              T* inv_sum, T* lse, int64_t rows, int64_t classes);

// exps_to_dscores: in place, the forward's exps (N, C) become dscores.
template <typename T>
void softmax_xent_backward_in_place(T* exps_to_dscores, const T* inv_sum, const int64_t* labels,
                                    T scale, int64_t rows, int64_t classes);

template <typename T>
void softmax_xent_backward_recompute(const T* scores, const int64_t* labels, const T* lse, T scale,
                                     T* dscores, int64_t rows, int64_t classes);

// exp(x - max), 1/sum and log-sum-exp of `rows` consecutive rows; the AVX2/FMA version is float only.
void softmax_rows_avx2(const float* scores, int64_t rows, int64_t classes, float* exps,
                       float* inv_sum, float* lse);
// out = scale * exp(x - lse_row) for `rows` consecutive rows.
void scaled_softmax_rows_avx2(const float* scores, const float* lse, float scale, int64_t rows,
                              int64_t classes, float* out);

}  // namespace fastnn
