// Checkpoint encodings: encode -> write -> Checkpoint::open -> load_packed_layer gives back
// the same PackedLayer, for every format; tensor names, dtypes and shapes are the ones
// bitsandbytes and compressed-tensors load; quantization_config keys; decoder errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/checkpoint.h"
#include "io/error.h"
#include "quant/encodings.h"
#include "quant/packed_layer.h"
#include "quant/rtn.h"
#include "tests/quant/quant_test_util.h"
#include "tests/test_util.h"

namespace modelpress::quant {
namespace {

using kernels::LinearFormat;
using testing::f32_tensor;
using testing::gaussian_values;
using testing::TempDir;

void expect_same_layer(const PackedLayer& a, const PackedLayer& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.k, b.k);
  EXPECT_EQ(a.dense, b.dense);
  EXPECT_EQ(a.q8, b.q8);
  EXPECT_EQ(a.scale8, b.scale8);
  EXPECT_EQ(a.packed4, b.packed4);
  EXPECT_EQ(a.scales4, b.scales4);
  EXPECT_EQ(a.zeros4, b.zeros4);
  EXPECT_EQ(a.group, b.group);
  EXPECT_EQ(a.threshold, b.threshold);
  EXPECT_EQ(a.bias, b.bias);
  if (a.format != LinearFormat::LlmInt8) {
    EXPECT_EQ(a.scale_dtype, b.scale_dtype);
  }
}

// Writes the layer's tensors (and a neighbour that is not a layer) with its config, and
// reads it back.
PackedLayer round_trip(const TempDir& dir, const PackedLayer& layer, const std::string& folder = "ck") {
  std::vector<std::pair<std::string, Tensor>> tensors;
  tensors.emplace_back("model.norm.weight", f32_tensor({1.0f, 2.0f}, {2}));
  for (auto& t : encode_layer(layer)) tensors.push_back(std::move(t));
  nlohmann::json config{{"architectures", {"LlamaForCausalLM"}},
                        {"quantization_config", quantization_config(layer.format, &layer, {"lm_head"})}};
  testing::write_checkpoint(dir / folder, tensors, config);
  const Checkpoint ck = Checkpoint::open(dir / folder);
  EXPECT_EQ(packed_layer_names(ck), std::vector<std::string>{layer.name});
  return load_packed_layer(ck, layer.name);
}

TEST(Encoding, BitsandbytesTensorsAndRoundTrip) {
  TempDir dir;
  const int64_t n = 7, k = 33;
  std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), 21, 0.1f);
  std::fill(w.begin() + k, w.begin() + 2 * k, 0.0f);  // an all-zero row: SCB 0
  const Tensor b = f32_tensor(gaussian_values(n, 22), {n});
  const PackedLayer layer = quantize_llm_int8("model.layers.0.mlp.down_proj", f32_tensor(w, {n, k}, DType::BF16), &b,
                                              {.threshold = 5.0f});
  const auto enc = encode_layer(layer);
  ASSERT_EQ(enc.size(), 4u);
  EXPECT_EQ(enc[0].first, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(enc[0].second.dtype(), DType::I8);
  EXPECT_EQ(enc[0].second.shape(), (Shape{n, k}));
  EXPECT_EQ(enc[1].first, "model.layers.0.mlp.down_proj.SCB");
  EXPECT_EQ(enc[1].second.dtype(), DType::F32);
  EXPECT_EQ(enc[1].second.shape(), (Shape{n}));
  EXPECT_EQ(enc[2].first, "model.layers.0.mlp.down_proj.weight_format");
  EXPECT_EQ(enc[2].second.dtype(), DType::U8);
  EXPECT_EQ(enc[2].second.shape(), (Shape{}));
  EXPECT_EQ(enc[2].second.to_f32(), std::vector<float>{0.0f});
  EXPECT_EQ(enc[3].first, "model.layers.0.mlp.down_proj.bias");
  // SCB is the row absmax (not 127 / absmax).
  const auto scb = enc[1].second.to_f32();
  const auto exact = f32_tensor(w, {n, k}, DType::BF16).to_f32();
  for (int64_t r = 0; r < n; ++r) {
    float absmax = 0;
    for (int64_t c = 0; c < k; ++c) absmax = std::max(absmax, std::abs(exact[r * k + c]));
    EXPECT_EQ(scb[r], absmax) << r;
  }
  EXPECT_EQ(scb[1], 0.0f);
  expect_same_layer(round_trip(dir, layer), layer);
}

TEST(Encoding, ScbReproducesTheScale) {
  // Over many absmax values: SCB / 127 is the layer's scale exactly, and SCB is the absmax
  // itself except where two floats share a quotient.
  int differ = 0;
  for (float a : gaussian_values(20000, 8, 10.0f)) {
    a = std::abs(a) + 1e-3f;
    const float scale = a / 127.0f;
    const float scb = scb_from_scale(scale);
    ASSERT_EQ(scb / 127.0f, scale) << a;
    differ += scb != a;
  }
  EXPECT_LT(differ, 400);
  // For F16 / BF16 weights the absmax has a short mantissa: SCB is always the absmax itself,
  // as bitsandbytes computes it.
  for (float a : gaussian_values(20000, 9, 10.0f)) {
    for (DType dt : {DType::F16, DType::BF16}) {
      const float exact = f32_tensor({std::abs(a) + 1e-3f}, {1}, dt).to_f32()[0];
      ASSERT_EQ(scb_from_scale(exact / 127.0f), exact) << exact;
    }
  }
  EXPECT_EQ(scb_from_scale(0.0f), 0.0f);
}

TEST(Encoding, CompressedTensorsW8A8TensorsAndRoundTrip) {
  TempDir dir;
  const int64_t n = 5, k = 19;
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    const PackedLayer layer =
        quantize_w8a8("model.layers.1.self_attn.k_proj", f32_tensor(gaussian_values(n * k, 4), {n, k}, dt), nullptr);
    const auto enc = encode_layer(layer);
    ASSERT_EQ(enc.size(), 2u);
    EXPECT_EQ(enc[0].first, "model.layers.1.self_attn.k_proj.weight");
    EXPECT_EQ(enc[0].second.dtype(), DType::I8);
    EXPECT_EQ(enc[1].first, "model.layers.1.self_attn.k_proj.weight_scale");
    EXPECT_EQ(enc[1].second.dtype(), dt);  // the weight's dtype, as llm-compressor stores it
    EXPECT_EQ(enc[1].second.shape(), (Shape{n, 1}));
    EXPECT_EQ(enc[1].second.to_f32(), layer.scale8);  // exact: scales are values of dt
    expect_same_layer(round_trip(dir, layer, std::string("ck-") + std::string(dtype_name(dt))), layer);
  }
}

