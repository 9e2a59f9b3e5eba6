// W4A16: the AVX2 GEMV and GEMM paths and the reference against dequantize-then-matmul, for
// symmetric and asymmetric weights, on odd shapes; the group sizes the fast path refuses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/w4a16.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;

// Named tolerances, relative to sum_k |w x| + |b| per output.
// The fast path sums raw nibbles and subtracts the zero point per group (GEMV), or rounds
// u * s - z * s once per weight (GEMM): f32 error a few times that of a plain dot product.
constexpr double kW4FastTol = 2e-5;
// The reference dequantizes exactly as the test does and accumulates in double.
constexpr double kW4RefTol = 1e-6;

struct W4 {
  std::vector<uint8_t> packed, zeros;
  std::vector<float> scales, bias;
  W4Weight view;
};

W4 random_w4(Rng& rng, int64_t n, int64_t k, int64_t group, bool symmetric, bool with_bias) {
  W4 w;
  w.packed.resize(n * k / 2);
  for (auto& b : w.packed) b = static_cast<uint8_t>(rng.integer(0, 255));  // every nibble value
  w.scales.resize(n * (k / group));
  for (auto& s : w.scales) s = rng.uniform(0.001f, 0.05f);
  if (!symmetric) {
    w.zeros.resize(n * (k / group));
    for (auto& z : w.zeros) z = static_cast<uint8_t>(rng.integer(0, 15));
  }
  if (with_bias) w.bias = rng.normals(n, 0.3f);
  w.view = {w.packed.data(), w.scales.data(), symmetric ? nullptr : w.zeros.data(), n, k, group};
  return w;
}

// The full dequantized weight (N, K): what the kernels must never build, the test may.
std::vector<float> dequantize(const W4Weight& w) {
  std::vector<float> out(w.n * w.k);
  const int64_t groups = w.k / w.group;
  for (int64_t j = 0; j < w.n; ++j)
    for (int64_t t = 0; t < w.k; ++t) {
      const uint8_t byte = w.packed[j * (w.k / 2) + t / 2];
      const int u = t % 2 == 0 ? byte & 15 : byte >> 4;
      const int64_t g = j * groups + t / w.group;
      out[j * w.k + t] = static_cast<float>(u - (w.zeros ? w.zeros[g] : 8)) * w.scales[g];
    }
  return out;
}

struct Case {
  int64_t m, n, k, group;
};

// M < 8: GEMV (1-4 rows per weight pass, edges 5 and 7); M >= 8: dequantized tiles.
// K = 32 mod 64 (a half step), groups 96 and 160 (a 64-weight step straddles two groups),
// N above one tile (64), M above one block (48), K above one tile (256).
const Case kCases[] = {
    {1, 2048, 544, 32}, {1, 33, 96, 32},  {2, 17, 128, 128}, {3, 1, 192, 64},  {4, 5, 384, 96},
    {5, 129, 2080, 160}, {7, 3, 64, 64},  {1, 1, 32, 32},    {8, 65, 128, 32}, {9, 3, 2080, 160},
    {50, 130, 544, 32}, {13, 64, 768, 128},
};

TEST(W4A16, FastAndReferenceMatchDequantizeThenMatmul) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (const Case& c : kCases)
    for (bool symmetric : {true, false}) {
      SCOPED_TRACE(testing::str("M", c.m, " N", c.n, " K", c.k, " group ", c.group, symmetric ? " symmetric" : " asymmetric"));
      const bool with_bias = c.n % 2 == 1;
      const W4 w = random_w4(rng, c.n, c.k, c.group, symmetric, with_bias);
      const float* bias = with_bias ? w.bias.data() : nullptr;
      const std::vector<float> x = rng.normals(c.m * c.k);
      const auto want = testing::matmul_double(x, dequantize(w.view), bias, c.m, c.n, c.k);

      std::string why;
      ASSERT_TRUE(w4a16_fast_supported(w.view, &why)) << why;
      std::vector<unsigned char> ws(w4a16_workspace_bytes(w.view, c.m));
      std::vector<float> fast(c.m * c.n, std::nanf("")), ref(c.m * c.n, std::nanf(""));
      w4a16_linear_avx2(w.view, bias, x.data(), c.m, fast.data(), ws.data());
      w4a16_linear_ref(w.view, bias, x.data(), c.m, ref.data());
      EXPECT_TRUE(testing::within(fast, want.y, want.magnitude, kW4FastTol));
      EXPECT_TRUE(testing::within(ref, want.y, want.magnitude, kW4RefTol));
    }
}

