// The packed GEMM driver (blocking, packing, threading) and the portable micro-kernels.
// See gemm.h for the loop nest; the AVX2/FMA micro-kernels are in gemm_avx2.cpp.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "buffer_cache.h"
#include "cpu_features.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastnn {

// ------------------------------------------------------------------------- scratch memory
// Per-thread, 64-byte aligned, grown on demand and kept: the OpenMP threads persist, so a GEMM call
// reuses the pages faulted in by the previous one instead of mapping fresh megabytes every call.
namespace {
struct ScratchBuffer {
    void* ptr = nullptr;
    size_t bytes = 0;
    ~ScratchBuffer() { std::free(ptr); }
    void* get(size_t want) {
        if (want > bytes) {
            std::free(ptr);
            bytes = (want + 4095) & ~size_t(4095);
            ptr = std::aligned_alloc(64, bytes);
            if (!ptr) throw std::bad_alloc();
        }
        return ptr;
    }
};
thread_local ScratchBuffer scratch_slots[kScratchSlots];
}  // namespace

template <typename T>
T* thread_scratch(int slot, int64_t count) {
    // A count that is negative or whose byte size passes PTRDIFF_MAX (a size computed with overflow)
    // is refused: cast to size_t and multiplied it would wrap around to a small buffer.
    if (count < 0 || (uint64_t)count > kMaxAllocBytes / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(scratch_slots[slot].get((size_t)count * sizeof(T)));
}
template float* thread_scratch<float>(int, int64_t);
template double* thread_scratch<double>(int, int64_t);

// ------------------------------------------------------------------------- packing
template <typename T>
static void pack_panel_transposed_portable(const T* src, int64_t stride_p, int64_t stride_q, int64_t kc,
                                           int64_t lanes, int width, T* panel) {
    // Read each lane's run along p (contiguous when stride_p == 1), write it with stride `width`.
    for (int64_t l = 0; l < lanes; ++l) {
        const T* run = src + l * stride_q;
        for (int64_t p = 0; p < kc; ++p) panel[p * width + l] = run[p * stride_p];
    }
    if (lanes < width)
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t l = lanes; l < width; ++l) panel[p * width + l] = T(0);
}

void pack_panel_transposed(const float* src, int64_t stride_p, int64_t stride_q, int64_t kc, int64_t lanes,
                           int width, float* panel) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if (stride_p == 1 && width <= 16 && use_avx2())
        return pack_panel_transposed_avx2(src, stride_q, kc, lanes, width, panel);
#endif
    pack_panel_transposed_portable(src, stride_p, stride_q, kc, lanes, width, panel);
}

void pack_panel_transposed(const double* src, int64_t stride_p, int64_t stride_q, int64_t kc, int64_t lanes,
                           int width, double* panel) {
    pack_panel_transposed_portable(src, stride_p, stride_q, kc, lanes, width, panel);
}

template <typename T>
void StridedOperand<T>::pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const {
    constexpr int NR = GemmTraits<T>::NR;
    if (stride_q == 1 && width == NR && nq >= 2 * NR) {
        // Rows of a row-major B: read each row's run of nq values front to back and deal it out to
        // the panels. (Panel by panel, the reads would be NR values per row, a row stride apart:
        // too sparse for the hardware prefetcher when B comes from memory.)
        const int64_t full = nq / NR;
        const T* row = data + p0 * stride_p + q0;
        for (int64_t p = 0; p < kc; ++p, row += stride_p) {
            T* out = dst + p * NR;
            for (int64_t t = 0; t < full; ++t) std::memcpy(out + t * kc * NR, row + t * NR, NR * sizeof(T));
        }
        if (full * NR == nq) return;
        dst += full * kc * NR;
        q0 += full * NR;
        nq -= full * NR;
    }
    for (int64_t t = 0; t * width < nq; ++t) {
        T* panel = dst + t * kc * width;
        const int64_t lanes = std::min<int64_t>(width, nq - t * width);
        const T* base = data + p0 * stride_p + (q0 + t * width) * stride_q;
        if (stride_q == 1) {
            // Each p contributes `lanes` contiguous values: a row copy.
            if (lanes == width && width == GemmTraits<T>::NR) {  // constant size: inlined vector moves
                for (int64_t p = 0; p < kc; ++p)
                    std::memcpy(panel + p * width, base + p * stride_p, GemmTraits<T>::NR * sizeof(T));
            } else {
                for (int64_t p = 0; p < kc; ++p) {
                    const T* src = base + p * stride_p;
                    T* out = panel + p * width;
                    for (int64_t l = 0; l < lanes; ++l) out[l] = src[l];
                    for (int64_t l = lanes; l < width; ++l) out[l] = T(0);
                }
            }
        } else {
            pack_panel_transposed(base, stride_p, stride_q, kc, lanes, width, panel);
        }
    }
}
template <typename T>
bool StridedOperand<T>::source_runs(int64_t p0, int64_t kc, int64_t q0, int64_t nq,
                                    typename GemmOperand<T>::SourceRuns& out) const {
    const T* first = data + p0 * stride_p + q0 * stride_q;
    if (stride_q == 1) {  // kc runs of nq values (rows of a row-major B)
        out = {reinterpret_cast<const char*>(first), kc, nq * (int64_t)sizeof(T), stride_p * (int64_t)sizeof(T)};
        return true;
    }
    if (stride_p == 1) {  // nq runs of kc values (rows of a row-major A, or of a transposed B)
        out = {reinterpret_cast<const char*>(first), nq, kc * (int64_t)sizeof(T), stride_q * (int64_t)sizeof(T)};
        return true;
    }
    return false;
}

