// The forward's pieces against simple references (attention, RoPE, norms), the decoder on a
// synthetic LLaMA checkpoint (prefill equals token-by-token decoding through the KV cache;
// quantized checkpoints run through their packed kernels), and the errors a bad model gives.
// Logits against transformers are in tests/interop/test_forward_interop.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/synthetic_checkpoint.h"
#include "model/model.h"
#include "model/ops.h"
#include "quant/lut_decompress.h"
#include "quant/quantize_checkpoint.h"
#include "tests/model/tiny_vit.h"
#include "tests/test_util.h"

namespace modelpress::model {
namespace {

using modelpress::testing::TempDir;

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Attention written out the slow way: per query row and head, softmax over visible keys.
std::vector<float> attention_reference(const std::vector<float>& q, int64_t rows, const std::vector<float>& k,
                                       const std::vector<float>& v, int64_t kv_len, int64_t heads, int64_t kv_heads,
                                       int64_t d, bool causal) {
  std::vector<float> out(static_cast<size_t>(rows * heads * d));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv_heads);
      const int64_t visible = causal ? kv_len - rows + i + 1 : kv_len;
      std::vector<double> s(static_cast<size_t>(visible));
      double mx = -1e300;
      for (int64_t j = 0; j < visible; ++j) {
        double dotp = 0;
        for (int64_t c = 0; c < d; ++c) dotp += q[(i * heads + h) * d + c] * k[(j * kv_heads + g) * d + c];
        s[j] = dotp / std::sqrt(static_cast<double>(d));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += x = std::exp(x - mx);
      for (int64_t c = 0; c < d; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < visible; ++j) acc += s[j] / sum * v[(j * kv_heads + g) * d + c];
        out[(i * heads + h) * d + c] = static_cast<float>(acc);
      }
    }
  return out;
}

TEST(Ops, AttentionMatchesReferenceWithGroupsPastAndOddShapes) {
  for (auto [rows, kv_len, heads, kv_heads, d, causal] :
       {std::tuple{7, 7, 6, 2, 10, true}, {3, 11, 4, 4, 6, true}, {1, 13, 9, 3, 64, true}, {5, 5, 3, 1, 14, false},
        {19, 19, 6, 3, 10, true}, {9, 30, 4, 2, 64, true}, {21, 21, 3, 3, 7, false}}) {
    const auto q = random_vec(static_cast<size_t>(rows * heads * d), 1);
    const auto k = random_vec(static_cast<size_t>(kv_len * kv_heads * d), 2);
    const auto v = random_vec(k.size(), 3);
    std::vector<float> out(q.size());
    // Keys laid out as rows of all kv heads (row stride kv_heads * d), as BERT's projections are.
    attention(q.data(), rows, HeadRows{k.data(), d, kv_heads * d}, HeadRows{v.data(), d, kv_heads * d}, kv_len, heads,
              kv_heads, d, causal, out.data());
    const auto ref = attention_reference(q, rows, k, v, kv_len, heads, kv_heads, d, causal);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5) << "rows " << rows << " at " << i;
  }
}

TEST(Ops, RopeRotatesPairsOfHalvesAndKeepsNorms) {
  Rope rope(8, 10000.0, {});
  auto x = random_vec(2 * 3 * 8, 4);  // 2 rows, 3 heads
  const auto before = x;
  rope.apply(x.data(), 2, 3, 5);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 4; ++i) {
        const float* a = before.data() + (r * 3 + h) * 8;
        const float* b = x.data() + (r * 3 + h) * 8;
        const double angle = static_cast<double>(5 + r) * std::pow(10000.0, -2.0 * i / 8);
        EXPECT_NEAR(b[i], a[i] * std::cos(angle) - a[i + 4] * std::sin(angle), 1e-4);
        EXPECT_NEAR(b[i + 4], a[i + 4] * std::cos(angle) + a[i] * std::sin(angle), 1e-4);
      }
}

TEST(Ops, Llama3ScalingSlowsLongWavelengthsOnly) {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8;
  s.original_max_positions = 64;
  const Rope plain(16, 10000.0, {}), scaled(16, 10000.0, s);
  for (size_t i = 0; i < plain.inv_freq().size(); ++i) {
    const double wavelen = 2 * M_PI / plain.inv_freq()[i];
    if (wavelen < 64 / 4.0) EXPECT_FLOAT_EQ(scaled.inv_freq()[i], plain.inv_freq()[i]);
    if (wavelen > 64 / 1.0) EXPECT_FLOAT_EQ(scaled.inv_freq()[i], plain.inv_freq()[i] / 8);
  }
}

