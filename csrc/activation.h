// Elementwise activations on the CPU (OpenMP across the array; loops the compiler vectorises).
//   relu_forward:  y = x > 0 ? x : 0   (NaN stays NaN)
//   relu_backward: dx = y > 0 ? dy : 0  (y is the forward's output: y > 0 exactly where x > 0)
#pragma once
#include <cstdint>

namespace fastnn {

template <typename T>
void relu_forward(const T* x, T* y, int64_t n);

template <typename T>
void relu_backward(const T* dy, const T* y, T* dx, int64_t n);

}  // namespace fastnn
