// A plain tiled GEMM on the GPU (launcher; kernel in gemm.cu), for where cuBLAS cannot go.
//
//   C (m x n, row-major) = op(A) op(B), or C += op(A) op(B) with accumulate,
//   op(A) = A (m x k, row-major) or, with trans_a, the transpose of A stored as (k x m);
//   op(B) = B (k x n, row-major) or, with trans_b, the transpose of B stored as (n x k).
//
// CuPy refuses cuBLAS calls while a stream is being captured into a CUDA graph, so the layers' GEMMs
// use this kernel during a capture (fastnn._backend.matmul); everywhere else CuPy's cuBLAS runs.
// It is sized for the small matrices of a captured training step (LeNet-5's fully connected
// layers), not to compete with cuBLAS: 16 x 16 output tiles, one element per thread, the K loop
// through shared memory.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn {
namespace cuda {

constexpr int kGemmTile = 16;
// gridDim.y is at most 65535 tiles of rows.
constexpr int64_t kGemmMaxRows = int64_t(65535) * kGemmTile;

template <typename T>
void gemm(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b,
          bool accumulate, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastnn
