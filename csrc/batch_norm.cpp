#include "batch_norm.h"

#include <algorithm>
#include <cmath>
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

// For (N, C) input each thread takes a contiguous block of columns (a multiple of 8 wide) and walks
// it row by row, with one accumulator per column. (Narrower column tiles that stay in L2 between
// the two passes measured slower: short strided rows defeat the prefetcher.)
static void column_block(int64_t channels, int64_t& begin, int64_t& end) {
    int thread = 0, threads = 1;
#ifdef _OPENMP
    thread = omp_get_thread_num();
    threads = omp_get_num_threads();
#endif
    const int64_t per_thread = (channels + threads - 1) / threads;
    const int64_t width = (per_thread + 7) / 8 * 8;
    begin = std::min<int64_t>(thread * width, channels);
    end = std::min<int64_t>(begin + width, channels);
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
#pragma omp parallel reduction(+ : nan_count) if (parallel)
    {
        int64_t begin, end;
        column_block(channels, begin, end);
        const int64_t count = end - begin;
        if (count > 0) {
            std::vector<double> sum((size_t)count, 0.0), sum_sq((size_t)count, 0.0);
            std::vector<T> scale((size_t)count);
            if (training) {
                const T* shift = x + begin;  // the first sample's values
                rows_sums(x + begin, n_batch, channels, shift, count, sum.data(), sum_sq.data());
                for (int64_t k = 0; k < count; ++k)
                    channel_statistics(shift[k], sum[(size_t)k], sum_sq[(size_t)k], m, mean[begin + k], var[begin + k]);
            } else {
                std::copy(running_mean + begin, running_mean + end, mean + begin);
                std::copy(running_var + begin, running_var + end, var + begin);
            }
            for (int64_t k = 0; k < count; ++k) {
                inv_std[begin + k] = (T)(1.0 / std::sqrt((double)var[begin + k] + eps));
                scale[(size_t)k] = gamma[begin + k] * inv_std[begin + k];
            }
            nan_count += rows_affine(x + begin, n_batch, channels, mean + begin, scale.data(), beta + begin, count,
                                     out + begin);
        }
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
#pragma omp parallel if (parallel)
    {
        int64_t begin, end;
        column_block(channels, begin, end);
        const int64_t count = end - begin;
        if (count > 0) {
            std::vector<double> sum_dy((size_t)count, 0.0), sum_dy_xc((size_t)count, 0.0);
            std::vector<T> a((size_t)count), k1((size_t)count), k0((size_t)count);
            rows_grad_sums(dy + begin, x + begin, n_batch, channels, mean + begin, count, sum_dy.data(),
                           sum_dy_xc.data());
            for (int64_t k = 0; k < count; ++k) {
                const double is = inv_std[begin + k], ak = (double)gamma[begin + k] * is;
                dbeta[begin + k] = (T)sum_dy[(size_t)k];
                dgamma[begin + k] = (T)(sum_dy_xc[(size_t)k] * is);
                a[(size_t)k] = (T)ak;
                k1[(size_t)k] = training ? (T)(-ak * is * (sum_dy_xc[(size_t)k] * is) / m) : (T)0;
                k0[(size_t)k] = training ? (T)(-ak * sum_dy[(size_t)k] / m) : (T)0;
            }
            rows_dx(dy + begin, x + begin, n_batch, channels, mean + begin, a.data(), k1.data(), k0.data(), count,
                    dx + begin);
        }
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
