#include "buffer_cache.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace fastnn {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;

struct Cache {
    std::mutex mutex;
    std::unordered_map<void*, size_t> live;                  // every block handed out: its size
    std::unordered_map<size_t, std::vector<void*>> free;     // idle blocks by exact size
    size_t cached = 0;
    size_t limit;

    Cache() {
        const char* env = std::getenv("FASTNN_BUFFER_CACHE_MB");
        limit = (env ? (size_t)std::strtoull(env, nullptr, 10) : 1024) << 20;
    }
};

// Never destroyed: numpy arrays may be freed after static destructors have run.
Cache& cache() {
    static Cache* instance = new Cache();
    return *instance;
}

void* fresh(size_t bytes) {
    const size_t align = bytes >= 2 * kHugePage ? kHugePage : 64;
    const size_t rounded = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);  // fewer faults and TLB misses; advisory
#endif
    return p;
}
}  // namespace

void* cached_alloc(size_t bytes) {
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        auto it = c.free.find(bytes);
        if (it != c.free.end() && !it->second.empty()) {
            void* p = it->second.back();
            it->second.pop_back();
            c.cached -= bytes;
            c.live[p] = bytes;
            return p;
        }
    }
    void* p = fresh(bytes);
    std::lock_guard<std::mutex> lock(c.mutex);
    c.live[p] = bytes;
    return p;
}

void cached_free(void* p) {
    if (!p) return;
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        auto it = c.live.find(p);
        const size_t bytes = it == c.live.end() ? 0 : it->second;
        if (it != c.live.end()) c.live.erase(it);
        if (bytes && c.cached + bytes <= c.limit) {
            c.free[bytes].push_back(p);
            c.cached += bytes;
            return;
        }
    }
    std::free(p);
}

size_t buffer_cache_bytes() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.cached;
}

void clear_buffer_cache() {
    Cache& c = cache();
    std::vector<void*> blocks;
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        for (auto& entry : c.free)
            for (void* p : entry.second) blocks.push_back(p);
        c.free.clear();
        c.cached = 0;
    }
    for (void* p : blocks) std::free(p);
}

void set_buffer_cache_limit(size_t bytes) {
    {
        Cache& c = cache();
        std::lock_guard<std::mutex> lock(c.mutex);
        c.limit = bytes;
    }
    clear_buffer_cache();
}

size_t buffer_cache_limit() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.limit;
}

}  // namespace fastnn