// The AVX-512 GEMV (M < 8, group a multiple of 128) against dequantize-then-matmul, on odd
// N and M, groups of 1-3 blocks, K of 1-16 groups; M = 8 and group 64 check that it hands
// what it does not take to the AVX2 path.
TEST(W4A16, Avx512GemvMatchesDequantizeThenMatmul) {
  if (!cpu_features().avx512) GTEST_SKIP() << "no AVX-512 F/BW/VL/DQ on this CPU (or capped by MODELPRESS_KERNEL_ISA)";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const Case cases[] = {
      {1, 33, 128, 128},  {2, 17, 1152, 128}, {3, 1, 768, 256},  {4, 5, 384, 384},  {5, 129, 2048, 128},
      {7, 3, 1280, 256},  {6, 64, 768, 384},  {1, 1000, 2048, 128}, {8, 65, 256, 128}, {1, 31, 192, 64},
  };
  for (const Case& c : cases)
    for (bool symmetric : {true, false}) {
      SCOPED_TRACE(testing::str("M", c.m, " N", c.n, " K", c.k, " group ", c.group, symmetric ? " symmetric" : " asymmetric"));
      const bool with_bias = c.n % 2 == 1;
      const W4 w = random_w4(rng, c.n, c.k, c.group, symmetric, with_bias);
      const float* bias = with_bias ? w.bias.data() : nullptr;
      const std::vector<float> x = rng.normals(c.m * c.k);
      const auto want = testing::matmul_double(x, dequantize(w.view), bias, c.m, c.n, c.k);
      EXPECT_EQ(w4a16_avx512_supported(w.view, c.m), c.m < 8 && c.group % 128 == 0);
      std::vector<unsigned char> ws(w4a16_workspace_bytes(w.view, c.m));
      std::vector<float> fast(c.m * c.n, std::nanf(""));
      w4a16_linear_avx512(w.view, bias, x.data(), c.m, fast.data(), ws.data());
      EXPECT_TRUE(testing::within(fast, want.y, want.magnitude, kW4FastTol));
    }
}

TEST(W4A16, ReferenceKnownAnswer) {
  // N = 1, K = 4, group 2. Bytes 0x1F, 0x80: u = {15, 1, 0, 8}.
  const uint8_t packed[] = {0x1F, 0x80};
  const float scales[] = {0.5f, 2.0f};
  const uint8_t zeros[] = {1, 4};
  const float x[] = {1.0f, 2.0f, 3.0f, 4.0f};
  float y = 0.0f;
  // Symmetric (zero 8): w = {3.5, -3.5, -16, 0}.
  w4a16_linear_ref({packed, scales, nullptr, 1, 4, 2}, nullptr, x, 1, &y);
  EXPECT_FLOAT_EQ(y, 3.5f - 7.0f - 48.0f);
  // Asymmetric: w = {7, 0, -8, 8}, plus bias.
  const float bias = 0.25f;
  w4a16_linear_ref({packed, scales, zeros, 1, 4, 2}, &bias, x, 1, &y);
  EXPECT_FLOAT_EQ(y, 7.0f - 24.0f + 32.0f + 0.25f);
}

TEST(W4A16, GroupNotAMultipleOf32FallsBackToTheReferenceAndSaysSo) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t m = 2, n = 7, k = 48, group = 16;
  const W4 w = random_w4(rng, n, k, group, false, true);
  std::string why;
  EXPECT_FALSE(w4a16_fast_supported(w.view, &why));
  if (cpu_features().avx2_fma) {
    EXPECT_NE(why.find("group size 16"), std::string::npos) << why;
  }
  const std::vector<float> x = rng.normals(m * k);
  std::vector<unsigned char> ws(w4a16_workspace_bytes(w.view, m));
  std::vector<float> y(m * n);
  ::testing::internal::CaptureStderr();
  w4a16_linear(w.view, w.bias.data(), x.data(), m, y.data(), ws.data());
  const std::string first = ::testing::internal::GetCapturedStderr();
  ::testing::internal::CaptureStderr();
  w4a16_linear(w.view, w.bias.data(), x.data(), m, y.data(), ws.data());
  const std::string second = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(first.find("using the reference kernel"), std::string::npos) << first;
  EXPECT_NE(first.find("7x48 group 16"), std::string::npos) << first;
  EXPECT_EQ(second, "") << "the same fallback is reported once";
  const auto want = testing::matmul_double(x, dequantize(w.view), w.bias.data(), m, n, k);
  EXPECT_TRUE(testing::within(y, want.y, want.magnitude, kW4RefTol));
}

}  // namespace
}  // namespace modelpress::kernels
