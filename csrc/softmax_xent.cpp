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
static void softmax_rows_portable(const T* scores, int64_t rows, int64_t classes, T* probs, T* lse) {
    for (int64_t i = 0; i < rows; ++i) {
        const T* x = scores + i * classes;
        T* p = probs + i * classes;
        T m = x[0];
        for (int64_t j = 1; j < classes; ++j) m = x[j] > m ? x[j] : m;
        double sum = 0.0;  // double accumulation: exact enough for C in the hundreds of thousands
        for (int64_t j = 0; j < classes; ++j) {
            p[j] = std::exp(x[j] - m);
            sum += p[j];
        }
        const T inv = (T)(1.0 / sum);
        for (int64_t j = 0; j < classes; ++j) p[j] *= inv;
        lse[i] = (T)((double)m + std::log(sum));
    }
}

template <typename T>
static void softmax_rows(const T* scores, int64_t rows, int64_t classes, T* probs, T* lse) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return softmax_rows_avx2(scores, rows, classes, probs, lse);
    }
#endif
    softmax_rows_portable(scores, rows, classes, probs, lse);
}

// Below this many elements a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;
// Rows per task: about this many elements, so a block's sweeps stay in L1/L2.
static constexpr int64_t kBlockElements = 4096;

template <typename T>
SoftmaxXentForwardResult softmax_xent_forward(const T* scores, const int64_t* labels, T* probs,
                                              T* lse, int64_t rows, int64_t classes) {
    const int64_t rows_per_block = std::max<int64_t>(1, kBlockElements / classes);
    const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t first = b * rows_per_block;
        const int64_t count = std::min(rows_per_block, rows - first);
        softmax_rows(scores + first * classes, count, classes, probs + first * classes, lse + first);
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
void softmax_xent_backward(const T* probs, const int64_t* labels, T scale, T* dscores,
                           int64_t rows, int64_t classes) {
    // A pure stream (the compiler vectorises it): dscores = scale * p, then the N label entries.
    const int64_t total = rows * classes;
    const int64_t chunk = 1 << 14;
    const int64_t chunks = (total + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (total > kParallelThreshold)
    for (int64_t c = 0; c < chunks; ++c) {
        const int64_t begin = c * chunk, end = std::min(total, begin + chunk);
        for (int64_t k = begin; k < end; ++k) dscores[k] = scale * probs[k];
    }
    for (int64_t i = 0; i < rows; ++i) {
        const int64_t y = labels[i];
        if (y >= 0 && y < classes) dscores[i * classes + y] -= scale;
    }
}

template SoftmaxXentForwardResult softmax_xent_forward<float>(const float*, const int64_t*, float*,
                                                              float*, int64_t, int64_t);
template SoftmaxXentForwardResult softmax_xent_forward<double>(const double*, const int64_t*,
                                                               double*, double*, int64_t, int64_t);
template void softmax_xent_backward<float>(const float*, const int64_t*, float, float*, int64_t,
                                           int64_t);
template void softmax_xent_backward<double>(const double*, const int64_t*, double, double*, int64_t,
                                            int64_t);

}  // namespace fastnn
