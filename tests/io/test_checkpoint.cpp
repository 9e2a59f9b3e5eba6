#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/checkpoint_summary.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "io/safetensors_writer.h"
#include "io/synthetic_checkpoint.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

SyntheticOptions tiny() {
  SyntheticOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 130;
  o.outlier_channels = 3;
  return o;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Checkpoint, SyntheticFolderOpensAndClassifies) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  const Checkpoint ck = Checkpoint::open(dir / "m");
  EXPECT_EQ(ck.format(), CheckpointFormat::Safetensors);
  EXPECT_EQ(ck.tensors().size(), 3u + 9u * 2u);
  EXPECT_EQ(ck.architecture(), "LlamaForCausalLM");
  EXPECT_EQ(ck.config()["hidden_size"], 64);
  EXPECT_EQ(ck.metadata().at("format"), "pt");
  const CheckpointTensor* q = ck.find("model.layers.1.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->category, TensorCategory::AttentionLinear);
  EXPECT_EQ(q->shape, (Shape{64, 64}));
  EXPECT_EQ(q->dtype, DType::BF16);
  EXPECT_EQ(ck.find("model.layers.0.self_attn.k_proj.weight")->shape, (Shape{32, 64}));
  EXPECT_EQ(ck.find("model.layers.0.mlp.down_proj.weight")->category, TensorCategory::MlpLinear);
  EXPECT_EQ(ck.find("lm_head.weight")->category, TensorCategory::LmHead);
  EXPECT_EQ(ck.find("model.norm.weight")->category, TensorCategory::Norm);
  EXPECT_EQ(ck.carried_files(), std::vector<std::string>{"config.json"});
}

TEST(Checkpoint, SyntheticIsDeterministicAndHasOutlierGains) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "a", tiny());
  write_synthetic_checkpoint(dir / "b", tiny());
  EXPECT_TRUE(read_file(dir / "a/model.safetensors") == read_file(dir / "b/model.safetensors"));
  SyntheticOptions other = tiny();
  other.seed = 7;
  write_synthetic_checkpoint(dir / "c", other);
  EXPECT_FALSE(read_file(dir / "a/model.safetensors") == read_file(dir / "c/model.safetensors"));

  const Checkpoint ck = Checkpoint::open(dir / "a");
  const auto channels = ck.config()["modelpress_synthetic"]["outlier_channels"].get<std::vector<int64_t>>();
  ASSERT_EQ(channels.size(), 3u);
  const std::vector<float> gain = ck.read(*ck.find("model.layers.0.input_layernorm.weight")).to_f32();
  for (size_t c = 0; c < gain.size(); ++c) {
    const bool outlier = std::find(channels.begin(), channels.end(), static_cast<int64_t>(c)) != channels.end();
    if (outlier) EXPECT_GT(gain[c], 10.0f) << c;
    else EXPECT_LT(std::abs(gain[c] - 1.0f), 0.5f) << c;
  }
  // Linear weights have std close to 1/sqrt(in).
  const std::vector<float> w = ck.read(*ck.find("model.layers.0.mlp.up_proj.weight")).to_f32();
  double sq = 0;
  for (float x : w) sq += double(x) * x;
  const double stddev = std::sqrt(sq / w.size());
  EXPECT_NEAR(stddev, 1.0 / 8.0, 0.03);
}

TEST(Checkpoint, ShardedMatchesSingleFile) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "single", tiny());
  SyntheticOptions sharded = tiny();
  sharded.max_shard_bytes = 20'000;
  write_synthetic_checkpoint(dir / "sharded", sharded);
  const Checkpoint a = Checkpoint::open(dir / "single");
  const Checkpoint b = Checkpoint::open(dir / "sharded");
  EXPECT_EQ(b.format(), CheckpointFormat::ShardedSafetensors);
  EXPECT_GT(b.files().size(), 2u);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& t : a.tensors()) {
    const CheckpointTensor* u = b.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    const Tensor x = a.read(t), y = b.read(*u);
    ASSERT_EQ(x.nbytes(), y.nbytes());
    EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.nbytes())) << t.name;
  }
  // Opening the index file directly is the same checkpoint.
  EXPECT_EQ(Checkpoint::open(dir / "sharded/model.safetensors.index.json").tensors().size(), a.tensors().size());
}

// Writes a sharded tiny checkpoint into dir/m, lets `edit` change its index, and returns
// the error opening it gives.
template <typename Edit>
std::string error_after_editing_index(const TempDir& dir, Edit edit) {
  SyntheticOptions o = tiny();
  o.max_shard_bytes = 20'000;
  write_synthetic_checkpoint(dir / "m", o);
  const std::string index = dir / "m/model.safetensors.index.json";
  auto j = nlohmann::json::parse(read_file(index));
  edit(j["weight_map"]);
  write_file(index, j.dump());
  return error_of([&] { Checkpoint::open(dir / "m"); });
}

