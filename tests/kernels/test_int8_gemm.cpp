// int8 GEMM: every path (the fast ones and int8_gemm's dispatch) equals the exact product
// computed here in int64, on odd shapes; the reference's own known answer.
#include <gtest/gtest.h>

#include <ostream>
#include <stdexcept>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/int8_gemm.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;
using testing::Shape;

using GemmFn = void (*)(const int8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t);

struct Path {
  const char* name;
  GemmFn fn;
  bool (*available)();
  bool full_a_range;  // takes A = -128
};

// Test names and ctest entries show the path's name, not the struct's bytes.
void PrintTo(const Path& p, std::ostream* os) { *os << p.name; }

const Path kPaths[] = {
    {"avx2", int8_gemm_avx2, [] { return cpu_features().avx2_fma; }, false},
    // Runs only on AVX-512 VNNI CPUs (skips elsewhere, e.g. on the Zen 3 development VM).
    {"avx512vnni", int8_gemm_avx512vnni, [] { return cpu_features().avx512_vnni; }, true},
    {"dispatch", int8_gemm, [] { return true; }, true},
};

// Odd on purpose: K not a multiple of 32 or 64, M = 1, N = 1, edges of every register tile,
// K above one K slice (2048), M and N above one cache block (48, 128).
// The AVX-512 VNNI path packs A and B from M = 8 on (below, it runs unpacked tiles): its
// blocking is 8-row x 48-column register tiles, K slices of 2048 bytes, 128-row x 768-column
// tasks and B chunks of about 8 MiB; the shapes from {8, 1, 1} on cross each of those edges
// (K % 4 != 0 pads the last 4-byte group; {9, 2100, 4100} has three K slices and packs B in
// two chunks of N).
const Shape kShapes[] = {{1, 2048, 513}, {7, 33, 129}, {3, 1, 17}, {1, 1, 1},   {1, 5, 31},   {2, 3, 32},
                         {5, 7, 64},     {4, 9, 65},   {1, 130, 4100}, {50, 131, 2049}, {97, 260, 77}, {13, 2, 0},
                         {8, 1, 1},      {9, 49, 5},   {8, 48, 512}, {130, 97, 1030}, {17, 800, 3}, {23, 47, 513},
                         {257, 770, 70}, {16, 97, 4097}, {9, 2100, 4100}};

// C = A B^T in int64, written here: the dispatch path is int8_gemm_ref itself where the CPU
// (or MODELPRESS_KERNEL_ISA=baseline) offers no fast path, so the reference cannot be the
// expected answer. (|C| <= K * 128 * 128 fits int32 for every K the GEMM takes.)
std::vector<int32_t> product_here(const std::vector<int8_t>& a, const std::vector<int8_t>& b, int64_t m, int64_t n,
                                  int64_t k) {
  std::vector<int32_t> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t t = 0; t < k; ++t) s += int64_t{a[i * k + t]} * b[j * k + t];
      c[static_cast<size_t>(i * n + j)] = static_cast<int32_t>(s);
    }
  return c;
}

class Int8GemmTest : public ::testing::TestWithParam<Path> {};

TEST_P(Int8GemmTest, MatchesTheExactProductOnOddShapes) {
  const Path& p = GetParam();
  if (!p.available()) GTEST_SKIP() << p.name << " needs CPU features this machine lacks";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::shape_name(s));
    const auto a = rng.int8s(s.m * s.k, p.full_a_range ? -128 : -127, 127);
    const auto b = rng.int8s(s.n * s.k, -128, 127);  // B may hold -128 on every path
    const std::vector<int32_t> want = product_here(a, b, s.m, s.n, s.k);
    std::vector<int32_t> got(s.m * s.n, -7);  // no path may rely on zeroed C
    p.fn(a.data(), b.data(), got.data(), s.m, s.n, s.k);
    ASSERT_EQ(got, want);
  }
}

