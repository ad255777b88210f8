#include "buffer_cache.h"

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <list>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>  // malloc_trim
#endif

namespace fastnn {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
using Clock = std::chrono::steady_clock;

// An idle block: freed by its array, waiting for a request of exactly its size.
struct Idle {
    void* p;
    size_t bytes;
    Clock::time_point since;
};

// Blocks taken out of the cache under its lock, freed by the caller after releasing it.
struct Evicted {
    std::vector<void*> blocks;
    size_t bytes = 0;
};

struct Cache {
    std::mutex mutex;
    std::unordered_map<void*, size_t> live;  // every block handed out: its size
    // Idle blocks, least recently freed first, and the same blocks by exact size (oldest first). A
    // request takes its size's newest block; when the total would pass the limit, or a block has been
    // idle longer than idle_limit, the oldest go back to the OS. So sizes a loop stopped asking for (a
    // different batch size, the last batch of an epoch) do not keep the memory, nor the room the
    // sizes it still asks for need.
    std::list<Idle> lru;
    std::unordered_map<size_t, std::deque<std::list<Idle>::iterator>> by_size;
    size_t cached = 0;
    size_t limit = size_t(1024) << 20;  // FASTNN_BUFFER_CACHE_MB sets it at import (fastnn/_backend.py)
    Clock::duration idle_limit = std::chrono::seconds(10);

    // Moves the least recently freed block into `out`.
    void evict_oldest(Evicted& out) {
        const Idle& oldest = lru.front();
        auto same = by_size.find(oldest.bytes);
        assert(same != by_size.end() && same->second.front() == lru.begin());
        same->second.pop_front();  // the oldest block of its size is the oldest of all with that size
        if (same->second.empty()) by_size.erase(same);
        cached -= oldest.bytes;
        out.blocks.push_back(oldest.p);
        out.bytes += oldest.bytes;
        lru.pop_front();
    }

    // Evicts until the total fits the limit and no block has been idle longer than idle_limit.
    void evict(Clock::time_point now, Evicted& out) {
        while (!lru.empty() && (cached > limit || now - lru.front().since > idle_limit)) evict_oldest(out);
    }
};

// Never destroyed: numpy arrays may be freed after static destructors have run.
Cache& cache() {
    static Cache* instance = new Cache();
    return *instance;
}

// Evicted blocks go back with free(); glibc keeps the freed pages of its heap mapped (RSS stays
// high) until malloc_trim returns them, so after every 64 MiB evicted the heap is trimmed once.
std::atomic<size_t> evicted_since_trim{0};
constexpr size_t kTrimEvery = size_t(64) << 20;

void free_all(const Evicted& evicted) {
    for (void* p : evicted.blocks) std::free(p);
    const size_t bytes = evicted.bytes;
#ifdef __GLIBC__
    if (bytes && evicted_since_trim.fetch_add(bytes) + bytes >= kTrimEvery) {
        evicted_since_trim = 0;
        malloc_trim(0);
    }
#else
    (void)bytes;
#endif
}

void* fresh(size_t bytes) {
    // (Rounded up below: a size near SIZE_MAX would wrap around to a tiny block.)
    if (bytes > kMaxAllocBytes) throw std::bad_alloc();
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
    Evicted evicted;
    void* p = nullptr;
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        c.evict(Clock::now(), evicted);
        auto it = c.by_size.find(bytes);
        if (it != c.by_size.end()) {
            auto block = it->second.back();  // the most recently freed of this size
            p = block->p;
            it->second.pop_back();
            if (it->second.empty()) c.by_size.erase(it);
            c.lru.erase(block);
            c.cached -= bytes;
            c.live[p] = bytes;
        }
    }
    free_all(evicted);
    if (p) return p;
    p = fresh(bytes);
    std::lock_guard<std::mutex> lock(c.mutex);
    try {
        c.live[p] = bytes;
    } catch (...) {  // (the map's node: out of memory) the block would leak
        std::free(p);
        throw;
    }
    return p;
}

void cached_free(void* p) {
    if (!p) return;
    Cache& c = cache();
    Evicted evicted;
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        auto it = c.live.find(p);
        const size_t bytes = it == c.live.end() ? 0 : it->second;
        if (it != c.live.end()) c.live.erase(it);
        if (bytes && bytes <= c.limit) {
            const auto now = Clock::now();
            c.lru.push_back(Idle{p, bytes, now});
            c.by_size[bytes].push_back(std::prev(c.lru.end()));
            c.cached += bytes;
            p = nullptr;
            c.evict(now, evicted);  // the oldest make room (never the block just freed: it fits alone)
        }
    }
    std::free(p);
    free_all(evicted);
}

size_t buffer_cache_bytes() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.cached;
}

void clear_buffer_cache() {
    Cache& c = cache();
    Evicted all;
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        for (const Idle& block : c.lru) all.blocks.push_back(block.p);
        all.bytes = c.cached;
        c.lru.clear();
        c.by_size.clear();
        c.cached = 0;
    }
    free_all(all);
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

void set_buffer_cache_idle_seconds(double seconds) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.idle_limit = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double buffer_cache_idle_seconds() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return std::chrono::duration<double>(c.idle_limit).count();
}

}  // namespace fastnn
