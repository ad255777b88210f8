// Our own packed GEMM (the BLIS/Goto structure), the engine under conv2d.
//
//   C (M, N) = A (M, K) * B (K, N)  [+ C when accumulating]  [+ row_bias[i] on every C[i, :] when not]
//
// Why packing: the micro-kernel reads A as MR-row panels and B as NR-column panels, each laid out
// contiguously in the order the kernel consumes them, so its loads are sequential and the panels
// stay in cache while they are reused. The operands are *packers*, not matrices: conv2d packs its
// B panels straight from the images (implicit im2col: the unfolded matrix is never stored whole),
// and a plain row-major matrix is just one kind of packer.
//
// Loop nest (C blocks of MC x NC, reduction blocks of KC):
//   for jc in N step NC:                     B block  (KC x NC)  packed once, shared by all threads
//     for pc in K step KC:
//       pack B[pc:pc+KC, jc:jc+NC]
//       for (ic, column chunk) tasks:        OpenMP splits these across threads
//         pack A[ic:ic+MC, pc:pc+KC]         (thread-local, reused while ic is unchanged)
//         for jr, ir: micro-kernel MR x NR   (accumulates in registers over the KC reduction)
//
// Register blocks: float 6 x 16 (12 ymm accumulators), double 6 x 8 (the same 12 ymm). The AVX2/FMA
// kernels live in gemm_avx2.cpp; the portable kernels (same panel layout) in gemm.cpp. On an
// AVX-512 CPU the float driver runs pairs of B panels (and of A panels) as one 12 x 32 block of 24
// zmm accumulators (gemm_avx512.cpp), on the same packed panels; the edges stay AVX2. Float also
// has kernels for a last row panel of 1-5 rows (M = 64 is 10 x 6 + 4) and for a C written once and
// larger than the last-level cache (streaming stores). With one A block (M <= MC) each thread
// prefetches the source of its next B block while the current one computes.
#pragma once
#include <cstdint>
#include <memory>

namespace fastnn {

template <typename T>
struct GemmTraits;
template <>
struct GemmTraits<float> {
    static constexpr int MR = 6, NR = 16;
    static constexpr int64_t MC = 96, KC = 256, NC = 2048;
};
template <>
struct GemmTraits<double> {
    static constexpr int MR = 6, NR = 8;
    static constexpr int64_t MC = 96, KC = 128, NC = 2048;
};

// One GEMM operand seen as Q(p, q): p runs along the reduction (K) axis, q along the free axis
// (rows of A, columns of B). pack() writes the block p in [p0, p0+kc), q in [q0, q0+nq) as
// ceil(nq / width) panels; panel t holds, for each p, `width` values Q(p, q0 + t*width + lane),
// zero where q0 + t*width + lane >= q0 + nq. (So A is packed with width MR, B with width NR.)
template <typename T>
struct GemmOperand {
    virtual ~GemmOperand() = default;
    virtual void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const = 0;
    // An operand that already holds its panels (PackedOperand) returns the block's first panel here
    // and the driver reads it in place; others return null and are packed.
    virtual const T* packed_block(int64_t /*p0*/, int64_t /*kc*/, int64_t /*q0*/, int /*width*/) const {
        return nullptr;
    }
    // The memory that packing the block p in [p0, p0+kc), q in [q0, q0+nq) reads, as `runs` runs of
    // `run_bytes` contiguous bytes from `first`, `stride_bytes` apart, so that the driver can prefetch
    // it while the block before computes. False when the operand cannot say (the driver then does not
    // prefetch).
    struct SourceRuns {
        const char* first;
        int64_t runs, run_bytes, stride_bytes;
    };
    virtual bool source_runs(int64_t /*p0*/, int64_t /*kc*/, int64_t /*q0*/, int64_t /*nq*/, SourceRuns& /*out*/) const {
        return false;
    }
};

// A strided matrix: Q(p, q) = data[p * stride_p + q * stride_q]. For row-major A (M x K) with
// leading dimension lda: stride_p = 1, stride_q = lda. For row-major B (K x N): stride_p = ldb,
// stride_q = 1. A transposed operand swaps the strides.
template <typename T>
struct StridedOperand final : GemmOperand<T> {
    const T* data;
    int64_t stride_p, stride_q;
    StridedOperand(const T* data_, int64_t stride_p_, int64_t stride_q_)
        : data(data_), stride_p(stride_p_), stride_q(stride_q_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override;
    bool source_runs(int64_t p0, int64_t kc, int64_t q0, int64_t nq,
                     typename GemmOperand<T>::SourceRuns& out) const override;
};

// The reduction block for a reduction of length K: blocks of at most KC (the driver's: the traits'
// KC), all equal (576 = 288 + 288, not 256 + 256 + 64), a multiple of 8.
template <typename T>
inline int64_t gemm_kc_step(int64_t K, int64_t KC = GemmTraits<T>::KC) {
    const int64_t blocks = (K + KC - 1) / KC;
    return ((K + blocks - 1) / blocks + 7) / 8 * 8;
}

// An operand packed once, whole, in the driver's panel layout for a reduction of length K, and
// then used by many GEMMs without repacking (the LSTM's recurrent weights, used once per time
// step). Reduction blocks are kc_step long (0: the driver's, gemm_kc_step(K); the driver reads
// the panels in place only then). Block pc (a multiple of kc_step) starts at
// pc * ceil(Q / width) * width; panel t of a block follows at t * kc * width. Packing is parallel
// (an OpenMP team) unless called inside a parallel region.
template <typename T>
class PackedOperand final : public GemmOperand<T> {
   public:
    PackedOperand(const GemmOperand<T>& source, int64_t K, int64_t Q, int width, int64_t kc_step = 0);
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override;
    const T* packed_block(int64_t p0, int64_t kc, int64_t q0, int width) const override;

