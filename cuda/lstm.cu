// LSTM cell pointwise forward and backward, CUDA. See lstm.h for the math.
//
// One thread per (n, j), j < H: it touches column j of each of the four gate blocks of row n, so
// a warp reads four coalesced 32-element runs of the gate row. No shared memory, no reductions:
// the bias gradient (a column sum of dgates) and the GEMMs are left to the caller.
#include <algorithm>
#include <limits>
#include <stdexcept>

#include "cuda_check.h"
#include "lstm.h"

namespace fastnn {
namespace cuda {

namespace {

__device__ __forceinline__ float exp_t(float x) { return expf(x); }
__device__ __forceinline__ double exp_t(double x) { return exp(x); }
__device__ __forceinline__ float tanh_t(float x) { return tanhf(x); }
__device__ __forceinline__ double tanh_t(double x) { return tanh(x); }

// 1 / (1 + e^-x): exp overflows to inf for very negative x and the quotient is then exactly 0.
template <typename T>
__device__ __forceinline__ T sigmoid(T x) {
    return T(1) / (T(1) + exp_t(-x));
}

// ------------------------------------------------------------------------------------------ kernels

// `gates` is read and then overwritten with the activations by the same thread: not __restrict__.
template <typename T>
__global__ void lstm_cell_forward_kernel(T* gates, const T* __restrict__ b,
                                         const T* __restrict__ c_prev, T* __restrict__ c,
                                         T* __restrict__ h, T* __restrict__ tanh_c, int n,
                                         int hidden) {
    const int total = n * hidden;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += gridDim.x * blockDim.x) {
        const int row = idx / hidden, j = idx - row * hidden;
        T* gate_row = gates + (size_t)row * 4 * hidden;
        const T i = sigmoid(gate_row[j] + b[j]);
        const T f = sigmoid(gate_row[hidden + j] + b[hidden + j]);
        const T o = sigmoid(gate_row[2 * hidden + j] + b[2 * hidden + j]);
        const T g = tanh_t(gate_row[3 * hidden + j] + b[3 * hidden + j]);
        const T c_new = f * c_prev[idx] + i * g;
        gate_row[j] = i;
        gate_row[hidden + j] = f;
        gate_row[2 * hidden + j] = o;
        gate_row[3 * hidden + j] = g;
        const T tanh_c_new = tanh_t(c_new);
        c[idx] = c_new;
        tanh_c[idx] = tanh_c_new;
        h[idx] = o * tanh_c_new;
    }
}

template <typename T>
__global__ void lstm_cell_backward_kernel(const T* __restrict__ acts, const T* __restrict__ c_prev,
                                          const T* __restrict__ tanh_c, const T* __restrict__ dh,
                                          const T* __restrict__ dc, T* __restrict__ dgates,
                                          T* __restrict__ dc_prev, int n, int hidden) {
    const int total = n * hidden;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += gridDim.x * blockDim.x) {
        const int row = idx / hidden, j = idx - row * hidden;
        const T* act_row = acts + (size_t)row * 4 * hidden;
        T* dgate_row = dgates + (size_t)row * 4 * hidden;
        const T i = act_row[j], f = act_row[hidden + j], o = act_row[2 * hidden + j],
                g = act_row[3 * hidden + j];
        const T t = tanh_c[idx];
        const T dh_value = dh ? dh[idx] : T(0);
        const T dc_total = (dc ? dc[idx] : T(0)) + dh_value * o * (T(1) - t * t);
        dgate_row[j] = dc_total * g * i * (T(1) - i);
        dgate_row[hidden + j] = dc_total * c_prev[idx] * f * (T(1) - f);
        dgate_row[2 * hidden + j] = dh_value * t * o * (T(1) - o);
        dgate_row[3 * hidden + j] = dc_total * i * (T(1) - g * g);
        dc_prev[idx] = dc_total * f;
    }
}

// ---------------------------------------------------------------------------------------- launchers

constexpr int kThreads = 256;

void check_sizes(int64_t n, int64_t hidden) {
    if (n < 1 || hidden < 1) throw std::invalid_argument("lstm_cell: N and H must be at least 1");
    // 4*N*H gate entries are indexed with 32-bit ints (plus one grid stride past the end).
    if ((double)n * 4.0 * (double)hidden >= (double)(std::numeric_limits<int32_t>::max() / 2))
        throw std::invalid_argument("lstm_cell: arrays of 2^30 elements or more are not supported on the GPU");
}

unsigned grid_for(int64_t total) {
    return (unsigned)std::min<int64_t>((total + kThreads - 1) / kThreads, 65535 * 16);
}

}  // namespace

template <typename T>
void lstm_cell_forward(T* gates, const T* b, const T* c_prev, T* c, T* h, T* tanh_c, int64_t n,
                       int64_t hidden, cudaStream_t stream) {
    check_sizes(n, hidden);
    lstm_cell_forward_kernel<T><<<grid_for(n * hidden), kThreads, 0, stream>>>(
        gates, b, c_prev, c, h, tanh_c, (int)n, (int)hidden);
    check_launch("lstm_cell_forward");
}

template <typename T>
void lstm_cell_backward(const T* acts, const T* c_prev, const T* tanh_c, const T* dh, const T* dc,
                        T* dgates, T* dc_prev, int64_t n, int64_t hidden, cudaStream_t stream) {
    check_sizes(n, hidden);
    lstm_cell_backward_kernel<T><<<grid_for(n * hidden), kThreads, 0, stream>>>(
        acts, c_prev, tanh_c, dh, dc, dgates, dc_prev, (int)n, (int)hidden);
    check_launch("lstm_cell_backward");
}

template void lstm_cell_forward<float>(float*, const float*, const float*, float*, float*, float*,
                                       int64_t, int64_t, cudaStream_t);
template void lstm_cell_forward<double>(double*, const double*, const double*, double*, double*,
                                        double*, int64_t, int64_t, cudaStream_t);
template void lstm_cell_backward<float>(const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, int64_t, int64_t,
                                        cudaStream_t);
template void lstm_cell_backward<double>(const double*, const double*, const double*,
                                         const double*, const double*, double*, double*, int64_t,
                                         int64_t, cudaStream_t);

}  // namespace cuda
}  // namespace fastnn
