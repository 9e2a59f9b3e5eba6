// A mergekit YAML run end to end (merge/batch_merge.h) on tiny LLaMA-shaped checkpoints:
// which tensor of which model each output tensor comes from (slices, renumbering,
// embeddings from the first slice, the rest from the last), gradients over layers, rounding
// once to the output dtype, the files written beside the weights, and the bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "io/checkpoint.h"
#include "io/error.h"
#include "merge/batch_merge.h"
#include "merge/merge_methods.h"
#include "tests/merge/merge_test_util.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::TempDir;
using testing::tensor_f32;

constexpr int kHidden = 6, kInter = 10, kVocab = 11;

std::vector<std::pair<std::string, Shape>> llama_tensors(int layers) {
  std::vector<std::pair<std::string, Shape>> t{{"model.embed_tokens.weight", {kVocab, kHidden}}};
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {kHidden}});
    t.push_back({p + "self_attn.q_proj.weight", {kHidden, kHidden}});
    t.push_back({p + "mlp.up_proj.weight", {kInter, kHidden}});
  }
  t.push_back({"model.norm.weight", {kHidden}});
  t.push_back({"lm_head.weight", {kVocab, kHidden}});
  return t;
}

// Every model: N(0, 1) values of its own per tensor (seeded by model and name).
void write_llama(const std::string& dir, int seed, int layers = 4, DType dtype = DType::F32,
                 const std::string& model_type = "llama") {
  std::vector<std::pair<std::string, Tensor>> t;
  for (const auto& [name, shape] : llama_tensors(layers))
    t.emplace_back(name, testing::f32_tensor(testing::gaussian_values(static_cast<size_t>(shape_numel(shape)),
                                                                      seed * 7919 + std::hash<std::string>{}(name)),
                                             shape, dtype));
  testing::write_checkpoint(dir, t, {{"model_type", model_type}, {"num_hidden_layers", layers}, {"hidden_size", kHidden}});
}

std::string write_yaml(const TempDir& dir, const std::string& text) {
  const std::string path = dir / "merge.yml";
  std::ofstream(path) << text;
  return path;
}

merge::BatchMergeReport run_yaml(const TempDir& dir, const std::string& text, const std::string& out,
                                 uint64_t seed = 0) {
  merge::BatchMergeOptions o;
  o.seed = seed;
  o.version = "test";
  return merge::run_batch_merge(merge::read_merge_config(write_yaml(dir, text)), out, o);
}

TEST(BatchMerge, PassthroughSlicesStackAndRenumberLayers) {
  TempDir dir;
  write_llama(dir / "a", 1);
  write_llama(dir / "b", 2);
  const std::string out = dir / "out";
  const auto r = run_yaml(dir, "merge_method: passthrough\nslices:\n"
                               "  - sources: [{model: " + (dir / "a") + ", layer_range: [0, 3]}]\n"
                               "  - sources: [{model: " + (dir / "b") + ", layer_range: [1, 4]}]\n",
                          out);
  EXPECT_EQ(r.layers, 6);
  const Checkpoint ck = Checkpoint::open(out);
  EXPECT_EQ(ck.tensors().size(), llama_tensors(6).size());
  EXPECT_EQ(ck.config()["num_hidden_layers"], 6);  // slices: the layer count follows the stack
  // Output layers 0-2 are a's 0-2, layers 3-5 are b's 1-3.
  for (int l = 0; l < 6; ++l) {
    const std::string from = l < 3 ? std::string(dir / "a") : std::string(dir / "b");
    const int src = l < 3 ? l : l - 2;
    for (const char* leaf : {"self_attn.q_proj.weight", "mlp.up_proj.weight", "input_layernorm.weight"})
      EXPECT_EQ(tensor_f32(out, "model.layers." + std::to_string(l) + "." + leaf),
                tensor_f32(from, "model.layers." + std::to_string(src) + "." + leaf))
          << l << " " << leaf;
  }
  // Embeddings from the first slice's model, the final norm and head from the last's.
  EXPECT_EQ(tensor_f32(out, "model.embed_tokens.weight"), tensor_f32(dir / "a", "model.embed_tokens.weight"));
  EXPECT_EQ(tensor_f32(out, "model.norm.weight"), tensor_f32(dir / "b", "model.norm.weight"));
  EXPECT_EQ(tensor_f32(out, "lm_head.weight"), tensor_f32(dir / "b", "lm_head.weight"));
  // The YAML it was made from, byte for byte, and a card naming the method.
  EXPECT_EQ(testing::read_file(out + "/mergekit_config.yml"), testing::read_file(dir / "merge.yml"));
  const std::string card = testing::read_file(out + "/README.md");
  EXPECT_NE(card.find("Method: `passthrough`"), std::string::npos) << card;
  EXPECT_NE(card.find("modelpress test"), std::string::npos) << card;
}