template struct StridedOperand<float>;
template struct StridedOperand<double>;

// ------------------------------------------------------------------------- micro-kernels
template <typename T>
static void gemm_kernel_portable(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool accumulate,
                                 const T* row_bias) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    T acc[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p, a += MR, b += NR)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < MR; ++i) {
        T* row = c + i * ldc;
        const T start = row_bias ? row_bias[i] : T(0);
        for (int j = 0; j < NR; ++j) row[j] = (accumulate ? row[j] : start) + acc[i][j];
    }
}

template <typename T>
using MicroKernel = void (*)(int64_t, const T*, const T*, T*, int64_t, bool, const T*);
// The same for the first `rows` (< MR) rows of the block only.
template <typename T>
using RowsKernel = void (*)(int rows, int64_t, const T*, const T*, T*, int64_t, bool, const T*);

// The kernels one GEMM uses: `block` for whole MR x NR blocks (streaming where C is written once
// and large, see gemm()), `rows` for whole-width blocks of fewer rows (null: through the tile), and
// `tile` for the other edge blocks, computed whole into a local tile and copied out.
// `wide12`/`wide6`/`tall24`/`tall12` (float on AVX-512 only, else null): 12 x 32, 6 x 32, 24 x 16
// and 12 x 16 blocks from several panels at once; `wide_rows` 1-5 rows by 32 and `tall_narrow`
// whole A panels by a narrow last B panel; see panel_blocks().
using WideRowsKernel = void (*)(int rows, int64_t kc, const float* a, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias);
using TallNarrowKernel = void (*)(int a_panels, int cols, int64_t kc, const float* a, int64_t a_step, const float* b,
                                  float* c, int64_t ldc, bool accumulate, const float* row_bias);
template <typename T>
struct Kernels {
    MicroKernel<T> block, tile;
    RowsKernel<T> rows;
    WideKernel wide12 = nullptr, wide6 = nullptr, tall24 = nullptr, tall12 = nullptr;
    WideRowsKernel wide_rows = nullptr;
    TallNarrowKernel tall_narrow = nullptr;
};

template <typename T>
static Kernels<T> pick_kernels() {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if (use_avx2()) {
        if constexpr (std::is_same_v<T, float>) {
            Kernels<T> k{sgemm_kernel_avx2, sgemm_kernel_avx2, sgemm_kernel_rows_partial_avx2};
#ifdef FASTNN_HAVE_AVX512_KERNELS
            if (use_avx512()) {
                k.wide12 = sgemm_kernel_wide12_avx512, k.wide6 = sgemm_kernel_wide6_avx512;
                k.tall24 = sgemm_kernel_tall24_avx512, k.tall12 = sgemm_kernel_tall12_avx512;
                k.wide_rows = sgemm_kernel_wide_rows_avx512, k.tall_narrow = sgemm_kernel_tall_narrow_avx512;
            }
#endif
            return k;
        } else {
            return {dgemm_kernel_avx2, dgemm_kernel_avx2, nullptr};
        }
    }
#endif
    return {gemm_kernel_portable<T>, gemm_kernel_portable<T>, nullptr};
}

