// The calibration recorder against the rows it saw: kept rows spread evenly, per-channel
// ranges and X^T X over every token, written in the calibration format and read back by
// io/calibration.h (statistics are companions, not layers).
#include <gtest/gtest.h>

#include <cmath>

#include "io/calibration.h"
#include "io/error.h"
#include "io/safetensors_writer.h"
#include "model/calibration_recorder.h"
#include "tests/test_util.h"

namespace modelpress::model {
namespace {

using modelpress::testing::TempDir;

TEST(CalibrationRecorder, StatisticsCoverEveryTokenAndRowsAreSpreadEvenly) {
  TempDir dir;
  const int64_t k = 5, calls = 3, m = 7, tokens = calls * m;
  CalibrationRecorder rec({{"a", k}, {"b", 3}}, /*rows_per_layer=*/4, tokens);
  LinearObserver obs = rec.observer();
  std::vector<float> all;  // every row layer "a" saw
  for (int64_t c = 0; c < calls; ++c) {
    std::vector<float> x(static_cast<size_t>(m * k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(c * 100 + i)) * (1 + static_cast<float>(i % k));
    obs("a", x.data(), m, k);
    obs("ignored", x.data(), m, k);  // a layer outside the set
    std::vector<float> y(static_cast<size_t>(m * 3), static_cast<float>(c));
    obs("b", y.data(), m, 3);
    all.insert(all.end(), x.begin(), x.end());
  }
  const std::string path = dir / "calib.safetensors";
  {
    SafetensorsWriter w(path, {{"format", "modelpress-calibration"}, {"version", "1"}, {"source", "test"}});
    rec.write(w);
    w.finish();
  }
  const CalibrationFile f = CalibrationFile::open(path);
  EXPECT_EQ(f.layers(), (std::vector<std::string>{"a", "b"}));
  const CalibrationRows rows = f.read("a", k);
  ASSERT_EQ(rows.rows, 4);
  for (int64_t r = 0; r < 4; ++r)  // token floor(r * 21 / 4): 0, 5, 10, 15
    for (int64_t j = 0; j < k; ++j) EXPECT_EQ(rows.values[r * k + j], all[(r * tokens / 4) * k + j]);
  const auto st = f.read_stats("a", k);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->tokens, tokens);
  for (int64_t i = 0; i < k; ++i) {
    float mn = INFINITY, mx = -INFINITY, amax = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      const float v = all[t * k + i];
      mn = std::min(mn, v), mx = std::max(mx, v), amax = std::max(amax, std::fabs(v));
    }
    EXPECT_EQ(st->min[i], mn);
    EXPECT_EQ(st->max[i], mx);
    EXPECT_EQ(st->absmax[i], amax);
    for (int64_t j = 0; j < k; ++j) {
      double g = 0;
      for (int64_t t = 0; t < tokens; ++t) g += static_cast<double>(all[t * k + i]) * all[t * k + j];
      EXPECT_NEAR(st->gram[i * k + j], g, 1e-4 * (1 + std::fabs(g)));
      EXPECT_EQ(st->gram[i * k + j], st->gram[j * k + i]);
    }
  }
  const auto sb = f.read_stats("b", 3);
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->max[0], 2.0f);
  EXPECT_FLOAT_EQ(sb->gram[0], 7.0f * (0 + 1 + 4));
  EXPECT_THROW(f.read_stats("a", k + 1), Error);  // another width
}

TEST(CalibrationRecorder, RefusesALayerThatNeverRan) {
  TempDir dir;
  CalibrationRecorder rec({{"a", 2}}, 4, 10);
  SafetensorsWriter w(dir / "c.safetensors");
  EXPECT_THROW(rec.write(w), Error);
}

}  // namespace
}  // namespace modelpress::model
