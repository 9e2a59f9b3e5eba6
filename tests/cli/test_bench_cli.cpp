// `modelpress bench` as a user runs it (CPU here; CUDA where a GPU is usable), and the CUDA
// backend choice of bench and validate: an explicit cuda without a GPU is a one-line error with
// exit 1, auto falls back to the CPU and says so. With a GPU, validate's layer outputs on cuda
// agree with cpu element by element (the comparison itself is checked on the CPU everywhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/safetensors_reader.h"
#include "io/synthetic_checkpoint.h"
#include "kernels/backend.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::CommandResult;
using testing::run;
using testing::TempDir;

bool cuda_usable() {
  for (const auto& b : kernels::list_backends())
    if (b.name == "cuda") return b.usable;
  return false;
}

void expect_one_line_error(const CommandResult& r, const std::string& part) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("modelpress: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// Small odd shapes, few runs: the numbers are not what is tested, the rows and ratios are.
const char* kQuick = " --shapes 3x40x256,1x33x96 --runs 3 --warmup 1 --group 32";

TEST(BenchCli, CpuTableHasEveryKernelAndShape) {
  TempDir dir;
  const CommandResult r = run(dir, std::string("bench --backend cpu") + kQuick);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("backend cpu: ", 0), 0u) << r.out;
  for (const char* kernel : {"dense", "int8-gemm", "w8a8", "llm-int8", "w4a16", "w4a16-asym"})
    for (const char* shape : {"3x40x256", "1x33x96"})
      EXPECT_NE(r.out.find(std::string("| ") + kernel + " | " + shape + " |"), std::string::npos) << kernel << " " << shape << "\n" << r.out;
  // The baseline's ratio to itself.
  EXPECT_NE(r.out.find("| dense | 3x40x256 |"), std::string::npos);
}

TEST(BenchCli, JsonRowsAreConsistent) {
  TempDir dir;
  const CommandResult r = run(dir, std::string("bench --backend cpu --json --kernels w8a8,w4a16") + kQuick);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["backend"], "cpu");
  std::set<std::string> kernels;
  for (const auto& row : j["rows"]) {
    kernels.insert(row["kernel"].get<std::string>());
    const double median = row["median_us"], bytes = row["bytes"], ops = row["ops"], gbps = row["gb_per_s"];
    EXPECT_GT(median, 0.0);
    EXPECT_GE(row["runs"].get<int>(), 3);
    EXPECT_GE(row["rotation"].get<int>(), 1);
    EXPECT_DOUBLE_EQ(ops, 2.0 * row["m"].get<double>() * row["n"].get<double>() * row["k"].get<double>());
    EXPECT_NEAR(gbps, bytes / (median * 1e-6) * 1e-9, 1e-9 * gbps + 1e-12);
    EXPECT_GT(row["vs_dense"].get<double>(), 0.0);
    if (row["kernel"] == "dense") {
      EXPECT_DOUBLE_EQ(row["vs_dense"].get<double>(), 1.0);
    }
  }
  // Only what was asked for, plus the dense baseline that every ratio needs.
  EXPECT_EQ(kernels, (std::set<std::string>{"dense", "w8a8", "w4a16"}));
}

TEST(BenchCli, BadShapesAndKernelsAreUsageErrors) {
  TempDir dir;
  CommandResult r = run(dir, "bench --backend cpu --shapes 3x4");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("MxNxK"), std::string::npos) << r.err;
  EXPECT_EQ(run(dir, "bench --backend cpu --shapes 0x4x4").status, 2);
  EXPECT_EQ(run(dir, "bench --backend cpu --kernels w2a2").status, 2);
  EXPECT_EQ(run(dir, "bench --backend tpu").status, 2);
}

TEST(BenchCli, CudaWithoutAGpuIsAnErrorAndAutoFallsBack) {
  if (cuda_usable()) GTEST_SKIP() << "a GPU is usable here";
  TempDir dir;
  expect_one_line_error(run(dir, "bench --backend cuda --shapes 3x5x8 --runs 1"), "--backend cuda: not available");
  const CommandResult r = run(dir, "bench --backend auto --kernels w8a8 --shapes 3x5x8 --runs 1 --warmup 0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("backend cpu: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("auto: cuda unavailable"), std::string::npos) << r.out;
}