TEST(Encoding, CompressedTensorsW4A16TensorsAndRoundTrip) {
  TempDir dir;
  struct Case {
    int64_t n, k, group;
    bool symmetric;
    DType dt;
  };
  // K = 12 leaves a half-filled last word; N = 9 makes the packed zero points ragged too.
  for (const Case& c : {Case{4, 256, 128, true, DType::BF16}, Case{9, 12, 4, false, DType::F16},
                        Case{3, 64, 64, false, DType::BF16}, Case{2, 16, 8, true, DType::F32}}) {
    SCOPED_TRACE(::testing::Message() << c.n << "x" << c.k << " g" << c.group << " sym " << c.symmetric);
    const Tensor b = f32_tensor(gaussian_values(c.n, 1), {c.n});
    const PackedLayer layer = quantize_w4a16("model.layers.2.mlp.up_proj",
                                             f32_tensor(gaussian_values(c.n * c.k, 5, 0.02f), {c.n, c.k}, c.dt), &b,
                                             {.group_size = c.group, .symmetric = c.symmetric});
    const auto enc = encode_layer(layer);
    ASSERT_EQ(enc.size(), c.symmetric ? 4u : 5u);
    const int64_t groups = c.k / c.group;
    EXPECT_EQ(enc[0].first, "model.layers.2.mlp.up_proj.weight_packed");
    EXPECT_EQ(enc[0].second.dtype(), DType::I32);
    EXPECT_EQ(enc[0].second.shape(), (Shape{c.n, (c.k * 4 + 31) / 32}));
    EXPECT_EQ(enc[1].first, "model.layers.2.mlp.up_proj.weight_scale");
    EXPECT_EQ(enc[1].second.dtype(), c.dt);
    EXPECT_EQ(enc[1].second.shape(), (Shape{c.n, groups}));
    EXPECT_EQ(enc[2].first, "model.layers.2.mlp.up_proj.weight_shape");
    EXPECT_EQ(enc[2].second.dtype(), DType::I64);
    EXPECT_EQ(enc[2].second.to_f32(), (std::vector<float>{static_cast<float>(c.n), static_cast<float>(c.k)}));
    if (!c.symmetric) {
      EXPECT_EQ(enc[3].first, "model.layers.2.mlp.up_proj.weight_zero_point");
      EXPECT_EQ(enc[3].second.dtype(), DType::I32);
      EXPECT_EQ(enc[3].second.shape(), (Shape{(c.n * 4 + 31) / 32, groups}));
    }
    // weight_packed is compressed-tensors' pack_to_int32 of the signed codes.
    std::vector<int8_t> codes(static_cast<size_t>(c.n * c.k));
    const auto d = unpack_nibbles(layer.packed4, c.n, c.k);
    std::vector<int32_t> words(static_cast<size_t>(enc[0].second.numel()));
    std::memcpy(words.data(), enc[0].second.data(), words.size() * 4);
    EXPECT_EQ(words, pack_int32(d, c.n, c.k, 4));
    EXPECT_EQ(layer.weight_bytes(), enc[0].second.nbytes() + enc[1].second.nbytes() + enc[2].second.nbytes() +
                                        (c.symmetric ? 0 : enc[3].second.nbytes()));
    expect_same_layer(round_trip(dir, layer, "ck" + std::to_string(c.k) + std::to_string(c.symmetric)), layer);
  }
}

TEST(Encoding, DenseRoundTripsThroughTheWriter) {
  const PackedLayer d = dense_layer("fc", f32_tensor({1, 2, 3, 4}, {2, 2}), nullptr);
  const auto enc = encode_layer(d);
  ASSERT_EQ(enc.size(), 1u);
  EXPECT_EQ(enc[0].first, "fc.weight");
  EXPECT_EQ(enc[0].second.to_f32(), d.dense);
  EXPECT_TRUE(quantization_config(LinearFormat::DenseF32, &d, {}).is_null());
}

TEST(Encoding, MovingEncodeDoesNotCopy) {
  PackedLayer l = quantize_llm_int8("fc", f32_tensor(gaussian_values(64, 2), {8, 8}), nullptr, {});
  const int8_t* codes = l.q8.data();
  const auto enc = encode_layer(std::move(l));
  EXPECT_EQ(reinterpret_cast<const int8_t*>(enc[0].second.data()), codes);
}

TEST(QuantizationConfig, BitsandbytesKeys) {
  PackedLayer example;
  example.threshold = 4.0f;
  const auto c = quantization_config(LinearFormat::LlmInt8, &example, {"lm_head", "model.layers.0.mlp.down_proj"});
  EXPECT_EQ(c["quant_method"], "bitsandbytes");
  EXPECT_EQ(c["load_in_8bit"], true);
  EXPECT_EQ(c["load_in_4bit"], false);
  EXPECT_EQ(c["llm_int8_threshold"], 4.0);
  EXPECT_EQ(c["llm_int8_has_fp16_weight"], false);
  EXPECT_EQ(c["llm_int8_skip_modules"], (nlohmann::json{"lm_head", "model.layers.0.mlp.down_proj"}));
}

