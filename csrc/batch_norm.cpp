#include "batch_norm.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_features.h"

namespace fastnn {

// Below this many elements a parallel region costs more than it saves.
static constexpr int64_t kParallelThreshold = 1 << 15;
// Outputs of at least this many bytes (about a last-level cache) are written with streaming stores.
static constexpr int64_t kStreamBytes = int64_t(8) << 20;

// ---------------------------------------------------------------- portable helpers
// Plain loops; the sums run in double (exact enough for any M), the elementwise loops vectorise.
template <typename T>
static void segment_sums(const T* x, int64_t count, T shift, double& sum, double& sum_sq) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_segment_sums_avx2(x, count, shift, sum, sum_sq);
    }
#endif
    double s1 = 0, s2 = 0;
    for (int64_t k = 0; k < count; ++k) {
        const double d = (double)x[k] - (double)shift;
        s1 += d;
        s2 += d * d;
    }
    sum += s1;
    sum_sq += s2;
}

template <typename T>
static int64_t segment_affine(const T* x, int64_t count, T mean, T scale, T offset, T* out, bool stream) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_segment_affine_avx2(x, count, mean, scale, offset, out, stream);
    }
#endif
    (void)stream;
    int64_t nan_count = 0;
    for (int64_t k = 0; k < count; ++k) {
        out[k] = (x[k] - mean) * scale + offset;
        nan_count += out[k] != out[k];
    }
    return nan_count;
}

template <typename T>
static void segment_grad_sums(const T* dy, const T* x, int64_t count, T mean, double& sum_dy, double& sum_dy_xc) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_segment_grad_sums_avx2(dy, x, count, mean, sum_dy, sum_dy_xc);
    }
#endif
    double s1 = 0, s2 = 0;
    for (int64_t k = 0; k < count; ++k) {
        s1 += (double)dy[k];
        s2 += (double)dy[k] * ((double)x[k] - (double)mean);
    }
    sum_dy += s1;
    sum_dy_xc += s2;
}

template <typename T>
static void segment_dx(const T* dy, const T* x, int64_t count, T mean, T a, T k1, T k0, T* dx, bool stream) {
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_segment_dx_avx2(dy, x, count, mean, a, k1, k0, dx, stream);
    }
#endif
    (void)stream;
    for (int64_t k = 0; k < count; ++k) dx[k] = a * dy[k] + k1 * (x[k] - mean) + k0;
}

template <typename T>
static void rows_sums(const T* x, int64_t rows, int64_t stride, const T* shift, int64_t count, double* sum,
                      double* sum_sq) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx512()) return bn_rows_sums_avx512(x, rows, stride, shift, count, sum, sum_sq);
    }
#endif
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_rows_sums_avx2(x, rows, stride, shift, count, sum, sum_sq);
    }
#endif
    for (int64_t n = 0; n < rows; ++n) {
        const T* row = x + n * stride;
        for (int64_t k = 0; k < count; ++k) {
            const double d = (double)row[k] - (double)shift[k];
            sum[k] += d;
            sum_sq[k] += d * d;
        }
    }
}

template <typename T>
static int64_t rows_affine(const T* x, int64_t rows, int64_t stride, const T* mean, const T* scale, const T* offset,
                           int64_t count, T* out) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx512()) return bn_rows_affine_avx512(x, rows, stride, mean, scale, offset, count, out);
    }
#endif
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_rows_affine_avx2(x, rows, stride, mean, scale, offset, count, out);
    }
#endif
    int64_t nan_count = 0;
    for (int64_t n = 0; n < rows; ++n)
        for (int64_t k = 0; k < count; ++k) {
            const T y = (x[n * stride + k] - mean[k]) * scale[k] + offset[k];
            out[n * stride + k] = y;
            nan_count += y != y;
        }
    return nan_count;
}

template <typename T>
static void rows_grad_sums(const T* dy, const T* x, int64_t rows, int64_t stride, const T* mean, int64_t count,
                           double* sum_dy, double* sum_dy_xc) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx512()) return bn_rows_grad_sums_avx512(dy, x, rows, stride, mean, count, sum_dy, sum_dy_xc);
    }
#endif
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_rows_grad_sums_avx2(dy, x, rows, stride, mean, count, sum_dy, sum_dy_xc);
    }
#endif
    for (int64_t n = 0; n < rows; ++n) {
        const T* g = dy + n * stride;
        const T* v = x + n * stride;
        for (int64_t k = 0; k < count; ++k) {
            sum_dy[k] += (double)g[k];
            sum_dy_xc[k] += (double)g[k] * ((double)v[k] - (double)mean[k]);
        }
    }
}

