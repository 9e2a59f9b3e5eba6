// The batch merge methods' per-tensor math (merge/merge_methods.h) on cases whose answers
// follow from the formulas by hand, and on fresh random data of odd sizes for the properties
// that must hold whatever the data (kept counts, determinism, limits).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "io/error.h"
#include "merge/merge_methods.h"
#include "tests/quant/quant_test_util.h"

namespace modelpress {
namespace {

using merge::Sparsify;
using merge::TaskArithmeticOptions;

TEST(MergeMethods, MagnitudeTrimKeepsTheLargestFloorDensityN) {
  for (const size_t n : {1u, 7u, 130u, 1001u}) {
    for (const double density : {0.001, 0.1, 0.37, 0.5, 0.99, 1.0}) {
      std::vector<float> v = testing::gaussian_values(n, n * 31 + static_cast<uint64_t>(density * 1000));
      const std::vector<float> original = v;
      merge::trim_by_magnitude(v, density);
      const size_t want = density >= 1 ? n : std::max<size_t>(1, static_cast<size_t>(std::floor(density * n)));
      size_t kept = 0;
      float smallest_kept = INFINITY, largest_dropped = 0;
      for (size_t i = 0; i < n; ++i) {
        if (v[i] != 0) {
          ++kept;
          EXPECT_EQ(v[i], original[i]);
          smallest_kept = std::min(smallest_kept, std::fabs(original[i]));
        } else {
          largest_dropped = std::max(largest_dropped, std::fabs(original[i]));
        }
      }
      EXPECT_EQ(kept, want) << n << " " << density;
      EXPECT_GT(smallest_kept, largest_dropped) << n << " " << density;
    }
  }
}

TEST(MergeMethods, MagnitudeTrimBreaksTiesTowardTheLowerIndex) {
  std::vector<float> v{1, -2, 2, 2, 0.5};
  merge::trim_by_magnitude(v, 0.4);  // k = 2 of the three |2|s: indices 1 and 2
  EXPECT_EQ(v, (std::vector<float>{0, -2, 2, 0, 0}));
}

TEST(MergeMethods, DareDropsAboutOneMinusDensityAndRescales) {
  const size_t n = 100003;
  const std::vector<float> original = testing::gaussian_values(n, 5);
  for (const double density : {0.1, 0.5, 0.9}) {
    std::vector<float> v = original;
    merge::dare_drop(v, density, true, 42, merge::dare_stream("w", 0));
    size_t kept = 0;
    double sum = 0, sum_original = 0;
    for (size_t i = 0; i < n; ++i) {
      sum += v[i];
      sum_original += original[i];
      if (v[i] != 0) {
        ++kept;
        EXPECT_FLOAT_EQ(v[i], static_cast<float>(original[i] * (1.0 / density)));
      }
    }
    // Binomial(n, density): within 5 standard deviations.
    const double sd = std::sqrt(n * density * (1 - density));
    EXPECT_NEAR(static_cast<double>(kept), n * density, 5 * sd) << density;
    // Unbiased: E[sum] = sum_original; sd of the sum = sqrt(sum x^2 (1-d)/d).
    double sq = 0;
    for (float x : original) sq += static_cast<double>(x) * x;
    EXPECT_NEAR(sum, sum_original, 5 * std::sqrt(sq * (1 - density) / density)) << density;
  }
}

TEST(MergeMethods, DareIsSeededPerTensorAndModel) {
  const std::vector<float> original = testing::gaussian_values(4097, 9);
  auto mask = [&](uint64_t seed, const std::string& tensor, size_t model) {
    std::vector<float> v = original;
    merge::dare_drop(v, 0.5, false, seed, merge::dare_stream(tensor, model));
    std::vector<bool> m(v.size());
    for (size_t i = 0; i < v.size(); ++i) m[i] = v[i] != 0;
    return m;
  };
  EXPECT_EQ(mask(1, "a", 0), mask(1, "a", 0));
  EXPECT_NE(mask(1, "a", 0), mask(2, "a", 0));
  EXPECT_NE(mask(1, "a", 0), mask(1, "b", 0));
  EXPECT_NE(mask(1, "a", 0), mask(1, "a", 1));
  std::vector<float> v = original;
  merge::dare_drop(v, 1.0, true, 1, 0);  // density 1: nothing dropped, nothing scaled
  EXPECT_EQ(v, original);
}

TEST(MergeMethods, TiesElectsTheSignOfTheWeightedSumAndAveragesTheAgreeingEntries) {
  // Three models, four entries, weights 1, 2, 1, no trimming (density 1):
  //  entry 0: deltas 1, 1, -4 -> weighted 1, 2, -4, sum -1 -> sign -, only model 2 agrees: -4 / 1
  //  entry 1: deltas 1, -1, 1 -> weighted 1, -2, 1, sum 0 -> sign + (zero counts as +): (1 + 1) / 2
  //  entry 2: deltas 0, 3, 0  -> weighted 0, 6, 0: zeros never agree: 6 / 2
  //  entry 3: deltas 0, 0, 0  -> nothing agrees, divisor 0 -> 1: 0
  const std::vector<float> base{10, 20, 30, 40};
  std::vector<std::vector<float>> deltas{{1, 1, 0, 0}, {1, -1, 3, 0}, {-4, 1, 0, 0}};
  const std::vector<double> weights{1, 2, 1}, densities{1, 1, 1};
  TaskArithmeticOptions o;
  o.sparsify = Sparsify::Magnitude;
  o.consensus = true;
  o.normalize = true;
  auto d = deltas;
  EXPECT_EQ(merge::task_arithmetic_merge(base, d, weights, densities, o, "t"),
            (std::vector<float>{10 - 4, 20 + 1, 30 + 3, 40}));
  // Without normalize the agreeing weighted entries are summed; lambda scales the result.
  o.normalize = false;
  o.lambda = 0.5;
  d = deltas;
  EXPECT_EQ(merge::task_arithmetic_merge(base, d, weights, densities, o, "t"),
            (std::vector<float>{10 - 2, 20 + 1, 30 + 3, 40}));
}

TEST(MergeMethods, TaskArithmeticIsTheWeightedSumRoundedOnce) {
  const std::vector<float> base{1, 2, 3};
  std::vector<std::vector<float>> deltas{{1, 0, -1}, {0.5f, 0.5f, 0.5f}};
  TaskArithmeticOptions o;  // no sparsification, no consensus, no normalize
  const std::vector<double> w{0.3, -2};
  auto d = deltas;
  const auto got = merge::task_arithmetic_merge(base, d, w, {}, o, "t");
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(got[i], static_cast<float>(base[i] + (0.3 * deltas[0][i] - 2.0 * deltas[1][i])));
  // normalize divides by the sum of weights; a sum under 1e-8 counts as 1.
  o.normalize = true;
  d = deltas;
  const std::vector<double> cancel{1, -1};
  const auto got2 = merge::task_arithmetic_merge(base, d, cancel, {}, o, "t");
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got2[i], static_cast<float>(base[i] + (deltas[0][i] - deltas[1][i])));
}

TEST(MergeMethods, LinearIsTheWeightedMean) {
  const std::vector<std::vector<float>> t{{1, 2}, {3, 6}};
  EXPECT_EQ(merge::linear_merge(t, std::vector<double>{1, 3}, true), (std::vector<float>{2.5f, 5}));
  EXPECT_EQ(merge::linear_merge(t, std::vector<double>{1, 3}, false), (std::vector<float>{10, 20}));
  EXPECT_THROW(merge::linear_merge(t, std::vector<double>{1, -1}, true), Error);
}

TEST(MergeMethods, SlerpFollowsTheGreatCircle) {
  const std::vector<float> x{1, 0, 0}, y{0, 2, 0};
  EXPECT_EQ(merge::slerp_merge(0, x, y), x);
  const auto end = merge::slerp_merge(1, x, y);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(end[i], y[i], 1e-6);
  // Orthogonal: theta = pi/2, halfway both coefficients are sin(pi/4) / 1.
  const auto mid = merge::slerp_merge(0.5, x, y);
  EXPECT_NEAR(mid[0], std::sqrt(0.5), 1e-6);
  EXPECT_NEAR(mid[1], 2 * std::sqrt(0.5), 1e-6);
  // Nearly collinear (|cos| > 0.9995): the linear interpolation.
  const std::vector<float> a{1, 0.01f}, b{2, 0.021f};
  const auto lin = merge::slerp_merge(0.25, a, b);
  EXPECT_FLOAT_EQ(lin[0], 0.75f * 1 + 0.25f * 2);
  EXPECT_FLOAT_EQ(lin[1], static_cast<float>(0.75 * 0.01f + 0.25 * 0.021f));
  // Random odd-sized vectors of equal norm keep that norm along the way.
  std::vector<float> p = testing::gaussian_values(333, 1), q = testing::gaussian_values(333, 2);
  double np = 0, nq = 0;
  for (size_t i = 0; i < p.size(); ++i) np += p[i] * p[i], nq += q[i] * q[i];
  for (float& v : q) v = static_cast<float>(v * std::sqrt(np / nq));
  for (const double t : {0.2, 0.5, 0.7}) {
    const auto r = merge::slerp_merge(t, p, q);
    double nr = 0;
    for (float v : r) nr += static_cast<double>(v) * v;
    EXPECT_NEAR(std::sqrt(nr), std::sqrt(np), 1e-4 * std::sqrt(np)) << t;
  }
}

TEST(MergeMethods, ModelStockInterpolatesByTheAngleBetweenTaskVectors) {
  const std::vector<float> base{0, 0, 0, 0};
  // Orthogonal offsets: cos 0, t 0 -> the base.
  EXPECT_EQ(merge::model_stock_merge(base, {{1, 0, 0, 0}, {0, 1, 0, 0}}, false, 1), base);
  // Equal offsets: cos 1, t = 2 / 2 = 1 -> their mean.
  EXPECT_EQ(merge::model_stock_merge(base, {{1, 2, 3, 4}, {1, 2, 3, 4}}, false, 1), (std::vector<float>{1, 2, 3, 4}));
  // cos 0.5 (60 degrees) with N = 2: t = 1 / 1.5.
  const std::vector<float> a{1, 0, 0, 0}, b{0.5f, std::sqrt(3.0f) / 2, 0, 0};
  const auto got = merge::model_stock_merge(base, {a, b}, false, 1);
  const double t = 1 / 1.5;
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(got[i], t * (a[i] + b[i]) / 2, 1e-6);
  // filter_wise: each row its own angle (row 0 orthogonal -> base, row 1 equal -> mean).
  const auto rows = merge::model_stock_merge(base, {{1, 0, 3, 4}, {0, 1, 3, 4}}, true, 2);
  EXPECT_EQ(rows, (std::vector<float>{0, 0, 3, 4}));
  EXPECT_THROW(merge::model_stock_merge(base, {a}, false, 1), Error);
}

}  // namespace
}  // namespace modelpress
