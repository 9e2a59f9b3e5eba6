// Activation quantization: known answers for the bitsandbytes rule, and the AVX2 path equal
// to the reference bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <vector>

#include "kernels/activation_quant.h"
#include "kernels/cpu_features.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;

using QuantFn = int64_t (*)(const float*, int64_t, int64_t, float, int8_t*, float*, int32_t*, uint8_t*);

struct Result {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> cols;
};

Result run(QuantFn fn, const std::vector<float>& x, int64_t m, int64_t k, float threshold) {
  Result r;
  r.q.assign(m * k, 99);  // stale values must be overwritten
  r.scale.assign(m, -1.0f);
  std::vector<int32_t> cols(k + 1, -5);
  std::vector<uint8_t> flags(k + 1, 7);
  const int64_t count = fn(x.data(), m, k, threshold, r.q.data(), r.scale.data(), cols.data(), flags.data());
  r.cols.assign(cols.begin(), cols.begin() + count);
  return r;
}

struct PathParam {
  const char* name;
  QuantFn fn;
  bool needs_avx2;
};
void PrintTo(const PathParam& p, std::ostream* os) { *os << p.name; }

const PathParam kPaths[] = {{"reference", quantize_activations_ref, false},
                            {"avx2", quantize_activations_avx2, true},
                            {"dispatch", quantize_activations, false}};

class ActivationQuantTest : public ::testing::TestWithParam<PathParam> {
 protected:
  void SetUp() override {
    if (GetParam().needs_avx2 && !cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2 on this CPU";
  }
  QuantFn fn() const { return GetParam().fn; }
};

TEST_P(ActivationQuantTest, OutlierColumnsFollowBitsandbytes) {
  // (3, 5), threshold 6. Column 1 holds 8 in row 0 and 0.5 in row 2; column 3 holds -6
  // (>= threshold counts) in row 1.
  const std::vector<float> x = {1.0f, 8.0f, -2.0f, 0.25f, 0.0f,   //
                                0.5f, 1.0f, 1.5f,  -6.0f, 2.0f,   //
                                -3.0f, 0.5f, 1.0f, 0.0f, 1.0f};
  const Result r = run(fn(), x, 3, 5, 6.0f);
  EXPECT_EQ(r.cols, (std::vector<int32_t>{1, 3}));
  // Row absmax leaves out the outlier elements only: row 0 -> 2 (not 8), row 1 -> 2 (not 6),
  // row 2 -> 3 (its 0.5 in outlier column 1 counts, then is zeroed with the column).
  EXPECT_FLOAT_EQ(r.scale[0], 2.0f / 127.0f);
  EXPECT_FLOAT_EQ(r.scale[1], 2.0f / 127.0f);
  EXPECT_FLOAT_EQ(r.scale[2], 3.0f / 127.0f);
  const std::vector<int8_t> want = {64, 0, -127, 0, 0,  //
                                    32, 0, 95, 0, 127,  //
                                    -127, 0, 42, 0, 42};
  EXPECT_EQ(r.q, want);
}

TEST_P(ActivationQuantTest, ThresholdZeroMeansNoOutliers) {
  const std::vector<float> x = {100.0f, -50.0f, 1.0f, 1e6f};
  const Result r = run(fn(), x, 2, 2, 0.0f);
  EXPECT_TRUE(r.cols.empty());
  EXPECT_FLOAT_EQ(r.scale[0], 100.0f / 127.0f);
  EXPECT_FLOAT_EQ(r.scale[1], 1e6f / 127.0f);
  EXPECT_EQ(r.q, (std::vector<int8_t>{127, -64, 0, 127}));
}

TEST_P(ActivationQuantTest, AllZeroAndAllOutlierRowsGiveScaleZeroAndNoNaN) {
  const int64_t k = 37;  // a vector body and a scalar tail
  std::vector<float> x(3 * k, 0.0f);
  for (int64_t j = 0; j < k; ++j) x[k + j] = 10.0f + j;  // row 1: every element an outlier
  x[2 * k + 5] = 0.5f;                                    // row 2: one small value
  const Result r = run(fn(), x, 3, k, 6.0f);
  EXPECT_EQ(r.scale[0], 0.0f);
  EXPECT_EQ(r.scale[1], 0.0f);
  EXPECT_FLOAT_EQ(r.scale[2], 0.5f / 127.0f);
  EXPECT_EQ(static_cast<int64_t>(r.cols.size()), k);  // row 1 made every column an outlier
  for (int8_t v : r.q) EXPECT_EQ(v, 0);
  const Result none = run(fn(), std::vector<float>(2 * k, 0.0f), 2, k, 0.0f);
  for (float s : none.scale) EXPECT_EQ(s, 0.0f);
  for (int8_t v : none.q) EXPECT_EQ(v, 0);
}

TEST_P(ActivationQuantTest, RoundsHalfToEven) {
  // absmax 127 makes 127 / absmax exactly 1, so x * inv is x and halves stay halves. 40
  // values: the vector body (32) and the scalar tail both see them.
  std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -126.5f, 3.5f, 4.5f};
  const std::vector<int8_t> want_head = {0, 2, 2, 0, -2, -2, 126, -126, 4, 4};
  std::vector<int8_t> want;
  for (int rep = 0; rep < 4; ++rep) want.insert(want.end(), want_head.begin(), want_head.end());
  std::vector<float> row;
  for (int rep = 0; rep < 4; ++rep) row.insert(row.end(), x.begin(), x.end());
  row[39] = 127.0f;  // the absmax
  want[39] = 127;
  const Result r = run(fn(), row, 1, 40, 0.0f);
  EXPECT_EQ(r.q, want);
}