template <typename T>
static void rows_dx(const T* dy, const T* x, int64_t rows, int64_t stride, const T* mean, const T* a, const T* k1,
                    const T* k0, int64_t count, T* dx) {
#ifdef FASTNN_HAVE_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx512()) return bn_rows_dx_avx512(dy, x, rows, stride, mean, a, k1, k0, count, dx);
    }
#endif
#ifdef FASTNN_HAVE_AVX2_KERNELS
    if constexpr (std::is_same_v<T, float>) {
        if (use_avx2()) return bn_rows_dx_avx2(dy, x, rows, stride, mean, a, k1, k0, count, dx);
    }
#endif
    for (int64_t n = 0; n < rows; ++n)
        for (int64_t k = 0; k < count; ++k) {
            const int64_t e = n * stride + k;
            dx[e] = a[k] * dy[e] + k1[k] * (x[e] - mean[k]) + k0[k];
        }
}

// ---------------------------------------------------------------- statistics of one channel
// From the shifted sums: mean = K + E[x - K], var = E[(x - K)^2] - E[x - K]^2 (clamped at 0 against
// the last rounding).
template <typename T>
static void channel_statistics(T shift, double sum, double sum_sq, int64_t m, T& mean, T& var) {
    const double shifted_mean = sum / (double)m;
    mean = (T)((double)shift + shifted_mean);
    var = (T)std::max(sum_sq / (double)m - shifted_mean * shifted_mean, 0.0);
}

// For (N, C) input the sums cut the rows into at most kRowBlocks blocks of whole rows (at least
// kMinBlockRows, a multiple of 4, the kernels' row group), each summed into its own per-column
// partials; each thread takes a run of consecutive blocks (one unbroken stream per array), and
// after a barrier each thread adds up a block of columns' partials in block order. The block
// boundaries depend only on N, so the sums are the same for any thread count. The elementwise pass
// then splits the rows evenly among the threads. Splitting the columns instead (each thread a part
// of every row, no partials) measured 1.6x-2.3x slower with two threads, and slower than one
// thread: two cores streaming interleaved halves of the same rows. (At least 64 rows per block
// keeps the partials' zeroing and adding under 1/32 of the sums' work.)
static constexpr int64_t kRowBlocks = 8, kMinBlockRows = 64, kRowGroup = 4;

// The elementwise pass after the sums: a thread whose rows are larger than its L2 cache walks them
// back to front in chunks of 16 rows, so that it starts on the rows the sums read last, which are
// still in L2 and L3 (2048x1024: forward 1.53 -> 1.37 ms, backward 2.25 -> 1.81 ms). A block that
// fits in L2 goes front to back (256x1024: backwards measured 8% slower).
static constexpr int64_t kReverseChunk = 16, kReverseAboveBytes = int64_t(1) << 20;

// Calls pass(r, count) over the rows [begin, end) in that order (one call, or chunks back to front).
template <typename Pass>
static void elementwise_rows(int64_t begin, int64_t end, int64_t row_bytes, Pass pass) {
    const int64_t chunk = (end - begin) * row_bytes > kReverseAboveBytes ? kReverseChunk : std::max<int64_t>(end - begin, 1);
    for (int64_t r_end = end; r_end > begin; r_end -= chunk) {
        const int64_t r = std::max(begin, r_end - chunk);
        pass(r, r_end - r);
    }
}

struct RowBlocks {
    int64_t rows_per_block, count;
    explicit RowBlocks(int64_t rows) {
        const int64_t even = ((rows + kRowBlocks - 1) / kRowBlocks + kRowGroup - 1) / kRowGroup * kRowGroup;
        rows_per_block = std::max(even, kMinBlockRows);
        count = (rows + rows_per_block - 1) / rows_per_block;
    }
};

// Adds the row blocks' partials (block b: 2 * channels sums at partial + b * 2 * channels) into block
// 0's, in block order, for the columns [begin, end) and both sums.
static void add_block_partials(double* partial, int64_t block_count, int64_t channels, int64_t begin, int64_t end) {
    for (int64_t b = 1; b < block_count; ++b) {
        const double* other = partial + b * 2 * channels;
        for (int64_t k = begin; k < end; ++k) partial[k] += other[k];
        for (int64_t k = begin; k < end; ++k) partial[channels + k] += other[channels + k];
    }
}

