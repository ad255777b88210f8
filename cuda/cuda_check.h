// Error handling for the CUDA launchers: every launch is checked, and a failure becomes a
// std::runtime_error that pybind11 turns into a Python RuntimeError.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace fastnn {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("fastnn CUDA error in ") + what + ": " +
                                 cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

// After a kernel launch: catches bad launch configurations without synchronising the device.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

}  // namespace cuda
}  // namespace fastnn
