#include "activation.h"

namespace fastnn {

// Below this many elements one thread does the whole array.
static constexpr int64_t kParallelThreshold = 1 << 16;

template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        y[i] = (v > T(0) || v != v) ? v : T(0);
    }
}

template <typename T>
void relu_backward(const T* dy, const T* y, T* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
        const T d = dy[i], v = y[i];  // both loaded unconditionally: a select, so the loop vectorises
        dx[i] = v > T(0) ? d : T(0);
    }
}

template void relu_forward<float>(const float*, float*, int64_t);
template void relu_forward<double>(const double*, double*, int64_t);
template void relu_backward<float>(const float*, const float*, float*, int64_t);
template void relu_backward<double>(const double*, const double*, double*, int64_t);

}  // namespace fastnn