// ------------------------------------------------------------------------- driver
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Below this many flops a second thread costs more (fork/join, barriers) than it saves.
static constexpr double kParallelFlops = 4e6;
// GEMMs with N up to this many panels of B take the barrier-free path that packs all of B first.
static constexpr int64_t kSkinnyPanels = 4;
// A B block this size stays in a 512 KB L2 next to the A block.
static constexpr int64_t kL2BlockBytes = 256 * 1024;
// A C of at least this many bytes that is written once goes straight to memory (see gemm.h).
static std::atomic<int64_t>& stream_bytes() {
    static std::atomic<int64_t> bytes{std::max<int64_t>(int64_t(8) << 20, last_level_cache_bytes() + 1)};
    return bytes;
}
int64_t gemm_stream_bytes() { return stream_bytes().load(std::memory_order_relaxed); }
int64_t set_gemm_stream_bytes(int64_t bytes) { return stream_bytes().exchange(std::max<int64_t>(bytes, 0)); }

// One MR x NR block of C from packed panels: the micro-kernel in place, or for the edge blocks (rows
// i + mr, columns j + nr that exist) the rows kernel or a local tile. `first`: C is written (from
// bias, or zero), else accumulated.
template <typename T>
static inline void block(const Kernels<T>& k, int64_t kc, const T* ap, const T* bp, T* C, int64_t ldc, int64_t i,
                         int64_t j, int64_t mr, int64_t nr, bool first, const T* bias) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    if (nr == NR) {
        if (mr == MR) return k.block(kc, ap, bp, C + i * ldc + j, ldc, !first, bias);
        // (M = 64 = 10 x 6 + 4: the last panel computes its 4 rows, not 6 of which 2 are dropped.)
        if (k.rows) return k.rows((int)mr, kc, ap, bp, C + i * ldc + j, ldc, !first, bias);
    }
    alignas(64) T tile[MR * NR];
    k.tile(kc, ap, bp, tile, NR, false, nullptr);
    for (int64_t r = 0; r < mr; ++r) {
        T* row = C + (i + r) * ldc + j;
        const T start = bias ? bias[r] : T(0);
        for (int64_t s = 0; s < nr; ++s) row[s] = (first ? start : row[s]) + tile[r * NR + s];
    }
}

