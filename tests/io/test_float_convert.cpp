#include <gtest/gtest.h>

#include "io/float_convert.h"

namespace modelpress {
TEST(FloatConvert, Smoke) { EXPECT_EQ(f32_to_f16(1.0f), 0x3c00); }
}  // namespace modelpress
