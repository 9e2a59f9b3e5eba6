// The modelpress executable as a user meets it: exit codes, one-line errors naming the
// file, JSON output, and no partial output when a command fails half-way.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/synthetic_checkpoint.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::CommandResult;
using testing::lines;
using testing::read_file;
using testing::run;
using testing::TempDir;
using testing::write_file;

TEST(Cli, VersionAndUsage) {
  TempDir dir;
  CommandResult r = run(dir, "--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("modelpress "), std::string::npos);
  EXPECT_NE(r.out.find("backend cpu: available"), std::string::npos);
  EXPECT_EQ(run(dir, "").status, 2);
  EXPECT_EQ(run(dir, "inspect").status, 2);
  EXPECT_EQ(run(dir, "inspect x --no-such-flag").status, 2);
  EXPECT_EQ(run(dir, "frobnicate").status, 2);
  r = run(dir, "inspect --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--json"), std::string::npos);
}

TEST(Cli, InspectPrintsTablesAndJson) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m", 48);
  CommandResult r = run(dir, "inspect '" + (dir / "m") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos);
  EXPECT_NE(r.out.find("attention_linear"), std::string::npos);
  EXPECT_NE(r.out.find("architecture:  LlamaForCausalLM"), std::string::npos);
  EXPECT_NE(r.out.find("quantization:  none"), std::string::npos);

  r = run(dir, "inspect --json '" + (dir / "m") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"path", "format", "files", "architecture", "quantization", "tensors", "categories", "totals"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["totals"]["tensors"], 12);
}

TEST(Cli, BadInputIsOneLineNamingTheFile) {
  TempDir dir;
  write_file(dir / "short.safetensors", "abc");
  CommandResult r = run(dir, "inspect '" + (dir / "short.safetensors") + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(dir / "short.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;

  r = run(dir, "inspect '" + (dir / "nope") + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no such file or folder"), std::string::npos) << r.err;
}

TEST(Cli, ConvertReshardsAndKeepsBytes) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m", 48);
  CommandResult r = run(dir, "convert '" + (dir / "m") + "' -o '" + (dir / "out") + "' --max-shard-size 4kB");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "out/model.safetensors.index.json"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "out/config.json"));
  r = run(dir, "inspect --json '" + (dir / "out") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto a = nlohmann::json::parse(r.out);
  const auto b = nlohmann::json::parse(run(dir, "inspect --json '" + (dir / "m") + "'").out);
  EXPECT_EQ(a["format"], "safetensors-sharded");
  EXPECT_EQ(a["tensors"], b["tensors"]);

  // Converting back to one file gives the original tensors, byte for byte, in order.
  r = run(dir, "convert '" + (dir / "out") + "' -o '" + (dir / "back") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(testing::safetensors_data(dir / "back/model.safetensors") ==
              testing::safetensors_data(dir / "m/model.safetensors"));
}

TEST(Cli, ConvertRefusesExistingOutputAndLeavesItAlone) {
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "m", 48);
  std::filesystem::create_directories(dir.path() / "out");
  write_file(dir / "out/notes.txt", "mine");
  CommandResult r = run(dir, "convert '" + (dir / "m") + "' -o '" + (dir / "out") + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir / "out/notes.txt"), "mine");
}

// A GGUF file whose second tensor has a type modelpress cannot dequantize (Q2_K): convert
// fails half-way, and neither the output nor any staging folder may remain.
std::string gguf_with_undequantizable_tensor() {
  std::string b;
  auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) { u64(s.size()); b += s; };
  b += "GGUF";
  u32(3);
  u64(2);  // tensors
  u64(0);  // KV pairs
  str("a.weight");
  u32(1);
  u64(4);
  u32(0);  // F32
  u64(0);
  str("b.weight");
  u32(1);
  u64(256);
  u32(10);  // Q2_K: 84 bytes per 256 elements
  u64(32);
  b.resize((b.size() + 31) / 32 * 32, '\0');
  const float a[4] = {1, 2, 3, 4};
  b.append(reinterpret_cast<const char*>(a), sizeof a);
  b.resize(b.size() + 16, '\0');
  b.resize(b.size() + 84, '\1');
  return b;
}

TEST(Cli, FailedConvertLeavesNoPartialOutput) {
  TempDir dir;
  write_file(dir / "m.gguf", gguf_with_undequantizable_tensor());
  CommandResult r = run(dir, "inspect '" + (dir / "m.gguf") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Q2_K"), std::string::npos) << r.out;
  r = run(dir, "convert '" + (dir / "m.gguf") + "' -o '" + (dir / "out") + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("b.weight"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out"));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename(), "m.gguf") << "left behind: " << e.path();
}

TEST(Cli, SynthWritesALoadableCheckpoint) {
  TempDir dir;
  CommandResult r = run(dir, "synth '" + (dir / "s") + "' --layers 1 --hidden 32 --intermediate 40 --heads 2 --kv-heads 1 --vocab 50");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run(dir, "inspect --json '" + (dir / "s") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(run(dir, "synth '" + (dir / "t") + "' --hidden 30 --heads 4").status, 1);  // 30 % 4 != 0
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "t"));
}

}  // namespace
}  // namespace modelpress
