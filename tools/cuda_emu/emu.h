// Host emulation of the CUDA execution model, just enough to run fastnn's kernels on the CPU:
// one std::thread per CUDA thread, blocks run one after another, __syncthreads is a block-wide
// barrier, warp shuffles go through an exchange buffer synchronised by a per-warp barrier (all live
// lanes of a warp must call them together). A thread that returns drops out of both barriers, as
// exited threads do on the GPU.
#pragma once
#include <cuda_runtime.h>
#include <algorithm>
#include <barrier>
#include <memory>
#include <cmath>
#include <thread>
#include <vector>
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
using std::max;
using std::min;
inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* emu_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> emu_warp_barriers;
inline double emu_exchange[1024];
inline void __syncthreads() { emu_barrier->arrive_and_wait(); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
template <typename T> inline T __ldg(const T* p) { return *p; }
inline int emu_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int offset) {
    int t = emu_tid();
    std::barrier<>& warp = *emu_warp_barriers[t / 32];
    emu_exchange[t] = (double)v;
    warp.arrive_and_wait();
    int lane = t % 32, partner = (t - lane) + (lane ^ offset);
    T r = (T)emu_exchange[partner];
    warp.arrive_and_wait();
    return r;
}
template <class F> void emulate_launch(dim3 grid, dim3 block, size_t, cudaStream_t, F f) {
    gridDim = grid; blockDim = block;
    unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz) for (unsigned by = 0; by < grid.y; ++by) for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bar(n); emu_barrier = &bar;
        emu_warp_barriers.clear();
        for (unsigned w = 0; w < (n + 31) / 32; ++w)
            emu_warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - 32 * w)));
        std::vector<std::thread> threads;
        for (unsigned tz = 0; tz < block.z; ++tz) for (unsigned ty = 0; ty < block.y; ++ty) for (unsigned tx = 0; tx < block.x; ++tx)
            threads.emplace_back([=, &f] {
                threadIdx = {tx, ty, tz}; blockIdx = {bx, by, bz};
                f();
                int t = emu_tid();
                emu_barrier->arrive_and_drop();
                emu_warp_barriers[t / 32]->arrive_and_drop();
            });
        for (auto& t : threads) t.join();
    }
}
template <class F> void emulate_launch(dim3 grid, int block, size_t s, cudaStream_t st, F f) { emulate_launch(grid, dim3(block), s, st, f); }
template <class F> void emulate_launch(unsigned grid, int block, size_t s, cudaStream_t st, F f) { emulate_launch(dim3(grid), dim3(block), s, st, f); }
template <class F> void emulate_launch(int grid, int block, size_t s, cudaStream_t st, F f) { emulate_launch(dim3(grid), dim3(block), s, st, f); }
