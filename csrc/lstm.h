// The pointwise half of one LSTM cell step on the CPU (the gate GEMMs are NumPy's/OpenBLAS's).
//
//   ax, ah (B, 4H): x Wx and h_prev Wh; b (4H,); c_prev, c, h, tanh_c (B, H); gates, da (B, 4H)
//   gate order along 4H: i, f, o, g
//   forward:  a = ax + ah + b;  i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
//             c = f c_prev + i g,  tanh_c = tanh(c),  h = o tanh_c;  gates = [i | f | o | g]
//   backward: dc_total = dc + dh o (1 - tanh_c^2)
//             da_i = dc_total g i (1 - i),  da_f = dc_total c_prev f (1 - f)
//             da_o = dh tanh_c o (1 - o),    da_g = dc_total i (1 - g^2)
//             dc_prev = dc_total f;  db = sum over the batch of da
//             (dh or dc may be null: zeros)
//
// Passes over memory: forward reads ax, ah, b and c_prev once and writes gates, c, h, tanh_c once;
// backward reads dh, dc, gates, c_prev, tanh_c once and writes da, dc_prev once, and db (4H,).
// Threads split the hidden units k (each thread owns columns k of all four gates), so db's sums
// over the batch have one owner each and a fixed order.
#pragma once
#include <cstdint>

namespace fastnn {

// Returns the number of NaN values among c and h.
template <typename T>
int64_t lstm_cell_forward_pointwise(const T* ax, const T* ah, const T* b, const T* c_prev, T* gates, T* c, T* h,
                                    T* tanh_c, int64_t batch, int64_t hidden);

template <typename T>
void lstm_cell_backward_pointwise(const T* dh, const T* dc, const T* gates, const T* c_prev, const T* tanh_c, T* da,
                                  T* dc_prev, T* db, int64_t batch, int64_t hidden);

// AVX2/FMA versions (float) of one batch row over hidden units [k0, k1), in lstm_avx2.cpp.
// Same arguments, offset to the row; row_stride4 = 4H. Forward returns the NaN count.
int64_t lstm_forward_row_avx2(const float* ax, const float* ah, const float* b, const float* c_prev, float* gates,
                              float* c, float* h, float* tanh_c, int64_t hidden, int64_t k0, int64_t k1);
void lstm_backward_row_avx2(const float* dh, const float* dc, const float* gates, const float* c_prev,
                            const float* tanh_c, float* da, float* dc_prev, float* db, int64_t hidden, int64_t k0,
                            int64_t k1);

}  // namespace fastnn
