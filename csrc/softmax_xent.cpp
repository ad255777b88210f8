#include "softmax_xent.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu_features.h"

namespace fastnn {

// Portable: plain loops the compiler may vectorise for the baseline ISA.
template <typename T>
static void softmax_rows_portable(const T* scores, int64_t rows, int64_t classes, T* exps,
                                  T* inv_sum, T* lse) {
    for (int64_t i = 0; i < rows; ++i) {
        const T* x = scores + i * classes;
        T* e = exps + i * classes;
        T m = x[0];
        for (int64_t j = 1; j < classes; ++j) m = x[j] > m ? x[j] : m;
        double sum = 0.0;  // double accumulation: exact enough for C in the hundreds of thousands
        for (int64_t j = 0; j < classes; ++j) {
            e[j] = std::exp(x[j] - m);
            sum += e[j];
        }
        inv_sum[i] = (T)(1.0 / sum);
        lse[i] = (T)((double)m + std::log(sum));
    }
}

template <typename T>
static void softmax_rows(const T* scores, int64_t rows, int64_t classes, T* exps, T* inv_sum, T* lse) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return softmax_rows_avx2(scores, rows, classes, exps, inv_sum, lse);
    }
#endif
    softmax_rows_portable(scores, rows, classes, exps, inv_sum, lse);
}

// Below this many elements a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;
// Rows per task: about this many elements, so a block's sweeps stay in L1/L2.
static constexpr int64_t kBlockElements = 4096;

// dscores[i, y_i] -= scale for every row with a valid label.
template <typename T>
static void subtract_scale_at_labels(T* dscores, const int64_t* labels, T scale, int64_t rows,
                                     int64_t classes) {
    for (int64_t i = 0; i < rows; ++i) {
        const int64_t y = labels[i];
        if (y >= 0 && y < classes) dscores[i * classes + y] -= scale;
    }
}

template <typename T>
SoftmaxXentForwardResult softmax_xent_forward(const T* scores, const int64_t* labels, T* exps,
                                              T* inv_sum, T* lse, int64_t rows, int64_t classes) {
    const int64_t rows_per_block = std::max<int64_t>(1, kBlockElements / classes);
    const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t first = b * rows_per_block;
        const int64_t count = std::min(rows_per_block, rows - first);
        softmax_rows(scores + first * classes, count, classes, exps + first * classes,
                     inv_sum + first, lse + first);
    }
    // Serial, in row order: the sum is the same whatever the thread count. A label outside
    // [0, C) is never used as an index: its row's loss is NaN.
    SoftmaxXentForwardResult result{0.0, -1, -1};
    for (int64_t i = 0; i < rows; ++i) {
        const int64_t y = labels[i];
        double loss = std::numeric_limits<double>::quiet_NaN();
        if (y >= 0 && y < classes) {
            loss = (double)lse[i] - (double)scores[i * classes + y];
        } else if (result.first_bad_label < 0) {
            result.first_bad_label = i;
        }
        if (result.first_nonfinite < 0 && !std::isfinite(loss)) result.first_nonfinite = i;
        result.loss_sum += loss;
    }
    return result;
}

template <typename T>
void softmax_xent_backward_in_place(T* exps_to_dscores, const T* inv_sum, const int64_t* labels,
                                    T scale, int64_t rows, int64_t classes) {
    // A stream over whole rows: e_i <- (scale * z_i) * e_i; then the N label entries.
    const int64_t rows_per_block = std::max<int64_t>(1, kBlockElements / classes);
    const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t first = b * rows_per_block, last = std::min(rows, first + rows_per_block);
        for (int64_t i = first; i < last; ++i) {
            T* d = exps_to_dscores + i * classes;
            const T row_scale = scale * inv_sum[i];
            for (int64_t j = 0; j < classes; ++j) d[j] *= row_scale;
        }
    }
    subtract_scale_at_labels(exps_to_dscores, labels, scale, rows, classes);
}

template <typename T>
static void scaled_softmax_rows_portable(const T* scores, const T* lse, T scale, int64_t rows,
                                         int64_t classes, T* out) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < classes; ++j)
            out[i * classes + j] = scale * std::exp(scores[i * classes + j] - lse[i]);
}

template <typename T>
void softmax_xent_backward_recompute(const T* scores, const int64_t* labels, const T* lse, T scale,
                                     T* dscores, int64_t rows, int64_t classes) {
    const int64_t rows_per_block = std::max<int64_t>(1, kBlockElements / classes);
    const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t first = b * rows_per_block;
        const int64_t count = std::min(rows_per_block, rows - first);
        const T* x = scores + first * classes;
        T* d = dscores + first * classes;
#ifdef FASTNN_HAVE_AVX2_KERNELS
        if constexpr (std::is_same_v<T, float>) {
            if (use_avx2()) {
                scaled_softmax_rows_avx2(x, lse + first, scale, count, classes, d);
                continue;
            }
        }
#endif
        scaled_softmax_rows_portable(x, lse + first, scale, count, classes, d);
    }
    subtract_scale_at_labels(dscores, labels, scale, rows, classes);
}

template SoftmaxXentForwardResult softmax_xent_forward<float>(const float*, const int64_t*, float*,
                                                              float*, float*, int64_t, int64_t);
template SoftmaxXentForwardResult softmax_xent_forward<double>(const double*, const int64_t*,
                                                               double*, double*, double*, int64_t,
                                                               int64_t);
template void softmax_xent_backward_in_place<float>(float*, const float*, const int64_t*, float,
                                                    int64_t, int64_t);
template void softmax_xent_backward_in_place<double>(double*, const double*, const int64_t*, double,
                                                     int64_t, int64_t);
template void softmax_xent_backward_recompute<float>(const float*, const int64_t*, const float*,
                                                     float, float*, int64_t, int64_t);
template void softmax_xent_backward_recompute<double>(const double*, const int64_t*, const double*,
                                                      double, double*, int64_t, int64_t);

}  // namespace fastnn
