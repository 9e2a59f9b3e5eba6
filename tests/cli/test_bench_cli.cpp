// `modelpress bench` as a user runs it (CPU here; CUDA where a GPU is usable), and the CUDA
// backend choice of bench and validate: an explicit cuda without a GPU is a one-line error with
// exit 1, auto falls back to the CPU and says so. With a GPU, validate on cuda agrees with cpu.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

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

// With a GPU: every packed layer of a quantized checkpoint through the CUDA kernels, with
// errors against the original as on the CPU (the same quantization; the GPU's 16-bit
// activations add a little).
TEST(ValidateOnCuda, AgreesWithCpu) {
  if (!cuda_usable()) GTEST_SKIP() << "no usable GPU here";
  TempDir dir;
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 50;
  o.dtype = DType::F32;
  write_synthetic_checkpoint(dir / "model", o);
  for (const char* method : {"llm-int8", "w8a8", "w4a16"}) {
    SCOPED_TRACE(method);
    const std::string out = dir / method;
    // Group 32: the default 128 does not divide this model's hidden size of 64.
    CommandResult r = run(dir, std::string("quantize '") + (dir / "model") + "' -o '" + out + "' --method " + method +
                                   (std::string(method) == "w4a16" ? " --group-size 32" : ""));
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string args = std::string("validate --original '") + (dir / "model") + "' --compressed '" + out +
                             "' --rows 24 --runs 2 --json --backend ";
    const CommandResult cpu = run(dir, args + "cpu"), gpu = run(dir, args + "cuda");
    ASSERT_EQ(cpu.status, 0) << cpu.err;
    ASSERT_EQ(gpu.status, 0) << gpu.err;
    const auto jc = nlohmann::json::parse(cpu.out), jg = nlohmann::json::parse(gpu.out);
    EXPECT_EQ(jg["backend"], "cuda");
    ASSERT_EQ(jc["layers"].size(), jg["layers"].size());
    for (size_t i = 0; i < jc["layers"].size(); ++i) {
      const double ec = jc["layers"][i]["error"]["relative_error"], eg = jg["layers"][i]["error"]["relative_error"];
      EXPECT_NEAR(eg, ec, 0.1 * ec + 2e-3) << jc["layers"][i]["name"];
    }
  }
}

}  // namespace
}  // namespace modelpress
