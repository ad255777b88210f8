// The pointwise half of one LSTM cell step on the CPU (the gate products run on our packed GEMM; the
// input gradients on lstm_cell_input_grads below), and the whole layer.
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

// dx (B, D) = da Wx^T and dh_prev (B, H) = da Wh^T from da (B, 4H), Wx (D, 4H), Wh (H, 4H): one product
// [dx | dh_prev]^T = [Wx; Wh] da^T with the weights read in place.
template <typename T>
void lstm_cell_input_grads(const T* da, const T* Wx, const T* Wh, T* dx, T* dh_prev, int64_t batch, int64_t input,
                           int64_t hidden);

// A whole layer of T steps, time-major: the batched formulation (as cuDNN and oneDNN run it).
//   forward:  G_t (4H, B) = Wx^T x_t^T + b for every step first (steps split across threads, Wx^T
//             packed once); then per step: G_t += Wh^T h_{t-1}^T (our GEMM, Wh^T packed once for all
//             steps), the fused pointwise pass writes the gates over G_t and c_t, tanh(c_t), h_t.
//   backward: per step: the fused pointwise pass gives dG_t and dc_{t-1}, and
//             dh_{t-1} = dhs_{t-1} + (Wh dG_t)^T (Wh packed once); after the loop dX_t = (Wx dG_t)^T
//             for every step (steps split across threads), and one GEMM over all T*B columns for
//             [dWx; dWh] = [X, [h0; hs[:-1]]]^T dG^T; db = sums of dG.
// Per-step state is kept transposed, (H, B), and the gates step-major, (T, 4H, B): the recurrent GEMM
// then runs with M = 4H or H (many register blocks) and N = B (a single 16-column panel at B = 16,
// read in place) instead of M = B, and each step's values are contiguous.
struct LstmLayerShape {
    int64_t steps, batch, input, hidden;
};

// xs (T, B, D), h0 and c0 (B, H), Wx (D, 4H), Wh (H, 4H), b (4H,). Writes the cache -- gates
// (T, 4H, B), c_all, tanh_c_all, h_all (T, H, B) -- and the outputs hs (T, B, H) and c_last (B, H).
// Returns the number of NaN values among all h and c.
template <typename T>
int64_t lstm_layer_forward(const T* xs, const T* h0, const T* c0, const T* Wx, const T* Wh, const T* b, T* gates,
                           T* c_all, T* tanh_c_all, T* h_all, T* hs, T* c_last, const LstmLayerShape& s);

// dhs (T, B, H) or null (zeros), dh_last and dc_last (B, H) or null: gradients with respect to hs
// and the final state. xs, h0, c0, Wx, Wh, the cache and hs as the forward left them. Writes dgates
// (T, 4H, B, scratch), dxs (T, B, D), dh0, dc0 (B, H), dW (D + H, 4H): dWx's D rows then dWh's H rows,
// one GEMM for both, and db (4H,).
template <typename T>
void lstm_layer_backward(const T* dhs, const T* dh_last, const T* dc_last, const T* xs, const T* h0, const T* c0,
                         const T* Wx, const T* Wh, const T* gates, const T* c_all, const T* tanh_c_all, const T* hs,
                         T* dgates, T* dxs, T* dh0, T* dc0, T* dW, T* db, const LstmLayerShape& s);

// AVX2/FMA versions (float) of one batch row over hidden units [k0, k1), in lstm_avx2.cpp.
// Same arguments, offset to the row; `hidden` is the distance between gates. Forward returns the NaN
// count; ah and b (forward) and db (backward) may be null.
int64_t lstm_forward_row_avx2(const float* ax, const float* ah, const float* b, const float* c_prev, float* gates,
                              float* c, float* h, float* tanh_c, int64_t hidden, int64_t k0, int64_t k1);
void lstm_backward_row_avx2(const float* dh, const float* dc, const float* gates, const float* c_prev,
                            const float* tanh_c, float* da, float* dc_prev, float* db, int64_t hidden, int64_t k0,
                            int64_t k1);

}  // namespace fastnn