// All blocks of C between an A block's panels (rows [i0, i0 + mc) of C, panel ip at ip * a_step)
// and a run of B panels (columns [j0, j0 + nc), panel jp at jp * b_step), B panel by B panel:
// after(n) follows each column of n blocks. With the AVX-512 kernels, two whole B panels (32
// columns) go together, with two A panels (12 rows) at a time, then one, then a last short one; a
// last whole B panel on its own goes with four A panels (24 rows) at a time, then two, and a narrow
// one with four, two and one. What is left over goes block by block.
template <typename T, class After>
static inline void panel_blocks(const Kernels<T>& k, int64_t kc, const T* apanels, int64_t i0, int64_t mc,
                                int64_t a_step, const T* bpanels, int64_t j0, int64_t nc, int64_t b_step, T* C,
                                int64_t ldc, bool first, const T* row_bias, After after) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t a_panels = (mc + MR - 1) / MR, b_panels = (nc + NR - 1) / NR;
    auto bias = [&](int64_t i) { return (first && row_bias) ? row_bias + (i - i0) : nullptr; };
    // Blocks of `group` whole A panels at a time through kernel(a, c, bias), from panel ip on.
    auto run = [&](bool present, int64_t group, int64_t& ip, int64_t j, auto kernel) {
        for (; present && (ip + group) * MR <= mc; ip += group) {
            const int64_t i = i0 + ip * MR;
            kernel(apanels + ip * a_step, C + i * ldc + j, bias(i));
        }
    };
    // The rest of the column from panel ip on, block by block, for `width` B panels from bp.
    auto rest = [&](int64_t ip, int64_t width, const T* bp, int64_t j) {
        for (; ip < a_panels; ++ip) {
            const int64_t i = i0 + ip * MR;
            for (int64_t q = 0; q < width; ++q)
                block(k, kc, apanels + ip * a_step, bp + q * b_step, C, ldc, i, j + q * NR,
                      std::min<int64_t>(MR, i0 + mc - i), std::min<int64_t>(NR, j0 + nc - j - q * NR), first, bias(i));
        }
        after(width * a_panels);
    };
    int64_t jp = 0;
    if constexpr (std::is_same_v<T, float>) {
        for (; k.wide12 && (jp + 2) * NR <= nc; jp += 2) {
            const T* bp = bpanels + jp * b_step;
            const int64_t j = j0 + jp * NR;
            auto wide = [&](WideKernel kernel) {
                return [&, kernel](const T* a, T* c, const T* bias_i) {
                    kernel(kc, a, a_step, bp, b_step, c, ldc, !first, bias_i);
                };
            };
            int64_t ip = 0;
            run(true, 2, ip, j, wide(k.wide12));
            run(true, 1, ip, j, wide(k.wide6));
            if (ip < a_panels && k.wide_rows) {  // a last panel of 1-5 rows (M = 64: rows 60-63)
                const int64_t i = i0 + ip * MR;
                k.wide_rows((int)(i0 + mc - i), kc, apanels + ip * a_step, bp, b_step, C + i * ldc + j, ldc, !first,
                            bias(i));
                ++ip;
            }
            rest(ip, 2, bp, j);
        }
    }
    for (; jp < b_panels; ++jp) {
        const T* bp = bpanels + jp * b_step;
        const int64_t j = j0 + jp * NR;
        int64_t ip = 0;
        if constexpr (std::is_same_v<T, float>) {
            auto tall = [&](WideKernel kernel) {
                return [&, kernel](const T* a, T* c, const T* bias_i) {
                    kernel(kc, a, a_step, bp, b_step, c, ldc, !first, bias_i);
                };
            };
            // A narrow last panel (the LSTM's products at batch 8: N = 8) through masked stores.
            auto narrow = [&](int group) {
                return [&, group](const T* a, T* c, const T* bias_i) {
                    k.tall_narrow(group, (int)(nc - jp * NR), kc, a, a_step, bp, c, ldc, !first, bias_i);
                };
            };
            if ((jp + 1) * NR <= nc) {
                run(k.tall24 != nullptr, 4, ip, j, tall(k.tall24));
                run(k.tall12 != nullptr, 2, ip, j, tall(k.tall12));
            } else {
                for (const int group : {4, 2, 1}) run(k.tall_narrow != nullptr, group, ip, j, narrow(group));
            }
        }
        rest(ip, 1, bp, j);
    }
}

#ifdef FASTNN_HAVE_AVX2_KERNELS
void sgemm_whole_panels_avx(int64_t kc, const float* a, int64_t a_panels, int64_t a_step, const float* b,
                            int64_t b_panels, int64_t b_step, float* c, int64_t ldc, bool accumulate) {
    constexpr int MR = GemmTraits<float>::MR, NR = GemmTraits<float>::NR;
    panel_blocks(pick_kernels<float>(), kc, a, 0, a_panels * MR, a_step, b, 0, b_panels * NR, b_step, c, ldc,
                 !accumulate, static_cast<const float*>(nullptr), [](int64_t) {});
}
#endif

// Walks the cache lines of an operand block's source a few at a time (prefetches into L2), so that
// the block is on its way from memory while the block before it computes; packing then reads it
// from cache. start() spreads the block's lines over `calls` calls of step().
template <typename T>
class SourcePrefetcher {
   public:
    void start(const GemmOperand<T>& op, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int64_t calls) {
        typename GemmOperand<T>::SourceRuns r;
        if (!op.source_runs(p0, kc, q0, nq, r) || r.runs <= 0 || r.run_bytes <= 0) {
            left_ = 0;
            return;
        }
        // Lines of one run, counted from its first byte's line.
        const uintptr_t begin = reinterpret_cast<uintptr_t>(r.first);
        run_lines_ = (int64_t)(((begin + (uintptr_t)r.run_bytes - 1) >> 6) - (begin >> 6) + 1);
        line0_ = reinterpret_cast<const char*>(begin & ~uintptr_t(63));
        stride_ = r.stride_bytes;
        run_ = line_ = 0;
        left_ = r.runs * run_lines_;
        per_call_ = (left_ + calls - 1) / std::max<int64_t>(calls, 1);
    }
    void step() {
        for (int64_t n = std::min(per_call_, left_); n > 0; --n, --left_) {
            __builtin_prefetch(line0_ + run_ * stride_ + line_ * 64, 0, 2);
            if (++line_ == run_lines_) {
                line_ = 0;
                ++run_;
            }
        }
    }

