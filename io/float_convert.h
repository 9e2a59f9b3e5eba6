// Conversions between f32 and the narrow float formats checkpoints use. f32 -> narrow rounds
// to nearest, ties to even, with subnormals handled exactly; narrow -> f32 is exact.
//   F16       IEEE binary16 (5 exponent bits, 10 mantissa bits), overflow -> inf
//   BF16      bfloat16 (8, 7), overflow -> inf
//   F8_E5M2   OCP FP8 E5M2 (5, 2), IEEE-like with inf, overflow -> inf
//   F8_E4M3   OCP FP8 E4M3FN (4, 3): no inf; S.1111.111 is NaN; max 448; a value that
//             rounds past 448 and inf become NaN (the non-saturating mode PyTorch uses)
// NaN stays NaN (sign kept, quiet bit set).
#pragma once
#include <cstddef>
#include <cstdint>

#include "io/dtype.h"

namespace modelpress {

uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);
uint8_t f32_to_f8_e4m3(float x);
float f8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_f8_e5m2(float x);
float f8_e5m2_to_f32(uint8_t v);

// Bulk conversion of n little-endian elements of `type` at `src` (any alignment) to f32.
// Integer and bool types convert by value. Throws Error for none.
void convert_to_f32(DType type, const void* src, float* dst, size_t n);
// Bulk conversion of n f32 values to `type` (float types only; throws Error otherwise).
void convert_from_f32(DType type, const float* src, void* dst, size_t n);

}  // namespace modelpress