// ---------------------------------------------------------------- forward
template <typename T>
BatchNormForwardResult batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean,
                                          T* running_var, bool training, double momentum, double eps, T* out,
                                          T* mean, T* inv_std, const BatchNormShape& s) {
    const int64_t n_batch = s.batch, channels = s.channels, spatial = s.spatial, m = n_batch * spatial;
    std::vector<T> batch_var((size_t)channels);
    T* var = batch_var.data();
    const bool parallel = n_batch * channels * spatial > kParallelThreshold;
    const bool stream = n_batch * channels * spatial * (int64_t)sizeof(T) >= kStreamBytes;
    int64_t nan_count = 0;
    if (spatial > 1) {
#pragma omp parallel for schedule(static) reduction(+ : nan_count) if (parallel)
        for (int64_t c = 0; c < channels; ++c) {
            T mu = running_mean[c], v = running_var[c];
            if (training) {
                const T shift = x[c * spatial];
                double sum = 0, sum_sq = 0;
                for (int64_t n = 0; n < n_batch; ++n)
                    segment_sums(x + (n * channels + c) * spatial, spatial, shift, sum, sum_sq);
                channel_statistics(shift, sum, sum_sq, m, mu, v);
            }
            const T is = (T)(1.0 / std::sqrt((double)v + eps));
            mean[c] = mu;
            var[c] = v;
            inv_std[c] = is;
            const T scale = gamma[c] * is;
            // Second sweep over the channel: it was just read, so it comes from cache.
            for (int64_t n = 0; n < n_batch; ++n) {
                const int64_t at = (n * channels + c) * spatial;
                nan_count += segment_affine(x + at, spatial, mu, scale, beta[c], out + at, stream);
            }
        }
    } else {
        // partial[b]: row block b's per-column sum and sum of squares (shifted by the first row).
        const RowBlocks blocks(n_batch);
        // (Uninitialised: each block zeroes its own part. A zero-filled vector cost a serial 64 KB
        // memset per call at 256 x 1024, 4% of the forward.)
        std::unique_ptr<double[]> partial(training ? new double[(size_t)blocks.count * 2 * (size_t)channels] : nullptr);
        std::vector<T> scale((size_t)channels);
#pragma omp parallel reduction(+ : nan_count) if (parallel)
        {
            int64_t block_begin, block_end, begin, end;
            team_block(blocks.count, 1, block_begin, block_end);
            team_block(channels, 8, begin, end);
            for (int64_t b = block_begin; training && b < block_end; ++b) {
                const int64_t r = b * blocks.rows_per_block;
                double* sum = partial.get() + (size_t)b * 2 * (size_t)channels;
                std::fill(sum, sum + 2 * channels, 0.0);
                rows_sums(x + r * channels, std::min(blocks.rows_per_block, n_batch - r), channels, x, channels, sum,
                          sum + channels);
            }
#pragma omp barrier
            // This thread's columns, in loops over contiguous columns that the compiler vectorises
            // (column by column, with the blocks inside, the loop was a chain of scalar divisions
            // and strided loads: 16% of the forward at 256 x 1024). The blocks' partials are added
            // in block order into block 0's, as before.
            if (training) {
                add_block_partials(partial.get(), blocks.count, channels, begin, end);
                const double* sum = partial.get();
                const double* sum_sq = sum + channels;
                for (int64_t k = begin; k < end; ++k) channel_statistics(x[k], sum[k], sum_sq[k], m, mean[k], var[k]);
            } else {
                for (int64_t k = begin; k < end; ++k) {
                    mean[k] = running_mean[k];
                    var[k] = running_var[k];
                }
            }
            for (int64_t k = begin; k < end; ++k) {
                inv_std[k] = (T)(1.0 / std::sqrt((double)var[k] + eps));
                scale[(size_t)k] = gamma[k] * inv_std[k];
            }
#pragma omp barrier
            int64_t row_begin, row_end;
            team_block(n_batch, kRowGroup, row_begin, row_end);
            elementwise_rows(row_begin, row_end, channels * (int64_t)sizeof(T), [&](int64_t r, int64_t rows) {
                nan_count += rows_affine(x + r * channels, rows, channels, mean, scale.data(), beta, channels,
                                         out + r * channels);
            });
        }
    }
    BatchNormForwardResult result{nan_count, -1};
    if (!training) return result;
    for (int64_t c = 0; c < channels; ++c) {
        if (!std::isfinite((double)mean[c]) || !std::isfinite((double)var[c])) {
            result.first_bad_statistic = c;
            return result;  // the running statistics stay as they were
        }
    }
    const double unbiased = (double)m / (double)(m - 1);
    for (int64_t c = 0; c < channels; ++c) {
        running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c] + momentum * (double)mean[c]);
        running_var[c] = (T)((1.0 - momentum) * (double)running_var[c] + momentum * (double)var[c] * unbiased);
    }
    return result;
}