TEST(QuantizationConfig, CompressedTensorsKeys) {
  const PackedLayer w8 = quantize_w8a8("fc", f32_tensor(gaussian_values(16, 2), {2, 8}), nullptr);
  auto c = quantization_config(LinearFormat::W8A8, &w8, {"lm_head"});
  EXPECT_EQ(c["quant_method"], "compressed-tensors");
  EXPECT_EQ(c["format"], "int-quantized");
  EXPECT_EQ(c["quantization_status"], "compressed");
  EXPECT_EQ(c["ignore"], nlohmann::json{"lm_head"});
  EXPECT_TRUE(c.contains("version"));
  const auto& g = c["config_groups"]["group_0"];
  EXPECT_EQ(g["targets"], nlohmann::json{"Linear"});
  EXPECT_EQ(g["weights"]["num_bits"], 8);
  EXPECT_EQ(g["weights"]["type"], "int");
  EXPECT_EQ(g["weights"]["symmetric"], true);
  EXPECT_EQ(g["weights"]["strategy"], "channel");
  EXPECT_TRUE(g["weights"]["group_size"].is_null());
  EXPECT_EQ(g["input_activations"]["strategy"], "token");
  EXPECT_EQ(g["input_activations"]["dynamic"], true);
  EXPECT_EQ(g["input_activations"]["num_bits"], 8);

  const PackedLayer w4 = quantize_w4a16("fc", f32_tensor(gaussian_values(64, 2), {2, 32}), nullptr,
                                        {.group_size = 16, .symmetric = false});
  c = quantization_config(LinearFormat::W4A16, &w4, {});
  EXPECT_EQ(c["format"], "pack-quantized");
  const auto& g4 = c["config_groups"]["group_0"];
  EXPECT_EQ(g4["weights"]["num_bits"], 4);
  EXPECT_EQ(g4["weights"]["strategy"], "group");
  EXPECT_EQ(g4["weights"]["group_size"], 16);
  EXPECT_EQ(g4["weights"]["symmetric"], false);
  EXPECT_TRUE(g4["input_activations"].is_null());
  EXPECT_TRUE(c["ignore"].is_array());
}

TEST(Decoding, ErrorsNameTheProblem) {
  TempDir dir;
  // An int8 weight with an SCB of the wrong length.
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("fc.weight", Tensor::zeros(DType::I8, {4, 3}));
  t.emplace_back("fc.SCB", f32_tensor({1, 1}, {2}));
  testing::write_checkpoint(dir / "a", t);
  const Checkpoint a = Checkpoint::open(dir / "a");
  EXPECT_EQ(packed_layer_names(a), std::vector<std::string>{"fc"});
  try {
    load_packed_layer(a, "fc");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc.SCB"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_packed_layer(a, "nope"), Error);

  // A pack-quantized layer without its config.
  t.clear();
  const PackedLayer w4 = quantize_w4a16("fc", f32_tensor(gaussian_values(32, 2), {2, 16}), nullptr, {.group_size = 8});
  for (auto& e : encode_layer(w4)) t.push_back(std::move(e));
  testing::write_checkpoint(dir / "b", t);
  try {
    load_packed_layer(Checkpoint::open(dir / "b"), "fc");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no quantization_config"), std::string::npos) << e.what();
  }
  // ... and with a config saying 8 bits.
  auto cfg = quantization_config(LinearFormat::W4A16, &w4, {});
  cfg["config_groups"]["group_0"]["weights"]["num_bits"] = 8;
  testing::write_checkpoint(dir / "c", t, {{"quantization_config", cfg}});
  try {
    load_packed_layer(Checkpoint::open(dir / "c"), "fc");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("packed at 8 bits"), std::string::npos) << e.what();
  }
}