   private:
    const char* line0_ = nullptr;
    int64_t stride_ = 0, run_lines_ = 0, run_ = 0, line_ = 0, left_ = 0, per_call_ = 0;
};

// The operand's panels for a block: in place when it holds them packed, else packed into buffer.
template <typename T>
static inline const T* block_panels(const GemmOperand<T>& op, T* buffer, int64_t p0, int64_t kc, int64_t q0,
                                    int64_t nq, int width) {
    if (const T* pre = op.packed_block(p0, kc, q0, width)) return pre;
    op.pack(buffer, p0, kc, q0, nq, width);
    return buffer;
}

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const GemmOperand<T>& A, const GemmOperand<T>& B, T* C,
          int64_t ldc, bool accumulate, const T* row_bias, bool parallel) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    constexpr int64_t MC = GemmTraits<T>::MC, NC = GemmTraits<T>::NC;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = row_bias ? row_bias[i] : T(0);
        return;
    }
    Kernels<T> kernels = pick_kernels<T>();
    // Equal reduction blocks: a short last block would pay the micro-kernel's C load/store for
    // little work.
    const int64_t kc_step = gemm_kc_step<T>(K);
    const int64_t kc_max = std::min(kc_step, K);
    const int64_t m_panels = ceil_div(M, MR);

    int threads = 1;
#ifdef _OPENMP
    if (parallel && !omp_in_parallel() && 2.0 * M * N * K > kParallelFlops) threads = get_num_threads();
#else
    (void)parallel;
