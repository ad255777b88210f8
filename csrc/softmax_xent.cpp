#include "softmax_xent.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu_features.h"

namespace fastnn {

// Portable row kernels: plain loops the compiler may vectorise for the baseline ISA.
template <typename T>
static T row_lse_portable(const T* x, int64_t classes) {
    T m = x[0];
    for (int64_t j = 1; j < classes; ++j) m = x[j] > m ? x[j] : m;
    double sum = 0.0;  // double accumulation: exact enough for C in the hundreds of thousands
    for (int64_t j = 0; j < classes; ++j) sum += std::exp((double)(x[j] - m));
    return (T)((double)m + std::log(sum));
}

template <typename T>
static void row_backward_portable(const T* x, int64_t classes, T lse, T scale, T* dx) {
    for (int64_t j = 0; j < classes; ++j) dx[j] = scale * std::exp(x[j] - lse);
}

template <typename T>
static T row_lse(const T* x, int64_t classes) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return softmax_xent_row_lse_avx2(x, classes);
    }
#endif
    return row_lse_portable(x, classes);
}

template <typename T>
static void row_backward(const T* x, int64_t classes, T lse, T scale, T* dx) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return softmax_xent_row_backward_avx2(x, classes, lse, scale, dx);
    }
#endif
    row_backward_portable(x, classes, lse, scale, dx);
}

// Below this many elements a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;

template <typename T>
SoftmaxXentForwardResult softmax_xent_forward(const T* scores, const int64_t* labels, T* lse,
                                              int64_t rows, int64_t classes) {
    std::vector<double> row_loss((size_t)rows);
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
    for (int64_t i = 0; i < rows; ++i) {
        const T* x = scores + i * classes;
        lse[i] = row_lse(x, classes);
        int64_t y = labels[i];
        // A label outside [0, C) is never used as an index: the row's loss becomes NaN instead.
        row_loss[(size_t)i] = (y >= 0 && y < classes) ? (double)lse[i] - (double)x[y]
                                                      : std::numeric_limits<double>::quiet_NaN();
    }
    // Serial, in row order: the sum is the same whatever the thread count.
    SoftmaxXentForwardResult result{0.0, -1, -1};
    for (int64_t i = 0; i < rows; ++i) {
        int64_t y = labels[i];
        if (result.first_bad_label < 0 && (y < 0 || y >= classes)) result.first_bad_label = i;
        if (result.first_nonfinite < 0 && !std::isfinite(row_loss[(size_t)i])) result.first_nonfinite = i;
        result.loss_sum += row_loss[(size_t)i];
    }
    return result;
}

template <typename T>
void softmax_xent_backward(const T* scores, const int64_t* labels, const T* lse, T scale,
                           T* dscores, int64_t rows, int64_t classes) {
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
    for (int64_t i = 0; i < rows; ++i) {
        const T* x = scores + i * classes;
        T* dx = dscores + i * classes;
        row_backward(x, classes, lse[i], scale, dx);
        int64_t y = labels[i];
        if (y >= 0 && y < classes) dx[y] -= scale;
    }
}

template SoftmaxXentForwardResult softmax_xent_forward<float>(const float*, const int64_t*, float*,
                                                              int64_t, int64_t);
template SoftmaxXentForwardResult softmax_xent_forward<double>(const double*, const int64_t*,
                                                               double*, int64_t, int64_t);
template void softmax_xent_backward<float>(const float*, const int64_t*, const float*, float,
                                           float*, int64_t, int64_t);
template void softmax_xent_backward<double>(const double*, const int64_t*, const double*, double,
                                            double*, int64_t, int64_t);

}  // namespace fastnn