TEST(BenchCli, CudaRunsWhereAGpuIs) {
  if (!cuda_usable()) GTEST_SKIP() << "no usable GPU here";
  TempDir dir;
  const CommandResult r = run(dir, std::string("bench --backend cuda --json --runs 3 --max-seconds 1 --group 32 "
                                               "--shapes 3x40x256,17x64x512,1x33x96"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["backend"], "cuda");
  // 8 kernels at 3 shapes, less the LUT GEMVs at M = 17 (decode-only kernels, skipped with a note).
  EXPECT_EQ(j["rows"].size(), 3u * 8u - 2u);
  std::set<std::string> kernels;
  for (const auto& row : j["rows"]) kernels.insert(row["kernel"].get<std::string>());
  EXPECT_EQ(kernels.size(), 8u);
  EXPECT_NE(j["notes"].dump().find("lut3 17x64x512 skipped"), std::string::npos) << j["notes"].dump();
  for (const auto& row : j["rows"]) EXPECT_GT(row["median_us"].get<double>(), 0.0) << row.dump();
}

// The model the validate tests quantize: one layer, shapes the CUDA kernels take.
void write_validate_model(const std::string& path) {
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 50;
  o.dtype = DType::F32;
  write_synthetic_checkpoint(path, o);
}

// `quantize` then `validate --dump-outputs` of `model` with `method` on `backend` over `rows`
// synthetic activation rows; the dump's path. Group 32 for W4A16: the default 128 does not
// divide this model's hidden size of 64.
std::string validate_dump(const TempDir& dir, const std::string& model, const std::string& method,
                          const std::string& backend, int rows, const std::string& name) {
  const std::string packed = dir / method;
  if (!std::filesystem::exists(packed)) {
    const CommandResult q = run(dir, "quantize '" + model + "' -o '" + packed + "' --method " + method +
                                         (method == "w4a16" ? " --group-size 32" : ""));
    EXPECT_EQ(q.status, 0) << q.err;
  }
  const std::string dump = dir / (name + ".safetensors");
  const CommandResult r = run(dir, "validate --original '" + model + "' --compressed '" + packed +
                                       "' --rows " + std::to_string(rows) + " --runs 1 --json --backend " + backend +
                                       " --dump-outputs '" + dump + "'");
  EXPECT_EQ(r.status, 0) << r.err;
  if (r.status == 0) EXPECT_EQ(nlohmann::json::parse(r.out)["backend"], backend);
  return dump;
}

// Two `validate --dump-outputs` files hold the same tensors, the activations (<layer>.x)
// equal, and every output (<layer>.y, the packed kernel's; <layer>.y_reference, the dense
// one's) within rel x the largest |value| of that tensor in `want` (+ 1e-6).
::testing::AssertionResult same_layer_outputs(const std::string& want_path, const std::string& got_path, double rel) {
  const SafetensorsFile want = SafetensorsFile::open(want_path), got = SafetensorsFile::open(got_path);
  if (want.entries().size() != got.entries().size() || want.entries().empty())
    return ::testing::AssertionFailure() << want.entries().size() << " vs " << got.entries().size() << " tensors";
  size_t outputs = 0;
  for (const SafetensorsEntry& e : want.entries()) {
    const SafetensorsEntry* g = got.find(e.name);
    if (!g || g->shape != e.shape) return ::testing::AssertionFailure() << e.name << ": missing or of another shape";
    const std::vector<float> a = want.read(e).to_f32(), b = got.read(*g).to_f32();
    if (e.name.ends_with(".x")) {
      if (a != b) return ::testing::AssertionFailure() << e.name << ": the activations differ";
      continue;
    }
    ++outputs;
    double largest = 0;
    for (float v : a) largest = std::max(largest, static_cast<double>(std::fabs(v)));
    for (size_t i = 0; i < a.size(); ++i)
      if (!(std::fabs(static_cast<double>(b[i]) - a[i]) <= rel * largest + 1e-6))  // NaN fails
        return ::testing::AssertionFailure() << e.name << " element " << i << ": " << b[i] << " vs " << a[i]
                                             << " (largest |value| " << largest << ")";
  }
  return ::testing::AssertionSuccess() << outputs << " output tensors";
}

// The comparison the GPU test relies on, on the CPU: two runs agree exactly, and the outputs
// of another method (same layers, same activations) are told apart. (16 rows: the kernels'
// threads stay off for these small products, which keeps the test fast on a busy machine.)
TEST(ValidateOutputs, CpuRunsAgreeAndOtherMethodsDoNot) {
  TempDir dir;
  const std::string model = dir / "model";
  write_validate_model(model);
  const std::string first = validate_dump(dir, model, "w8a8", "cpu", 16, "first");
  const std::string second = validate_dump(dir, model, "w8a8", "cpu", 16, "second");
  const std::string other = validate_dump(dir, model, "w4a16", "cpu", 16, "other");
  EXPECT_TRUE(same_layer_outputs(first, second, 0.0));
  EXPECT_FALSE(same_layer_outputs(first, other, 1e-3));
}

// With a GPU: every packed layer of a quantized checkpoint through the CUDA kernels gives the
// CPU's outputs on the same activations, element by element, within 2e-3 of each output
// tensor's largest |value| (the tolerance of tests/cuda/test_cuda_backend.cpp: the GPU's
// 16-bit activations in the dense, W4A16 and outlier products), for the packed layer and the
// dense reference alike.
TEST(ValidateOnCuda, AgreesWithCpu) {
  if (!cuda_usable()) GTEST_SKIP() << "no usable GPU here";
  TempDir dir;
  const std::string model = dir / "model";
  write_validate_model(model);
  for (const char* method : {"llm-int8", "w8a8", "w4a16"}) {
    SCOPED_TRACE(method);
    const std::string cpu = validate_dump(dir, model, method, "cpu", 24, std::string(method) + "-cpu");
    const std::string gpu = validate_dump(dir, model, method, "cuda", 24, std::string(method) + "-cuda");
    EXPECT_TRUE(same_layer_outputs(cpu, gpu, 2e-3));
  }
}

}  // namespace
}  // namespace modelpress