TEST(BatchMerge, TiesMatchesTheFormulaTensorByTensor) {
  TempDir dir;
  write_llama(dir / "base", 1);
  write_llama(dir / "a", 2);
  write_llama(dir / "b", 3);
  const std::string out = dir / "out";
  run_yaml(dir, "merge_method: ties\nbase_model: " + (dir / "base") + "\nmodels:\n" +
                    "  - {model: " + (dir / "a") + ", parameters: {weight: 0.6, density: 0.3}}\n" +
                    "  - {model: " + (dir / "b") + ", parameters: {weight: 1.3, density: 0.7}}\n",
           out);
  for (const auto& [name, shape] : llama_tensors(4)) {
    const auto base = tensor_f32(dir / "base", name);
    std::vector<std::vector<float>> d{tensor_f32(dir / "a", name), tensor_f32(dir / "b", name)};
    for (auto& v : d)
      for (size_t i = 0; i < v.size(); ++i) v[i] -= base[i];
    merge::trim_by_magnitude(d[0], 0.3);
    merge::trim_by_magnitude(d[1], 0.7);
    // Sign election and the disjoint weighted mean, written out element by element.
    std::vector<float> want(base.size());
    for (size_t i = 0; i < base.size(); ++i) {
      const double wa = 0.6 * d[0][i], wb = 1.3 * d[1][i];
      const double sign = wa + wb >= 0 ? 1 : -1;
      double sum = 0, div = 0;
      if (wa * sign > 0) sum += wa, div += 0.6;
      if (wb * sign > 0) sum += wb, div += 1.3;
      want[i] = static_cast<float>(base[i] + (div > 0 ? sum / div : 0));
    }
    EXPECT_EQ(tensor_f32(out, name), want) << name;
  }
  EXPECT_EQ(Checkpoint::open(out).config()["num_hidden_layers"], 4);
}

TEST(BatchMerge, SlerpGradientRunsOverTheLayers) {
  TempDir dir;
  write_llama(dir / "a", 1, 3);
  write_llama(dir / "b", 2, 3);
  const std::string out = dir / "out";
  run_yaml(dir, "merge_method: slerp\nbase_model: " + (dir / "a") + "\nslices:\n  - sources:\n" +
                    "      - {model: " + (dir / "a") + ", layer_range: [0, 3]}\n" +
                    "      - {model: " + (dir / "b") + ", layer_range: [0, 3]}\n" +
                    "parameters:\n  t:\n    - filter: self_attn\n      value: [0, 1]\n    - value: 0.5\n",
           out);
  // Three layers: t = 0, 0.5, 1 for self_attn; 0.5 elsewhere; embeddings and the rest at t = 0.
  for (int l = 0; l < 3; ++l) {
    const std::string q = "model.layers." + std::to_string(l) + ".self_attn.q_proj.weight";
    EXPECT_EQ(tensor_f32(out, q), merge::slerp_merge(l / 2.0, tensor_f32(dir / "a", q), tensor_f32(dir / "b", q))) << l;
    const std::string up = "model.layers." + std::to_string(l) + ".mlp.up_proj.weight";
    EXPECT_EQ(tensor_f32(out, up), merge::slerp_merge(0.5, tensor_f32(dir / "a", up), tensor_f32(dir / "b", up))) << l;
  }
  const std::string e = "model.embed_tokens.weight";
  EXPECT_EQ(tensor_f32(out, e), merge::slerp_merge(0.5, tensor_f32(dir / "a", e), tensor_f32(dir / "b", e)));
}

