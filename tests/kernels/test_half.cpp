// f16 -> f32 for the LLM.int8 fp16 weight columns: exhaustive over all 65536 codes.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "kernels/half.h"

namespace modelpress::kernels {
namespace {

TEST(Half, EveryCodeConvertsExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const int sign = (h >> 15) ? -1 : 1;
    const int exp = (h >> 10) & 31;
    const int mant = h & 1023;
    const float got = f16_bits_to_f32(static_cast<uint16_t>(h));
    if (exp == 31) {
      if (mant == 0) {
        EXPECT_TRUE(std::isinf(got) && std::signbit(got) == (sign < 0)) << h;
      } else {
        EXPECT_TRUE(std::isnan(got)) << h;
        EXPECT_EQ(std::bit_cast<uint32_t>(got) & 0x3FFu << 13, static_cast<uint32_t>(mant) << 13) << "payload " << h;
      }
      continue;
    }
    const double want = sign * (exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25));
    ASSERT_EQ(static_cast<double>(got), want) << "code " << h;
    ASSERT_EQ(std::signbit(got), sign < 0) << "code " << h;
  }
}

}  // namespace
}  // namespace modelpress::kernels
