// io/calibration (reader of recorded activations) and io/synthetic_activations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "io/calibration.h"
#include "io/error.h"
#include "io/float_convert.h"
#include "io/safetensors_writer.h"
#include "io/synthetic_activations.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::TempDir;

const std::map<std::string, std::string> kMeta{
    {"format", "modelpress-calibration"}, {"version", "1"}, {"source", "unit test"}};

// Row r, column c of the test activations: distinct and exact in f16 and bf16.
float value(int64_t r, int64_t c) { return static_cast<float>(r) - 0.5f * static_cast<float>(c); }

Tensor activations(int64_t rows, int64_t cols, DType dtype) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] = value(r, c);
  return Tensor::from_f32(v, dtype, {rows, cols});
}

template <typename T>
Tensor ints(const std::vector<T>& v, DType dtype) {
  Tensor t = Tensor::zeros(dtype, {static_cast<int64_t>(v.size())});
  std::memcpy(t.mutable_data(), v.data(), v.size() * sizeof(T));
  return t;
}

// Expects `fn` to throw an Error whose message names every string in `parts`.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

class CalibrationTest : public ::testing::Test {
 protected:
  std::string write(const std::vector<std::pair<std::string, Tensor>>& tensors,
                    const std::map<std::string, std::string>& meta = kMeta) {
    const std::string path = dir_ / "calib.safetensors";
    SafetensorsWriter w(path, meta);
    for (const auto& [name, t] : tensors) w.append(name, t);
    w.finish();
    return path;
  }
  TempDir dir_;
};

TEST_F(CalibrationTest, ReadsRowsAndStepsOfEveryFloatType) {
  for (const DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const std::string path = write({{"model.layers.0.mlp.up_proj", activations(5, 6, dt)},
                                    {"model.layers.0.mlp.up_proj.step", ints<int64_t>({0, 0, 10, 10, 20}, DType::I64)},
                                    {"model.layers.0.mlp.down_proj", activations(3, 4, dt)}});
    const CalibrationFile f = CalibrationFile::open(path);
    EXPECT_EQ(f.source(), "unit test");
    EXPECT_EQ(f.layers(), (std::vector<std::string>{"model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj"}));
    EXPECT_TRUE(f.has_layer("model.layers.0.mlp.down_proj"));
    const CalibrationRows up = f.read("model.layers.0.mlp.up_proj", 6);
    ASSERT_EQ(up.rows, 5);
    ASSERT_EQ(up.cols, 6);
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(up.values[r * 6 + c], value(r, c)) << dtype_name(dt);
    EXPECT_EQ(up.steps, (std::vector<int64_t>{0, 0, 10, 10, 20}));
    const CalibrationRows down = f.read("model.layers.0.mlp.down_proj", 4);
    EXPECT_EQ(down.rows, 3);
    EXPECT_TRUE(down.steps.empty());
  }
}

TEST_F(CalibrationTest, MaxRowsSpreadsOverTheFile) {
  const std::string path = write({{"fc", activations(10, 2, DType::F32)},
                                  {"fc.step", ints<int32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, DType::I32)}});
  const CalibrationRows r = CalibrationFile::open(path).read("fc", 2, 4);
  ASSERT_EQ(r.rows, 4);
  EXPECT_EQ(r.steps, (std::vector<int64_t>{0, 2, 5, 7}));  // floor(i * 10 / 4)
  EXPECT_EQ(r.values[2], value(2, 0));
  EXPECT_EQ(CalibrationFile::open(path).read("fc", 2, 50).rows, 10);
}

TEST_F(CalibrationTest, MissingLayerNamesFileAndLayer) {
  const std::string path = write({{"fc1", activations(2, 3, DType::F32)}});
  const CalibrationFile f = CalibrationFile::open(path);
  expect_error([&] { f.read("fc2", 3); }, {path, "'fc2'", "no activations"});
}

TEST_F(CalibrationTest, WrongWidthNamesBothWidths) {
  const std::string path = write({{"fc1", activations(2, 3, DType::F32)}});
  const CalibrationFile f = CalibrationFile::open(path);
  expect_error([&] { f.read("fc1", 4); }, {path, "'fc1'", "width 3", "4 input features"});
}

TEST_F(CalibrationTest, NotTwoDimensional) {
  const std::string path = write({{"fc1", Tensor::from_f32(std::vector<float>(24, 1.0f), DType::F32, {2, 3, 4})}});
  expect_error([&] { CalibrationFile::open(path).read("fc1", 4); }, {path, "'fc1'", "[2, 3, 4]", "2-D"});
}