TEST_P(ActivationQuantTest, NeverWritesMinus128AndZeroesNaN) {
  std::vector<float> x = {-1.0f, 1.0f, std::numeric_limits<float>::quiet_NaN(), -0.99999994f};
  x.resize(40, -1.0f);
  const Result r = run(fn(), x, 1, 40, 0.0f);
  EXPECT_EQ(r.q[0], -127);
  EXPECT_EQ(r.q[2], 0);
  for (int8_t v : r.q) EXPECT_NE(v, -128);
}

TEST_P(ActivationQuantTest, RowOfTinyValuesKeepsItsProportions) {
  // absmax 1e-38 < 127 / FLT_MAX: 127 / absmax overflows f32. With the infinite reciprocal
  // every nonzero element became +-127; the codes must still be x * 127 / absmax, rounded.
  // 40 values: the vector body and the scalar tail; row 1 is ordinary (same codes scaled).
  const int64_t k = 40;
  std::vector<float> x(2 * k, 0.0f);
  const float tiny[] = {1e-38f, 1e-39f, -4e-39f, 2.5e-39f, -1e-38f};
  for (int rep = 0; rep < 8; ++rep)
    for (int t = 0; t < 5; ++t) x[rep * 5 + t] = tiny[t], x[k + rep * 5 + t] = tiny[t] * 1e38f;
  const std::vector<int8_t> want_head = {127, 13, -51, 32, -127};
  for (float threshold : {0.0f, 6.0f}) {
    const Result r = run(fn(), x, 2, k, threshold);
    EXPECT_TRUE(r.cols.empty());
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(r.q[j], want_head[j % 5]) << "tiny row, column " << j;
      EXPECT_EQ(r.q[k + j], want_head[j % 5]) << "ordinary row, column " << j;
    }
    EXPECT_GT(r.scale[0], 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, ActivationQuantTest, ::testing::ValuesIn(kPaths),
                         [](const ::testing::TestParamInfo<PathParam>& info) { return std::string(info.param.name); });

TEST(ActivationQuant, Avx2EqualsReferenceBitForBitOnOddShapes) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2 on this CPU";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const struct {
    int64_t m, k;
  } shapes[] = {{1, 2048 + 13}, {7, 33}, {3, 17}, {1, 1}, {2, 32}, {5, 31}, {64, 1031}, {300, 257}};
  for (const auto& s : shapes)
    for (float threshold : {0.0f, 6.0f, 2.5f}) {
      SCOPED_TRACE(testing::str("M", s.m, " K", s.k, " threshold ", threshold));
      std::vector<float> x = rng.normals(s.m * s.k, 1.5f);
      // A few systematic outlier columns, as in LLM activations, plus scattered large values.
      for (int64_t i = 0; i < s.m; ++i) {
        x[i * s.k + (s.k * 3) / 4] *= 9.0f;
        if (rng.integer(0, 9) == 0) x[i * s.k + rng.integer(0, static_cast<int>(s.k - 1))] = rng.uniform(-40.0f, 40.0f);
      }
      const Result want = run(quantize_activations_ref, x, s.m, s.k, threshold);
      const Result got = run(quantize_activations_avx2, x, s.m, s.k, threshold);
      ASSERT_EQ(got.cols, want.cols);
      ASSERT_EQ(got.scale, want.scale);
      ASSERT_EQ(got.q, want.q);
      if (threshold == 2.5f && s.m * s.k > 100) {
        EXPECT_FALSE(want.cols.empty());
      }
    }
}

TEST(ActivationQuant, DequantizedRowsAreWithinHalfAStep) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t m = 9, k = 301;
  const std::vector<float> x = rng.normals(m * k, 3.0f);
  const Result r = run(quantize_activations, x, m, k, 6.0f);
  std::vector<bool> outlier(k, false);
  for (int32_t c : r.cols) outlier[c] = true;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) {
      if (outlier[j]) {
        EXPECT_EQ(r.q[i * k + j], 0);
        continue;
      }
      EXPECT_LT(std::fabs(x[i * k + j]), 6.0f);
      EXPECT_LE(std::fabs(r.q[i * k + j] * r.scale[i] - x[i * k + j]), 0.5f * r.scale[i] * 1.0001f);
    }
}

}  // namespace
}  // namespace modelpress::kernels