TEST(BatchMerge, Bf16IsRoundedOnceFromTheExactSum) {
  // Task arithmetic of five bf16 models: the double sum rounded once to bf16 is what a
  // correctly rounded merge gives; rounding after every model would be off by an ulp often.
  TempDir dir;
  write_llama(dir / "base", 1, 2, DType::BF16);
  std::string models;
  for (int i = 0; i < 5; ++i) {
    write_llama(dir / ("m" + std::to_string(i)), 10 + i, 2, DType::BF16);
    models += "  - {model: " + (dir / ("m" + std::to_string(i))) + ", parameters: {weight: 0.3}}\n";
  }
  const std::string out = dir / "out";
  run_yaml(dir, "merge_method: task_arithmetic\nbase_model: " + (dir / "base") + "\nmodels:\n" + models, out);
  size_t checked = 0;
  for (const auto& [name, shape] : llama_tensors(2)) {
    const auto base = tensor_f32(dir / "base", name), got = tensor_f32(out, name);
    std::vector<std::vector<float>> m;
    for (int i = 0; i < 5; ++i) m.push_back(tensor_f32(dir / ("m" + std::to_string(i)), name));
    std::vector<float> exact(base.size());
    for (size_t e = 0; e < base.size(); ++e) {
      double s = 0;
      for (const auto& x : m) s += 0.3 * (static_cast<double>(x[e]) - base[e]);
      exact[e] = static_cast<float>(base[e] + s);
    }
    EXPECT_EQ(got, Tensor::from_f32(exact, DType::BF16, shape).to_f32()) << name;
    checked += got.size();
  }
  EXPECT_GT(checked, 300u);
  EXPECT_EQ(Checkpoint::open(out).tensors()[0].dtype, DType::BF16);
}

TEST(BatchMerge, OutDtypeAndDareSeed) {
  TempDir dir;
  write_llama(dir / "base", 1, 2);
  write_llama(dir / "a", 2, 2);
  write_llama(dir / "b", 3, 2);
  const std::string yaml = "merge_method: dare_ties\nbase_model: " + (dir / "base") + "\nout_dtype: bfloat16\nmodels:\n" +
                           "  - {model: " + (dir / "a") + ", parameters: {weight: 1, density: 0.5}}\n" +
                           "  - {model: " + (dir / "b") + ", parameters: {weight: 1, density: 0.5}}\n";
  run_yaml(dir, yaml, dir / "s1", 1);
  run_yaml(dir, yaml, dir / "s1again", 1);
  run_yaml(dir, yaml, dir / "s2", 2);
  const std::string w = "model.layers.1.mlp.up_proj.weight";
  EXPECT_EQ(Checkpoint::open(dir / "s1").find(w)->dtype, DType::BF16);
  EXPECT_EQ(tensor_f32(dir / "s1", w), tensor_f32(dir / "s1again", w));
  EXPECT_NE(tensor_f32(dir / "s1", w), tensor_f32(dir / "s2", w));
}