// ---------------------------------------------------------------- backward
template <typename T>
void batch_norm_backward(const T* x, const T* dy, const T* gamma, const T* mean, const T* inv_std,
                         bool training, T* dx, T* dgamma, T* dbeta, const BatchNormShape& s) {
    const int64_t n_batch = s.batch, channels = s.channels, spatial = s.spatial;
    const double m = (double)(n_batch * spatial);
    const bool parallel = n_batch * channels * spatial > kParallelThreshold;
    const bool stream = n_batch * channels * spatial * (int64_t)sizeof(T) >= kStreamBytes;
    if (spatial > 1) {
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t c = 0; c < channels; ++c) {
            double sum_dy = 0, sum_dy_xc = 0;
            for (int64_t n = 0; n < n_batch; ++n) {
                const int64_t at = (n * channels + c) * spatial;
                segment_grad_sums(dy + at, x + at, spatial, mean[c], sum_dy, sum_dy_xc);
            }
            const double is = inv_std[c], a = (double)gamma[c] * is;
            dbeta[c] = (T)sum_dy;
            dgamma[c] = (T)(sum_dy_xc * is);
            const T k1 = training ? (T)(-a * is * (sum_dy_xc * is) / m) : (T)0;
            const T k0 = training ? (T)(-a * sum_dy / m) : (T)0;
            for (int64_t n = 0; n < n_batch; ++n) {
                const int64_t at = (n * channels + c) * spatial;
                segment_dx(dy + at, x + at, spatial, mean[c], (T)a, k1, k0, dx + at, stream);
            }
        }
        return;
    }
    // partial[b]: row block b's per-column sum of dy and of dy (x - mean).
    const RowBlocks blocks(n_batch);
    std::unique_ptr<double[]> partial(new double[(size_t)blocks.count * 2 * (size_t)channels]);  // (see the forward)
    std::vector<T> a((size_t)channels), k1((size_t)channels), k0((size_t)channels);
#pragma omp parallel if (parallel)
    {
        int64_t block_begin, block_end, begin, end;
        team_block(blocks.count, 1, block_begin, block_end);
        team_block(channels, 8, begin, end);
        for (int64_t b = block_begin; b < block_end; ++b) {
            const int64_t r = b * blocks.rows_per_block;
            double* own = partial.get() + (size_t)b * 2 * (size_t)channels;
            std::fill(own, own + 2 * channels, 0.0);
            rows_grad_sums(dy + r * channels, x + r * channels, std::min(blocks.rows_per_block, n_batch - r), channels,
                           mean, channels, own, own + channels);
        }
#pragma omp barrier
        // (Contiguous loops the compiler vectorises, as in the forward: the blocks' partials added in
        // block order into block 0's.)
        add_block_partials(partial.get(), blocks.count, channels, begin, end);
        const double* sums_dy = partial.get();
        const double* sums_dy_xc = sums_dy + channels;
        for (int64_t k = begin; k < end; ++k) {
            const double sum_dy = sums_dy[k], sum_dy_xc = sums_dy_xc[k];
            const double is = inv_std[k], ak = (double)gamma[k] * is;
            dbeta[k] = (T)sum_dy;
            dgamma[k] = (T)(sum_dy_xc * is);
            a[(size_t)k] = (T)ak;
            k1[(size_t)k] = training ? (T)(-ak * is * (sum_dy_xc * is) / m) : (T)0;
            k0[(size_t)k] = training ? (T)(-ak * sum_dy / m) : (T)0;
        }
#pragma omp barrier
        int64_t row_begin, row_end;
        team_block(n_batch, kRowGroup, row_begin, row_end);
        elementwise_rows(row_begin, row_end, channels * (int64_t)sizeof(T), [&](int64_t r, int64_t rows) {
            rows_dx(dy + r * channels, x + r * channels, rows, channels, mean, a.data(), k1.data(), k0.data(),
                    channels, dx + r * channels);
        });
    }
}

template BatchNormForwardResult batch_norm_forward<float>(const float*, const float*, const float*, float*, float*,
                                                         bool, double, double, float*, float*, float*,
                                                         const BatchNormShape&);
template BatchNormForwardResult batch_norm_forward<double>(const double*, const double*, const double*, double*,
                                                          double*, bool, double, double, double*, double*, double*,
                                                          const BatchNormShape&);
template void batch_norm_backward<float>(const float*, const float*, const float*, const float*, const float*, bool,
                                         float*, float*, float*, const BatchNormShape&);
template void batch_norm_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                          bool, double*, double*, double*, const BatchNormShape&);

}  // namespace fastnn