#endif

    if (N <= kSkinnyPanels * NR) {
        // A GEMM against a few columns (the LSTM's per-step products, N = batch): all of B is a few
        // panels, packed whole first (block pc at bpack + pc * b_panels * NR, its panels kc * NR
        // apart; a B that holds its panels already, a PackedOperand, is read in place), then each
        // thread runs whole reductions over its A blocks with no barrier between reduction blocks.
        // An A block is used once whatever its height, so there are 4 per thread to balance the team.
        const int64_t b_panels = ceil_div(N, NR);
        const bool b_packed = B.packed_block(0, kc_max, 0, NR) != nullptr;
        T* bpack = b_packed ? nullptr : thread_scratch<T>(kScratchPackB, K * b_panels * NR);
        const int64_t mc_step = ceil_div(m_panels, std::min(m_panels, std::max(ceil_div(M, MC), 4 * (int64_t)threads))) * MR;
        const int64_t k_blocks = ceil_div(K, kc_step);
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            if (!b_packed) {
#pragma omp for schedule(static)
                for (int64_t kb = 0; kb < k_blocks; ++kb) {
                    const int64_t pc = kb * kc_step;
                    B.pack(bpack + pc * b_panels * NR, pc, std::min(kc_step, K - pc), 0, N, NR);
                }
                // (implicit barrier: B is packed before anyone reads it)
            }
            T* apack = thread_scratch<T>(kScratchPackA, mc_step * kc_max);
#pragma omp for schedule(static)
            for (int64_t ic = 0; ic < M; ic += mc_step) {
                const int64_t mc = std::min(mc_step, M - ic);
                for (int64_t pc = 0; pc < K; pc += kc_step) {
                    const int64_t kc = std::min(kc_step, K - pc);
                    const bool first = pc == 0 && !accumulate;
                    const T* apanels = block_panels(A, apack, pc, kc, ic, mc, MR);
                    const T* bpanels = b_packed ? B.packed_block(pc, kc, 0, NR) : bpack + pc * b_panels * NR;
                    panel_blocks(kernels, kc, apanels, ic, mc, kc * MR, bpanels, 0, N, kc * NR, C, ldc, first,
                                 row_bias ? row_bias + ic : nullptr, [](int64_t) {});
                }
            }
        }
        return;
    }

    // B block width. Each packed B element is used by M rows; when M is small that reuse cannot
    // hide an L3-resident B, so the block is narrowed to stay in L2 (packed, then used at once).
    const int64_t nc_step = M <= 2 * MC ? std::max<int64_t>(NR, (kL2BlockBytes / (int64_t)sizeof(T) / kc_step) / NR * NR) : NC;
    const int64_t nc_max = std::min(nc_step, ceil_div(N, NR) * NR);

    if (M <= MC && threads > 1 && ceil_div(N, NR) >= 4 * threads) {
        // One A block and many columns (M = 64 x N = 4096: the LSTM cell's gate GEMMs, Linear layers):
        // sharing each B block would cost two barriers per (column block, reduction block) for little
        // work between them. Instead each thread takes its own run of columns and does them alone,
        // packing its own B blocks and its own copy of A: no barrier at all.
        const int64_t panels = ceil_div(N, NR);
#pragma omp parallel num_threads(threads)
        {
            const auto [me, team] = team_position();
            const int64_t j_begin = panels * me / team * NR, j_end = std::min(N, panels * (me + 1) / team * NR);
            T* mine = thread_scratch<T>(kScratchPackB, nc_max * kc_max);
            T* apack = thread_scratch<T>(kScratchPackA, m_panels * MR * kc_max);
            // B is read once (each block packed, used by the one A block, dropped): for a B larger
            // than the caches, packing waits on memory unless the next block was prefetched while
            // this one computed.
            SourcePrefetcher<T> prefetch;
            for (int64_t pc = 0; pc < K; pc += kc_step) {
                const int64_t kc = std::min(kc_step, K - pc);
                const bool first = pc == 0 && !accumulate;
                const T* apanels = block_panels(A, apack, pc, kc, 0, M, MR);
                for (int64_t jc = j_begin; jc < j_end; jc += nc_step) {
                    const int64_t nc = std::min(nc_step, j_end - jc);
                    const T* bpanels = block_panels(B, mine, pc, kc, jc, nc, NR);
                    const int64_t b_panels = ceil_div(nc, NR);
                    if (jc + nc_step < j_end) {
                        prefetch.start(B, pc, kc, jc + nc_step, std::min(nc_step, j_end - jc - nc_step),
                                       b_panels * m_panels);
                    } else if (pc + kc_step < K) {
                        prefetch.start(B, pc + kc_step, std::min(kc_step, K - pc - kc_step), j_begin,
                                       std::min(nc_step, j_end - j_begin), b_panels * m_panels);
                    }
                    panel_blocks(kernels, kc, apanels, 0, M, kc * MR, bpanels, jc, nc, kc * NR, C, ldc, first, row_bias,
                                 [&](int64_t blocks) {
                                     for (int64_t n = 0; n < blocks; ++n) prefetch.step();
                                 });
                }
            }
        }
        return;
    }
    // A C written once (one reduction block, not accumulated) and larger than the last-level cache
    // (the LSTM cell's weight gradient, 2048 x 4096 from K = 64, where that cache is 8 MiB) is written
    // with streaming stores: its lines would otherwise be read in from memory first, only to be
    // overwritten.
    bool streaming = false;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        streaming = use_avx2() && !accumulate && K <= kc_step && M * N * (int64_t)sizeof(T) >= gemm_stream_bytes() &&
                    reinterpret_cast<uintptr_t>(C) % 64 == 0 && ldc % 16 == 0;
        if (streaming) kernels.block = sgemm_kernel_stream_avx2;
#ifdef FASTNN_HAVE_AVX512_KERNELS
        if (streaming && kernels.wide12) {
            kernels.wide12 = sgemm_kernel_wide12_stream_avx512, kernels.wide6 = sgemm_kernel_wide6_stream_avx512;
            // (The tall kernels' blocks go through the streaming AVX2 kernel.)
            kernels.tall24 = kernels.tall12 = nullptr, kernels.tall_narrow = nullptr;
        }
#endif
    }
