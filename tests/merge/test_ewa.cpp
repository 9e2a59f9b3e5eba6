// EWA on tiny MoE checkpoints of every supported layout, written here with odd sizes:
// Mixtral (w1/w2/w3 under block_sparse_moe), Qwen2-MoE with a gated shared expert, DeepSeek
// with an ungated shared expert and a wider dense first layer (zero padding), Switch
// (expert_J.wi/wo), fused 3-D experts; the share-rate step; the errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/checkpoint.h"
#include "io/error.h"
#include "merge/ewa.h"
#include "tests/merge/merge_test_util.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::gaussian_values;
using testing::read_file;
using testing::TempDir;
using testing::tensor_f32;

using Tensors = std::vector<std::pair<std::string, Tensor>>;
constexpr int64_t kHidden = 5, kInter = 7, kExperts = 3;

uint64_t g_seed = 1;
void add(Tensors& t, const std::string& name, Shape shape) {
  t.emplace_back(name, Tensor::from_f32(gaussian_values(static_cast<size_t>(shape_numel(shape)), g_seed++), DType::F32, shape));
}
void add_common(Tensors& t, int layer) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  add(t, p + "self_attn.q_proj.weight", {kHidden, kHidden});
  add(t, p + "input_layernorm.weight", {kHidden});
}
// Per-expert tensors named <prefix>.experts.<e>.<proj>.weight.
void add_experts(Tensors& t, const std::string& prefix, const std::vector<std::pair<std::string, Shape>>& projs,
                 const std::string& expert_prefix = "") {
  for (int e = 0; e < kExperts; ++e)
    for (const auto& [proj, shape] : projs) add(t, prefix + ".experts." + expert_prefix + std::to_string(e) + "." + proj + ".weight", shape);
}
std::vector<float> mean_of(const std::string& dir, const std::vector<std::string>& names) {
  return merge::mean_of(names.size(), [&](size_t i) { return tensor_f32(dir, names[i]); });
}
std::vector<std::string> expert_names(const std::string& prefix, const std::string& proj, const std::string& ep = "") {
  std::vector<std::string> n;
  for (int e = 0; e < kExperts; ++e) n.push_back(prefix + ".experts." + ep + std::to_string(e) + "." + proj + ".weight");
  return n;
}
nlohmann::json config_of(const std::string& dir) { return nlohmann::json::parse(read_file(dir + "/config.json")); }
std::vector<std::string> names_of(const std::string& dir) {
  std::vector<std::string> n;
  const Checkpoint ck = Checkpoint::open(dir);
  for (const auto& t : ck.tensors()) n.push_back(t.name);
  std::sort(n.begin(), n.end());
  return n;
}
merge::EwaReport collapse(const std::string& in, const std::string& out, double share = -1) {
  merge::EwaOptions o;
  o.share_rate = share;
  return merge::ewa_checkpoint(Checkpoint::open(in), out, o);
}

void write_mixtral(const std::string& dir) {
  Tensors t;
  for (int l = 0; l < 2; ++l) {
    add_common(t, l);
    const std::string p = "model.layers." + std::to_string(l) + ".block_sparse_moe";
    add(t, p + ".gate.weight", {kExperts, kHidden});
    add_experts(t, p, {{"w1", {kInter, kHidden}}, {"w2", {kHidden, kInter}}, {"w3", {kInter, kHidden}}});
  }
  testing::write_checkpoint(dir, t,
                            {{"model_type", "mixtral"}, {"architectures", {"MixtralForCausalLM"}}, {"num_local_experts", kExperts},
                             {"num_experts_per_tok", 2}, {"intermediate_size", kInter}, {"hidden_size", kHidden},
                             {"router_aux_loss_coef", 0.02}});
}