   private:
    int64_t K_, Q_, kc_step_, q_padded_;
    int width_;
    std::unique_ptr<T[], void (*)(void*)> panels_;
};

// C = A B (+ C if accumulate, else + row_bias[i] if row_bias is not null). C is row-major with
// leading dimension ldc. `parallel` allows an OpenMP team (callers already inside a parallel
// region pass false and get a single-threaded GEMM with thread-local buffers).
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const GemmOperand<T>& A, const GemmOperand<T>& B, T* C,
          int64_t ldc, bool accumulate, const T* row_bias, bool parallel);

// Row-pointer block: C[0:MR, 0:NR] (leading dimension ldc) = (accumulate ? C : 0) + sum over p < kc of
// (rows[i][p], i < MR) x b[p], with b a packed NR-wide B panel. A's rows are read in place (no
// packing): the AVX2 kernel for float, portable loops otherwise.
template <typename T>
void gemm_rows_kernel(int64_t kc, const T* const* rows, const T* b, T* c, int64_t ldc, bool accumulate);

// The same for `panels` B panels side by side (panel t at b + t * b_step, C columns t * NR on), and
// row_count = MR or 2 MR rows (rows[0..row_count), C rows 0..row_count): on AVX-512, B panels two
// at a time (6 x 32 blocks), and 2 MR rows by a lone panel in one 12 x 16 block.
// gemm_rows_panels_rows(panels) says which row count runs best: 2 MR where that 12 x 16 kernel does.
template <typename T>
int gemm_rows_panels_rows(int64_t panels);
template <typename T>
void gemm_rows_panels(int64_t kc, const T* const* rows, int row_count, const T* b, int64_t panels, int64_t b_step, T* c,
                      int64_t ldc, bool accumulate);
void sgemm_kernel_rows_wide_avx512(int64_t kc, const float* const* rows, const float* b, int64_t b_step, float* c,
                                   int64_t ldc, bool accumulate);
// A last, narrow B panel (its packed lanes past `cols` are zero, 1 <= cols < 16) against a_panels = 4,
// 2 or 1 A panels: C's rows are written (or added to) in their first `cols` columns only.
void sgemm_kernel_tall_narrow_avx512(int a_panels, int cols, int64_t kc, const float* a, int64_t a_step, const float* b,
                                     float* c, int64_t ldc, bool accumulate, const float* row_bias);
// 12 rows (rows[0..11]) by one B panel, AVX-512.
void sgemm_kernel_rows12_avx512(int64_t kc, const float* const* rows, const float* b, float* c, int64_t ldc,
                                bool accumulate);

// A GEMM that writes its C once (one reduction block, not accumulated) uses streaming stores when C
// has at least this many bytes: by default just over the last-level cache (at least 8 MiB), since a
// C that fits stays there and is cheaper written in cache (on Zen 3, where a streaming store must
// first evict a line that is cached, the LSTM cell's 32 MiB weight gradient, written into the same
// reused buffer every step, took 7.5 ms streamed and 6.3 ms not). The setter (for tests: it reaches
// the streaming kernels on any machine) returns the previous value.
int64_t gemm_stream_bytes();
int64_t set_gemm_stream_bytes(int64_t bytes);

// Per-thread scratch memory, 64-byte aligned, kept between calls (slot = what it is for).
enum ScratchSlot { kScratchPackA, kScratchPackB, kScratchConvColumns, kScratchConvWeightGrad, kScratchConvRow,
                   kScratchSlots };
template <typename T>
T* thread_scratch(int slot, int64_t count);

// Micro-kernels: C[0:MR, 0:NR] (ldc) = (accumulate ? C : row_bias broadcast or 0) + sum_p a[p] b[p]^T
// over kc steps of packed panels a (MR per p) and b (NR per p). row_bias may be null.
void sgemm_kernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       bool accumulate, const float* row_bias);
// The first `rows` rows (1..5) of the float block only (the last panel of an M that is not a multiple of 6).
void sgemm_kernel_rows_partial_avx2(int rows, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                    bool accumulate, const float* row_bias);
void sgemm_kernel_stream_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                              bool accumulate, const float* row_bias);
void stream_fence_avx2();
void dgemm_kernel_avx2(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       bool accumulate, const double* row_bias);

// AVX-512 (gemm_avx512.cpp): C[0:6*AP, 0:32] from AP = 2 (wide12) or 1 (wide6) packed A panels,
// `a_step` floats apart, and the two packed B panels b and b + b_step, side by side. Same contract
// as sgemm_kernel_avx2 otherwise; the stream variants as sgemm_kernel_stream_avx2.
using WideKernel = void (*)(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                            int64_t ldc, bool accumulate, const float* row_bias);
void sgemm_kernel_wide12_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias);
void sgemm_kernel_wide6_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                               int64_t ldc, bool accumulate, const float* row_bias);
void sgemm_kernel_wide12_stream_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                                       float* c, int64_t ldc, bool accumulate, const float* row_bias);
void sgemm_kernel_wide6_stream_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                                      float* c, int64_t ldc, bool accumulate, const float* row_bias);
// The first `rows` (1..5) rows of one A panel against two B panels (a last, short A panel).
void sgemm_kernel_wide_rows_avx512(int rows, int64_t kc, const float* a, const float* b, int64_t b_step, float* c,
                                   int64_t ldc, bool accumulate, const float* row_bias);
// One B panel (16 columns) and AP = 4 (tall24) or 2 (tall12) A panels.
void sgemm_kernel_tall24_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias);
void sgemm_kernel_tall12_avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step, float* c,
                                int64_t ldc, bool accumulate, const float* row_bias);

// C (a_panels * MR x b_panels * NR, ldc) = (accumulate ? C : 0) + A B over kc steps of whole packed
// panels: A panel ip at a + ip * a_step, B panel jp at b + jp * b_step. On AVX-512 the panels go
// in groups through the wide and tall kernels, else block by block through sgemm_kernel_avx2.
// (Winograd's per-term GEMMs, whose panels are laid out by the transforms.) Needs use_avx2().
void sgemm_whole_panels_avx(int64_t kc, const float* a, int64_t a_panels, int64_t a_step, const float* b,
                            int64_t b_panels, int64_t b_step, float* c, int64_t ldc, bool accumulate);

// Indirect-B micro-kernel: tile (MR x NR, row-major) = sum_p a[p] (MR) x (NR values at base + offsets[p]).
void sgemm_kernel_indirect_avx2(int64_t kc, const float* a, const float* base, const int64_t* offsets,
                                float* tile);

// The same with one zmm per tile row (AVX-512).
void sgemm_kernel_indirect_avx512(int64_t kc, const float* a, const float* base, const int64_t* offsets,
                                  float* tile);

// Row-pointer micro-kernel: C[0:MR, 0:NR] (ldc) = (accumulate ? C : 0) + sum_p (rows[i][p], i < MR) x b[p]
// (packed NR panel).
void sgemm_kernel_rows_avx2(int64_t kc, const float* const* rows, const float* b, float* c, int64_t ldc,
                            bool accumulate);

// Gathered-A micro-kernel: tile (MR x NR) = (accumulate ? tile : 0) + sum_p (base[positions[i] + offsets[p]], i < MR) x b[p].
void sgemm_kernel_gather_a_avx2(int64_t kc, const float* base, const int64_t* positions, const int64_t* offsets,
                                const float* b, float* tile, bool accumulate);

// The same for 12 positions (two blocks of 6, tile 12 x 16), AVX-512.
void sgemm_kernel_gather_a12_avx512(int64_t kc, const float* base, const int64_t* positions, const int64_t* offsets,
                                    const float* b, float* tile, bool accumulate);

// One panel of `width` lanes from runs along p: panel[p*width + l] = src[l*stride_q + p*stride_p] for
// l < lanes, 0 for lanes <= l < width; p in [0, kc). The transposing case of packing (AVX2 for float
// with stride_p == 1).
void pack_panel_transposed(const float* src, int64_t stride_p, int64_t stride_q, int64_t kc, int64_t lanes,
                           int width, float* panel);
void pack_panel_transposed(const double* src, int64_t stride_p, int64_t stride_q, int64_t kc, int64_t lanes,
                           int width, double* panel);
void pack_panel_transposed_avx2(const float* src, int64_t stride_q, int64_t kc, int64_t lanes, int width,
                                float* panel);

}  // namespace fastnn
