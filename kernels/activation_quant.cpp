// Activation quantization: the reference, the shared "collect and zero the outlier columns"
// step, and the dispatch to the AVX2 path (activation_quant_avx2.cpp).
//
// What "one pass over x" means here. With bitsandbytes' rule (activation_quant.h) a row's
// absmax depends only on that row: outlier elements are recognised by value, without knowing
// the other rows. So each row is finished where it is read: one sweep over the row from memory
// finds its absmax and marks its outlier columns, and a second sweep over the same row, now in
// L1/L2 (a row is K * 4 bytes), writes q. x is read from memory once. The only cross-row step
// is the column rule (q = 0 in every outlier column, also in rows where that column held a
// small value): it runs after all rows, touches only q, and only M x (outlier count) bytes of
// it. No whole-column statistics are needed before a row can be quantized, which is what makes
// the single pass exact rather than an approximation.
#include "kernels/activation_quant.h"

#include <cmath>
#include <cstring>

#include "kernels/activation_quant_internal.h"
#include "kernels/cpu_features.h"
#include "kernels/fallback_log.h"

namespace modelpress::kernels {

namespace detail {

int64_t finish_outlier_columns(int64_t m, int64_t k, int8_t* q, int32_t* outlier_cols, const uint8_t* col_flags) {
  int64_t count = 0;
  for (int64_t j = 0; j < k; ++j)
    if (col_flags[j]) outlier_cols[count++] = static_cast<int32_t>(j);
  if (count == 0) return 0;
#pragma omp parallel for schedule(static) if (m * count >= (int64_t{1} << 16))
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < count; ++c) q[i * k + outlier_cols[c]] = 0;
  return count;
}

}  // namespace detail

int64_t quantize_activations_ref(const float* x, int64_t m, int64_t k, float threshold, int8_t* q,
                                 float* row_scale, int32_t* outlier_cols, uint8_t* col_flags) {
  const bool split = threshold > 0.0f;
  std::memset(col_flags, 0, static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    float absmax = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const float a = std::fabs(row[j]);
      if (split && a >= threshold) col_flags[j] = 1;
      else if (a > absmax) absmax = a;  // a NaN compares false: left out
    }
    row_scale[i] = absmax / 127.0f;
    const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
    const bool tiny = std::isinf(inv);  // absmax below 127 / FLT_MAX
    for (int64_t j = 0; j < k; ++j) {
      const bool outlier = split && std::fabs(row[j]) >= threshold;
      q[i * k + j] = outlier ? int8_t{0}
                     : tiny  ? detail::quantize_one_tiny_row(row[j], absmax)
                             : detail::quantize_one(row[j], inv);
    }
  }
  return detail::finish_outlier_columns(m, k, q, outlier_cols, col_flags);
}

int64_t quantize_activations(const float* x, int64_t m, int64_t k, float threshold, int8_t* q, float* row_scale,
                             int32_t* outlier_cols, uint8_t* col_flags) {
  if (cpu_features().avx2_fma)
    return quantize_activations_avx2(x, m, k, threshold, q, row_scale, outlier_cols, col_flags);
  log_fallback_once("activation_quant:isa", "activation quantization: this CPU has no AVX2; using the reference");
  return quantize_activations_ref(x, m, k, threshold, q, row_scale, outlier_cols, col_flags);
}

}  // namespace modelpress::kernels