#endif
    // The packed B block is shared by the team: the calling thread's buffer.
    T* bpack = thread_scratch<T>(kScratchPackB, nc_max * kc_max);
    // A blocks of equal height to within a panel (M = 128 as 66 + 62 rows, not 96 + 32; M = 2048 as
    // 22 blocks of 15 or 16 panels, not 21 of 16 and one of 5+): the static schedule below gives each
    // thread a run of blocks, and a short one leaves a thread idle at every reduction block's barrier.
    // Block b is panels [b * m_panels / ic_blocks, (b + 1) * m_panels / ic_blocks).
    const int64_t ic_blocks = std::min(m_panels, ceil_div(M, MC));
    auto block_rows = [&](int64_t b) { return std::min(M, b * m_panels / ic_blocks * MR); };
    const int64_t mc_max = ceil_div(m_panels, ic_blocks) * MR;

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        T* apack = thread_scratch<T>(kScratchPackA, mc_max * kc_max);
        int64_t packed_ic = -1, packed_pc = -1;  // which A block apack holds
        for (int64_t jc = 0; jc < N; jc += nc_step) {
            const int64_t nc = std::min(nc_step, N - jc);
            const int64_t b_panels = ceil_div(nc, NR);
            for (int64_t pc = 0; pc < K; pc += kc_step) {
                const int64_t kc = std::min(kc_step, K - pc);
                const bool first = pc == 0 && !accumulate;

                // Each thread packs one contiguous run of panels in a single call (packers amortise
                // their per-call bookkeeping over the run).
                const T* bpanels = B.packed_block(pc, kc, jc, NR);
                if (!bpanels) {
#pragma omp for schedule(static)
                    for (int64_t part = 0; part < threads; ++part) {
                        const int64_t t0 = part * b_panels / threads, t1 = (part + 1) * b_panels / threads;
                        if (t1 > t0)
                            B.pack(bpack + t0 * kc * NR, pc, kc, jc + t0 * NR, std::min(nc, t1 * NR) - t0 * NR, NR);
                    }
                    // (implicit barrier: B is packed before anyone reads it)
                    bpanels = bpack;
                }

                // Tasks: (A block, run of B panels). Enough of them to balance the team; a thread's
                // consecutive tasks share an A block, so it is packed once per thread.
                // (At least 8 tasks per thread: with 11 A blocks and 2 threads, one task per block
                // would leave one thread a whole block idle at the end.)
                const int64_t j_chunks = std::min(b_panels, std::max<int64_t>(1, ceil_div(8 * threads, ic_blocks)));
#pragma omp for schedule(static)
                for (int64_t task = 0; task < ic_blocks * j_chunks; ++task) {
                    const int64_t ic = block_rows(task / j_chunks), chunk = task % j_chunks;
                    const int64_t mc = block_rows(task / j_chunks + 1) - ic;
                    const T* apanels = A.packed_block(pc, kc, ic, MR);
                    if (!apanels) {
                        if (ic != packed_ic || pc != packed_pc) {
                            A.pack(apack, pc, kc, ic, mc, MR);
                            packed_ic = ic;
                            packed_pc = pc;
                        }
                        apanels = apack;
                    }
                    // (Chunk edges on even panels where the wide kernels take panels in pairs.)
                    auto edge = [&](int64_t c) {
                        const int64_t jp = c * b_panels / j_chunks;
                        return (kernels.wide12 && c < j_chunks) ? jp & ~int64_t(1) : jp;
                    };
                    const int64_t jp_begin = edge(chunk), jp_end = edge(chunk + 1);
                    if (jp_end > jp_begin) {
                        const int64_t j = jc + jp_begin * NR;
                        panel_blocks(kernels, kc, apanels, ic, mc, kc * MR, bpanels + jp_begin * kc * NR, j,
                                     std::min(jc + nc, jc + jp_end * NR) - j, kc * NR, C, ldc, first,
                                     row_bias ? row_bias + ic : nullptr, [](int64_t) {});
                    }
                }
                // (implicit barrier: nobody repacks B while another thread still reads it)
            }
        }
#ifdef FASTNN_HAVE_AVX2_KERNELS
        // Streaming stores are weakly ordered: make them visible before the region's closing barrier.
        if (streaming) stream_fence_avx2();
#endif
    }
}

template <typename T>
void gemm_rows_kernel(int64_t kc, const T* const* rows, const T* b, T* c, int64_t ldc, bool accumulate) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return sgemm_kernel_rows_avx2(kc, rows, b, c, ldc, accumulate);
    }
#endif
    T acc[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p, b += NR)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += rows[i][p] * b[j];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : T(0)) + acc[i][j];
}
template void gemm_rows_kernel<float>(int64_t, const float* const*, const float*, float*, int64_t, bool);
template void gemm_rows_kernel<double>(int64_t, const double* const*, const double*, double*, int64_t, bool);

template <typename T>
int gemm_rows_panels_rows(int64_t panels) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (panels == 1 && use_avx512()) return 2 * GemmTraits<T>::MR;
    }
#endif
    (void)panels;
    return GemmTraits<T>::MR;
}
template int gemm_rows_panels_rows<float>(int64_t);
template int gemm_rows_panels_rows<double>(int64_t);

