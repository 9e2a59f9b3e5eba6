// The modelpress executable as a user meets it: exit codes, one-line errors naming the
// file, JSON output, no partial output when a command fails half-way, convert --overwrite,
// and synth's --outlier-channels and --seed checked in the weights written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>

#include "io/checkpoint.h"
#include "io/gguf_dequant.h"
#include "io/gguf_writer.h"
#include "io/synthetic_checkpoint.h"
#include "io/tensor_category.h"
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

TEST(Cli, ConvertOverwriteReplacesTheOutputWithTheNewContent) {
  // The old output is a sharded checkpoint of another model plus a file of the user's; the new
  // one is a single file. Nothing of the old may survive: a stale index or shard beside the
  // new model.safetensors would be read instead of it, or make the folder ambiguous.
  TempDir dir;
  testing::write_tiny_checkpoint(dir / "old", 48);
  testing::write_tiny_checkpoint(dir / "new", 64);
  CommandResult r = run(dir, "convert '" + (dir / "old") + "' -o '" + (dir / "out") + "' --max-shard-size 4kB");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(std::filesystem::exists(dir.path() / "out/model.safetensors.index.json"));
  write_file(dir / "out/notes.txt", "mine");
  r = run(dir, "convert '" + (dir / "new") + "' -o '" + (dir / "out") + "' --overwrite");
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "out")) entries.push_back(e.path().filename());
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"config.json", "model.safetensors"}));
  EXPECT_TRUE(testing::safetensors_data(dir / "out/model.safetensors") ==
              testing::safetensors_data(dir / "new/model.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "out/config.json"))["intermediate_size"], 64);
  // No staging or set-aside folder left beside it.
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_TRUE(e.path().filename() == "old" || e.path().filename() == "new" || e.path().filename() == "out") << e.path();
}

struct GgufTensorSpec {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order
  uint32_t type;
  std::string bytes;
};

// A GGUF file of these tensors (no metadata), written by io/'s GgufWriter.
void write_gguf(const std::string& path, const std::vector<GgufTensorSpec>& tensors) {
  GgufWriter w(path, false);
  for (const auto& t : tensors) w.declare_tensor(t.name, t.ne, t.type);
  for (const auto& t : tensors) w.write_tensor(std::as_bytes(std::span<const char>(t.bytes.data(), t.bytes.size())));
  w.finish();
}

// A GGUF file whose second tensor has a type modelpress cannot dequantize (IQ2_XXS): convert
// fails half-way, and neither the output nor any staging folder may remain.
void write_gguf_with_undequantizable_tensor(const std::string& path) {
  const float a[4] = {1, 2, 3, 4};
  write_gguf(path, {{"a.weight", {4}, ggml_type::F32, std::string(reinterpret_cast<const char*>(a), sizeof a)},
                    {"b.weight", {256}, ggml_type::IQ2_XXS, std::string(66, '\1')}});  // 66 bytes per 256
}

// A GGUF with a Q8_0 token embedding (4 rows of 32) and one Q8_0 linear weight
// (blk.0.attn_q.weight, 2 rows of 32); every block d = 0.5, codes -16..15 + row.
void write_gguf_with_q8_0_layer(const std::string& path) {
  auto rows = [](int n) {
    std::string b;
    for (int row = 0; row < n; ++row) {
      b += std::string("\x00\x38", 2);  // d = 0.5 in f16
      for (int j = 0; j < 32; ++j) b += static_cast<char>(j - 16 + row);
    }
    return b;
  };
  write_gguf(path, {{"token_embd.weight", {32, 4}, ggml_type::Q8_0, rows(4)},
                    {"blk.0.attn_q.weight", {32, 2}, ggml_type::Q8_0, rows(2)}});
}

TEST(Cli, QuantizingAnAlreadyQuantizedGgufIsRefusedUnlessAllowed) {
  TempDir dir;
  write_gguf_with_q8_0_layer(dir / "m.gguf");
  CommandResult r = run(dir, "quantize '" + (dir / "m.gguf") + "' -o '" + (dir / "out") + "' --method w8a8");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  for (const char* part : {"m.gguf: 1 linear weights are already quantized", "blk.0.attn_q.weight is Q8_0",
                           "--allow-requantize", "nothing written"})
    EXPECT_NE(r.err.find(part), std::string::npos) << part << " in " << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out"));
  // The cluster command shares the rule.
  r = run(dir, "cluster '" + (dir / "m.gguf") + "' -o '" + (dir / "out") + "' --bits 2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--allow-requantize"), std::string::npos) << r.err;

  r = run(dir, "quantize '" + (dir / "m.gguf") + "' -o '" + (dir / "out") + "' --method w8a8 --allow-requantize");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "out/model.safetensors"));
  // The summary says what was read and what was written: the Q8_0 layer is read at its 68
  // bytes in the file, the embedding read at 136 and written dequantized, at 512.
  EXPECT_NE(r.out.find("quantized (w8a8)              1          68 B  ->"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("other tensors, copied         1         136 B  ->        512 B"), std::string::npos) << r.out;
}

