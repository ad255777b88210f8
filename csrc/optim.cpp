// Fused optimizer updates (see optim.h). Memory-bound loops the compiler vectorises; no FMA
// contraction here (this file is not built with -mfma), which keeps them bit-identical to NumPy.
#include "optim.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fastnn {

// Below this many elements one thread does the whole parameter.
static constexpr int64_t kParallelThreshold = 1 << 15;

// The loops below are branch-free in the element (the options are template parameters) so the
// compiler vectorises them, sqrt and division included.
template <typename T, bool kRegularise>
static inline T regularised(T w, T g, const Regularisers<T>& reg) {
    if (!kRegularise) return g;
    const T sign = (T)((w > T(0)) - (w < T(0)));
    return (w * reg.wd + g) + reg.l1 * sign;
}

template <typename T, bool kRegularise, bool kMomentum, bool kNesterov>
static void sgd_loop(T* __restrict w, const T* __restrict g, T* __restrict v, int64_t n, Regularisers<T> reg, T lr,
                     T mu) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
        const T r = regularised<T, kRegularise>(w[i], g[i], reg);
        T wi = w[i] * reg.keep;
        const T step = r * lr;
        if (!kMomentum) {
            wi -= step;
        } else {
            const T vi = v[i] * mu + step;
            v[i] = vi;
            if (kNesterov) {
                wi -= step;
                wi -= vi * mu;
            } else {
                wi -= vi;
            }
        }
        w[i] = wi;
    }
}

template <typename T>
void sgd_update(T* w, const T* g, T* v, int64_t n, Regularisers<T> reg, T lr, T mu, bool nesterov) {
    const bool r = reg.wd != T(0) || reg.l1 != T(0);
    if (!v) return r ? sgd_loop<T, true, false, false>(w, g, v, n, reg, lr, mu)
                     : sgd_loop<T, false, false, false>(w, g, v, n, reg, lr, mu);
    if (nesterov) return r ? sgd_loop<T, true, true, true>(w, g, v, n, reg, lr, mu)
                           : sgd_loop<T, false, true, true>(w, g, v, n, reg, lr, mu);
    return r ? sgd_loop<T, true, true, false>(w, g, v, n, reg, lr, mu)
             : sgd_loop<T, false, true, false>(w, g, v, n, reg, lr, mu);
}

template <typename T, bool kRegularise, bool kFirstMoment>
static void adaptive_loop(T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict s, int64_t n,
                          Regularisers<T> reg, T b1, T one_minus_b1, T rho, T c, T step_size, T inv_sqrt_bc2,
                          T eps) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
        const T r = regularised<T, kRegularise>(w[i], g[i], reg);
        T mi = r;
        if (kFirstMoment) {
            mi = m[i] * b1 + r * one_minus_b1;
            m[i] = mi;
        }
        const T si = s[i] * rho + (r * r) * c;
        s[i] = si;
        w[i] = w[i] * reg.keep - (mi / (std::sqrt(si) * inv_sqrt_bc2 + eps)) * step_size;
    }
}

template <typename T>
void adaptive_update(T* w, const T* g, T* m, T* s, int64_t n, Regularisers<T> reg, T b1, T one_minus_b1, T rho, T c,
                     T step_size, T inv_sqrt_bc2, T eps) {
    const bool r = reg.wd != T(0) || reg.l1 != T(0);
    auto run = [&](auto loop) { loop(w, g, m, s, n, reg, b1, one_minus_b1, rho, c, step_size, inv_sqrt_bc2, eps); };
    if (m)
        r ? run(adaptive_loop<T, true, true>) : run(adaptive_loop<T, false, true>);
    else
        r ? run(adaptive_loop<T, true, false>) : run(adaptive_loop<T, false, false>);
}

template <typename T>
double sum_squares(const T* g, int64_t n) {
    constexpr int64_t chunk = 4096;
    const int64_t chunks = (n + chunk - 1) / chunk;
    std::vector<double> partial((size_t)chunks);
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (int64_t k = 0; k < chunks; ++k) {
        double sum = 0;
        const int64_t end = std::min(n, (k + 1) * chunk);
        for (int64_t i = k * chunk; i < end; ++i) sum += (double)g[i] * (double)g[i];
        partial[(size_t)k] = sum;
    }
    double total = 0;
    for (double p : partial) total += p;
    return total;
}

template void sgd_update<float>(float*, const float*, float*, int64_t, Regularisers<float>, float, float, bool);
template void sgd_update<double>(double*, const double*, double*, int64_t, Regularisers<double>, double, double, bool);
template void adaptive_update<float>(float*, const float*, float*, float*, int64_t, Regularisers<float>, float, float,
                                     float, float, float, float, float);
template void adaptive_update<double>(double*, const double*, double*, double*, int64_t, Regularisers<double>, double,
                                      double, double, double, double, double, double);
template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);

}  // namespace fastnn
