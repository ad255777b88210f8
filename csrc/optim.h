// Fused optimizer updates on the CPU: one pass over a parameter and its state instead of the ~10
// NumPy passes of the step-by-step update. The arithmetic is the NumPy path's, operation for
// operation and in the same order (fastnn/optim/optimizer.py), so the results are bit-identical to it.
//
//   regularised gradient  r = (w wd + g) + l1 sign(w)     (the terms only when wd / l1 are nonzero)
//   decoupled decay       w = w keep                      (keep = 1 - lr decoupled_weight_decay)
//   SGD:       step = r lr;  plain: w -= step;  momentum: v = v mu + step, then w -= v, or for
//              Nesterov w -= step; w -= v mu
//   adaptive:  m = m b1 + r (1 - b1) (m null: m = r; 1 - b1 rounded from double, as NumPy does);  s = s rho + (r r) c
//              w -= (m / (sqrt(s) inv_sqrt_bc2 + eps)) step_size
#pragma once
#include <cstdint>

namespace fastnn {

template <typename T>
struct Regularisers {
    T wd, l1, keep;
};

template <typename T>
void sgd_update(T* w, const T* g, T* v, int64_t n, Regularisers<T> reg, T lr, T mu, bool nesterov);

template <typename T>
void adaptive_update(T* w, const T* g, T* m, T* s, int64_t n, Regularisers<T> reg, T b1, T one_minus_b1, T rho, T c,
                     T step_size, T inv_sqrt_bc2, T eps);

// sum of g[i]^2 in double, in fixed-size chunks added in order: the same value whatever the thread count.
template <typename T>
double sum_squares(const T* g, int64_t n);

}  // namespace fastnn