TEST(Cli, FailedConvertLeavesNoPartialOutput) {
  TempDir dir;
  write_gguf_with_undequantizable_tensor(dir / "m.gguf");
  CommandResult r = run(dir, "inspect '" + (dir / "m.gguf") + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("IQ2_XXS"), std::string::npos) << r.out;
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

// The gains of every RMSNorm of a synth output, by tensor name.
std::map<std::string, std::vector<float>> norm_gains(const std::string& dir) {
  const Checkpoint ck = Checkpoint::open(dir);
  std::map<std::string, std::vector<float>> g;
  for (const auto& t : ck.tensors())
    if (t.category == TensorCategory::Norm) g[t.name] = ck.read(t).to_f32();
  return g;
}

TEST(Cli, SynthOutlierChannelsHaveTheLargeGainsAndAreListed) {
  // --outlier-channels N: N distinct hidden channels with gain 24 in every norm of every layer
  // (the activation outliers after the norm), listed in config.json; every other gain is
  // 1 + N(0, 0.05). Counts up to the whole hidden size are allowed, so channels must not
  // collide however many are asked for.
  TempDir dir;
  const std::string shape = " --layers 2 --hidden 32 --intermediate 40 --heads 2 --kv-heads 1 --vocab 50 --dtype f32";
  for (const int n : {0, 3, 16, 32}) {
    const std::string out = dir / ("s" + std::to_string(n));
    const CommandResult r = run(dir, "synth '" + out + "'" + shape + " --outlier-channels " + std::to_string(n));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto listed = nlohmann::json::parse(read_file(out + "/config.json"))["modelpress_synthetic"]["outlier_channels"]
                            .get<std::vector<int64_t>>();
    const std::set<int64_t> channels(listed.begin(), listed.end());
    EXPECT_EQ(channels.size(), static_cast<size_t>(n)) << "listed: " << nlohmann::json(listed).dump();
    EXPECT_EQ(listed.size(), static_cast<size_t>(n));
    const auto gains = norm_gains(out);
    EXPECT_EQ(gains.size(), 5u);  // two per layer, and the final norm
    for (const auto& [name, g] : gains) {
      ASSERT_EQ(g.size(), 32u) << name;
      for (size_t c = 0; c < g.size(); ++c) {
        if (channels.count(static_cast<int64_t>(c))) EXPECT_EQ(g[c], 24.0f) << name << " channel " << c;
        else EXPECT_LT(std::abs(g[c] - 1.0f), 0.3f) << name << " channel " << c;
      }
    }
  }
  EXPECT_EQ(run(dir, "synth '" + (dir / "bad") + "'" + shape + " --outlier-channels 33").status, 1);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "bad"));
}

TEST(Cli, SynthSeedGivesTheSameBytesAndAnotherSeedOthers) {
  TempDir dir;
  const std::string shape = " --layers 1 --hidden 32 --intermediate 40 --heads 2 --kv-heads 1 --vocab 50";
  for (const auto& [out, seed] : std::vector<std::pair<std::string, int>>{{"a", 5}, {"b", 5}, {"c", 6}}) {
    const CommandResult r = run(dir, "synth '" + (dir / out) + "'" + shape + " --seed " + std::to_string(seed));
    ASSERT_EQ(r.status, 0) << r.err;
  }
  EXPECT_TRUE(read_file(dir / "a/model.safetensors") == read_file(dir / "b/model.safetensors"));
  EXPECT_EQ(read_file(dir / "a/config.json"), read_file(dir / "b/config.json"));
  // Another seed draws every weight anew; the outlier channels are fixed positions.
  const Checkpoint a = Checkpoint::open(dir / "a"), c = Checkpoint::open(dir / "c");
  for (const auto& t : a.tensors())
    EXPECT_NE(a.read(t).to_f32(), c.read(*c.find(t.name)).to_f32()) << t.name;
  EXPECT_EQ(a.config()["modelpress_synthetic"]["seed"], 5);
  EXPECT_EQ(c.config()["modelpress_synthetic"]["seed"], 6);
  EXPECT_EQ(a.config()["modelpress_synthetic"]["outlier_channels"], c.config()["modelpress_synthetic"]["outlier_channels"]);
}

}  // namespace
}  // namespace modelpress
