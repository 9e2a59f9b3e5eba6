// `modelpress validate` end to end: synth -> quantize -> validate, as a user runs it, and
// the driver in-process on every packed format. Also the one-line errors with exit 1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/calibration.h"
#include "io/checkpoint.h"
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "io/synthetic_activations.h"
#include "io/synthetic_checkpoint.h"
#include "kernels/backend.h"
#include "quant/packed_layer.h"
#include "eval/validate.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::CommandResult;
using testing::read_file;
using testing::run;
using testing::TempDir;

std::string q(const std::string& s) { return "'" + s + "'"; }

// Two decoder layers, f32, with the synthetic checkpoint's outlier channels; K = 64 or 96.
void write_model(const std::string& path) {
  SyntheticOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 50;
  o.dtype = DType::F32;
  write_synthetic_checkpoint(path, o);
}

// Quiet and quick latency settings for tests: the numbers are not what is tested.
const char* kFast = " --backend cpu --rows 24 --runs 3";

class ValidateE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    write_model(dir_ / "model");
    const CommandResult r = run(dir_, "quantize " + q(dir_ / "model") + " -o " + q(dir_ / "int8") + " --method llm-int8");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  std::string validate_args() const {
    return "validate --original " + q(dir_ / "model") + " --compressed " + q(dir_ / "int8") + kFast;
  }
  TempDir dir_;
};

TEST_F(ValidateE2E, LlmInt8OnSyntheticActivations) {
  CommandResult r = run(dir_, validate_args() + " --json --report " + q(dir_ / "report.html"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const Checkpoint packed = Checkpoint::open(dir_ / "int8");
  const auto names = quant::packed_layer_names(packed);
  ASSERT_EQ(names.size(), 14u);  // 2 layers x (q, k, v, o, gate, up, down); lm_head kept
  ASSERT_EQ(j["layers"].size(), names.size());
  EXPECT_EQ(j["method"], "llm-int8");
  EXPECT_EQ(j["backend"], "cpu");
  EXPECT_EQ(j["activations"]["kind"], "synthetic");
  size_t helped = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& l = j["layers"][i];
    EXPECT_EQ(l["name"], names[i]);
    EXPECT_EQ(l["format"], "llm-int8");
    EXPECT_EQ(l["rows"], 24);
    const double rel = l["error"]["relative_error"].get<double>();
    EXPECT_LT(rel, 0.05) << names[i];
    EXPECT_GT(rel, 0.0) << names[i];  // int8 is not exact
    EXPECT_GT(l["error"]["cosine"].get<double>(), 0.99) << names[i];
    EXPECT_GT(l["bits_per_weight"].get<double>(), 8.0);
    EXPECT_LT(l["bits_per_weight"].get<double>(), 9.0);
    EXPECT_LT(l["packed_bytes"].get<uint64_t>(), l["original_bytes"].get<uint64_t>() / 3);
    EXPECT_GT(l["latency"]["packed_median_us"].get<double>(), 0.0);
    EXPECT_GT(l["latency"]["dense_median_us"].get<double>(), 0.0);
    ASSERT_FALSE(l["outliers"].is_null()) << names[i];
    const auto& o = l["outliers"];
    EXPECT_EQ(o["threshold"], 6.0);
    EXPECT_GE(o["count"].get<int>(), 1);  // synthetic activations always plant one
    EXPECT_EQ(o["columns"].size(), o["count"].get<size_t>());
    // The decomposition is what keeps int8 accurate on outlier activations.
    if (o["without_decomposition"]["relative_error"].get<double>() > 1.5 * rel) ++helped;
    EXPECT_FALSE(o["paper_mode"].is_null()) << o["paper_mode_note"];
  }
  EXPECT_EQ(helped, names.size());
  EXPECT_GT(j["size"]["checkpoint_ratio"].get<double>(), 1.0);

  const std::string html = read_file(dir_ / "report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<svg"), std::string::npos);

  // The default output: the Markdown summary with one row per layer.
  r = run(dir_, validate_args());
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& n : names) EXPECT_NE(r.out.find("| " + n + " |"), std::string::npos) << n;
  EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;  // progress goes only to a terminal
}

TEST_F(ValidateE2E, CalibrationFileRowsAndSteps) {
  // Record "calibration" rows for every packed layer (synthetic values, two steps).
  const Checkpoint packed = Checkpoint::open(dir_ / "int8");
  const std::string calib = dir_ / "calib.safetensors";
  {
    SafetensorsWriter w(calib, {{"format", "modelpress-calibration"}, {"version", "1"}, {"source", "test"}});
    for (const auto& name : quant::packed_layer_names(packed)) {
      const int64_t k = quant::load_packed_layer(packed, name).k;
      const auto a = synthetic_activations(10, k, 5);
      w.append(name, Tensor::from_f32(a.values, DType::F16, {10, k}));
      Tensor steps = Tensor::zeros(DType::I64, {10});
      for (int64_t r = 0; r < 10; ++r) {
        const int64_t s = r < 4 ? 0 : 999;
        std::memcpy(steps.mutable_data() + 8 * r, &s, 8);
      }
      w.append(name + ".step", steps);
    }
    w.finish();
  }
  const CommandResult r = run(dir_, validate_args() + " --json --calib " + q(calib));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["activations"]["kind"], "calibration");
  EXPECT_EQ(j["activations"]["calibration_source"], "test");
  for (const auto& l : j["layers"]) {
    EXPECT_EQ(l["rows"], 10);  // fewer rows in the file than --rows
    ASSERT_EQ(l["steps"].size(), 2u);
    EXPECT_EQ(l["steps"][0]["step"], 0);
    EXPECT_EQ(l["steps"][0]["rows"], 4);
    EXPECT_EQ(l["steps"][1]["step"], 999);
    EXPECT_LT(l["error"]["relative_error"].get<double>(), 0.05);
  }
}

