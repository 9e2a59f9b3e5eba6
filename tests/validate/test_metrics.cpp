// quant/metrics: known answers, the documented edge conventions, and per-row subsets.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "io/error.h"
#include "eval/metrics.h"

namespace modelpress::eval {
namespace {

TEST(Metrics, KnownAnswer) {
  // ||ref|| = 5, diff = (0, 0.5): relative 0.1, SQNR 10 log10(25 / 0.25) = 20 dB,
  // cosine 27 / (5 sqrt(29.25)).
  const std::vector<float> ref{3, 4}, y{3, 4.5f};
  const OutputError e = compare_outputs(y, ref);
  EXPECT_NEAR(e.relative_error, 0.1, 1e-12);
  EXPECT_NEAR(e.sqnr_db, 20.0, 1e-9);
  EXPECT_NEAR(e.cosine, 27.0 / (5.0 * std::sqrt(29.25)), 1e-12);
  EXPECT_DOUBLE_EQ(e.max_abs_error, 0.5);
}

TEST(Metrics, SignFlipIsRelativeErrorTwo) {
  const std::vector<float> ref{1, -2, 3, 0.5f}, y{-1, 2, -3, -0.5f};
  const OutputError e = compare_outputs(y, ref);
  EXPECT_NEAR(e.relative_error, 2.0, 1e-12);
  EXPECT_NEAR(e.sqnr_db, 10 * std::log10(0.25), 1e-9);  // -6.02 dB
  EXPECT_NEAR(e.cosine, -1.0, 1e-12);
  EXPECT_DOUBLE_EQ(e.max_abs_error, 6.0);
}

TEST(Metrics, SqnrAndRelativeErrorAgree) {
  std::vector<float> ref(1000), y(1000);
  for (int i = 0; i < 1000; ++i) {
    ref[i] = std::sin(0.37f * i) * 3;
    y[i] = ref[i] + 0.01f * std::cos(1.3f * i);
  }
  const OutputError e = compare_outputs(y, ref);
  EXPECT_NEAR(e.sqnr_db, -20 * std::log10(e.relative_error), 1e-9);
  EXPECT_GT(e.cosine, 0.9999);
  EXPECT_LE(e.cosine, 1.0);
}

TEST(Metrics, EqualOutputsAreExact) {
  const std::vector<float> v{1.5f, -2, 0, 7};
  const OutputError e = compare_outputs(v, v);
  EXPECT_EQ(e.relative_error, 0);
  EXPECT_TRUE(std::isinf(e.sqnr_db) && e.sqnr_db > 0);
  EXPECT_EQ(e.cosine, 1);
  EXPECT_EQ(e.max_abs_error, 0);
}

TEST(Metrics, ZeroReference) {
  const std::vector<float> zero{0, 0, 0};
  OutputError e = compare_outputs(zero, zero);
  EXPECT_EQ(e.relative_error, 0);
  EXPECT_TRUE(std::isinf(e.sqnr_db) && e.sqnr_db > 0);
  EXPECT_EQ(e.cosine, 1);

  const std::vector<float> y{0, 1, 0};
  e = compare_outputs(y, zero);
  EXPECT_TRUE(std::isinf(e.relative_error));
  EXPECT_TRUE(std::isinf(e.sqnr_db) && e.sqnr_db < 0);
  EXPECT_EQ(e.cosine, 0);
  EXPECT_EQ(e.max_abs_error, 1);
}

TEST(Metrics, NonFiniteOutputIsNaNEverywhere) {
  const std::vector<float> ref{1, 2, 3};
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::vector<float> y{1, bad, 3};
    const OutputError e = compare_outputs(y, ref);
    EXPECT_TRUE(std::isnan(e.relative_error));
    EXPECT_TRUE(std::isnan(e.sqnr_db));
    EXPECT_TRUE(std::isnan(e.cosine));
    EXPECT_TRUE(std::isnan(e.max_abs_error));
  }
}

TEST(Metrics, SizeMismatchThrows) {
  const std::vector<float> a{1, 2}, b{1, 2, 3};
  EXPECT_THROW(compare_outputs(a, b), Error);
}

TEST(Metrics, RowSubset) {
  // 3 rows x 2 columns; row 1 is exact, rows 0 and 2 carry the known-answer error.
  const std::vector<float> ref{3, 4, 1, 1, 3, 4}, y{3, 4.5f, 1, 1, 3, 4.5f};
  const std::vector<int64_t> exact_row{1}, error_rows{0, 2};
  OutputError e = compare_rows(y.data(), ref.data(), 2, exact_row);
  EXPECT_TRUE(std::isinf(e.sqnr_db));
  e = compare_rows(y.data(), ref.data(), 2, error_rows);
  EXPECT_NEAR(e.relative_error, 0.1, 1e-12);
  EXPECT_NEAR(e.sqnr_db, 20.0, 1e-9);
}

}  // namespace
}  // namespace modelpress::eval
