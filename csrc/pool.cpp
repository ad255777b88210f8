#include "pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu_features.h"

namespace fastnn {

// Below this many input elements a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;

// The rows of window i that lie inside the plane: [lo, hi).
static inline void window_span(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t extent,
                               int64_t& lo, int64_t& hi) {
    const int64_t start = i * stride - pad;
    lo = std::max<int64_t>(start, 0);
    hi = std::min<int64_t>(start + kernel, extent);
}

// Output columns [first, last) whose windows need no clipping, trimmed to whole blocks of 8:
// the AVX2 row kernels take those.
static inline void interior_columns(const Pool2dShape& s, int64_t& first, int64_t& last) {
    const int64_t room = s.width - s.kernel_w + s.pad_w;  // the last window start that fits, plus pad
    first = (s.pad_w + s.stride_w - 1) / s.stride_w;
    last = room < 0 ? 0 : std::min(room / s.stride_w + 1, s.out_width);
    if (first > last) first = last;
    last = first + (last - first) / 8 * 8;  // the vector kernels take whole blocks of 8 columns
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

template <typename T>
int64_t max_pool2d_forward(const T* x, T* out, int32_t* argmax, const Pool2dShape& s) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    int64_t first = 0, last = 0;
    interior_columns(s, first, last);
    bool vector_rows = false;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    vector_rows = std::is_same_v<T, float> && use_avx2();
#endif
    int64_t nan_count = 0;
#pragma omp parallel for schedule(static) reduction(+ : nan_count) if (s.planes * in_plane > kParallelThreshold)
    for (int64_t p = 0; p < s.planes; ++p) {
        const T* plane = x + p * in_plane;
        for (int64_t i = 0; i < s.out_height; ++i) {
            int64_t r0, r1;
            window_span(i, s.stride_h, s.pad_h, s.kernel_h, s.height, r0, r1);
            T* out_row = out + p * out_plane + i * s.out_width;
            int32_t* arg_row = argmax + p * out_plane + i * s.out_width;
            // Columns [skip_lo, skip_hi) went to the vector kernel; the scalar loop does the rest.
            int64_t skip_lo = 0, skip_hi = 0;
#ifdef FASTNN_HAVE_AVX2_KERNELS
            if constexpr (std::is_same_v<T, float>) {
                if (vector_rows) {
                    nan_count += max_pool2d_row_interior_avx2(plane, out_row, arg_row, s, r0, r1, first, last);
                    skip_lo = first;
                    skip_hi = last;
                }
            }
#endif
            for (int64_t j = 0; j < s.out_width; ++j) {
                if (j == skip_lo && skip_hi > skip_lo) j = skip_hi;
                if (j >= s.out_width) break;
                int64_t c0, c1;
                window_span(j, s.stride_w, s.pad_w, s.kernel_w, s.width, c0, c1);
                max_window(plane, s.width, r0, r1, c0, c1, out_row[j], arg_row[j]);
                nan_count += out_row[j] != out_row[j];
            }
        }
    }
    return nan_count;
}

template <typename T>
int64_t max_pool2d_backward(const T* dout, const int32_t* argmax, T* dx, const Pool2dShape& s) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    int64_t bad_index = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad_index) if (s.planes * in_plane > kParallelThreshold)
    for (int64_t p = 0; p < s.planes; ++p) {
        T* plane = dx + p * in_plane;
        std::memset(plane, 0, sizeof(T) * (size_t)in_plane);
        const T* g = dout + p * out_plane;
        const int32_t* a = argmax + p * out_plane;
        for (int64_t o = 0; o < out_plane; ++o) {
            const int64_t at = a[o];
            if (at >= 0 && at < in_plane)
                plane[at] += g[o];
            else
                ++bad_index;
        }
    }
    return bad_index;
}

template <typename T>
int64_t avg_pool2d_forward(const T* x, T* out, const Pool2dShape& s) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    const T inv_area = (T)1 / (T)(s.kernel_h * s.kernel_w);
    int64_t first = 0, last = 0;
    interior_columns(s, first, last);
    bool vector_rows = false;
#ifdef FASTNN_HAVE_AVX2_KERNELS
    vector_rows = std::is_same_v<T, float> && use_avx2();
#endif
    int64_t nan_count = 0;
#pragma omp parallel for schedule(static) reduction(+ : nan_count) if (s.planes * in_plane > kParallelThreshold)
    for (int64_t p = 0; p < s.planes; ++p) {
        const T* plane = x + p * in_plane;
        for (int64_t i = 0; i < s.out_height; ++i) {
            int64_t r0, r1;
            window_span(i, s.stride_h, s.pad_h, s.kernel_h, s.height, r0, r1);
            T* out_row = out + p * out_plane + i * s.out_width;
            int64_t skip_lo = 0, skip_hi = 0;
#ifdef FASTNN_HAVE_AVX2_KERNELS
            if constexpr (std::is_same_v<T, float>) {
                if (vector_rows) {
                    nan_count += avg_pool2d_row_interior_avx2(plane, out_row, s, r0, r1, first, last);
                    skip_lo = first;
                    skip_hi = last;
                }
            }
#endif
            for (int64_t j = 0; j < s.out_width; ++j) {
                if (j == skip_lo && skip_hi > skip_lo) j = skip_hi;
                if (j >= s.out_width) break;
                int64_t c0, c1;
                window_span(j, s.stride_w, s.pad_w, s.kernel_w, s.width, c0, c1);
                T sum = 0;
                for (int64_t r = r0; r < r1; ++r)
                    for (int64_t c = c0; c < c1; ++c) sum += plane[r * s.width + c];
                out_row[j] = sum * inv_area;
                nan_count += out_row[j] != out_row[j];
            }
        }
    }
    return nan_count;
}

template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const Pool2dShape& s) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_height * s.out_width;
    const T inv_area = (T)1 / (T)(s.kernel_h * s.kernel_w);
#pragma omp parallel for schedule(static) if (s.planes * in_plane > kParallelThreshold)
    for (int64_t p = 0; p < s.planes; ++p) {
        T* plane = dx + p * in_plane;
        std::memset(plane, 0, sizeof(T) * (size_t)in_plane);
        const T* g = dout + p * out_plane;
        for (int64_t i = 0; i < s.out_height; ++i) {
            int64_t r0, r1;
            window_span(i, s.stride_h, s.pad_h, s.kernel_h, s.height, r0, r1);
            for (int64_t j = 0; j < s.out_width; ++j) {
                int64_t c0, c1;
                window_span(j, s.stride_w, s.pad_w, s.kernel_w, s.width, c0, c1);
                const T share = g[i * s.out_width + j] * inv_area;
                for (int64_t r = r0; r < r1; ++r)
                    for (int64_t c = c0; c < c1; ++c) plane[r * s.width + c] += share;
            }
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
