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

// Lists the flagged columns (ascending) into outlier_cols and zeroes them in every row of q.
int64_t finish_outlier_columns(int64_t m, int64_t k, int8_t* q, int32_t* outlier_cols, const uint8_t* col_flags);

}  // namespace modelpress::kernels::detail
