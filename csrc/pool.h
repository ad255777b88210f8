// 2-D max and average pooling on the CPU.
//
//   x (P, H, W) row-major, P = N*C independent planes; out, argmax (P, Ho, Wo)
//   Ho = (H + 2 ph - kh) / sh + 1, Wo alike; window (i, j) covers rows i*sh - ph .. + kh - 1 and
//   columns j*sw - pw .. + kw - 1, clipped to the plane (padding is at most half the window, so
//   every window keeps at least one real element).
//   max forward:  out = max of the window, argmax = flat index r*W + c of its first maximum in
//                 row-major order (NaN wins over any number, so NaN in a window reaches out)
//   max backward: dx[p][argmax[p][o]] += dout[p][o]
//   avg forward:  out = (1 / (kh kw)) sum of the window (the clipped padding counts as zeros)
//   avg backward: dx[p][r][c] = (1 / (kh kw)) sum of dout over the windows holding (r, c)
//
// Passes over memory: each forward reads x once and writes out (and argmax) once; each backward
// reads dout (and argmax) once and writes dx once. A thread owns whole planes, so no two threads
// touch one element: deterministic without atomics. Both backward passes build a plane of dx in a
// per-thread scratch plane that stays in cache (max: zero it, add each output's gradient at its
// argmax in output order; avg: a gather, the window separating into rows times columns, see
// pool.cpp) and then copy it out, with streaming stores when dx is larger than the last-level cache.
#pragma once
#include <cstdint>

namespace fastnn {

struct Pool2dShape {
    int64_t planes, height, width;      // P = N*C, H, W
    int64_t out_height, out_width;      // Ho, Wo
    int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

// Forwards return how many outputs are NaN (NaN in x, which the caller refuses).
template <typename T>
int64_t max_pool2d_forward(const T* x, T* out, int32_t* argmax, const Pool2dShape& s);
// Returns how many argmax entries lie outside [0, H*W) (they are skipped, never used as indices).
template <typename T>
int64_t max_pool2d_backward(const T* dout, const int32_t* argmax, T* dx, const Pool2dShape& s);
template <typename T>
int64_t avg_pool2d_forward(const T* x, T* out, const Pool2dShape& s);
template <typename T>
void avg_pool2d_backward(const T* dout, T* dx, const Pool2dShape& s);

// The AVX2/FMA versions of one output row of one plane (float), in pool_avx2.cpp. They handle the
// columns [first, last), at least 8 columns whose windows lie wholly inside the plane, and
// return the NaN count.
int64_t max_pool2d_row_interior_avx2(const float* plane, float* out_row, int32_t* argmax_row,
                                     const Pool2dShape& s, int64_t row_lo, int64_t row_hi,
                                     int64_t first, int64_t last);
// Max pooling of one whole plane whose output rows are narrower than a vector (Wo < 8) and which
// has no padding (every window lies inside the plane): eight outputs at a time in plane order,
// across output rows; output o's window starts at origins[o], its taps at origins[o] + taps[t]
// (row-major window order), each read by one gather. count >= 8. Returns the NaN count.
int64_t max_pool2d_plane_gather_avx2(const float* plane, float* out, int32_t* argmax, const int32_t* origins,
                                     int64_t count, const int32_t* taps, int64_t tap_count);
// Copies count floats with streaming (non-temporal) stores: for outputs larger than the last-level
// cache, which would be evicted before anyone reads them, this skips reading each line in first.
void stream_copy_avx2(const float* src, float* dst, int64_t count);
// Average pooling backward, stride 2 along the width: the column sums of one row of windows,
//   spread_row[c] = sum of g_row[j] over the windows j (0 <= j < s.out_width) whose columns
//                   j*2 - pad_w .. + kernel_w - 1 hold c,   for 0 <= c < s.width.
// `padded` is scratch of avg_pool2d_spread_s2_scratch(s) floats.
void avg_pool2d_spread_row_s2_avx2(const float* g_row, const Pool2dShape& s, float* padded, float* spread_row);
inline int64_t avg_pool2d_spread_s2_scratch(const Pool2dShape& s) {
    // The row between kernel_w + 1 zeros and enough zeros for 8-wide reads at the last even column
    // shifted by up to (1 + pad_w) / 2.
    const int64_t half = (s.width + 1) / 2, tail = half + (1 + s.pad_w) / 2 + 8;
    return s.kernel_w + 1 + (s.out_width > tail ? s.out_width : tail) + 8;
}
int64_t avg_pool2d_row_interior_avx2(const float* plane, float* out_row, const Pool2dShape& s,
                                     int64_t row_lo, int64_t row_hi, int64_t first, int64_t last);

}  // namespace fastnn