TEST(EwaCollapse, MixtralBecomesMistral) {
  TempDir dir;
  write_mixtral(dir / "in");
  const auto r = collapse(dir / "in", dir / "out");
  EXPECT_EQ(r.moe_layers, 2u);
  EXPECT_EQ(r.experts, 3u);
  EXPECT_EQ(r.dropped, 2u);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    const std::string moe = p + ".block_sparse_moe";
    EXPECT_EQ(tensor_f32(dir / "out", p + ".mlp.gate_proj.weight"), mean_of(dir / "in", expert_names(moe, "w1")));
    EXPECT_EQ(tensor_f32(dir / "out", p + ".mlp.up_proj.weight"), mean_of(dir / "in", expert_names(moe, "w3")));
    EXPECT_EQ(tensor_f32(dir / "out", p + ".mlp.down_proj.weight"), mean_of(dir / "in", expert_names(moe, "w2")));
    EXPECT_EQ(tensor_f32(dir / "out", p + ".self_attn.q_proj.weight"), tensor_f32(dir / "in", p + ".self_attn.q_proj.weight"));
  }
  for (const auto& n : names_of(dir / "out")) {
    EXPECT_EQ(n.find("experts"), std::string::npos) << n;
    EXPECT_EQ(n.find("block_sparse_moe"), std::string::npos) << n;
  }
  EXPECT_EQ(names_of(dir / "out").size(), 2u * 5);
  const auto cfg = config_of(dir / "out");
  EXPECT_EQ(cfg["model_type"], "mistral");
  EXPECT_EQ(cfg["architectures"][0], "MistralForCausalLM");
  EXPECT_FALSE(cfg.contains("num_local_experts"));
  EXPECT_FALSE(cfg.contains("router_aux_loss_coef"));
  EXPECT_EQ(cfg["intermediate_size"], kInter);
}

