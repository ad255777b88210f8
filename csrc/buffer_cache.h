// Reuse of large output buffers. A training loop allocates the same big arrays every step (pooling's
// dx, batch norm's output, an LSTM layer's cache); fresh memory from the OS arrives as zeroed pages,
// and the kernel's page faults and zeroing cost as much as the kernel's own pass over the data
// (51 MB of pooling dx: ~5 ms of clear_page per call on this machine). Freed buffers of at least
// kMinCachedBytes go back to a per-size free list instead, up to a total limit (FASTNN_BUFFER_CACHE_MB,
// default 1024; 0 turns the cache off), and the next request of that exact size reuses one. The least
// recently freed blocks go back to the OS first when the limit is reached, and any block idle for more
// than 10 seconds (set_buffer_cache_idle_seconds) at the next allocation or free: sizes a program
// stopped asking for do not hold the memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <memory>

namespace fastnn {

constexpr size_t kMinCachedBytes = size_t(1) << 20;
// The largest request cached_alloc serves (PTRDIFF_MAX); larger ones are std::bad_alloc, as is a
// count of elements whose byte size would pass it.
constexpr size_t kMaxAllocBytes = size_t(PTRDIFF_MAX);

void* cached_alloc(size_t bytes);  // 64-byte aligned (2 MiB for large blocks); throws std::bad_alloc
void cached_free(void* p);          // p from cached_alloc

// An uninitialised 64-byte-aligned array from the cache, freed back to it: for kernels' large
// per-call scratch (packed weights, per-step state), which would otherwise be fresh pages each call.
struct CachedFree {
    void operator()(void* p) const { cached_free(p); }
};
template <typename T>
std::unique_ptr<T[], CachedFree> cached_buffer(size_t count) {
    if (count > kMaxAllocBytes / sizeof(T)) throw std::bad_alloc();  // (count * sizeof(T) would wrap around)
    return std::unique_ptr<T[], CachedFree>(static_cast<T*>(cached_alloc((count > 0 ? count : 1) * sizeof(T))));
}

size_t buffer_cache_bytes();         // bytes held in the free lists now
void clear_buffer_cache();           // returns them to the OS
void set_buffer_cache_limit(size_t bytes);
size_t buffer_cache_limit();
void set_buffer_cache_idle_seconds(double seconds);
double buffer_cache_idle_seconds();

}  // namespace fastnn
