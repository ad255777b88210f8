// Fused softmax cross-entropy on the GPU (launchers; kernels in softmax_xent.cu).
//
//   scores (N, C) row-major float/double, labels (N,) int64, all device pointers, on `stream`.
//   forward:  lse_i = log sum_j exp(s_ij) (online softmax: one read of the scores),
//             row_loss_i = lse_i - s_{i,y_i} (NaN for a label outside [0, C): never used as an index),
//             loss = (1/N) sum_i row_loss_i, summed by one block in a fixed order (deterministic).
//   backward: dscores_ij = (dloss/N) * (exp(s_ij - lse_i) - [j == y_i]); one read of the scores,
//             one write of dscores. dloss comes from a device scalar (dloss_ptr) or, when that is
//             null, from the host value dloss_value.
// Rows of up to kWarpRowMaxClasses classes get one warp each; longer rows get a block each.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn {
namespace cuda {

constexpr int64_t kWarpRowMaxClasses = 1024;

template <typename T>
void softmax_xent_forward(const T* scores, const int64_t* labels, T* lse, double* row_loss,
                          T* loss, int64_t rows, int64_t classes, cudaStream_t stream);

template <typename T>
void softmax_xent_backward(const T* scores, const int64_t* labels, const T* lse,
                           const T* dloss_ptr, double dloss_value, T* dscores, int64_t rows,
                           int64_t classes, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastnn
