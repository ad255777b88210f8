#include "pool.h"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu_features.h"

namespace fastnn {

// Below this many input elements a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;

// Outputs of at least this many bytes (about a last-level cache) are written with streaming stores.
static constexpr int64_t kStreamBytes = int64_t(8) << 20;

// Copies a finished plane from the thread's scratch to an output larger than the last-level cache,
// with streaming stores where there are (float, AVX2).
template <typename T>
static void store_plane(const T* scratch, T* dst, int64_t count) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return stream_copy_avx2(scratch, dst, count);
    }
#endif
    std::copy(scratch, scratch + count, dst);
}

// The rows of window i that lie inside the plane: [lo, hi).
static inline void window_span(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t extent,
                               int64_t& lo, int64_t& hi) {
    const int64_t start = i * stride - pad;
    lo = std::max<int64_t>(start, 0);
    hi = std::min<int64_t>(start + kernel, extent);
}

// Output columns [first, last) whose windows need no clipping, when there are at least 8 of them:
// the AVX2 row kernels take those.
static inline void interior_columns(const Pool2dShape& s, int64_t& first, int64_t& last) {
    const int64_t room = s.width - s.kernel_w + s.pad_w;  // the last window start that fits, plus pad
    first = (s.pad_w + s.stride_w - 1) / s.stride_w;
    last = room < 0 ? 0 : std::min(room / s.stride_w + 1, s.out_width);
    if (last - first < 8) first = last = 0;  // the vector kernels need at least one block of 8
}

template <typename T>
static inline void max_window(const T* plane, int64_t width, int64_t r0, int64_t r1, int64_t c0,
                              int64_t c1, T& best, int32_t& best_index) {
    // -inf start, strict >: the first maximum wins ties; NaN always wins, so it reaches the output.
    T m = -std::numeric_limits<T>::infinity();
    int64_t at = r0 * width + c0;
    for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) {
            const T v = plane[r * width + c];
            if (v > m || v != v) {
                m = v;
                at = r * width + c;
            }
        }
    best = m;
    best_index = (int32_t)at;
}

// The forward driver both poolings share: planes in parallel, and in each output row the interior
// columns [first, last) through the AVX2 row kernel (float, AVX2 CPUs), the rest window by window.
// Both write one plane's outputs at `dst` (and argmaxes at `arg`, max pooling only):
//   vector_row(plane, dst, arg, i, r0, r1, first, last) -> NaN count of that run of outputs
//   cell(plane, dst, arg, i, j, r0, r1, c0, c1)          -> 1 if output (i, j) is NaN
// Outputs larger than the last-level cache are built plane by plane in a cache-resident scratch
// plane and copied out with streaming stores: written in place, every output line would first be
// read from memory (the store's read-for-ownership), 25-33% more traffic for the forward.
template <typename T, typename VectorRow, typename Cell>
static int64_t pool_forward(const T* x, T* out, int32_t* argmax, const Pool2dShape& s, VectorRow vector_row,
                            Cell cell) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    int64_t first = 0, last = 0;
    interior_columns(s, first, last);
    bool vector_rows = false;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    vector_rows = std::is_same_v<T, float> && use_avx2();
#endif
    const bool stream = vector_rows && s.planes * out_plane * (int64_t)sizeof(T) >= kStreamBytes;
    int64_t nan_count = 0;
#pragma omp parallel reduction(+ : nan_count) if (s.planes * in_plane > kParallelThreshold)
    {
        std::vector<T> scratch_out(stream ? (size_t)out_plane : 0);
        std::vector<int32_t> scratch_arg(stream && argmax ? (size_t)out_plane : 0);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < s.planes; ++p) {
            const T* plane = x + p * in_plane;
            T* dst = stream ? scratch_out.data() : out + p * out_plane;
            int32_t* arg = argmax ? (stream ? scratch_arg.data() : argmax + p * out_plane) : nullptr;
            for (int64_t i = 0; i < s.out_height; ++i) {
                int64_t r0, r1;
                window_span(i, s.stride_h, s.pad_h, s.kernel_h, s.height, r0, r1);
                // Columns [skip_lo, skip_hi) went to the vector kernel; the scalar loop does the rest.
                int64_t skip_lo = 0, skip_hi = 0;
                if (vector_rows) {
                    nan_count += vector_row(plane, dst, arg, i, r0, r1, first, last);
                    skip_lo = first;
                    skip_hi = last;
                }
                for (int64_t j = 0; j < s.out_width; ++j) {
                    if (j == skip_lo && skip_hi > skip_lo) j = skip_hi;
                    if (j >= s.out_width) break;
                    int64_t c0, c1;
                    window_span(j, s.stride_w, s.pad_w, s.kernel_w, s.width, c0, c1);
                    nan_count += cell(plane, dst, arg, i, j, r0, r1, c0, c1);
                }
            }
            if (stream) {
                store_plane(scratch_out.data(), out + p * out_plane, out_plane);
                if (argmax)  // int32 lanes moved as float bit patterns (a copy, no arithmetic)
                    store_plane(reinterpret_cast<const float*>(scratch_arg.data()),
                                reinterpret_cast<float*>(argmax + p * out_plane), out_plane);
            }
        }
    }
    return nan_count;
}

template <typename T>
int64_t max_pool2d_forward(const T* x, T* out, int32_t* argmax, const Pool2dShape& s) {
    const int64_t out_plane = s.out_height * s.out_width;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    // Narrow unpadded planes (LeNet's 10x10 -> 5x5) have no vector row: window by window they cost
    // ~50 cycles an output (unpredictable compares); gathers across output rows do 8 at a time.
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2() && s.pad_h == 0 && s.pad_w == 0 && s.out_width < 8 && out_plane >= 8) {
            const int64_t in_plane = s.height * s.width;
            std::vector<int32_t> origins((size_t)out_plane), taps;
            for (int64_t o = 0; o < out_plane; ++o)
                origins[(size_t)o] = (int32_t)((o / s.out_width) * s.stride_h * s.width + (o % s.out_width) * s.stride_w);
            for (int64_t r = 0; r < s.kernel_h; ++r)
                for (int64_t c = 0; c < s.kernel_w; ++c) taps.push_back((int32_t)(r * s.width + c));
            int64_t nan_count = 0;
#pragma omp parallel for schedule(static) reduction(+ : nan_count) if (s.planes * in_plane > kParallelThreshold)
            for (int64_t p = 0; p < s.planes; ++p)
                nan_count += max_pool2d_plane_gather_avx2(x + p * in_plane, out + p * out_plane, argmax + p * out_plane,
                                                          origins.data(), out_plane, taps.data(), (int64_t)taps.size());
            return nan_count;
        }
    }
#endif
    auto row = [&](const T* plane, T* dst, int32_t* arg, int64_t i, int64_t r0, int64_t r1, int64_t first,
                   int64_t last) -> int64_t {
#ifdef FASTNN_HAVE_AVX2_KERNELS
        if constexpr (std::is_same_v<T, float>)
            return max_pool2d_row_interior_avx2(plane, dst + i * s.out_width, arg + i * s.out_width, s, r0, r1, first,
                                                last);
#endif
        (void)plane, (void)dst, (void)arg, (void)i, (void)r0, (void)r1, (void)first, (void)last;
        return 0;
    };
    auto cell = [&](const T* plane, T* dst, int32_t* arg, int64_t i, int64_t j, int64_t r0, int64_t r1, int64_t c0,
                    int64_t c1) -> int64_t {
        const int64_t at = i * s.out_width + j;
        max_window(plane, s.width, r0, r1, c0, c1, dst[at], arg[at]);
        return dst[at] != dst[at];
    };
    return pool_forward(x, out, argmax, s, row, cell);
}

template <typename T>
int64_t max_pool2d_backward(const T* dout, const int32_t* argmax, T* dx, const Pool2dShape& s) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    const bool stream = s.planes * in_plane * (int64_t)sizeof(T) >= kStreamBytes;
    int64_t bad_index = 0;
#pragma omp parallel reduction(+ : bad_index) if (s.planes * in_plane > kParallelThreshold)
    {
        // A dx larger than the last-level cache is assembled plane by plane in scratch and streamed
        // out; a smaller one is built in place (it stays in cache for the layer below).
        std::vector<T> scratch(stream ? (size_t)in_plane : 0);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < s.planes; ++p) {
            T* plane = stream ? scratch.data() : dx + p * in_plane;
            std::fill(plane, plane + in_plane, (T)0);
            const T* g = dout + p * out_plane;
            const int32_t* a = argmax + p * out_plane;
            for (int64_t o = 0; o < out_plane; ++o) {
                const int64_t at = a[o];
                if (at >= 0 && at < in_plane)
                    plane[at] += g[o];
                else
                    ++bad_index;
            }
            if (stream) store_plane(plane, dx + p * in_plane, in_plane);
        }
    }
    return bad_index;
}

