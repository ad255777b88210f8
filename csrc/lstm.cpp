#include "lstm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_features.h"

namespace fastnn {

// Below this many gate values a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;

template <typename T>
static inline T sigmoid(T a) {
    return (T)1 / ((T)1 + std::exp(-a));
}

// Portable row kernels: one batch row, hidden units [k0, k1).
template <typename T>
static int64_t forward_row(const T* ax, const T* ah, const T* b, const T* c_prev, T* gates, T* c, T* h, T* tanh_c,
                           int64_t hidden, int64_t k0, int64_t k1) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return lstm_forward_row_avx2(ax, ah, b, c_prev, gates, c, h, tanh_c, hidden, k0, k1);
    }
#endif
    int64_t nan_count = 0;
    for (int64_t k = k0; k < k1; ++k) {
        // All four pre-activations are read before any gate is written: gates may alias ax.
        const T a_i = ax[k] + ah[k] + b[k];
        const T a_f = ax[hidden + k] + ah[hidden + k] + b[hidden + k];
        const T a_o = ax[2 * hidden + k] + ah[2 * hidden + k] + b[2 * hidden + k];
        const T a_g = ax[3 * hidden + k] + ah[3 * hidden + k] + b[3 * hidden + k];
        const T i = sigmoid(a_i), f = sigmoid(a_f), o = sigmoid(a_o), g = std::tanh(a_g);
        const T c_new = f * c_prev[k] + i * g;
        const T tc = std::tanh(c_new);
        gates[k] = i;
        gates[hidden + k] = f;
        gates[2 * hidden + k] = o;
        gates[3 * hidden + k] = g;
        c[k] = c_new;
        tanh_c[k] = tc;
        h[k] = o * tc;
        nan_count += (c_new != c_new) + (h[k] != h[k]);
    }
    return nan_count;
}

template <typename T>
static void backward_row(const T* dh, const T* dc, const T* gates, const T* c_prev, const T* tanh_c, T* da,
                         T* dc_prev, T* db, int64_t hidden, int64_t k0, int64_t k1) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return lstm_backward_row_avx2(dh, dc, gates, c_prev, tanh_c, da, dc_prev, db, hidden, k0, k1);
    }
#endif
    for (int64_t k = k0; k < k1; ++k) {
        const T i = gates[k], f = gates[hidden + k], o = gates[2 * hidden + k], g = gates[3 * hidden + k];
        const T tc = tanh_c[k];
        const T dh_k = dh ? dh[k] : (T)0;
        const T dc_total = (dc ? dc[k] : (T)0) + dh_k * o * ((T)1 - tc * tc);
        const T da_i = dc_total * g * i * ((T)1 - i);
        const T da_f = dc_total * c_prev[k] * f * ((T)1 - f);
        const T da_o = dh_k * tc * o * ((T)1 - o);
        const T da_g = dc_total * i * ((T)1 - g * g);
        da[k] = da_i;
        da[hidden + k] = da_f;
        da[2 * hidden + k] = da_o;
        da[3 * hidden + k] = da_g;
        dc_prev[k] = dc_total * f;
        db[k] += da_i;
        db[hidden + k] += da_f;
        db[2 * hidden + k] += da_o;
        db[3 * hidden + k] += da_g;
    }
}

// This thread's hidden units: a contiguous range, a multiple of 8 wide.
static void hidden_range(int64_t hidden, int64_t& begin, int64_t& end) {
    int thread = 0, threads = 1;
#ifdef _OPENMP
    thread = omp_get_thread_num();
    threads = omp_get_num_threads();
#endif
    const int64_t width = ((hidden + threads - 1) / threads + 7) / 8 * 8;
    begin = std::min<int64_t>(thread * width, hidden);
    end = std::min<int64_t>(begin + width, hidden);
}

template <typename T>
int64_t lstm_cell_forward_pointwise(const T* ax, const T* ah, const T* b, const T* c_prev, T* gates, T* c, T* h,
                                    T* tanh_c, int64_t batch, int64_t hidden) {
    int64_t nan_count = 0;
#pragma omp parallel reduction(+ : nan_count) if (4 * batch * hidden > kParallelThreshold)
    {
        int64_t k0, k1;
        hidden_range(hidden, k0, k1);
        for (int64_t n = 0; k0 < k1 && n < batch; ++n) {
            const int64_t row4 = n * 4 * hidden, row = n * hidden;
            nan_count += forward_row(ax + row4, ah + row4, b, c_prev + row, gates + row4, c + row, h + row,
                                     tanh_c + row, hidden, k0, k1);
        }
    }
    return nan_count;
}

template <typename T>
void lstm_cell_backward_pointwise(const T* dh, const T* dc, const T* gates, const T* c_prev, const T* tanh_c, T* da,
                                  T* dc_prev, T* db, int64_t batch, int64_t hidden) {
#pragma omp parallel if (4 * batch * hidden > kParallelThreshold)
    {
        int64_t k0, k1;
        hidden_range(hidden, k0, k1);
        for (int64_t gate = 0; gate < 4; ++gate) std::fill(db + gate * hidden + k0, db + gate * hidden + k1, (T)0);
        for (int64_t n = 0; k0 < k1 && n < batch; ++n) {
            const int64_t row4 = n * 4 * hidden, row = n * hidden;
            backward_row(dh ? dh + row : nullptr, dc ? dc + row : nullptr, gates + row4, c_prev + row, tanh_c + row,
                         da + row4, dc_prev + row, db, hidden, k0, k1);
        }
    }
}

template int64_t lstm_cell_forward_pointwise<float>(const float*, const float*, const float*, const float*, float*,
                                                    float*, float*, float*, int64_t, int64_t);
template int64_t lstm_cell_forward_pointwise<double>(const double*, const double*, const double*, const double*,
                                                     double*, double*, double*, double*, int64_t, int64_t);
template void lstm_cell_backward_pointwise<float>(const float*, const float*, const float*, const float*, const float*,
                                                  float*, float*, float*, int64_t, int64_t);
template void lstm_cell_backward_pointwise<double>(const double*, const double*, const double*, const double*,
                                                   const double*, double*, double*, double*, int64_t, int64_t);

}  // namespace fastnn