TEST(Ops, NormsMatchTheirFormulas) {
  std::vector<float> x = {1, 2, 3, 4, -1, 0, 0, 1}, w = {1, 2, 0.5f, 1}, b = {0, 1, 0, -1};
  auto r = x;
  rms_norm(r.data(), 2, 4, w.data(), 0.0);
  const float inv = 1.0f / std::sqrt(30.0f / 4);
  EXPECT_NEAR(r[1], 2 * 2 * inv, 1e-6);
  auto l = x;
  layer_norm(l.data(), 2, 4, w.data(), b.data(), 0.0);
  EXPECT_NEAR(l[0], (1 - 2.5) / std::sqrt(1.25) * 1 + 0, 1e-5);
  EXPECT_NEAR(l[3], (4 - 2.5) / std::sqrt(1.25) * 1 - 1, 1e-5);
}

SyntheticOptions small_model() {
  SyntheticOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 50;
  o.dtype = DType::F32;
  o.outlier_channels = 2;
  o.outlier_gain = 4;
  return o;
}

std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids, int64_t prefill) {
  RunContext ctx;
  KvCache cache = m.decoder->new_cache(static_cast<int64_t>(ids.size()));
  const int64_t v = m.config.vocab;
  std::vector<float> logits(ids.size() * static_cast<size_t>(v));
  auto run = [&](int64_t begin, int64_t count) {
    const auto h = m.decoder->forward(std::span<const int32_t>(ids).subspan(begin, count), cache, ctx);
    m.decoder->logits(h.data(), count, logits.data() + begin * v, ctx);
  };
  run(0, prefill);
  for (int64_t i = prefill; i < static_cast<int64_t>(ids.size()); ++i) run(i, 1);
  EXPECT_EQ(ctx.first_nonfinite, "");
  return logits;
}

TEST(Decoder, TokenByTokenThroughTheCacheEqualsOnePass) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  const Model m = load_model(dir / "m");
  ASSERT_TRUE(m.decoder);
  const std::vector<int32_t> ids = {3, 17, 4, 49, 0, 22, 22, 8, 31};
  const auto whole = all_logits(m, ids, static_cast<int64_t>(ids.size()));
  const auto stepped = all_logits(m, ids, 2);
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(stepped[i], whole[i], 1e-4 * (1 + std::fabs(whole[i])));
}

double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) err += (got[i] - ref[i]) * (got[i] - ref[i]), norm += ref[i] * ref[i];
  return std::sqrt(err / norm);
}

// A packed checkpoint's forward (every layer through its packed kernel) equals the forward of
// the same checkpoint decompressed to dense f32 weights: exactly what the kernels compute,
// up to f32 rounding, for W4A16 and the palettized format (f32 activations); within the
// activation quantization for LLM.int8.
TEST(Decoder, PackedCheckpointsEqualTheirDecompressedWeights) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7};
  const auto original = all_logits(load_model(dir / "m"), ids, 7);
  for (auto method : {kernels::LinearFormat::LlmInt8, kernels::LinearFormat::W4A16, kernels::LinearFormat::Lut}) {
    quant::QuantizeOptions q;
    q.method = method;
    q.w4a16.group_size = 32;
    q.cluster.bits = 3;
    const std::string out = dir / (std::string("q-") + quant::method_name(method));
    quant::quantize_checkpoint(Checkpoint::open(dir / "m"), out, q);
    quant::DecompressOptions d;
    d.dtype = DType::F32;
    quant::decompress_checkpoint(Checkpoint::open(out), out + "-dense", d);
    const Model m = load_model(out);
    size_t packed = 0;
    for (const Linear* l : m.linears()) packed += l->format() == method;
    EXPECT_EQ(packed, 14u) << "every q/k/v/o/gate/up/down layer runs packed; lm_head stays dense";
    const auto got = all_logits(m, ids, 7);
    const auto dense = all_logits(load_model(out + "-dense"), ids, 7);
    EXPECT_GT(relative_error(got, original), 1e-3) << "quantization changes the logits";
    EXPECT_LT(relative_error(got, dense), method == kernels::LinearFormat::LlmInt8 ? 0.05 : 1e-5)
        << quant::method_name(method);
  }
}