template <typename T>
int64_t avg_pool2d_forward(const T* x, T* out, const Pool2dShape& s) {
    const T inv_area = (T)(1.0 / ((double)s.kernel_h * (double)s.kernel_w));  // (the product may overflow int64)
    auto row = [&](const T* plane, T* dst, int32_t*, int64_t i, int64_t r0, int64_t r1, int64_t first,
                   int64_t last) -> int64_t {
#ifdef FASTNN_HAVE_AVX2_KERNELS
        if constexpr (std::is_same_v<T, float>)
            return avg_pool2d_row_interior_avx2(plane, dst + i * s.out_width, s, r0, r1, first, last);
#endif
        (void)plane, (void)dst, (void)i, (void)r0, (void)r1, (void)first, (void)last;
        return 0;
    };
    auto cell = [&](const T* plane, T* dst, int32_t*, int64_t i, int64_t j, int64_t r0, int64_t r1, int64_t c0,
                    int64_t c1) -> int64_t {
        T sum = 0;
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t c = c0; c < c1; ++c) sum += plane[r * s.width + c];
        T& o = dst[i * s.out_width + j];
        o = sum * inv_area;
        return o != o;
    };
    return pool_forward(x, out, static_cast<int32_t*>(nullptr), s, row, cell);
}

// For every input row q, the windows that hold it: [first[q], last[q]], a contiguous range of
// output rows (empty, first > last, when the stride skips q).
static void covering_windows(int64_t extent, int64_t out_extent, int64_t kernel, int64_t stride, int64_t pad,
                             std::vector<int64_t>& first, std::vector<int64_t>& last) {
    first.assign((size_t)extent, out_extent);
    last.assign((size_t)extent, -1);
    for (int64_t o = 0; o < out_extent; ++o) {
        int64_t lo, hi;
        window_span(o, stride, pad, kernel, extent, lo, hi);
        for (int64_t q = lo; q < hi; ++q) {
            first[(size_t)q] = std::min(first[(size_t)q], o);
            last[(size_t)q] = std::max(last[(size_t)q], o);
        }
    }
}

template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const Pool2dShape& s) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    const T inv_area = (T)(1.0 / ((double)s.kernel_h * (double)s.kernel_w));  // (the product may overflow int64)
    const bool stream = s.planes * in_plane * (int64_t)sizeof(T) >= kStreamBytes;
    std::vector<int64_t> row_first, row_last;
    covering_windows(s.height, s.out_height, s.kernel_h, s.stride_h, s.pad_h, row_first, row_last);
    // The window columns dj that land in the plane for some output column: [dj_begin, dj_end). The
    // others see only padding. A window may be far wider than the plane (a 3-wide image, kernel_w
    // 2^30 + 1, pad_w 2^29 is legal), and per-dj tables and loops over all of kernel_w cost 16 GB and
    // minutes there; this range holds at most 2W + 1 columns, as (Wo - 1) sw <= W + 2 pw - kw <= W.
    const int64_t dj_begin = std::max<int64_t>(0, s.pad_w - (s.out_width - 1) * s.stride_w);
    const int64_t dj_end = std::max(dj_begin, std::min<int64_t>(s.kernel_w, s.pad_w + s.width));
    // For window column dj, the output columns j in [j_lo, j_hi) whose column j*sw - pw + dj lies in
    // the plane (index dj - dj_begin).
    std::vector<int64_t> j_lo((size_t)(dj_end - dj_begin)), j_hi((size_t)(dj_end - dj_begin));
    for (int64_t dj = dj_begin; dj < dj_end; ++dj) {
        int64_t lo = 0, hi = s.out_width;
        while (lo < hi && lo * s.stride_w - s.pad_w + dj < 0) ++lo;
        while (hi > lo && (hi - 1) * s.stride_w - s.pad_w + dj >= s.width) --hi;
        j_lo[(size_t)(dj - dj_begin)] = lo;
        j_hi[(size_t)(dj - dj_begin)] = hi;
    }
#pragma omp parallel if (s.planes * in_plane > kParallelThreshold)
    {
        // The window is a row range times a column range, so the gradient separates:
        //   spread[i][c] = sum of dout[i][j] over the windows j holding column c
        //   dx[r][c]     = (1 / (kh kw)) sum of spread[i][c] over the windows i holding row r
        // The first is a scatter with window column dj outermost, so one pass never adds twice to
        // one place (no store-to-load stalls); the second is a gather that writes each element of
        // the plane once (no zeroing pass, no read-modify-write).
        // (Planes of a dx larger than the last-level cache are assembled in scratch and streamed out;
        // a smaller dx is written in place.)
        std::vector<T> spread((size_t)(s.out_height * s.width)), scratch(stream ? (size_t)in_plane : 0);
        bool vector_spread = false;  // AVX2, stride 2 along the width: whole rows of spread at once
#ifdef FASTNN_HAVE_AVX2_KERNELS
        // (Only where every window column can land in the plane: its work and scratch grow with kernel_w.)
        vector_spread = std::is_same_v<T, float> && s.stride_w == 2 && use_avx2() && dj_begin == 0 && dj_end == s.kernel_w;
#endif
        std::vector<float> padded(vector_spread ? (size_t)avg_pool2d_spread_s2_scratch(s) : 0);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < s.planes; ++p) {
            const T* g = dout + p * out_plane;
            if (!vector_spread) std::fill(spread.begin(), spread.end(), (T)0);  // the scatter adds into it
            for (int64_t i = 0; i < s.out_height; ++i) {
                const T* g_row = g + i * s.out_width;
                T* spread_row = spread.data() + i * s.width;
#ifdef FASTNN_HAVE_AVX2_KERNELS
                if constexpr (std::is_same_v<T, float>) {
                    if (vector_spread) {  // writes the whole row
                        avg_pool2d_spread_row_s2_avx2(g_row, s, padded.data(), spread_row);
                        continue;
                    }
                }
#endif
                for (int64_t dj = dj_begin; dj < dj_end; ++dj) {
                    T* base = spread_row - s.pad_w + dj;
                    for (int64_t j = j_lo[(size_t)(dj - dj_begin)]; j < j_hi[(size_t)(dj - dj_begin)]; ++j)
                        base[j * s.stride_w] += g_row[j];
                }
            }
            T* plane = stream ? scratch.data() : dx + p * in_plane;
            for (int64_t r = 0; r < s.height; ++r) {
                T* dst = plane + r * s.width;
                const int64_t i0 = row_first[(size_t)r], i1 = row_last[(size_t)r];
                if (i0 > i1) {
                    std::fill(dst, dst + s.width, (T)0);
                    continue;
                }
                const T* src = spread.data() + i0 * s.width;
                if (i0 == i1) {
                    for (int64_t c = 0; c < s.width; ++c) dst[c] = inv_area * src[c];
                    continue;
                }
                std::copy(src, src + s.width, dst);
                for (int64_t i = i0 + 1; i <= i1; ++i) {
                    src = spread.data() + i * s.width;
                    for (int64_t c = 0; c < s.width; ++c) dst[c] += src[c];
                }
                for (int64_t c = 0; c < s.width; ++c) dst[c] *= inv_area;
            }
            if (stream) store_plane(plane, dx + p * in_plane, in_plane);
        }
    }
}

template int64_t max_pool2d_forward<float>(const float*, float*, int32_t*, const Pool2dShape&);
template int64_t max_pool2d_forward<double>(const double*, double*, int32_t*, const Pool2dShape&);
template int64_t max_pool2d_backward<float>(const float*, const int32_t*, float*, const Pool2dShape&);
template int64_t max_pool2d_backward<double>(const double*, const int32_t*, double*, const Pool2dShape&);
template int64_t avg_pool2d_forward<float>(const float*, float*, const Pool2dShape&);
template int64_t avg_pool2d_forward<double>(const double*, double*, const Pool2dShape&);
template void avg_pool2d_backward<float>(const float*, float*, const Pool2dShape&);
template void avg_pool2d_backward<double>(const double*, double*, const Pool2dShape&);

}  // namespace fastnn
