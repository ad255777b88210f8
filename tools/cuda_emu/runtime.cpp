// The CUDA runtime calls the launchers and bindings make, answered by the emulator: launches run
// synchronously on the host and cannot fail, so there is never an error to report, and the
// emulated machine has exactly one device.
#include <cuda_runtime.h>
cudaError_t CUDARTAPI cudaGetLastError(void) { return cudaSuccess; }
const char* CUDARTAPI cudaGetErrorName(cudaError_t) { return "emulated"; }
const char* CUDARTAPI cudaGetErrorString(cudaError_t) { return "emulated"; }
cudaError_t CUDARTAPI cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
cudaError_t CUDARTAPI cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
