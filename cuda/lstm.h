// The pointwise part of an LSTM cell on the GPU, one fused kernel per direction (launchers;
// kernels in lstm.cu). The gate GEMMs (x Wx + h_prev Wh, and their backward) are cuBLAS calls made
// by CuPy on the Python side.
//
//   gates (N, 4H): pre-activations without the bias, gate order (i, f, o, g) along the 4H axis;
//   b (4H,); c_prev, c, h, tanh_c, dh, dc, dc_prev (N, H); all row-major device pointers, on
//   `stream`.
//   forward:  a = gates + b;  i = sigmoid(a_i), f = sigmoid(a_f), o = sigmoid(a_o), g = tanh(a_g)
//             c = f * c_prev + i * g,  tanh_c = tanh(c),  h = o * tanh_c
//             The activations (i, f, o, g) overwrite `gates` in place; with tanh_c they are what
//             backward needs, so backward evaluates no transcendental function.
//   backward: (acts = the (i, f, o, g) that forward left in `gates`; dh or dc null means zero)
//             dc_total = dc + dh * o * (1 - tanh(c)^2)
//             da_i = dc_total * g * i (1 - i),      da_f = dc_total * c_prev * f (1 - f),
//             da_o = dh * tanh(c) * o (1 - o),      da_g = dc_total * i * (1 - g^2)
//             dc_prev = dc_total * f;  dgates = (da_i, da_f, da_o, da_g)
// Memory passes: forward reads gates, b, c_prev once and writes acts, c, h, tanh_c once; backward
// reads acts, c_prev, tanh_c, dh, dc once and writes dgates, dc_prev once.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn {
namespace cuda {

template <typename T>
void lstm_cell_forward(T* gates, const T* b, const T* c_prev, T* c, T* h, T* tanh_c, int64_t n,
                       int64_t hidden, cudaStream_t stream);

template <typename T>
void lstm_cell_backward(const T* acts, const T* c_prev, const T* tanh_c, const T* dh, const T* dc,
                        T* dgates, T* dc_prev, int64_t n, int64_t hidden, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastnn
