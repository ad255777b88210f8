#include "lstm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "buffer_cache.h"
#include "cpu_features.h"
#include "gemm.h"

namespace fastnn {

// Below this many gate values a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;

template <typename T>
static inline T sigmoid(T a) {
    return (T)1 / ((T)1 + std::exp(-a));
}

// Portable row kernels: one batch row, hidden units [k0, k1).
template <typename T>
static int64_t forward_row(const T* ax, const T* ah, const T* b, const T* c_prev, T* gates, T* c, T* h, T* tanh_c,
                           int64_t hidden, int64_t k0, int64_t k1) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return lstm_forward_row_avx2(ax, ah, b, c_prev, gates, c, h, tanh_c, hidden, k0, k1);
    }
#endif
    int64_t nan_count = 0;
    for (int64_t k = k0; k < k1; ++k) {
        // All four pre-activations are read before any gate is written: gates may alias ax.
        // (ah and b may be null: the layer path has added them into ax already.)
        T a[4];
        for (int gate = 0; gate < 4; ++gate) {
            const int64_t at = gate * hidden + k;
            a[gate] = ax[at];
            if (ah) a[gate] += ah[at];
            if (b) a[gate] += b[at];
        }
        const T a_i = a[0], a_f = a[1], a_o = a[2], a_g = a[3];
        const T i = sigmoid(a_i), f = sigmoid(a_f), o = sigmoid(a_o), g = std::tanh(a_g);
        const T c_new = f * c_prev[k] + i * g;
        const T tc = std::tanh(c_new);
        gates[k] = i;
        gates[hidden + k] = f;
        gates[2 * hidden + k] = o;
        gates[3 * hidden + k] = g;
        c[k] = c_new;
        tanh_c[k] = tc;
        h[k] = o * tc;
        nan_count += (c_new != c_new) + (h[k] != h[k]);
    }
    return nan_count;
}

template <typename T>
static void backward_row(const T* dh, const T* dc, const T* gates, const T* c_prev, const T* tanh_c, T* da,
                         T* dc_prev, T* db, int64_t hidden, int64_t k0, int64_t k1) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return lstm_backward_row_avx2(dh, dc, gates, c_prev, tanh_c, da, dc_prev, db, hidden, k0, k1);
    }
#endif
    for (int64_t k = k0; k < k1; ++k) {
        const T i = gates[k], f = gates[hidden + k], o = gates[2 * hidden + k], g = gates[3 * hidden + k];
        const T tc = tanh_c[k];
        const T dh_k = dh ? dh[k] : (T)0;
        const T dc_total = (dc ? dc[k] : (T)0) + dh_k * o * ((T)1 - tc * tc);
        const T da_i = dc_total * g * i * ((T)1 - i);
        const T da_f = dc_total * c_prev[k] * f * ((T)1 - f);
        const T da_o = dh_k * tc * o * ((T)1 - o);
        const T da_g = dc_total * i * ((T)1 - g * g);
        da[k] = da_i;
        da[hidden + k] = da_f;
        da[2 * hidden + k] = da_o;
        da[3 * hidden + k] = da_g;
        dc_prev[k] = dc_total * f;
        if (db) {
            db[k] += da_i;
            db[hidden + k] += da_f;
            db[2 * hidden + k] += da_o;
            db[3 * hidden + k] += da_g;
        }
    }
}

template <typename T>
int64_t lstm_cell_forward_pointwise(const T* ax, const T* ah, const T* b, const T* c_prev, T* gates, T* c, T* h,
                                    T* tanh_c, int64_t batch, int64_t hidden) {
    int64_t nan_count = 0;
#pragma omp parallel reduction(+ : nan_count) if (4 * batch * hidden > kParallelThreshold)
    {
        int64_t k0, k1;
        team_block(hidden, 8, k0, k1);  // whole vectors of the row kernels
        for (int64_t n = 0; k0 < k1 && n < batch; ++n) {
            const int64_t row4 = n * 4 * hidden, row = n * hidden;
            nan_count += forward_row(ax + row4, ah + row4, b, c_prev + row, gates + row4, c + row, h + row,
                                     tanh_c + row, hidden, k0, k1);
        }
    }
    return nan_count;
}

template <typename T>
void lstm_cell_backward_pointwise(const T* dh, const T* dc, const T* gates, const T* c_prev, const T* tanh_c, T* da,
                                  T* dc_prev, T* db, int64_t batch, int64_t hidden) {
#pragma omp parallel if (4 * batch * hidden > kParallelThreshold)
    {
        int64_t k0, k1;
        team_block(hidden, 8, k0, k1);  // whole vectors of the row kernels
        for (int64_t gate = 0; gate < 4; ++gate) std::fill(db + gate * hidden + k0, db + gate * hidden + k1, (T)0);
        for (int64_t n = 0; k0 < k1 && n < batch; ++n) {
            const int64_t row4 = n * 4 * hidden, row = n * hidden;
            backward_row(dh ? dh + row : nullptr, dc ? dc + row : nullptr, gates + row4, c_prev + row, tanh_c + row,
                         da + row4, dc_prev + row, db, hidden, k0, k1);
        }
    }
}

// Uninitialised scratch (every element is written before it is read), from the buffer cache: the
// backward's 2 MB of per-step dh blocks would otherwise arrive as fresh pages on every call.
template <typename T>
static std::unique_ptr<T[], CachedFree> scratch(int64_t count) {
    return cached_buffer<T>((size_t)count);
}

// [dx | dh_prev]^T (D + H, B) = [Wx; Wh] da^T: both input gradients of a cell step as one product
// that reads the weights in place. Row r of [Wx; Wh] is a contiguous run of 4H values, so the
// row-pointer kernel broadcasts straight from it, and only da^T (4H x B, small) is packed. (As
// da Wx^T with Wx^T as the packed operand, all the weights went through a transposing pack on every
// call: 17.9 -> 15.4 ms for both products at B = 64, D = H = 1024.) Threads split the rows: each
// reads its own part of the weights, once, six rows at a time.
//
// Reduction blocks of up to 1024 steps: the six rows' run (24 KB) stays in L1 while the B panels
// stream past it from L2. (256-step blocks ran at 63 GFLOP/s, 512 to 4096 at 68-70.)
static constexpr int64_t kInputGradsKc = 1024;

template <typename T>
void lstm_cell_input_grads(const T* da, const T* Wx, const T* Wh, T* dx, T* dh_prev, int64_t batch, int64_t input,
                           int64_t hidden) {
    constexpr int MR = GemmTraits<T>::MR, NR = GemmTraits<T>::NR;
    const int64_t G = 4 * hidden, M = input + hidden;
    const int64_t panels = (batch + NR - 1) / NR, width = panels * NR;
    const int64_t kc_step = gemm_kc_step<T>(G, kInputGradsKc);
    const int64_t m_blocks = (M + MR - 1) / MR;
    // B = da^T, Q(p = gate row, q = n) = da[n * 4H + row], in NR-wide panels (packed by a team).
    const PackedOperand<T> da_t(StridedOperand<T>(da, 1, G), G, batch, NR, kc_step);
#pragma omp parallel if (M * G * batch >= (int64_t(1) << 20))
    {
        auto sums = scratch<T>(MR * width);  // one row block of the result, (MR, width)
#pragma omp for schedule(static)
        for (int64_t mb = 0; mb < m_blocks; ++mb) {
            const T* rows[MR];
            for (int i = 0; i < MR; ++i) {
                const int64_t r = std::min(mb * MR + i, M - 1);  // a short last block repeats its last row
                rows[i] = r < input ? Wx + r * G : Wh + (r - input) * G;
            }
            for (int64_t pc = 0; pc < G; pc += kc_step) {
                const int64_t kc = std::min(kc_step, G - pc);
                const T* run[MR];
                for (int i = 0; i < MR; ++i) run[i] = rows[i] + pc;
                const T* block = da_t.packed_block(pc, kc, 0, NR);
                gemm_rows_panels<T>(kc, run, MR, block, panels, kc * NR, sums.get(), width, pc > 0);
            }
            for (int i = 0; i < MR && mb * MR + i < M; ++i) {
                const int64_t r = mb * MR + i;
                T* out = r < input ? dx + r : dh_prev + (r - input);
                const int64_t ld = r < input ? input : hidden;
                for (int64_t n = 0; n < batch; ++n) out[n * ld] = sums[i * width + n];
            }
        }
    }
}