TEST(Decoding, ConfigGroupPriorityIsNameThenRegexThenClass) {
  // compressed-tensors gives a layer the scheme of its highest-priority target: its exact
  // name, then a "re:" regex, then the class "Linear". A generic "Linear" group listed first
  // used to win, reading this asymmetric layer as symmetric (zero points silently dropped).
  TempDir dir;
  const PackedLayer asym = quantize_w4a16("model.mlp.down_proj", f32_tensor(gaussian_values(4 * 32, 6), {4, 32}),
                                          nullptr, {.group_size = 8, .symmetric = false});
  std::vector<std::pair<std::string, Tensor>> t;
  for (auto& e : encode_layer(asym)) t.push_back(std::move(e));
  const auto asym_cfg = quantization_config(LinearFormat::W4A16, &asym, {});
  PackedLayer sym_example = asym;
  sym_example.zeros4.clear();
  const auto generic = quantization_config(LinearFormat::W4A16, &sym_example, {})["config_groups"]["group_0"];
  auto specific = asym_cfg["config_groups"]["group_0"];
  for (const char* target : {"re:.*down_proj$", "model.mlp.down_proj"}) {
    SCOPED_TRACE(target);
    auto cfg = asym_cfg;
    specific["targets"] = {target};
    cfg["config_groups"] = {{"group_0", generic}, {"group_1", specific}};
    const std::string folder = std::string("p") + (target[0] == 'r' ? "re" : "name");
    testing::write_checkpoint(dir / folder, t, {{"quantization_config", cfg}});
    expect_same_layer(load_packed_layer(Checkpoint::open(dir / folder), "model.mlp.down_proj"), asym);
  }
  // An exact name beats a regex, whatever the group order.
  auto cfg = asym_cfg;
  auto wrong = generic;
  wrong["targets"] = {"re:.*down_proj$"};
  specific["targets"] = {"model.mlp.down_proj"};
  cfg["config_groups"] = {{"group_0", wrong}, {"group_1", specific}};
  testing::write_checkpoint(dir / "order", t, {{"quantization_config", cfg}});
  expect_same_layer(load_packed_layer(Checkpoint::open(dir / "order"), "model.mlp.down_proj"), asym);
  // A Python-only regex (lookbehind) is an Error naming the target, not a bare regex_error.
  wrong["targets"] = {"re:(?<=mlp\\.)down_proj"};
  cfg["config_groups"] = {{"group_0", wrong}};
  testing::write_checkpoint(dir / "badre", t, {{"quantization_config", cfg}});
  try {
    load_packed_layer(Checkpoint::open(dir / "badre"), "model.mlp.down_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 're:(?<=mlp\\.)down_proj'"), std::string::npos) << e.what();
  }
}

TEST(Decoding, WeightArgumentsMayOmitStrategyOrHoldNulls) {
  // compressed-tensors infers a missing strategy from group_size (> 0: group, -1: channel,
  // none: tensor). Reading config["strategy"] of a const json without the key was undefined
  // behaviour; a layer written with it left out must load as the group layer it is.
  TempDir dir;
  const PackedLayer w4 = quantize_w4a16("fc", f32_tensor(gaussian_values(4 * 32, 3), {4, 32}), nullptr,
                                        {.group_size = 8, .symmetric = false});
  std::vector<std::pair<std::string, Tensor>> t;
  for (auto& e : encode_layer(w4)) t.push_back(std::move(e));
  auto cfg = quantization_config(LinearFormat::W4A16, &w4, {});
  cfg["config_groups"]["group_0"]["weights"].erase("strategy");
  cfg["config_groups"]["group_0"]["weights"]["observer"] = nullptr;
  testing::write_checkpoint(dir / "a", t, {{"quantization_config", cfg}});
  expect_same_layer(load_packed_layer(Checkpoint::open(dir / "a"), "fc"), w4);

  // A field of the wrong type is an Error naming the layer and the field, not a bare
  // json exception.
  cfg["config_groups"]["group_0"]["weights"]["num_bits"] = "four";
  testing::write_checkpoint(dir / "b", t, {{"quantization_config", cfg}});
  try {
    load_packed_layer(Checkpoint::open(dir / "b"), "fc");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc: weights.num_bits is \"four\""), std::string::npos) << e.what();
  }
  // A null group_size with strategy group is an Error too (group size 0), not a type_error.
  cfg["config_groups"]["group_0"]["weights"]["num_bits"] = 4;
  cfg["config_groups"]["group_0"]["weights"]["strategy"] = "group";
  cfg["config_groups"]["group_0"]["weights"]["group_size"] = nullptr;
  testing::write_checkpoint(dir / "c", t, {{"quantization_config", cfg}});
  try {
    load_packed_layer(Checkpoint::open(dir / "c"), "fc");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("group size 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace modelpress::quant
