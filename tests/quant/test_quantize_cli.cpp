// `modelpress quantize` as a user meets it: the summary table, --json, what `inspect` then
// reports, usage errors (exit 2), input errors (one line naming the tensor, exit 1, no
// output left behind).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/synthetic_checkpoint.h"
#include "tests/quant/quant_test_util.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::CommandResult;
using testing::lines;
using testing::read_file;
using testing::run;
using testing::TempDir;

TEST(QuantizeCli, LlmInt8SummaryAndInspect) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m");
  CommandResult r = run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method llm-int8");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("quantized (llm-int8)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("linear, kept"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(lm_head)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("smaller"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;  // no progress line when stderr is not a terminal

  r = run(dir, "inspect --json '" + (dir / "q") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["quantization"]["method"], "bitsandbytes");
  EXPECT_EQ(j["quantization"]["int8_layers"], 7);
}

TEST(QuantizeCli, W4A16JsonReportAndOptions) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m");
  const CommandResult r = run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") +
                                       "' --method w4a16 --group-size 16 --asymmetric --skip 'mlp\\.down' "
                                       "--skip q_proj --max-shard-size 10kB --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["method"], "w4a16");
  EXPECT_EQ(j["totals"]["quantized"], 5);  // k, v, o, gate, up
  EXPECT_EQ(j["totals"]["skipped"], 3);    // q_proj, down_proj, lm_head
  const auto& w = j["quantization_config"]["config_groups"]["group_0"]["weights"];
  EXPECT_EQ(w["group_size"], 16);
  EXPECT_EQ(w["symmetric"], false);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "q/model.safetensors.index.json"));
  const auto cfg = nlohmann::json::parse(read_file(dir / "q/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "compressed-tensors");
}

TEST(QuantizeCli, UsageErrorsExitTwo) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m");
  EXPECT_EQ(run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "'").status, 2);  // no --method
  EXPECT_EQ(run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method int3").status, 2);
  EXPECT_EQ(run(dir, "quantize '" + (dir / "m") + "' --method w8a8").status, 2);  // no -o
  EXPECT_EQ(run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method w4a16 --group-size -4").status, 2);
  // Out-of-range values name the option in one short line (not the limits of double).
  for (const char* bad : {" --method llm-int8 --threshold nan", " --method llm-int8 --threshold inf",
                          " --method llm-int8 --threshold -1", " --method w4a16 --group-size 0"}) {
    const CommandResult r = run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "'" + bad);
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_LE(lines(r.err), 3u) << r.err;
    EXPECT_LT(r.err.size(), 300u) << r.err;
  }
  // An option of another method is refused, not silently ignored.
  for (const char* other : {" --method w8a8 --threshold 4", " --method llm-int8 --group-size 64",
                            " --method w8a8 --asymmetric"}) {
    const CommandResult r = run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "'" + other);
    EXPECT_EQ(r.status, 2) << other;
    EXPECT_NE(r.err.find("only"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "q"));
  const CommandResult help = run(dir, "quantize --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--threshold"), std::string::npos);
}

TEST(QuantizeCli, InputErrorsAreOneLineAndLeaveNothing) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m");
  // Group size that does not divide K = 32: names the first layer it fails on.
  CommandResult r = run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method w4a16 --group-size 48");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("modelpress: error: model.layers.0.self_attn.q_proj.weight: group size 48"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "q"));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".q"), std::string::npos) << "staging left behind: " << e.path();

  // An existing output needs --overwrite.
  ASSERT_EQ(run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method w8a8").status, 0);
  r = run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method w8a8");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(run(dir, "quantize '" + (dir / "m") + "' -o '" + (dir / "q") + "' --method w8a8 --overwrite").status, 0);

  // Quantizing the quantized output again.
  r = run(dir, "quantize '" + (dir / "q") + "' -o '" + (dir / "qq") + "' --method llm-int8");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("already quantized"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace modelpress