TEST(EwaCollapse, QwenGatedSharedExpertIsWidenedAtHalfGate) {
  TempDir dir;
  Tensors t;
  add_common(t, 0);
  const std::string p = "model.layers.0.mlp";
  add(t, p + ".gate.weight", {kExperts, kHidden});
  add_experts(t, p, {{"gate_proj", {kInter, kHidden}}, {"up_proj", {kInter, kHidden}}, {"down_proj", {kHidden, kInter}}});
  constexpr int64_t kShared = 4;
  add(t, p + ".shared_expert.gate_proj.weight", {kShared, kHidden});
  add(t, p + ".shared_expert.up_proj.weight", {kShared, kHidden});
  add(t, p + ".shared_expert.down_proj.weight", {kHidden, kShared});
  add(t, p + ".shared_expert_gate.weight", {1, kHidden});
  testing::write_checkpoint(dir / "in", t,
                            {{"model_type", "qwen2_moe"}, {"architectures", {"Qwen2MoeForCausalLM"}}, {"num_experts", kExperts},
                             {"moe_intermediate_size", kInter}, {"shared_expert_intermediate_size", kShared},
                             {"intermediate_size", 99}});
  const auto r = collapse(dir / "in", dir / "out");
  EXPECT_EQ(r.intermediate_size, kInter + kShared);
  std::vector<float> gate = mean_of(dir / "in", expert_names(p, "gate_proj"));
  const std::vector<float> sg = tensor_f32(dir / "in", p + ".shared_expert.gate_proj.weight");
  gate.insert(gate.end(), sg.begin(), sg.end());
  EXPECT_EQ(tensor_f32(dir / "out", p + ".gate_proj.weight"), gate);
  const std::vector<float> down = tensor_f32(dir / "out", p + ".down_proj.weight");
  const std::vector<float> md = mean_of(dir / "in", expert_names(p, "down_proj"));
  const std::vector<float> sd = tensor_f32(dir / "in", p + ".shared_expert.down_proj.weight");
  for (int64_t i = 0; i < kHidden; ++i) {
    for (int64_t j = 0; j < kInter; ++j) EXPECT_EQ(down[i * (kInter + kShared) + j], md[i * kInter + j]);
    for (int64_t j = 0; j < kShared; ++j) EXPECT_EQ(down[i * (kInter + kShared) + kInter + j], 0.5f * sd[i * kShared + j]);
  }
  const auto cfg = config_of(dir / "out");
  EXPECT_EQ(cfg["model_type"], "qwen2");
  EXPECT_EQ(cfg["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(cfg["intermediate_size"], kInter + kShared);
  EXPECT_FALSE(cfg.contains("shared_expert_intermediate_size"));
  for (const auto& n : names_of(dir / "out")) EXPECT_EQ(n.find("shared_expert"), std::string::npos) << n;
}

TEST(EwaCollapse, DeepseekPadsToTheWidestDenseLayer) {
  TempDir dir;
  Tensors t;
  constexpr int64_t kDense = 16;
  add_common(t, 0);
  add(t, "model.layers.0.mlp.gate_proj.weight", {kDense, kHidden});
  add(t, "model.layers.0.mlp.up_proj.weight", {kDense, kHidden});
  add(t, "model.layers.0.mlp.down_proj.weight", {kHidden, kDense});
  add_common(t, 1);
  const std::string p = "model.layers.1.mlp";
  add(t, p + ".gate.weight", {kExperts, kHidden});
  add(t, p + ".gate.e_score_correction_bias", {kExperts});
  add_experts(t, p, {{"gate_proj", {kInter, kHidden}}, {"up_proj", {kInter, kHidden}}, {"down_proj", {kHidden, kInter}}});
  add(t, p + ".shared_experts.gate_proj.weight", {kInter, kHidden});
  add(t, p + ".shared_experts.up_proj.weight", {kInter, kHidden});
  add(t, p + ".shared_experts.down_proj.weight", {kHidden, kInter});
  testing::write_checkpoint(dir / "in", t,
                            {{"model_type", "deepseek_v3"}, {"n_routed_experts", kExperts}, {"num_hidden_layers", 2},
                             {"first_k_dense_replace", 1}, {"intermediate_size", kDense}});
  const auto r = collapse(dir / "in", dir / "out");
  EXPECT_EQ(r.intermediate_size, kDense);
  const auto up = tensor_f32(dir / "out", p + ".up_proj.weight");
  ASSERT_EQ(up.size(), static_cast<size_t>(kDense * kHidden));
  std::vector<float> want = mean_of(dir / "in", expert_names(p, "up_proj"));
  const auto su = tensor_f32(dir / "in", p + ".shared_experts.up_proj.weight");
  want.insert(want.end(), su.begin(), su.end());  // ungated: kept exactly
  want.resize(static_cast<size_t>(kDense * kHidden), 0.0f);
  EXPECT_EQ(up, want);
  EXPECT_EQ(tensor_f32(dir / "out", "model.layers.0.mlp.up_proj.weight"), tensor_f32(dir / "in", "model.layers.0.mlp.up_proj.weight"));
  const auto cfg = config_of(dir / "out");
  EXPECT_EQ(cfg["first_k_dense_replace"], 2);
  EXPECT_EQ(cfg["intermediate_size"], kDense);
  EXPECT_EQ(r.dropped, 2u);  // router weight and its correction bias
}

TEST(EwaCollapse, SwitchExpertsBecomeTheDenseMlp) {
  TempDir dir;
  Tensors t;
  const std::string p = "encoder.block.1.layer.1.mlp";
  add(t, "encoder.block.0.layer.1.mlp.wi.weight", {kInter, kHidden});
  add(t, "encoder.block.0.layer.1.mlp.wo.weight", {kHidden, kInter});
  add(t, p + ".router.classifier.weight", {kExperts, kHidden});
  add_experts(t, p, {{"wi", {kInter, kHidden}}, {"wo", {kHidden, kInter}}}, "expert_");
  testing::write_checkpoint(dir / "in", t, {{"model_type", "switch_transformers"}, {"num_experts", kExperts},
                                            {"d_ff", kInter}, {"num_layers", 2}, {"num_decoder_layers", 3},
                                            {"num_sparse_encoder_layers", 1}, {"encoder_sparse_step", 2}});
  collapse(dir / "in", dir / "out");
  EXPECT_EQ(tensor_f32(dir / "out", p + ".wi.weight"), mean_of(dir / "in", expert_names(p, "wi", "expert_")));
  EXPECT_EQ(tensor_f32(dir / "out", p + ".wo.weight"), mean_of(dir / "in", expert_names(p, "wo", "expert_")));
  const auto cfg = config_of(dir / "out");
  // More sparse layers than layers: transformers' sparse step becomes 0, no layer is sparse.
  EXPECT_EQ(cfg["num_sparse_encoder_layers"], 3);
  EXPECT_EQ(cfg["num_sparse_decoder_layers"], 4);
  EXPECT_FALSE(cfg.contains("encoder_sparse_step"));
}

TEST(EwaCollapse, FusedExpertsAreSplitIntoGateAndUp) {
  TempDir dir;
  Tensors t;
  add_common(t, 0);
  const std::string p = "model.layers.0.mlp";
  add(t, p + ".gate.weight", {kExperts, kHidden});
  add(t, p + ".experts.gate_up_proj", {kExperts, 2 * kInter, kHidden});
  add(t, p + ".experts.down_proj", {kExperts, kHidden, kInter});
  testing::write_checkpoint(dir / "in", t, {{"model_type", "qwen3_moe"}, {"num_experts", kExperts}});
  collapse(dir / "in", dir / "out");
  const auto gu = tensor_f32(dir / "in", p + ".experts.gate_up_proj");
  const size_t per = static_cast<size_t>(2 * kInter * kHidden), half = per / 2;
  std::vector<float> gate(half), up(half);
  for (size_t i = 0; i < half; ++i) {
    double g = 0, u = 0;
    for (size_t e = 0; e < kExperts; ++e) g += gu[e * per + i], u += gu[e * per + half + i];
    gate[i] = static_cast<float>(g / kExperts);
    up[i] = static_cast<float>(u / kExperts);
  }
  EXPECT_EQ(tensor_f32(dir / "out", p + ".gate_proj.weight"), gate);
  EXPECT_EQ(tensor_f32(dir / "out", p + ".up_proj.weight"), up);
  EXPECT_EQ(config_of(dir / "out")["model_type"], "qwen3");
}

TEST(EwaShareRate, StepKeepsTheMoeAndTheExpertMean) {
  TempDir dir;
  write_mixtral(dir / "in");
  const double b = 0.3;
  collapse(dir / "in", dir / "shared", b);
  EXPECT_EQ(names_of(dir / "shared"), names_of(dir / "in"));
  EXPECT_EQ(config_of(dir / "shared"), config_of(dir / "in"));
  const std::string p = "model.layers.1.block_sparse_moe";
  const auto names = expert_names(p, "w2");
  const auto mean = mean_of(dir / "in", names);
  for (const auto& n : names) {
    const auto w = tensor_f32(dir / "in", n), got = tensor_f32(dir / "shared", n);
    for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(got[i], (1 - b) * w[i] + b * mean[i], 1e-6);
  }
  // The mean of the experts is invariant: collapsing after the step gives the same FFN.
  EXPECT_LT(testing::max_abs_diff(mean_of(dir / "shared", names), mean), 1e-6);
  EXPECT_EQ(tensor_f32(dir / "shared", p + ".gate.weight"), tensor_f32(dir / "in", p + ".gate.weight"));
  // Each projection's mean is computed once per block (2 layers x 3 projections), although
  // the file interleaves the projections expert by expert: not once per expert tensor.
  EXPECT_EQ(collapse(dir / "in", dir / "again", b).expert_means, 6u);
  // b = 1 makes every expert the mean.
  collapse(dir / "in", dir / "one", 1.0);
  EXPECT_LT(testing::max_abs_diff(tensor_f32(dir / "one", names[0]), mean), 1e-6);
}

void expect_error(const std::function<void()>& f, const std::string& out, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(EwaErrors, NoExpertsListsWhatWasLookedFor) {
  TempDir dir;
  Tensors t;
  add_common(t, 0);
  add(t, "model.layers.0.mlp.up_proj.weight", {kInter, kHidden});
  testing::write_checkpoint(dir / "in", t, {{"model_type", "llama"}});
  expect_error([&] { collapse(dir / "in", dir / "out"); }, dir / "out",
               {"no experts found", "block_sparse_moe.experts.E.w1", "mlp.experts.E.gate_proj", "expert_J.wi",
                "mlp.experts.gate_up_proj"});
}

TEST(EwaErrors, UnknownArchitectureAndMissingExpert) {
  TempDir dir;
  write_mixtral(dir / "in");
  auto cfg = config_of(dir / "in");
  cfg["model_type"] = "mystery_moe";
  testing::write_file(dir / "in/config.json", cfg.dump());
  expect_error([&] { collapse(dir / "in", dir / "out"); }, dir / "out", {"mystery_moe", "--share-rate"});
  collapse(dir / "in", dir / "out", 0.5);  // keeping the MoE needs no architecture
  Tensors t;
  add_common(t, 0);
  add(t, "model.layers.0.mlp.experts.0.up_proj.weight", {kInter, kHidden});
  add(t, "model.layers.0.mlp.experts.2.up_proj.weight", {kInter, kHidden});
  testing::write_checkpoint(dir / "gap", t, {{"model_type", "qwen2_moe"}});
  expect_error([&] { collapse(dir / "gap", dir / "out2"); }, dir / "out2", {"expert 1", "model.layers.0.mlp", "up_proj"});
  // The last expert missing from the first projection in name order (w1), present in w2 and
  // w3, and no expert count in config.json: an error naming it, in both modes, not a merge
  // over two experts of w1 and three of w2 and w3.
  Tensors u;
  add_common(u, 0);
  const std::string p = "model.layers.0.block_sparse_moe";
  for (int e = 0; e < 3; ++e) {
    if (e < 2) add(u, p + ".experts." + std::to_string(e) + ".w1.weight", {kInter, kHidden});
    add(u, p + ".experts." + std::to_string(e) + ".w2.weight", {kHidden, kInter});
    add(u, p + ".experts." + std::to_string(e) + ".w3.weight", {kInter, kHidden});
  }
  testing::write_checkpoint(dir / "short", u, {{"model_type", "mixtral"}});
  expect_error([&] { collapse(dir / "short", dir / "out3"); }, dir / "out3", {"expert 2", p, "w1"});
  expect_error([&] { collapse(dir / "short", dir / "out4", 0.5); }, dir / "out4", {"expert 2", p, "w1"});
}

}  // namespace
}  // namespace modelpress
