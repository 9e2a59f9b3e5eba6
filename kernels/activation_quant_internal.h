// Internal to activation quantization: the per-element rule shared by the reference and the
// vector tails, and the cross-row outlier-column step.
#pragma once
#include <cmath>
#include <cstdint>

namespace modelpress::kernels::detail {

// round_half_even(x * inv) clamped to [-127, 127]; NaN -> 0. nearbyint rounds half to even
// in the default floating-point environment, as vroundps with _MM_FROUND_TO_NEAREST_INT.
inline int8_t quantize_one(float x, float inv) {
  const float r = std::nearbyint(x * inv);
  if (r >= -127.0f && r <= 127.0f) return static_cast<int8_t>(r);
  if (r > 127.0f) return 127;
  if (r < -127.0f) return -127;
  return 0;  // NaN
}

// The same for a row whose absmax is below 127 / FLT_MAX (~3.7e-37), where 127 / absmax
// overflows f32: multiplying by an infinite reciprocal would send every nonzero element to
// +-127 whatever its size. In double, x * 127 / absmax keeps the row's proportions.
// (bitsandbytes computes inf * x there, and casting inf to int8 is undefined.)
inline int8_t quantize_one_tiny_row(float x, float absmax) {
  const double r = std::nearbyint(static_cast<double>(x) * 127.0 / static_cast<double>(absmax));
  if (r >= -127.0 && r <= 127.0) return static_cast<int8_t>(r);
  if (r > 127.0) return 127;
  if (r < -127.0) return -127;
  return 0;  // NaN
}

// Lists the flagged columns (ascending) into outlier_cols and zeroes them in every row of q.
int64_t finish_outlier_columns(int64_t m, int64_t k, int8_t* q, int32_t* outlier_cols, const uint8_t* col_flags);

}  // namespace modelpress::kernels::detail