template <typename T>
void gemm_rows_panels(int64_t kc, const T* const* rows, int row_count, const T* b, int64_t panels, int64_t b_step, T* c,
                      int64_t ldc, bool accumulate) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    if (row_count == 2 * MR) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
        if constexpr (std::is_same_v<T, float>) {
            if (panels == 1 && use_avx512()) return sgemm_kernel_rows12_avx512(kc, rows, b, c, ldc, accumulate);
        }
#endif
        gemm_rows_panels<T>(kc, rows, MR, b, panels, b_step, c, ldc, accumulate);
        return gemm_rows_panels<T>(kc, rows + MR, MR, b, panels, b_step, c + MR * ldc, ldc, accumulate);
    }
    int64_t t = 0;
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx512())
            for (; t + 2 <= panels; t += 2)
                sgemm_kernel_rows_wide_avx512(kc, rows, b + t * b_step, b_step, c + t * NR, ldc, accumulate);
    }
#endif
    for (; t < panels; ++t) gemm_rows_kernel<T>(kc, rows, b + t * b_step, c + t * NR, ldc, accumulate);
}
template void gemm_rows_panels<float>(int64_t, const float* const*, int, const float*, int64_t, int64_t, float*,
                                      int64_t, bool);
template void gemm_rows_panels<double>(int64_t, const double* const*, int, const double*, int64_t, int64_t, double*,
                                       int64_t, bool);

// ------------------------------------------------------------------------- pre-packed operands
template <typename T>
PackedOperand<T>::PackedOperand(const GemmOperand<T>& source, int64_t K, int64_t Q, int width, int64_t kc_step)
    : K_(K), Q_(Q), kc_step_(kc_step > 0 ? kc_step : gemm_kc_step<T>(K)), q_padded_(ceil_div(Q, width) * width), width_(width),
      panels_(nullptr, cached_free) {
    // From the buffer cache: the LSTM layer packs its 4 MB of recurrent weights on every call.
    const size_t bytes = ((size_t)(K * q_padded_) * sizeof(T) + 63) / 64 * 64;
    panels_.reset(static_cast<T*>(cached_alloc(std::max<size_t>(bytes, 64))));
    const int64_t k_blocks = ceil_div(K, kc_step_), q_panels = q_padded_ / width;
    // One task per (reduction block, run of 16 panels).
    const int64_t runs = ceil_div(q_panels, 16);
#pragma omp parallel for schedule(static) if (K * Q > (1 << 16) && !omp_in_parallel())
    for (int64_t task = 0; task < k_blocks * runs; ++task) {
        const int64_t pc = (task / runs) * kc_step_, t0 = (task % runs) * 16;
        const int64_t kc = std::min(kc_step_, K - pc), q0 = t0 * width;
        source.pack(panels_.get() + pc * q_padded_ + t0 * kc * width, pc, kc, q0, std::min<int64_t>(16 * width, Q - q0),
                    width);
    }
}

template <typename T>
const T* PackedOperand<T>::packed_block(int64_t p0, int64_t kc, int64_t q0, int width) const {
    if (width != width_ || p0 % kc_step_ != 0 || kc != std::min(kc_step_, K_ - p0) || q0 % width != 0 || q0 >= Q_)
        return nullptr;
    return panels_.get() + p0 * q_padded_ + (q0 / width) * kc * width;
}

template <typename T>
void PackedOperand<T>::pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const {
    // A layout the panels were not packed for: read the values back out of them.
    for (int64_t t = 0; t * width < nq; ++t)
        for (int64_t p = 0; p < kc; ++p)
            for (int l = 0; l < width; ++l) {
                const int64_t q = q0 + t * width + l, pp = p0 + p;
                T v = T(0);
                if (q < q0 + nq) {
                    const int64_t pc = pp / kc_step_ * kc_step_, block_kc = std::min(kc_step_, K_ - pc);
                    v = panels_[pc * q_padded_ + (q / width_) * block_kc * width_ + (pp - pc) * width_ + q % width_];
                }
                dst[(t * kc + p) * width + l] = v;
            }
}

template class PackedOperand<float>;
template class PackedOperand<double>;

template void gemm<float>(int64_t, int64_t, int64_t, const GemmOperand<float>&, const GemmOperand<float>&,
                          float*, int64_t, bool, const float*, bool);
template void gemm<double>(int64_t, int64_t, int64_t, const GemmOperand<double>&, const GemmOperand<double>&,
                           double*, int64_t, bool, const double*, bool);

}  // namespace fastnn
