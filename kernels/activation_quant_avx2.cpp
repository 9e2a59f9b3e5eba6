// AVX2 activation quantization (activation_quant.h for the rule, activation_quant.cpp for
// what "one pass" means). Per row: sweep 1 reads the row from memory, 16 floats a step, for
// the absmax of the non-outlier elements and the outlier flags; sweep 2 reads it again from
// L1/L2 and writes q, 32 values a step (four vroundps results packed to bytes). Rows are
// independent, so OpenMP splits them; outlier flags set by two threads in the same column
// are atomic byte stores.
#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstring>

#include "kernels/activation_quant.h"
#include "kernels/activation_quant_internal.h"
#include "kernels/avx2_util.h"

namespace modelpress::kernels {

namespace {

void mark(uint8_t* flags, int64_t j) { std::atomic_ref<uint8_t>(flags[j]).store(1, std::memory_order_relaxed); }

MP_AVX2 float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool SPLIT>
MP_AVX2 void quantize_row(const float* row, int64_t k, float threshold, int8_t* q, float* row_scale,
                          uint8_t* flags) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 thr = _mm256_set1_ps(threshold);
  // Sweep 1: absmax over non-outlier elements. vmaxps(v, acc) returns acc when v is NaN,
  // so NaNs are left out as in the reference.
  __m256 mx0 = _mm256_setzero_ps(), mx1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m256 a0 = _mm256_and_ps(_mm256_loadu_ps(row + j), absmask);      // (8) |x|
    const __m256 a1 = _mm256_and_ps(_mm256_loadu_ps(row + j + 8), absmask);  // (8)
    if constexpr (SPLIT) {
      const __m256 o0 = _mm256_cmp_ps(a0, thr, _CMP_GE_OQ), o1 = _mm256_cmp_ps(a1, thr, _CMP_GE_OQ);
      mx0 = _mm256_max_ps(_mm256_andnot_ps(o0, a0), mx0);
      mx1 = _mm256_max_ps(_mm256_andnot_ps(o1, a1), mx1);
      // Outliers are rare (a few columns per model): test the step once, mark lane by lane.
      if (const int bits = _mm256_movemask_ps(o0) | (_mm256_movemask_ps(o1) << 8))
        for (int t = 0; t < 16; ++t)
          if (bits & (1 << t)) mark(flags, j + t);
    } else {
      mx0 = _mm256_max_ps(a0, mx0);
      mx1 = _mm256_max_ps(a1, mx1);
    }
  }
  float absmax = hmax(_mm256_max_ps(mx0, mx1));
  for (; j < k; ++j) {
    const float a = std::fabs(row[j]);
    if (SPLIT && a >= threshold) mark(flags, j);
    else if (a > absmax) absmax = a;
  }
  *row_scale = absmax / 127.0f;
  const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
  if (std::isinf(inv)) {
    // absmax below 127 / FLT_MAX: a rare row of tiny values, quantized in double (see
    // quantize_one_tiny_row) rather than with an infinite reciprocal.
    for (j = 0; j < k; ++j)
      q[j] = SPLIT && std::fabs(row[j]) >= threshold ? int8_t{0} : detail::quantize_one_tiny_row(row[j], absmax);
    return;
  }

  // Sweep 2: q = clamp(rne(x * inv)), 0 for outliers and NaN.
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes the in-lane packs
  j = 0;
  for (; j + 32 <= k; j += 32) {
    __m256i v[4];
    for (int t = 0; t < 4; ++t) {
      const __m256 x = _mm256_loadu_ps(row + j + 8 * t);  // (8)
      const __m256 p = _mm256_mul_ps(x, vinv);
      __m256 keep = _mm256_cmp_ps(p, p, _CMP_ORD_Q);  // not NaN
      if constexpr (SPLIT) keep = _mm256_andnot_ps(_mm256_cmp_ps(_mm256_and_ps(x, absmask), thr, _CMP_GE_OQ), keep);
      __m256 r = _mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm256_and_ps(_mm256_min_ps(_mm256_max_ps(r, lo), hi), keep);
      v[t] = _mm256_cvttps_epi32(r);  // (8) s32, exact: r is integral
    }
    const __m256i w01 = _mm256_packs_epi32(v[0], v[1]), w23 = _mm256_packs_epi32(v[2], v[3]);  // (16) s16
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order);      // (32) s8
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), b);
  }
  for (; j < k; ++j) {
    const float a = std::fabs(row[j]);
    q[j] = SPLIT && a >= threshold ? int8_t{0} : detail::quantize_one(row[j], inv);
  }
}

}  // namespace

int64_t quantize_activations_avx2(const float* x, int64_t m, int64_t k, float threshold, int8_t* q,
                                  float* row_scale, int32_t* outlier_cols, uint8_t* col_flags) {
  std::memset(col_flags, 0, static_cast<size_t>(k));
  const bool split = threshold > 0.0f;
#pragma omp parallel for schedule(static) if (m > 1 && m * k >= (int64_t{1} << 16))
  for (int64_t i = 0; i < m; ++i) {
    if (split) quantize_row<true>(x + i * k, k, threshold, q + i * k, row_scale + i, col_flags);
    else quantize_row<false>(x + i * k, k, threshold, q + i * k, row_scale + i, col_flags);
  }
  return detail::finish_outlier_columns(m, k, q, outlier_cols, col_flags);
}

}  // namespace modelpress::kernels
