// The streaming driver (quant/quantize_checkpoint.h) on synthetic checkpoints: which
// tensors are quantized, skipped and copied (byte for byte, in file order), biases,
// config.json, the layers read back equal the pass on the original weight, and bad inputs
// fail with one error naming the tensor and leave no output behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/synthetic_checkpoint.h"
#include "quant/quantize_checkpoint.h"
#include "tests/quant/quant_test_util.h"
#include "tests/test_util.h"

namespace modelpress::quant {
namespace {

namespace fs = std::filesystem;
using kernels::LinearFormat;
using testing::f32_tensor;
using testing::gaussian_values;
using testing::TempDir;

void write_tiny_llama(const std::string& dir, DType dtype = DType::BF16) {
  SyntheticOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 50;
  o.dtype = dtype;
  write_synthetic_checkpoint(dir, o);
}

std::string bytes_of(const Tensor& t) { return std::string(reinterpret_cast<const char*>(t.data()), t.nbytes()); }

bool leftovers(const TempDir& dir) {
  for (const auto& e : fs::directory_iterator(dir.path()))
    if (e.path().filename().string().find("partial") != std::string::npos) return true;
  return false;
}

TEST(QuantizeCheckpoint, LlmInt8OnSyntheticLlama) {
  TempDir dir;
  write_tiny_llama(dir / "in");
  const Checkpoint in = Checkpoint::open(dir / "in");
  std::vector<std::string> seen;
  QuantizeOptions o;
  o.method = LinearFormat::LlmInt8;
  o.llm_int8.threshold = 5.5f;
  const QuantizeReport r = quantize_checkpoint(in, dir / "out", o, [&](size_t i, size_t total, const std::string& name) {
    EXPECT_EQ(total, in.tensors().size());
    EXPECT_EQ(i, seen.size());
    seen.push_back(name);
  });
  EXPECT_EQ(seen.size(), in.tensors().size());
  EXPECT_EQ(r.method, "llm-int8");
  EXPECT_EQ(r.quantized, 14u);  // 2 layers x (q, k, v, o, gate, up, down)
  EXPECT_EQ(r.skipped, 1u);     // lm_head
  EXPECT_EQ(r.layers.size(), 15u);
  EXPECT_EQ(r.layers.back().name, "lm_head");
  EXPECT_EQ(r.layers.back().reason, "lm_head");
  EXPECT_LT(r.bytes_after, r.bytes_before);
  for (const auto& l : r.layers)
    if (l.format == "llm-int8") {
      EXPECT_GT(l.bits_per_weight, 8.0);
      EXPECT_LT(l.bits_per_weight, 9.5);
    }

  const Checkpoint out = Checkpoint::open(dir / "out");
  // Every tensor that is not a quantized weight is there unchanged, in the same order.
  std::vector<std::string> order;
  for (const auto& t : in.tensors()) {
    const CheckpointTensor* o2 = out.find(t.name);
    ASSERT_NE(o2, nullptr) << t.name;
    order.push_back(t.name);
    const bool quantized = is_linear(t.category) && t.category != TensorCategory::LmHead;
    if (quantized) {
      EXPECT_EQ(o2->dtype, DType::I8) << t.name;
      const std::string p = t.name.substr(0, t.name.size() - 7);
      ASSERT_NE(out.find(p + ".SCB"), nullptr);
      ASSERT_NE(out.find(p + ".weight_format"), nullptr);
      // What was written is what the pass computes on the original weight.
      const PackedLayer expect = quantize_llm_int8(p, in.read(t), nullptr, {.threshold = 5.5f});
      const PackedLayer got = load_packed_layer(out, p);
      EXPECT_EQ(got.q8, expect.q8);
      EXPECT_EQ(got.scale8, expect.scale8);
      EXPECT_EQ(got.threshold, 5.5f);
    } else {
      EXPECT_EQ(o2->dtype, t.dtype) << t.name;
      EXPECT_EQ(o2->shape, t.shape) << t.name;
      EXPECT_TRUE(bytes_of(out.read(*o2)) == bytes_of(in.read(t))) << t.name << " changed";
    }
  }
  std::vector<std::string> out_order;
  for (const auto& t : out.tensors())
    if (std::find(order.begin(), order.end(), t.name) != order.end()) out_order.push_back(t.name);
  EXPECT_EQ(out_order, order);
  EXPECT_EQ(packed_layer_names(out).size(), 14u);

  // config.json: the source's keys plus quantization_config.
  const auto& cfg = out.config();
  EXPECT_EQ(cfg["architectures"], in.config()["architectures"]);
  EXPECT_EQ(cfg["hidden_size"], in.config()["hidden_size"]);
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "bitsandbytes");
  EXPECT_EQ(cfg["quantization_config"]["llm_int8_threshold"], 5.5);
  EXPECT_EQ(cfg["quantization_config"]["llm_int8_skip_modules"], nlohmann::json{"lm_head"});
  EXPECT_EQ(r.quantization_config, cfg["quantization_config"]);
}

TEST(QuantizeCheckpoint, SkipRegexesBiasesAndNorms) {
  TempDir dir;
  // A hand-made checkpoint: biases beside their weights, a router, an expert stack.
  const int64_t h = 16;
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("model.embed_tokens.weight", f32_tensor(gaussian_values(10 * h, 1), {10, h}, DType::F16));
  t.emplace_back("model.layers.0.input_layernorm.weight", f32_tensor(gaussian_values(h, 2), {h}, DType::F16));
  t.emplace_back("model.layers.0.self_attn.q_proj.weight", f32_tensor(gaussian_values(h * h, 3), {h, h}, DType::F16));
  t.emplace_back("model.layers.0.self_attn.q_proj.bias", f32_tensor(gaussian_values(h, 4), {h}, DType::F16));
  t.emplace_back("model.layers.0.self_attn.k_proj.weight", f32_tensor(gaussian_values(h * h, 5), {h, h}, DType::F16));
  t.emplace_back("model.layers.0.mlp.gate.weight", f32_tensor(gaussian_values(4 * h, 6), {4, h}, DType::F16));
  t.emplace_back("model.layers.0.mlp.experts.gate_up_proj", f32_tensor(gaussian_values(4 * 8 * h, 7), {4, 8, h}, DType::F16));
  t.emplace_back("model.layers.0.mlp.down_proj.weight", f32_tensor(gaussian_values(h * 32, 8), {h, 32}, DType::F16));
  t.emplace_back("model.layers.0.mlp.down_proj.bias", f32_tensor(gaussian_values(h, 9), {h}, DType::F16));
  t.emplace_back("model.norm.weight", f32_tensor(gaussian_values(h, 10), {h}, DType::F16));
  testing::write_checkpoint(dir / "in", t, {{"architectures", {"Custom"}}, {"tie_word_embeddings", true}});
  const Checkpoint in = Checkpoint::open(dir / "in");

  QuantizeOptions o;
  o.method = LinearFormat::W4A16;
  o.w4a16.group_size = 8;
  o.skip = {R"(k_proj$)"};
  const QuantizeReport r = quantize_checkpoint(in, dir / "out", o);
  EXPECT_EQ(r.quantized, 2u);  // q_proj, down_proj
  EXPECT_EQ(r.skipped, 2u);    // k_proj (--skip), router
  const Checkpoint out = Checkpoint::open(dir / "out");
  std::vector<std::string> names;
  for (const auto& x : out.tensors()) names.push_back(x.name);
  const std::vector<std::string> expected{
      "model.embed_tokens.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.self_attn.q_proj.weight_packed",
      "model.layers.0.self_attn.q_proj.weight_scale",
      "model.layers.0.self_attn.q_proj.weight_shape",
      "model.layers.0.self_attn.q_proj.bias",
      "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.mlp.gate.weight",
      "model.layers.0.mlp.experts.gate_up_proj",
      "model.layers.0.mlp.down_proj.weight_packed",
      "model.layers.0.mlp.down_proj.weight_scale",
      "model.layers.0.mlp.down_proj.weight_shape",
      "model.layers.0.mlp.down_proj.bias",
      "model.norm.weight"};
  EXPECT_EQ(names, expected);
  for (const auto& [name, tensor] : t) {
    if (const CheckpointTensor* o2 = out.find(name)) {
      EXPECT_EQ(o2->dtype, tensor.dtype()) << name;
      EXPECT_TRUE(bytes_of(out.read(*o2)) == bytes_of(tensor)) << name << " changed";
    }
  }
  const auto& qc = out.config()["quantization_config"];
  EXPECT_EQ(qc["ignore"], (nlohmann::json{"model.layers.0.self_attn.k_proj", "model.layers.0.mlp.gate", "lm_head"}));
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["group_size"], 8);
  EXPECT_EQ(out.config()["tie_word_embeddings"], true);
  // The layer read back equals the pass on the original weight, bias included.
  const PackedLayer got = load_packed_layer(out, "model.layers.0.mlp.down_proj");
  const PackedLayer expect = quantize_w4a16("model.layers.0.mlp.down_proj", t[7].second, &t[8].second, o.w4a16);
  EXPECT_EQ(got.packed4, expect.packed4);
  EXPECT_EQ(got.scales4, expect.scales4);
  EXPECT_EQ(got.scale_dtype, DType::F16);
  EXPECT_EQ(got.bias, expect.bias);
  EXPECT_EQ(packed_layer_names(out),
            (std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"}));
}

TEST(QuantizeCheckpoint, W8A8ShardedOutputReadsBack) {
  TempDir dir;
  write_tiny_llama(dir / "in", DType::F32);
  const Checkpoint in = Checkpoint::open(dir / "in");
  QuantizeOptions o;
  o.method = LinearFormat::W8A8;
  o.max_shard_bytes = 20'000;
  const QuantizeReport r = quantize_checkpoint(in, dir / "out", o);
  EXPECT_TRUE(fs::exists(dir.path() / "out/model.safetensors.index.json"));
  const Checkpoint out = Checkpoint::open(dir / "out");
  EXPECT_EQ(out.config()["quantization_config"]["format"], "int-quantized");
  const auto names = packed_layer_names(out);
  ASSERT_EQ(names.size(), r.quantized);
  for (const auto& name : names) {
    const PackedLayer got = load_packed_layer(out, name);
    const PackedLayer expect = quantize_w8a8(name, in.read(*in.find(name + ".weight")), nullptr);
    EXPECT_EQ(got.format, LinearFormat::W8A8);
    EXPECT_EQ(got.q8, expect.q8) << name;
    EXPECT_EQ(got.scale8, expect.scale8) << name;
    EXPECT_EQ(got.scale_dtype, DType::F32);
  }
}

TEST(QuantizeCheckpoint, IntegerLinearWeightIsAnErrorAndNothingIsWritten) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("model.layers.0.self_attn.q_proj.weight", f32_tensor(gaussian_values(64, 1), {8, 8}));
  t.emplace_back("model.layers.0.self_attn.o_proj.weight", Tensor::zeros(DType::I32, {8, 8}));
  testing::write_checkpoint(dir / "in", t);
  const Checkpoint in = Checkpoint::open(dir / "in");
  try {
    quantize_checkpoint(in, dir / "out", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.o_proj.weight: dtype I32 is not a float dtype"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "out"));
  EXPECT_FALSE(leftovers(dir));
}

TEST(QuantizeCheckpoint, NanWeightIsAnErrorNamingTheTensor) {
  TempDir dir;
  std::vector<float> w = gaussian_values(64, 1);
  w[8 * 3 + 5] = std::nanf("");
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("model.layers.0.mlp.up_proj.weight", f32_tensor(w, {8, 8}, DType::BF16));
  testing::write_checkpoint(dir / "in", t);
  try {
    quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "out", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj.weight: NaN at [3, 5]"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "out"));
  EXPECT_FALSE(leftovers(dir));
}

TEST(QuantizeCheckpoint, GroupSizeNotDividingKIsAnError) {
  TempDir dir;
  write_tiny_llama(dir / "in");  // K = 64 and 96
  QuantizeOptions o;
  o.method = LinearFormat::W4A16;
  o.w4a16.group_size = 64;  // divides 64 but not 96 (down_proj)
  try {
    quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "out", o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.down_proj.weight: group size 64 does not divide the 96"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "out"));
  o.w4a16.group_size = 32;
  EXPECT_NO_THROW(quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "out", o));
}

TEST(QuantizeCheckpoint, RefusesQuantizedInputBadRegexAndNothingToDo) {
  TempDir dir;
  write_tiny_llama(dir / "in");
  QuantizeOptions o;
  quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "q", o);
  try {
    quantize_checkpoint(Checkpoint::open(dir / "q"), dir / "qq", o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already quantized"), std::string::npos) << e.what();
  }
  o.skip = {"("};
  EXPECT_THROW(quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "x", o), Error);
  o.skip = {"."};
  try {
    quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "x", o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no linear layer left to quantize"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "x"));
  EXPECT_FALSE(fs::exists(dir.path() / "qq"));
  // An existing output is refused without overwrite, replaced with it.
  o.skip.clear();
  EXPECT_THROW(quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "q", o), Error);
  o.overwrite = true;
  EXPECT_NO_THROW(quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "q", o));
}

TEST(QuantizeCheckpoint, ReportJson) {
  TempDir dir;
  write_tiny_llama(dir / "in");
  QuantizeOptions o;
  o.method = LinearFormat::W4A16;
  o.w4a16.group_size = 32;
  o.w4a16.symmetric = false;
  const auto j = report_json(quantize_checkpoint(Checkpoint::open(dir / "in"), dir / "out", o));
  EXPECT_EQ(j["method"], "w4a16");
  EXPECT_EQ(j["totals"]["quantized"], 14);
  EXPECT_EQ(j["layers"][0]["name"], "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(j["layers"][0]["shape"], (nlohmann::json{64, 64}));
  EXPECT_EQ(j["layers"][0]["dtype"], "BF16");
  // 4-bit codes + one BF16 scale and one packed zero point per 32 weights.
  const double bpw = j["layers"][0]["bits_per_weight"];
  EXPECT_GT(bpw, 4.5);
  EXPECT_LT(bpw, 5.0);
  EXPECT_EQ(j["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"], false);
}

}  // namespace
}  // namespace modelpress::quant