TEST(BatchMerge, ModelStockAndLinear) {
  TempDir dir;
  write_llama(dir / "base", 1, 2);
  write_llama(dir / "a", 2, 2);
  write_llama(dir / "b", 3, 2);
  write_llama(dir / "c", 4, 2);
  run_yaml(dir, "merge_method: model_stock\nbase_model: " + (dir / "base") + "\nmodels:\n  - model: " + (dir / "a") +
                    "\n  - model: " + (dir / "b") + "\n  - model: " + (dir / "c") + "\n",
           dir / "stock");
  run_yaml(dir, "merge_method: linear\nmodels:\n  - {model: " + (dir / "a") + ", parameters: {weight: 1}}\n  - {model: " +
                    (dir / "b") + ", parameters: {weight: 3}}\n",
           dir / "lin");
  for (const auto& [name, shape] : llama_tensors(2)) {
    const auto a = tensor_f32(dir / "a", name), b = tensor_f32(dir / "b", name);
    EXPECT_EQ(tensor_f32(dir / "stock", name),
              merge::model_stock_merge(tensor_f32(dir / "base", name), {a, b, tensor_f32(dir / "c", name)}, false, 1))
        << name;
    EXPECT_EQ(tensor_f32(dir / "lin", name), merge::linear_merge({a, b}, std::vector<double>{1, 3}, true)) << name;
  }
}

void expect_error(const TempDir& dir, const std::string& yaml, const std::vector<std::string>& parts) {
  const std::string out = dir / "bad-out";
  try {
    run_yaml(dir, yaml, out);
    ADD_FAILURE() << "no error for\n" << yaml;
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
}

TEST(BatchMerge, BadInputsAreOneLineAndLeaveNothing) {
  TempDir dir;
  write_llama(dir / "base", 1, 2);
  write_llama(dir / "a", 2, 2);
  write_llama(dir / "deep", 3, 4);
  write_llama(dir / "mistral", 4, 2, DType::F32, "mistral");
  const std::string b = dir / "base", a = dir / "a";
  expect_error(dir, "merge_method: ties\nbase_model: " + b + "\nmodels:\n  - {model: " + (dir / "nope") +
                        ", parameters: {weight: 1}}\n",
               {"nope"});
  expect_error(dir, "merge_method: passthrough\nslices:\n  - sources: [{model: " + a + ", layer_range: [0, 3]}]\n",
               {"layer_range [0, 3)", "has 2 layers"});
  expect_error(dir, "merge_method: ties\nbase_model: " + b + "\nmodels:\n  - {model: " + (dir / "mistral") +
                        ", parameters: {weight: 1}}\n",
               {"mistral", "llama", "different architectures"});
  expect_error(dir, "merge_method: ties\nbase_model: " + b + "\nmodels:\n  - {model: " + (dir / "deep") +
                        ", parameters: {weight: 1}}\n",
               {"different layer counts"});
  expect_error(dir, "merge_method: ties\nbase_model: " + b + "\nmodels:\n  - {model: " + a + ", parameters: {weight: 1, density: 1.5}}\n",
               {"density 1.5", "(0, 1]"});
  expect_error(dir, "merge_method: ties\nbase_model: " + b + "\nmodels:\n  - {model: " + a + ", parameters: {density: 0.5}}\n",
               {"no 'weight' parameter", a});
  expect_error(dir, "merge_method: task_arithmetic\nmodels:\n  - {model: " + a + ", parameters: {weight: 1}}\n",
               {"needs a base_model"});
  expect_error(dir, "merge_method: slerp\nbase_model: " + b + "\nmodels:\n  - model: " + a + "\nparameters: {t: 1.5}\n",
               {"outside [0, 1]"});
  expect_error(dir, "merge_method: model_stock\nbase_model: " + b + "\nmodels:\n  - model: " + a + "\n",
               {"at least two models"});
}

TEST(BatchMerge, InputsAreNeverModified) {
  TempDir dir;
  write_llama(dir / "base", 1, 2);
  write_llama(dir / "a", 2, 2);
  auto snapshot = [&] {
    std::string all;
    for (const char* m : {"base", "a"})
      for (const auto& e : std::filesystem::directory_iterator(dir / m)) all += testing::read_file(e.path().string());
    return all;
  };
  const std::string before = snapshot();
  run_yaml(dir, "merge_method: ties\nbase_model: " + (dir / "base") + "\nmodels:\n  - {model: " + (dir / "a") +
                    ", parameters: {weight: 1, density: 0.2}}\n",
           dir / "out");
  EXPECT_EQ(snapshot(), before);
}

}  // namespace
}  // namespace modelpress