TEST(Checkpoint, IndexNamingMissingShardIsAnError) {
  TempDir dir;
  const std::string msg = error_after_editing_index(dir, [](auto& map) {
    map["lm_head.weight"] = "model-00099-of-00099.safetensors";
  });
  EXPECT_NE(msg.find(dir / "m/model.safetensors.index.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00099-of-00099.safetensors', which does not exist"), std::string::npos) << msg;
}

TEST(Checkpoint, IndexNamingTensorNotInItsShardIsAnError) {
  TempDir dir;
  const std::string msg = error_after_editing_index(dir, [](auto& map) { map["no.such.tensor"] = map["lm_head.weight"]; });
  EXPECT_NE(msg.find("'no.such.tensor'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("which has no such tensor"), std::string::npos) << msg;
}

TEST(Checkpoint, ShardHoldingUnlistedTensorIsAnError) {
  TempDir dir;
  const std::string msg = error_after_editing_index(dir, [](auto& map) { map.erase("model.norm.weight"); });
  EXPECT_NE(msg.find("'model.norm.weight', which weight_map does not list"), std::string::npos) << msg;
}

TEST(Checkpoint, IndexNamingShardOutsideTheFolderIsAnError) {
  // A weight_map is data from the download: a shard name must not reach files outside the
  // checkpoint folder. The escaping target exists and is a valid safetensors file, so without
  // the guard the open would get further and fail (or succeed) some other way.
  TempDir dir;
  write_synthetic_checkpoint(dir / "outside", tiny());
  const std::string outside = dir / "outside/model.safetensors";
  for (const std::string& shard : {std::string("../outside/model.safetensors"), outside, std::string(".."),
                                   std::string(".")}) {
    std::filesystem::remove_all(dir.path() / "m");
    const std::string msg = error_after_editing_index(dir, [&](auto& map) { map["lm_head.weight"] = shard; });
    EXPECT_NE(msg.find(dir / "m/model.safetensors.index.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("weight_map names shard '" + shard + "' outside the checkpoint folder"), std::string::npos) << msg;
  }
}

TEST(Checkpoint, IndexWithoutAWeightMapObjectIsAnError) {
  TempDir dir;
  SyntheticOptions o = tiny();
  o.max_shard_bytes = 20'000;
  write_synthetic_checkpoint(dir / "m", o);
  const std::string index = dir / "m/model.safetensors.index.json";
  auto open_with = [&](const std::string& text) {
    write_file(index, text);
    return error_of([&] { Checkpoint::open(dir / "m"); });
  };
  for (const char* text : {R"({})", R"({"metadata": {"total_size": 1}})", R"({"weight_map": []})",
                           R"({"weight_map": "model-00001-of-00002.safetensors"})", R"({"weight_map": null})", R"([])"}) {
    const std::string msg = open_with(text);
    EXPECT_NE(msg.find(index + ": no \"weight_map\" object"), std::string::npos) << text << ": " << msg;
  }
  std::string msg = open_with(R"({"weight_map": {}})");
  EXPECT_NE(msg.find(index + ": weight_map is empty"), std::string::npos) << msg;
  msg = open_with(R"({"weight_map": {"lm_head.weight": 3}})");
  EXPECT_NE(msg.find(index + ": weight_map entry for 'lm_head.weight' is not a file name"), std::string::npos) << msg;
}

TEST(Checkpoint, TensorInTwoShardsIsAnError) {
  // Two shards both hold "x"; weight_map can name only one of them. The other copy must not be
  // read (which one wins would depend on the order shards are visited in): an error naming
  // the shard, the tensor and where weight_map puts it.
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "m");
  auto shard = [&](const std::string& name, const std::string& other) {
    SafetensorsWriter w(dir / ("m/" + name));
    w.append("x", Tensor::zeros(DType::F32, {2}));
    w.append(other, Tensor::zeros(DType::F32, {3}));
    w.finish();
  };
  shard("a.safetensors", "y");
  shard("b.safetensors", "z");
  for (const std::string& owner : {"a.safetensors", "b.safetensors"}) {
    const std::string other = owner == "a.safetensors" ? "b.safetensors" : "a.safetensors";
    write_file(dir / "m/model.safetensors.index.json",
               nlohmann::json{{"weight_map", {{"x", owner}, {"y", "a.safetensors"}, {"z", "b.safetensors"}}}}.dump());
    const std::string msg = error_of([&] { Checkpoint::open(dir / "m"); });
    EXPECT_NE(msg.find(dir / "m/model.safetensors.index.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("shard '" + other + "' holds tensor 'x', which weight_map puts in shard '" + owner + "'"),
              std::string::npos)
        << msg;
  }
}

TEST(Checkpoint, SeveralSafetensorsFilesWithoutAnIndexIsAnError) {
  // Shards without their index: which files form the model (and in what order) is unknown.
  TempDir dir;
  SyntheticOptions o = tiny();
  o.max_shard_bytes = 20'000;
  write_synthetic_checkpoint(dir / "m", o);
  std::filesystem::remove(dir.path() / "m/model.safetensors.index.json");
  const std::string msg = error_of([&] { Checkpoint::open(dir / "m"); });
  EXPECT_NE(msg.find(dir / "m" + ": several .safetensors files but no model.safetensors.index.json"),
            std::string::npos)
      << msg;
  // One of them alone, named as a file, still opens.
  std::string first;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "m"))
    if (e.path().extension() == ".safetensors" && (first.empty() || e.path().string() < first)) first = e.path().string();
  EXPECT_FALSE(Checkpoint::open(first).tensors().empty());
}

// The smallest GGUF v3 file: one F32 tensor "w" of 4 values.
std::string tiny_gguf() {
  std::string b = "GGUF";
  auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  u32(3);
  u64(1);  // tensors
  u64(0);  // KV pairs
  u64(1);
  b += "w";
  u32(1);  // dims
  u64(4);
  u32(0);  // F32
  u64(0);  // offset in the data section
  b.resize((b.size() + 31) / 32 * 32, '\0');
  const float v[4] = {1, 2, 3, 4};
  b.append(reinterpret_cast<const char*>(v), sizeof v);
  return b;
}

TEST(Checkpoint, SeveralGgufFilesInAFolderIsAnError) {
  TempDir dir;
  write_file(dir / "a.gguf", tiny_gguf());
  write_file(dir / "b.gguf", tiny_gguf());
  const std::string msg = error_of([&] { Checkpoint::open(dir.path().string()); });
  EXPECT_NE(msg.find(dir.path().string() + ": several .gguf files: name the one to open"), std::string::npos) << msg;
  // Named, each opens.
  const Checkpoint ck = Checkpoint::open(dir / "b.gguf");
  EXPECT_EQ(ck.format(), CheckpointFormat::Gguf);
  EXPECT_EQ(ck.read(*ck.find("w")).to_f32(), (std::vector<float>{1, 2, 3, 4}));
}

TEST(Checkpoint, IndexThatIsNotJsonIsAnError) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  write_file(dir / "m/model.safetensors.index.json", "{\"weight_map\": ");
  const std::string msg = error_of([&] { Checkpoint::open(dir / "m"); });
  EXPECT_NE(msg.find("model.safetensors.index.json: not valid JSON"), std::string::npos) << msg;
}

TEST(Checkpoint, ConfigWithANumberPastDoubleIsAnError) {
  // nlohmann reports 1e999 as out_of_range, not parse_error (the safetensors header had the
  // same hole, found by fuzzing): both are one-line errors naming the file.
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  write_file(dir / "m/config.json", "{\"rope_theta\": 1e999}");
  const std::string msg = error_of([&] { Checkpoint::open(dir / "m"); });
  EXPECT_NE(msg.find("config.json: not valid JSON"), std::string::npos) << msg;
}

TEST(Checkpoint, FolderWithoutWeightsIsAnError) {
  TempDir dir;
  write_file(dir / "config.json", "{}");
  const std::string msg = error_of([&] { Checkpoint::open(dir.path().string()); });
  EXPECT_NE(msg.find("no model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { Checkpoint::open(dir / "missing"); }).find("no such file or folder"), std::string::npos);
}

TEST(Checkpoint, CarriesSideFilesButNotWeights) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  write_file(dir / "m/tokenizer.json", "{\"tok\": 1}");
  std::filesystem::create_directories(dir.path() / "m/1_Pooling");
  write_file(dir / "m/1_Pooling/config.json", "{}");
  write_file(dir / "m/pytorch_model.bin", "weights");
  write_file(dir / "m/.hidden", "x");
  const Checkpoint ck = Checkpoint::open(dir / "m");
  EXPECT_EQ(ck.carried_files(), (std::vector<std::string>{"1_Pooling/config.json", "config.json", "tokenizer.json"}));

  CheckpointWriter w(dir / "out", &ck);
  for (const auto& t : ck.tensors()) w.append(t.name, ck.read(t));
  w.finish();
  EXPECT_EQ(read_file(dir / "out/tokenizer.json"), "{\"tok\": 1}");
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "out/1_Pooling/config.json"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out/pytorch_model.bin"));
  EXPECT_TRUE(testing::safetensors_data(dir / "out/model.safetensors") ==
              testing::safetensors_data(dir / "m/model.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "out/config.json")), ck.config());
}

TEST(CheckpointWriter, UnfinishedWriterLeavesNothing) {
  TempDir dir;
  {
    CheckpointWriter w(dir / "out", nullptr);
    w.append("x", Tensor::zeros(DType::F32, {3, 5}));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(CheckpointWriter, RefusesNonEmptyTargetUnlessOverwrite) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "out");
  write_file(dir / "out/keep.txt", "precious");
  EXPECT_NE(error_of([&] { CheckpointWriter w(dir / "out", nullptr); }).find("exists and is not empty"),
            std::string::npos);
  EXPECT_EQ(read_file(dir / "out/keep.txt"), "precious");

  CheckpointWriterOptions o;
  o.overwrite = true;
  {
    CheckpointWriter w(dir / "out", nullptr, o);
    w.append("x", Tensor::zeros(DType::F32, {2}));
    // Not finished: the old folder must still be there, untouched.
  }
  EXPECT_EQ(read_file(dir / "out/keep.txt"), "precious");
  CheckpointWriter w(dir / "out", nullptr, o);
  w.append("x", Tensor::zeros(DType::F32, {2}));
  w.finish();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out/keep.txt"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "out/model.safetensors"));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u);  // no staging or set-aside folders left
}

TEST(CheckpointWriter, RefusesToWriteIntoTheInput) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  const Checkpoint ck = Checkpoint::open(dir / "m");
  CheckpointWriterOptions o;
  o.overwrite = true;
  const std::string msg = error_of([&] { CheckpointWriter w(dir / "m", &ck, o); });
  EXPECT_NE(msg.find("input"), std::string::npos) << msg;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "m/model.safetensors"));
}

TEST(CheckpointSummary, CountsParametersAndCategories) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  const auto s = summarize_checkpoint(Checkpoint::open(dir / "m"), dir / "m");
  const int64_t h = 64, f = 96, v = 130, kv = 32;
  const int64_t per_layer = h * h * 2 + kv * h * 2 + 3 * h * f + 2 * h;
  EXPECT_EQ(s["totals"]["parameters"], 2 * per_layer + 2 * v * h + h);
  EXPECT_EQ(s["totals"]["bytes"], 2 * (2 * per_layer + 2 * v * h + h));
  EXPECT_EQ(s["categories"]["attention_linear"]["tensors"], 8);
  EXPECT_EQ(s["categories"]["mlp_linear"]["tensors"], 6);
  EXPECT_EQ(s["quantization"]["method"], "none");
  EXPECT_EQ(s["tensors"][0]["name"], "model.embed_tokens.weight");
  EXPECT_EQ(s["tensors"][0]["category"], "embedding");
}

