// Tiled GEMM, CUDA. See gemm.h for the contract.
//
// Each 16 x 16 block computes one 16 x 16 tile of C. For each slab of 16 along K, the block loads the
// matching 16 x 16 tiles of op(A) and op(B) into shared memory (zeros outside the matrices), waits,
// and every thread adds its row-times-column dot product over the slab. A transposed operand is read
// through its transposed index; the loads are then strided, which small matrices do not notice.
#include "cuda_check.h"
#include "gemm.h"

namespace fastnn {
namespace cuda {

template <typename T>
__global__ void gemm_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int64_t m,
                            int64_t n, int64_t k, bool trans_a, bool trans_b, bool accumulate) {
    __shared__ T a_tile[kGemmTile][kGemmTile + 1];  // +1: no bank conflicts on the column reads
    __shared__ T b_tile[kGemmTile][kGemmTile + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t row = int64_t(blockIdx.y) * kGemmTile + ty;
    const int64_t col = int64_t(blockIdx.x) * kGemmTile + tx;
    T sum = T(0);
    for (int64_t p0 = 0; p0 < k; p0 += kGemmTile) {
        const int64_t pa = p0 + tx;  // a_tile[ty][tx] = op(A)[row][p0 + tx]
        a_tile[ty][tx] = (row < m && pa < k) ? (trans_a ? a[pa * m + row] : a[row * k + pa]) : T(0);
        const int64_t pb = p0 + ty;  // b_tile[ty][tx] = op(B)[p0 + ty][col]
        b_tile[ty][tx] = (pb < k && col < n) ? (trans_b ? b[col * k + pb] : b[pb * n + col]) : T(0);
        __syncthreads();
        for (int q = 0; q < kGemmTile; ++q) sum += a_tile[ty][q] * b_tile[q][tx];
        __syncthreads();
    }
    if (row < m && col < n) {
        T* out = c + row * n + col;
        *out = accumulate ? *out + sum : sum;
    }
}

template <typename T>
void gemm(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b,
          bool accumulate, cudaStream_t stream) {
    if (m == 0 || n == 0) return;
    const dim3 block(kGemmTile, kGemmTile);
    const dim3 grid((unsigned)((n + kGemmTile - 1) / kGemmTile), (unsigned)((m + kGemmTile - 1) / kGemmTile));
    gemm_kernel<T><<<grid, block, 0, stream>>>(a, b, c, m, n, k, trans_a, trans_b, accumulate);
    check_launch("gemm");
}

template void gemm<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, bool, bool,
                          cudaStream_t);
template void gemm<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool, bool, bool,
                           cudaStream_t);

}  // namespace cuda
}  // namespace fastnn