// The error line: one line, "modelpress: error: ", naming the file and the layer.
void expect_one_line_error(const CommandResult& r, std::initializer_list<std::string> parts) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("modelpress: error: ", 0), 0u) << r.err;
  for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(ValidateE2E, DumpOutputsHoldsTheRowsAndBothOutputs) {
  const CommandResult r = run(dir_, validate_args() + " --json --dump-outputs " + q(dir_ / "out.safetensors"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const SafetensorsFile dump = SafetensorsFile::open(dir_ / "out.safetensors");
  ASSERT_EQ(dump.entries().size(), 3 * j["layers"].size());
  for (const auto& l : j["layers"]) {
    const std::string name = l["name"];
    const int64_t n = l["out_features"], k = l["in_features"];
    const Tensor x = dump.read(name + ".x"), y = dump.read(name + ".y"), ref = dump.read(name + ".y_reference");
    EXPECT_EQ(x.shape(), (Shape{24, k})) << name;
    ASSERT_EQ(y.shape(), (Shape{24, n})) << name;
    ASSERT_EQ(ref.shape(), (Shape{24, n})) << name;
    // The dumped outputs are the ones the report measured.
    double diff = 0, norm = 0;
    const float* yp = reinterpret_cast<const float*>(y.data());
    const float* rp = reinterpret_cast<const float*>(ref.data());
    for (int64_t i = 0; i < 24 * n; ++i) {
      diff += (double(yp[i]) - rp[i]) * (double(yp[i]) - rp[i]);
      norm += double(rp[i]) * rp[i];
    }
    EXPECT_NEAR(std::sqrt(diff / norm), l["error"]["relative_error"].get<double>(), 1e-6) << name;
  }
}

TEST_F(ValidateE2E, DumpOutputsNeverOverwritesAnInput) {
  // The dump is renamed over its target: pointed at the calibration file or a checkpoint's
  // weights, it used to replace them silently. Now a one-line error, inputs untouched.
  const Checkpoint packed = Checkpoint::open(dir_ / "int8");
  const std::string calib = dir_ / "calib.safetensors";
  {
    SafetensorsWriter w(calib, {{"format", "modelpress-calibration"}, {"version", "1"}});
    for (const auto& name : quant::packed_layer_names(packed)) {
      const int64_t k = quant::load_packed_layer(packed, name).k;
      w.append(name, Tensor::from_f32(synthetic_activations(4, k, 3).values, DType::F32, {4, k}));
    }
    w.finish();
  }
  for (const std::string& target : {calib, dir_ / "model/model.safetensors", dir_ / "int8/model.safetensors"}) {
    SCOPED_TRACE(target);
    const std::string before = read_file(target);
    expect_one_line_error(run(dir_, validate_args() + " --calib " + q(calib) + " --dump-outputs " + q(target)),
                          {target, "--dump-outputs would overwrite"});
    EXPECT_TRUE(read_file(target) == before) << target << " was modified";
  }
}

TEST_F(ValidateE2E, ReportNeverOverwritesAnInput) {
  // config.json passes the extension check; as a file of an input checkpoint it is refused.
  for (const std::string& target : {dir_ / "model/config.json", dir_ / "int8/config.json"}) {
    SCOPED_TRACE(target);
    const std::string before = read_file(target);
    ASSERT_FALSE(before.empty());
    expect_one_line_error(run(dir_, validate_args() + " --report " + q(target)), {target, "--report would overwrite"});
    EXPECT_TRUE(read_file(target) == before) << target << " was modified";
  }
}

TEST_F(ValidateE2E, CalibrationFileMissingALayerIsAOneLineError) {
  const std::string calib = dir_ / "calib.safetensors";
  {
    SafetensorsWriter w(calib, {{"format", "modelpress-calibration"}, {"version", "1"}});
    w.append("model.layers.0.self_attn.q_proj", Tensor::from_f32(std::vector<float>(3 * 64, 0.5f), DType::F32, {3, 64}));
    w.finish();
  }
  const Checkpoint packed = Checkpoint::open(dir_ / "int8");
  const std::string second = quant::packed_layer_names(packed)[1];
  const CommandResult r = run(dir_, validate_args() + " --calib " + q(calib) + " --report " + q(dir_ / "r.html"));
  expect_one_line_error(r, {calib, "'" + second + "'"});
  EXPECT_FALSE(std::filesystem::exists(dir_ / "r.html"));  // no report from a failed run
}

TEST_F(ValidateE2E, CalibrationFileOfTheWrongWidthIsAOneLineError) {
  const std::string calib = dir_ / "calib.safetensors";
  {
    SafetensorsWriter w(calib, {{"format", "modelpress-calibration"}, {"version", "1"}});
    const Checkpoint packed = Checkpoint::open(dir_ / "int8");
    for (const auto& name : quant::packed_layer_names(packed))
      w.append(name, Tensor::from_f32(std::vector<float>(2 * 65, 0.5f), DType::F32, {2, 65}));
    w.finish();
  }
  expect_one_line_error(run(dir_, validate_args() + " --calib " + q(calib)), {calib, "width 65"});
}

TEST_F(ValidateE2E, OtherErrors) {
  // An original that is not the model the compressed one came from.
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 32;
  o.intermediate = 48;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = 40;
  write_synthetic_checkpoint(dir_ / "other", o);
  expect_one_line_error(run(dir_, "validate --original " + q(dir_ / "other") + " --compressed " + q(dir_ / "int8") + kFast),
                        {dir_ / "other", "shape [32, 32]"});
  // A compressed checkpoint with nothing packed in it.
  expect_one_line_error(run(dir_, "validate --original " + q(dir_ / "model") + " --compressed " + q(dir_ / "model") + kFast),
                        {dir_ / "model", "no packed linear layers"});
  // A report name of unknown type fails before any work.
  expect_one_line_error(run(dir_, validate_args() + " --report " + q(dir_ / "r.txt")), {"r.txt", ".html, .md or .json"});
  // Usage errors exit 2.
  EXPECT_EQ(run(dir_, "validate --original x").status, 2);
  EXPECT_EQ(run(dir_, validate_args() + " --backend tpu").status, 2);
  EXPECT_EQ(run(dir_, validate_args() + " --rows 0").status, 2);
}

TEST_F(ValidateE2E, CudaBackendWithoutAGpuIsAnError) {
  bool cuda = false;
  for (const auto& b : kernels::list_backends()) cuda = cuda || (b.name == "cuda" && b.usable);
  if (cuda) GTEST_SKIP() << "a GPU is usable here";
  const std::string args = "validate --original " + q(dir_ / "model") + " --compressed " + q(dir_ / "int8") +
                           " --rows 8 --runs 1";
  expect_one_line_error(run(dir_, args + " --backend cuda"), {"--backend cuda", "not available"});
  const CommandResult r = run(dir_, args + " --backend auto --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["backend"], "cpu");
  EXPECT_NE(j["backend_note"].get<std::string>().find("cuda unavailable"), std::string::npos);
}

// The driver in-process on each packed format the passes produce.
TEST(ValidateDriver, EveryFormat) {
  TempDir dir;
  write_model(dir / "model");
  struct Case {
    const char* method;
    const char* options;
    double max_error;
  } cases[] = {{"w8a8", "", 0.05}, {"w4a16", " --group-size 32", 0.2}};
  for (const auto& c : cases) {
    const std::string out = dir / c.method;
    const CommandResult r = run(dir, "quantize " + q(dir / "model") + " -o " + q(out) + " --method " + c.method +
                                         c.options);
    ASSERT_EQ(r.status, 0) << r.err;
    eval::ValidateOptions o;
    o.original = dir / "model";
    o.compressed = out;
    o.rows = 16;
    o.timed_runs = 2;
    const ValidationReport rep = eval::validate_checkpoints(o);
    EXPECT_EQ(rep.method, c.method);
    ASSERT_EQ(rep.layers.size(), 14u);
    for (const auto& l : rep.layers) {
      EXPECT_LT(l.error.relative_error, c.max_error) << c.method << " " << l.name;
      EXPECT_FALSE(l.outliers.has_value());
    }
  }
}

TEST(ValidateDriver, ThresholdZeroIsOneNoteNotOnePerLayer) {
  TempDir dir;
  write_model(dir / "model");
  const CommandResult r = run(dir, "quantize " + q(dir / "model") + " -o " + q(dir / "int8") +
                                       " --method llm-int8 --threshold 0");
  ASSERT_EQ(r.status, 0) << r.err;
  eval::ValidateOptions o;
  o.original = dir / "model";
  o.compressed = dir / "int8";
  o.rows = 8;
  o.timed_runs = 1;
  const ValidationReport rep = eval::validate_checkpoints(o);
  ASSERT_EQ(rep.layers.size(), 14u);
  for (const auto& l : rep.layers) EXPECT_FALSE(l.outliers.has_value()) << l.name;
  const auto n = std::count_if(rep.notes.begin(), rep.notes.end(),
                               [](const std::string& s) { return s.find("threshold 0") != std::string::npos; });
  EXPECT_EQ(n, 1) << "one note for all 14 layers";
  for (const auto& s : rep.notes) {
    if (s.find("threshold 0") != std::string::npos) {
      EXPECT_EQ(s.rfind("14 LLM.int8 layer(s)", 0), 0u) << s;
    }
  }
}

}  // namespace
}  // namespace modelpress