TEST(CheckpointSummary, DetectsBitsandbytesInt8) {
  TempDir dir;
  {
    CheckpointWriter w(dir / "q", nullptr);
    w.append("model.layers.0.mlp.up_proj.weight", Tensor::zeros(DType::I8, {4, 8}));
    w.append("model.layers.0.mlp.up_proj.SCB", Tensor::zeros(DType::F32, {4}));
    w.append("model.layers.0.mlp.up_proj.weight_format", Tensor::zeros(DType::U8, {}));
    w.set_config({{"quantization_config", {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}}}});
    w.finish();
  }
  const auto s = summarize_checkpoint(Checkpoint::open(dir / "q"), dir / "q");
  EXPECT_EQ(s["quantization"]["method"], "bitsandbytes");
  EXPECT_EQ(s["quantization"]["int8_layers"], 1);
  EXPECT_EQ(s["totals"]["parameters"], 32);  // SCB and weight_format are side tensors
}

TEST(CheckpointSummary, PackedWeightsCountTheirLogicalShape) {
  TempDir dir;
  {
    CheckpointWriter w(dir / "q", nullptr);
    w.append("model.layers.0.mlp.up_proj.weight_packed", Tensor::zeros(DType::I32, {4, 2}));  // 4 x 16 int4
    w.append("model.layers.0.mlp.up_proj.weight_scale", Tensor::zeros(DType::BF16, {4, 1}));
    Tensor s = Tensor::zeros(DType::I64, {2});
    const int64_t dims[2] = {4, 16};
    std::memcpy(s.mutable_data(), dims, sizeof dims);
    w.append("model.layers.0.mlp.up_proj.weight_shape", s);
    w.finish();
  }
  const auto s = summarize_checkpoint(Checkpoint::open(dir / "q"), dir / "q");
  EXPECT_EQ(s["quantization"]["method"], "compressed-tensors");
  EXPECT_EQ(s["totals"]["parameters"], 64);
}

TEST(ByteSize, ParsesUnits) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("500mb"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1234"), 1234u);
  EXPECT_THROW(parse_byte_size("lots"), Error);
  EXPECT_THROW(parse_byte_size("5 parsecs"), Error);
  EXPECT_THROW(parse_byte_size("-1GB"), Error);
}

}  // namespace
}  // namespace modelpress