TEST(Decoder, RefusesTokensOutsideTheVocabularyAndAFullCache) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  const Model m = load_model(dir / "m");
  RunContext ctx;
  KvCache cache = m.decoder->new_cache(2);
  const std::vector<int32_t> bad = {50};
  EXPECT_THROW(m.decoder->forward(bad, cache, ctx), Error);
  const std::vector<int32_t> three = {1, 2, 3};
  EXPECT_THROW(m.decoder->forward(three, cache, ctx), Error);
}

std::string error_of(const std::string& path) {
  try {
    load_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump();
}

TEST(ModelErrors, UnknownArchitectureListsTheSupportedOnes) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  edit_config(dir / "m", [](nlohmann::json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  const std::string e = error_of(dir / "m");
  EXPECT_NE(e.find("GPT2LMHeadModel"), std::string::npos) << e;
  EXPECT_NE(e.find("LlamaForCausalLM"), std::string::npos) << e;
  EXPECT_NE(e.find("BertModel"), std::string::npos) << e;
}

TEST(ModelErrors, MissingConfigFieldIsNamed) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  edit_config(dir / "m", [](nlohmann::json& j) { j.erase("num_attention_heads"); });
  const std::string e = error_of(dir / "m");
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("num_attention_heads"), std::string::npos) << e;
}

TEST(ModelErrors, TensorOfTheWrongShapeOrMissingIsNamed) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  edit_config(dir / "m", [](nlohmann::json& j) { j["intermediate_size"] = 100; });
  std::string e = error_of(dir / "m");
  EXPECT_NE(e.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[96, 64]"), std::string::npos) << e;
  edit_config(dir / "m", [](nlohmann::json& j) { j["intermediate_size"] = 96; j["num_hidden_layers"] = 3; });
  e = error_of(dir / "m");
  EXPECT_NE(e.find("model.layers.2.input_layernorm.weight is missing"), std::string::npos) << e;
}

TEST(ModelErrors, MissingConfigJsonIsNamed) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", small_model());
  std::filesystem::remove(dir / "m/config.json");
  const std::string e = error_of(dir / "m");
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
}

}  // namespace
}  // namespace modelpress::model

namespace modelpress::model {
namespace {

// Images run together attend only to themselves: a batch gives each image's own states.
TEST(Vit, ABatchEqualsEachImageAlone) {
  TempDir dir;
  modelpress::testing::write_tiny_vit(dir / "vit", /*labels=*/5);
  const Model m = load_model(dir / "vit");
  ASSERT_TRUE(m.vit);
  EXPECT_EQ(m.vit->tokens_per_image(), 5);
  const auto images = synthetic_images(3, 2, 8, 7);
  RunContext ctx;
  const auto together = m.vit->forward({images[0].data(), images[1].data(), images[2].data()}, ctx);
  const int64_t per = 5 * 16;
  for (int i = 0; i < 3; ++i) {
    const auto alone = m.vit->forward({images[static_cast<size_t>(i)].data()}, ctx);
    for (int64_t j = 0; j < per; ++j) ASSERT_NEAR(together[i * per + j], alone[j], 1e-5);
  }
  const auto logits = m.vit->classify(together, 3, ctx);
  EXPECT_EQ(logits.size(), 15u);
  EXPECT_EQ(ctx.first_nonfinite, "");
  EXPECT_EQ(synthetic_images(3, 2, 8, 7), images) << "synthetic images are deterministic";
  EXPECT_NE(synthetic_images(1, 2, 8, 8)[0], images[0]);
}

TEST(Vit, MissingImageSizeIsNamed) {
  TempDir dir;
  modelpress::testing::write_tiny_vit(dir / "vit");
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir / "vit/config.json"));
  j.erase("image_size");
  std::ofstream(dir / "vit/config.json") << j.dump();
  const std::string e = error_of(dir / "vit");
  EXPECT_NE(e.find("image_size"), std::string::npos) << e;
}

}  // namespace
}  // namespace modelpress::model