TEST_F(CalibrationTest, UnsupportedDtype) {
  Tensor t = Tensor::zeros(DType::I32, {2, 3});
  const std::string path = write({{"fc1", t}});
  expect_error([&] { CalibrationFile::open(path).read("fc1", 3); }, {path, "'fc1'", "I32"});
  const std::string path64 = write({{"fc1", Tensor::zeros(DType::F64, {2, 3})}});
  expect_error([&] { CalibrationFile::open(path64).read("fc1", 3); }, {"'fc1'", "F64"});
}

TEST_F(CalibrationTest, NoRowsAndNonFiniteValues) {
  std::string path = write({{"fc1", Tensor::zeros(DType::F32, {0, 3})}});
  expect_error([&] { CalibrationFile::open(path).read("fc1", 3); }, {"'fc1'", "no rows"});
  std::vector<float> v{1, 2, 3, 4, NAN, 6};
  path = write({{"fc1", Tensor::from_f32(v, DType::F32, {2, 3})}});
  expect_error([&] { CalibrationFile::open(path).read("fc1", 3); }, {"'fc1'", "row 1 column 1", "not finite"});
}

TEST_F(CalibrationTest, BadStepTensor) {
  std::string path = write({{"fc", activations(3, 2, DType::F32)}, {"fc.step", ints<int64_t>({1, 2}, DType::I64)}});
  expect_error([&] { CalibrationFile::open(path).read("fc", 2); }, {"'fc.step'", "[2]", "expected [3]"});
  path = write({{"fc", activations(3, 2, DType::F32)},
                {"fc.step", Tensor::from_f32(std::vector<float>{0, 1, 2}, DType::F32, {3})}});
  expect_error([&] { CalibrationFile::open(path).read("fc", 2); }, {"'fc.step'", "F32"});
}

TEST_F(CalibrationTest, RejectsFilesThatAreNotCalibrationFiles) {
  std::string path = write({{"fc", activations(3, 2, DType::F32)}}, {{"format", "pt"}});
  expect_error([&] { CalibrationFile::open(path); }, {path, "not a calibration file", "'pt'"});
  path = write({{"fc", activations(3, 2, DType::F32)}}, {});
  expect_error([&] { CalibrationFile::open(path); }, {path, "missing"});
  path = write({{"fc", activations(3, 2, DType::F32)}}, {{"format", "modelpress-calibration"}, {"version", "2"}});
  expect_error([&] { CalibrationFile::open(path); }, {path, "version '2'"});
}

TEST_F(CalibrationTest, AModuleNamedStepIsALayer) {
  // "block.step" is a companion of "block" only when "block" is in the file.
  const std::string path = write({{"block.step", activations(2, 3, DType::F32)}});
  EXPECT_EQ(CalibrationFile::open(path).layers(), std::vector<std::string>{"block.step"});
}

TEST(SyntheticActivations, DeterministicWithOutlierChannels) {
  const SyntheticActivations a = synthetic_activations(64, 1024, 42);
  const SyntheticActivations b = synthetic_activations(64, 1024, 42);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.outlier_channels, b.outlier_channels);
  EXPECT_NE(synthetic_activations(64, 1024, 43).values, a.values);
  ASSERT_EQ(a.outlier_channels.size(), 5u);  // round(0.5% of 1024)
  EXPECT_TRUE(std::is_sorted(a.outlier_channels.begin(), a.outlier_channels.end()));

  // Every planted outlier column reaches |x| >= 6 (LLM.int8's threshold) in some row; the
  // other columns only rarely (heavy tail, not systematic).
  std::set<int32_t> planted(a.outlier_channels.begin(), a.outlier_channels.end());
  int stray = 0;
  for (int64_t c = 0; c < 1024; ++c) {
    float m = 0;
    for (int64_t r = 0; r < 64; ++r) m = std::max(m, std::abs(a.values[r * 1024 + c]));
    if (planted.count(static_cast<int32_t>(c))) EXPECT_GE(m, 6.0f) << "column " << c;
    else stray += m >= 6.0f;
  }
  EXPECT_LE(stray, 5);
  // Heavy-tailed but mostly small: the median magnitude is well under 1.
  std::vector<float> mags;
  for (const float v : a.values) mags.push_back(std::abs(v));
  std::nth_element(mags.begin(), mags.begin() + mags.size() / 2, mags.end());
  EXPECT_LT(mags[mags.size() / 2], 0.5f);
  EXPECT_GT(mags[mags.size() / 2], 0.1f);
}

TEST(SyntheticActivations, NarrowLayersGetOneOutlierAndSeedsDifferPerLayer) {
  EXPECT_EQ(synthetic_activations(3, 17, 0).outlier_channels.size(), 1u);
  EXPECT_NE(layer_seed("a.q_proj", 0), layer_seed("a.k_proj", 0));
  EXPECT_NE(layer_seed("a.q_proj", 0), layer_seed("a.q_proj", 1));
  EXPECT_THROW(synthetic_activations(0, 4, 0), Error);
}

}  // namespace
}  // namespace modelpress