template void lstm_cell_input_grads<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                           int64_t);
template void lstm_cell_input_grads<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                            int64_t, int64_t);

// ------------------------------------------------------------------------- the layer
// dst (cols, rows) = src (rows, cols)^T, both row-major.
template <typename T>
static void transpose(const T* src, int64_t rows, int64_t cols, T* dst) {
    constexpr int64_t tile = 16;
    for (int64_t r0 = 0; r0 < rows; r0 += tile)
        for (int64_t c0 = 0; c0 < cols; c0 += tile)
            for (int64_t r = r0; r < std::min(rows, r0 + tile); ++r)
                for (int64_t c = c0; c < std::min(cols, c0 + tile); ++c) dst[c * rows + r] = src[r * cols + c];
}

// True when every element is +0 or -0. A zero initial state contributes nothing to the recurrent
// products (0 * w = 0 for every finite weight; the forward refuses non-finite results anyway), so
// those GEMMs are skipped.
template <typename T>
static bool all_zero(const T* v, int64_t count) {
    bool zero = true;
    for (int64_t k = 0; k < count; ++k) zero &= v[k] == T(0);
    return zero;
}

// Rows [offset, offset + ...) of another operand: Q(p, q) = base Q(p, q + offset). With offset a
// multiple of the panel width, a PackedOperand's panels are still read in place.
template <typename T>
struct RowRange final : GemmOperand<T> {
    const GemmOperand<T>& base;
    int64_t offset;
    RowRange(const GemmOperand<T>& base_, int64_t offset_) : base(base_), offset(offset_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override {
        base.pack(dst, p0, kc, q0 + offset, nq, width);
    }
    const T* packed_block(int64_t p0, int64_t kc, int64_t q0, int width) const override {
        return base.packed_block(p0, kc, q0 + offset, width);
    }
};

// A per-step row-major (rows, B) block of the step-major arrays as a B operand, Q(p = row, q = n) =
// data[row*B + n]. At B = NR it is already one packed B panel, whatever the reduction blocking (block
// pc starts at row pc, row p at p * NR), so the per-step (4H, B) and (H, B) blocks are read in place
// instead of being copied into panels every step. (The micro-kernel loads packed panels with aligned
// loads: a block that is not 32-byte aligned -- a small array from NumPy's allocator -- is packed as
// usual, as is any other B.)
template <typename T>
struct RowBlock final : GemmOperand<T> {
    const T* data;
    int64_t batch;
    RowBlock(const T* data_, int64_t batch_) : data(data_), batch(batch_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override {
        StridedOperand<T>(data, batch, 1).pack(dst, p0, kc, q0, nq, width);
    }
    const T* packed_block(int64_t p0, int64_t /*kc*/, int64_t q0, int width) const override {
        constexpr int NR = GemmTraits<T>::NR;
        const bool aligned = reinterpret_cast<uintptr_t>(data) % 32 == 0;
        return aligned && batch == NR && width == NR && q0 == 0 ? data + p0 * NR : nullptr;
    }
};

// The gate gradients over all steps as the weight GEMMs' B operand, dG^T: Q(p = t*B + n, q = row) =
// dgates[t*4H*B + row*B + n]. Each step's run of p is a transposing copy of B contiguous values per
// row.
template <typename T>
struct StepMajorRows final : GemmOperand<T> {
    const T* data;
    int64_t batch, rows;
    StepMajorRows(const T* data_, int64_t batch_, int64_t rows_) : data(data_), batch(batch_), rows(rows_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override {
        for (int64_t j = 0; j * width < nq; ++j) {
            T* panel = dst + j * kc * width;
            const int64_t lanes = std::min<int64_t>(width, nq - j * width), q = q0 + j * width;
            for (int64_t p = p0; p < p0 + kc;) {
                const int64_t t = p / batch, n = p % batch, run = std::min(batch - n, p0 + kc - p);
                pack_panel_transposed(data + (t * rows + q) * batch + n, 1, batch, run, lanes, width,
                                      panel + (p - p0) * width);
                p += run;
            }
        }
    }
};

// Every step's cell inputs as the weight GEMM's A operand, [X, H_prev]^T: Q(p = t*B + n, q) = xs[p*D + q]
// for q < D, else h_{t-1}[n, q - D] -- h0 at t = 0, then hs. A panel's lanes are runs of one row of xs
// or of an h (only the panel across q = D mixes the two).
template <typename T>
struct LayerInputs final : GemmOperand<T> {
    const T *xs, *h0, *hs;
    int64_t batch, input, hidden;
    LayerInputs(const T* xs_, const T* h0_, const T* hs_, int64_t batch_, int64_t input_, int64_t hidden_)
        : xs(xs_), h0(h0_), hs(hs_), batch(batch_), input(input_), hidden(hidden_) {}
    void pack(T* dst, int64_t p0, int64_t kc, int64_t q0, int64_t nq, int width) const override {
        for (int64_t j = 0; j * width < nq; ++j) {
            T* panel = dst + j * kc * width;
            const int64_t q = q0 + j * width, lanes = std::min<int64_t>(width, nq - j * width);
            for (int64_t p = p0; p < p0 + kc; ++p) {
                const T* x_row = xs + p * input;                                            // xs[p, :]
                const T* h_row = p < batch ? h0 + p * hidden : hs + (p - batch) * hidden;  // h_{t-1}[n, :]
                T* out = panel + (p - p0) * width;
                if (q + lanes <= input)
                    std::copy(x_row + q, x_row + q + lanes, out);
                else if (q >= input)
                    std::copy(h_row + (q - input), h_row + (q - input) + lanes, out);
                else
                    for (int64_t l = 0; l < lanes; ++l) out[l] = q + l < input ? x_row[q + l] : h_row[q + l - input];
                std::fill(out + lanes, out + width, T(0));
            }
        }
    }
};

// The layer's time loops run in one parallel region per direction, each thread owning the hidden
// units [k0, k1) (team_block, in whole 6-row GEMM panels): the rows of the per-step GEMMs that produce
// its units' values, and the pointwise pass over them, with one barrier per step. (One GEMM over
// all 4H rows split its rows by gate quarters, so a thread's pointwise pass read three quarters of
// its gates from the other core's cache, and each step paid three fork/joins.)
//
// The gates and their gradients are step-major, (T, 4H, B): one step's block is contiguous. (Laid
// out (4H, T*B), a step's values were 4H runs of B values 4 KB apart at T*B = 1024: every run in the
// same L1 set and on its own page, and the pointwise passes took a fifth of the loops' time.)

// The pointwise passes of one step in the transposed layout: units [k0, k1) of each gate are one
// contiguous run of (k1 - k0) * B values (unit k's B values at k * B), with the gates H * B apart, so
// one row-kernel call covers the thread's whole share. (One call per unit, B = 16 values each, spent
// more in the calls than in the math.)
template <typename T>
static int64_t forward_step(T* g, const T* c_prev, T* c, T* tanh_c, T* h, int64_t batch, int64_t hidden, int64_t k0,
                            int64_t k1) {
    return k0 < k1 ? forward_row<T>(g, nullptr, nullptr, c_prev, g, c, h, tanh_c, hidden * batch, k0 * batch,
                                    k1 * batch)
                   : 0;
}

template <typename T>
static void backward_step(const T* dh, T* dc, const T* g, const T* c_prev, const T* tanh_c, T* dg, int64_t batch,
                          int64_t hidden, int64_t k0, int64_t k1) {
    if (k0 < k1)
        backward_row<T>(dh, dc, g, c_prev, tanh_c, dg, dc, nullptr, hidden * batch, k0 * batch, k1 * batch);
}

template <typename T>
int64_t lstm_layer_forward(const T* xs, const T* h0, const T* c0, const T* Wx, const T* Wh, const T* b, T* gates,
                           T* c_all, T* tanh_c_all, T* h_all, T* hs, T* c_last, const LstmLayerShape& s) {
    const int64_t steps = s.steps, batch = s.batch, H = s.hidden, G = 4 * H, D = s.input;
    const int64_t state = H * batch;  // one step's (H, B) block
    const int64_t block = G * batch;  // one step's (4H, B) block of gates
    const int threads = get_num_threads();
    // G_t (4H, B) = Wx^T x_t^T + b for every step, the steps split across threads (each GEMM on one
    // thread; with fewer steps than threads, each GEMM uses the team instead). A = Wx^T: Q(p = d,
    // q = gate row) = Wx[d*4H + row], packed once; B = x_t^T: Q(p = d, q = n) = xs[(t*B + n)*D + d].
    const bool step_team = steps < threads;
    {
        const PackedOperand<T> wx_t(StridedOperand<T>(Wx, G, 1), D, G, GemmTraits<T>::MR);
#pragma omp parallel for schedule(static) num_threads(threads) if (!step_team && threads > 1 && steps * block * D >= kParallelThreshold)
        for (int64_t t = 0; t < steps; ++t)
            gemm<T>(G, batch, D, wx_t, StridedOperand<T>(xs + t * batch * D, 1, D), gates + t * block, batch, false, b,
                    step_team);
    }
    // A = Wh^T, one operand per gate q (H, H): Q(p = k, q = unit) = Wh[k*4H + q*H + unit], packed
    // once for all steps.
    std::unique_ptr<PackedOperand<T>> wh_t[4];
    for (int q = 0; q < 4; ++q)
        wh_t[q] = std::make_unique<PackedOperand<T>>(StridedOperand<T>(Wh + q * H, G, 1), H, H, GemmTraits<T>::MR);
    auto c0_t = scratch<T>(state);
    transpose(c0, batch, H, c0_t.get());
    int64_t nan_count = 0;
    const bool h0_zero = all_zero(h0, state);  // then step 0 has no recurrent term
#pragma omp parallel num_threads(threads) reduction(+ : nan_count) if (threads > 1 && 4 * state * H >= kParallelThreshold)
    {
        int64_t k0, k1;
        team_block(H, GemmTraits<T>::MR, k0, k1);  // whole GEMM row panels
        for (int64_t t = 0; t < steps; ++t) {
            T* g_t = gates + t * block;
            // G_t[q*H + k] += (Wh^T h_{t-1}^T)[q*H + k] for this thread's units k; h_{t-1}^T is h0 read
            // transposed, then the previous (H, B) block.
            if (k0 < k1 && (t > 0 || !h0_zero)) {
                // Packed once here for the four gates' GEMMs, which read it in place (at B = NR the
                // previous block is a panel already).
                std::optional<RowBlock<T>> block_prev;
                std::optional<PackedOperand<T>> packed;
                const GemmOperand<T>* h_prev;
                if (t == 0)
                    h_prev = &packed.emplace(StridedOperand<T>(h0, 1, H), H, batch, GemmTraits<T>::NR);
                else if (batch == GemmTraits<T>::NR)
                    h_prev = &block_prev.emplace(h_all + (t - 1) * state, batch);
                else
                    h_prev = &packed.emplace(RowBlock<T>(h_all + (t - 1) * state, batch), H, batch,
                                             GemmTraits<T>::NR);
                for (int q = 0; q < 4; ++q)
                    gemm<T>(k1 - k0, batch, H, RowRange<T>(*wh_t[q], k0), *h_prev, g_t + (q * H + k0) * batch, batch,
                            true, nullptr, false);
            }
            const T* c_prev = t == 0 ? c0_t.get() : c_all + (t - 1) * state;
            nan_count += forward_step(g_t, c_prev, c_all + t * state, tanh_c_all + t * state, h_all + t * state,
                                      batch, H, k0, k1);
#pragma omp barrier
        }
    }
#pragma omp parallel for schedule(static) if (steps * state >= kParallelThreshold)
    for (int64_t t = 0; t < steps; ++t) transpose(h_all + t * state, H, batch, hs + t * batch * H);
    transpose(c_all + (steps - 1) * state, H, batch, c_last);
    return nan_count;
}

template <typename T>
void lstm_layer_backward(const T* dhs, const T* dh_last, const T* dc_last, const T* xs, const T* h0, const T* c0,
                         const T* Wx, const T* Wh, const T* gates, const T* c_all, const T* tanh_c_all, const T* hs,
                         T* dgates, T* dxs, T* dh0, T* dc0, T* dW, T* db, const LstmLayerShape& s) {
    const int64_t steps = s.steps, batch = s.batch, H = s.hidden, G = 4 * H, D = s.input, cols = steps * batch;
    const int64_t state = H * batch, block = G * batch;
    // dh_t^T for every step: dhs transposed, plus dh_last at the last step; the recurrent GEMM adds
    // into block t - 1 as the loop goes back. One more block (index -1 -> dh0^T) at the front.
    auto dh_t = scratch<T>((steps + 1) * state);
    T* dh_blocks = dh_t.get() + state;
#pragma omp parallel for schedule(static) if (steps * state >= kParallelThreshold)
    for (int64_t t = 0; t < steps; ++t) {
        T* dh_block = dh_blocks + t * state;
        if (dhs)
            transpose(dhs + t * batch * H, batch, H, dh_block);
        else
            std::fill(dh_block, dh_block + state, T(0));
    }
    auto scratch_state = scratch<T>(2 * state);
    T* dc = scratch_state.get();       // dc_t^T, updated in place to dc_{t-1}^T
    T* c0_t = dc + state;
    if (dc_last)
        transpose(dc_last, batch, H, dc);
    else
        std::fill(dc, dc + state, T(0));
    if (dh_last) {
        T* last = dh_blocks + (steps - 1) * state;
        for (int64_t n = 0; n < batch; ++n)
            for (int64_t k = 0; k < H; ++k) last[k * batch + n] += dh_last[n * H + k];
    }
    transpose(c0, batch, H, c0_t);
    // A = Wh (H, 4H): Q(p = gate row, q = k) = Wh[k*4H + row], packed once for all steps.
    const PackedOperand<T> wh(StridedOperand<T>(Wh, 1, G), G, H, GemmTraits<T>::MR);
    const int threads = get_num_threads();
#pragma omp parallel num_threads(threads) if (threads > 1 && 4 * state * H >= kParallelThreshold)
    {
        int64_t k0, k1;
        team_block(H, GemmTraits<T>::MR, k0, k1);  // whole GEMM row panels
        for (int64_t t = steps - 1; t >= 0; --t) {
            const T* c_prev = t == 0 ? c0_t : c_all + (t - 1) * state;
            T* dg_t = dgates + t * block;
            backward_step(dh_blocks + t * state, dc, gates + t * block, c_prev, tanh_c_all + t * state, dg_t, batch, H,
                          k0, k1);
#pragma omp barrier
            // dh_{t-1}^T (+)= Wh dG_t for this thread's units (rows k0..k1), which only it reads next:
            // B = dG_t, Q(p = gate row, q = n) = dg_t[row*B + n].
            if (k0 < k1)
                gemm<T>(k1 - k0, batch, G, RowRange<T>(wh, k0), RowBlock<T>(dg_t, batch),
                        dh_blocks + (t - 1) * state + k0 * batch, batch, t > 0, nullptr, false);
        }
    }
    transpose(dh_t.get(), H, batch, dh0);
    transpose(dc, H, batch, dc0);
    // db = sums of dG over steps and batch; dX_t (B, D) = (Wx dG_t)^T for every step, the steps split
    // across threads as in the forward (A = Wx: Q(p = gate row, q = d) = Wx[d*4H + row], packed once;
    // each thread's (D, B) result transposed into dxs).
    {
        const bool step_team = steps < threads;
        const PackedOperand<T> wx(StridedOperand<T>(Wx, 1, G), G, D, GemmTraits<T>::MR);
#pragma omp parallel num_threads(threads) if (!step_team && threads > 1 && steps * block * D >= kParallelThreshold)
        {
#pragma omp for schedule(static) nowait
            for (int64_t row0 = 0; row0 < G; row0 += 64) {
                // Eight interleaved partial sums per row (a single running sum waits on the add latency
                // at every element), steps in order: a fixed summation order.
                const int64_t rows = std::min<int64_t>(64, G - row0);
                T part[64][8] = {};
                for (int64_t t = 0; t < steps; ++t)
                    for (int64_t r = 0; r < rows; ++r) {
                        const T* g = dgates + t * block + (row0 + r) * batch;
                        for (int64_t n = 0; n < batch; ++n) part[r][n & 7] += g[n];
                    }
                for (int64_t r = 0; r < rows; ++r) {
                    const T* u = part[r];
                    db[row0 + r] = ((u[0] + u[4]) + (u[1] + u[5])) + ((u[2] + u[6]) + (u[3] + u[7]));
                }
            }
            auto dx_t = scratch<T>(D * batch);
#pragma omp for schedule(static)
            for (int64_t t = 0; t < steps; ++t) {
                gemm<T>(D, batch, G, wx, RowBlock<T>(dgates + t * block, batch), dx_t.get(), batch, false, nullptr,
                        step_team);
                transpose(dx_t.get(), D, batch, dxs + t * batch * D);
            }
        }
    }
    // [dWx; dWh] (D + H, 4H) = [X, [h0; hs[:-1]]]^T dG^T over all T*B columns, one GEMM: dG^T is
    // packed once for both (two GEMMs packed it twice, and the D = 64 rows of dWx alone made a thin
    // GEMM that packs all of B per thread). B = dG^T: Q(p = t*B + n, q = gate row).
    gemm<T>(D + H, G, cols, LayerInputs<T>(xs, h0, hs, batch, D, H), StepMajorRows<T>(dgates, batch, G), dW, G, false,
            nullptr, true);
}

template int64_t lstm_layer_forward<float>(const float*, const float*, const float*, const float*, const float*,
                                           const float*, float*, float*, float*, float*, float*, float*,
                                           const LstmLayerShape&);
template int64_t lstm_layer_forward<double>(const double*, const double*, const double*, const double*,
                                            const double*, const double*, double*, double*, double*, double*,
                                            double*, double*, const LstmLayerShape&);
template void lstm_layer_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                         const float*, const float*, const float*, const float*, const float*,
                                         const float*, const float*, float*, float*, float*, float*, float*, float*,
                                         const LstmLayerShape&);
template void lstm_layer_backward<double>(const double*, const double*, const double*, const double*,
                                          const double*, const double*, const double*, const double*, const double*,
                                          const double*, const double*, const double*, double*, double*, double*,
                                          double*, double*, double*, const LstmLayerShape&);

template int64_t lstm_cell_forward_pointwise<float>(const float*, const float*, const float*, const float*, float*,
                                                    float*, float*, float*, int64_t, int64_t);
template int64_t lstm_cell_forward_pointwise<double>(const double*, const double*, const double*, const double*,
                                                     double*, double*, double*, double*, int64_t, int64_t);
template void lstm_cell_backward_pointwise<float>(const float*, const float*, const float*, const float*, const float*,
                                                  float*, float*, float*, int64_t, int64_t);
template void lstm_cell_backward_pointwise<double>(const double*, const double*, const double*, const double*,
                                                   const double*, double*, double*, double*, int64_t, int64_t);

}  // namespace fastnn