TEST_P(Int8GemmTest, ExtremeValuesDoNotSaturate) {
  // vpmaddubsw saturates int16 pair sums: the largest legal pairs must still be exact.
  const Path& p = GetParam();
  if (!p.available()) GTEST_SKIP() << p.name << " needs CPU features this machine lacks";
  const int64_t n = 4, k = 1000;
  const int8_t a_values[] = {127, -127};
  const int8_t b_values[] = {127, -127, -128};
  for (int64_t m : {3, 9})  // 9: the packed AVX-512 path
  for (int8_t av : a_values)
    for (int8_t bv : b_values) {
      std::vector<int8_t> a(m * k, av), b(n * k, bv);
      std::vector<int32_t> got(m * n);
      p.fn(a.data(), b.data(), got.data(), m, n, k);
      EXPECT_EQ(got, std::vector<int32_t>(m * n, int32_t{av} * bv * k)) << "a = " << int{av} << ", b = " << int{bv};
    }
}

TEST_P(Int8GemmTest, WrapAroundIsExactAtTheLargestK) {
  // The offset trick's partial sums (e.g. a (b + 128) with a = -128, b = 127: 131071 * 128 *
  // 255 > 2^31) wrap in int32; the result, which fits, must still be exact.
  const Path& p = GetParam();
  if (!p.available()) GTEST_SKIP() << p.name << " needs CPU features this machine lacks";
  const int64_t k = 131071;
  const int8_t amin = p.full_a_range ? -128 : -127;
  for (int64_t m : {2, 9}) {
    const int64_t n = 17;
    std::vector<int8_t> a(m * k, amin), b(n * k, 127);
    for (int64_t j = 0; j < k; j += 3) b[j] = -128;  // row 0 of B mixes -128 in
    const std::vector<int32_t> want = product_here(a, b, m, n, k);
    std::vector<int32_t> got(m * n);
    p.fn(a.data(), b.data(), got.data(), m, n, k);
    EXPECT_EQ(got, want) << "m = " << m;
    EXPECT_EQ(want[1], int32_t{amin} * 127 * k);
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, Int8GemmTest, ::testing::ValuesIn(kPaths),
                         [](const ::testing::TestParamInfo<Path>& info) { return std::string(info.param.name); });

TEST(Int8Gemm, ReferenceKnownAnswer) {
  // (2, 3) x (2, 3)^T
  const int8_t a[] = {1, -2, 3, -128, 127, 0};
  const int8_t b[] = {4, 5, -6, -1, 0, 127};
  int32_t c[4];
  int8_gemm_ref(a, b, c, 2, 2, 3);
  EXPECT_EQ(c[0], 4 - 10 - 18);
  EXPECT_EQ(c[1], -1 + 0 + 381);
  EXPECT_EQ(c[2], -512 + 635 + 0);
  EXPECT_EQ(c[3], 128 + 0 + 0);
}

TEST(Int8Gemm, DispatchTakesMinus128ExactlyAndSaysWhenItFallsBack) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t m = 5, n = 6, k = 40;
  auto a = rng.int8s(m * k, -127, 127);
  a[17] = -128;
  const auto b = rng.int8s(n * k, -128, 127);
  const std::vector<int32_t> want = product_here(a, b, m, n, k);
  std::vector<int32_t> got(m * n);
  ::testing::internal::CaptureStderr();
  int8_gemm(a.data(), b.data(), got.data(), m, n, k);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(got, want);
  if (int8_gemm_best_path() == Int8GemmPath::Avx2) {
    EXPECT_NE(log.find("A holds -128"), std::string::npos) << log;
  }
}

TEST(Int8Gemm, RejectsKThatCouldOverflowInt32) {
  int32_t c = 0;
  const int8_t a = 0, b = 0;
  EXPECT_THROW(int8_gemm(&a, &b, &c, 1, 1, 131072), std::invalid_argument);
  EXPECT_THROW(int8_gemm_ref(&a, &b, &c, 1, 1, -1), std::invalid_argument);
}

TEST(Int8Gemm, FindsMinusOneTwentyEight) {
  std::vector<int8_t> a(1000, -127);
  EXPECT_FALSE(int8_has_min_value(a.data(), 1000));
  a[999] = -128;
  EXPECT_TRUE(int8_has_min_value(a.data(), 1000));
  EXPECT_FALSE(int8_has_min_value(a.data(), 999));
}

}  // namespace
}  // namespace modelpress::kernels
