// `modelpress cluster`'s tuning options (--skip --json --seed --init --iters --epsilon --tau),
// each checked by its effect on what the command writes: which layers stay dense, the report's
// fields against the files, and the tables against each other and against the squared error
// they leave (k-means++ never beats the exact 1-D optimum; Lloyd rounds never raise it).
// Tables are written in f32 so that a difference between two runs is not rounded away.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/tensor_category.h"
#include "quant/packed_layer.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress::quant {
namespace {

using testing::CommandResult;

class ClusterOptionsCli : public ::testing::Test {
 protected:
  void SetUp() override { testing::write_tiny_checkpoint(model_); }

  // `cluster MODEL -o DIR/out --bits 3 --lut-dtype f32 ARGS`; its stdout.
  std::string cluster(const std::string& out, const std::string& args) {
    const CommandResult r =
        testing::run(dir_, "cluster '" + model_ + "' -o '" + (dir_ / out) + "' --bits 3 --lut-dtype f32 " + args);
    EXPECT_EQ(r.status, 0) << args << ": " << r.err;
    return r.out;
  }
  // Every palettized layer's table (one per tensor here), by module name.
  std::map<std::string, std::vector<float>> tables(const std::string& out) const {
    const Checkpoint ck = Checkpoint::open(dir_ / out);
    std::map<std::string, std::vector<float>> t;
    for (const auto& name : packed_layer_names(ck)) t[name] = load_packed_layer(ck, name).lut;
    return t;
  }
  // sum (w - dequantized w)^2 over each palettized layer's weights.
  std::map<std::string, double> squared_error(const std::string& out) const {
    const Checkpoint in = Checkpoint::open(model_), ck = Checkpoint::open(dir_ / out);
    std::map<std::string, double> e;
    for (const auto& name : packed_layer_names(ck)) {
      const std::vector<float> w = in.read(*in.find(name + ".weight")).to_f32();
      const std::vector<float> d = dequantize_layer(load_packed_layer(ck, name));
      double s = 0;
      for (size_t i = 0; i < w.size(); ++i) s += (static_cast<double>(w[i]) - d[i]) * (static_cast<double>(w[i]) - d[i]);
      e[name] = s;
    }
    return e;
  }
  bool same_weights(const std::string& a, const std::string& b) const {
    return testing::safetensors_data(dir_ / (a + "/model.safetensors")) ==
           testing::safetensors_data(dir_ / (b + "/model.safetensors"));
  }
  // Layers whose tables differ by more than 1e-4 of the table's span (not float noise).
  int differing_tables(const std::string& a, const std::string& b) const {
    const auto ta = tables(a), tb = tables(b);
    int n = 0;
    for (const auto& [name, t] : ta) {
      const std::vector<float>& u = tb.at(name);
      const double span = t.back() - t.front();
      double d = 0;
      for (size_t i = 0; i < t.size(); ++i) d = std::max(d, std::abs(static_cast<double>(t[i]) - u[i]));
      n += d > 1e-4 * span;
    }
    return n;
  }

  testing::TempDir dir_;
  std::string model_ = dir_ / "m";
};

TEST_F(ClusterOptionsCli, SkipKeepsTheMatchedLayersDense) {
  const auto j = nlohmann::json::parse(cluster("s", "--skip 'mlp\\.(gate|up)_proj' --skip v_proj --json"));
  const Checkpoint in = Checkpoint::open(model_), out = Checkpoint::open(dir_ / "s");
  const std::string p = "model.layers.0.";
  const std::vector<std::string> packed = packed_layer_names(out);
  EXPECT_EQ(std::set<std::string>(packed.begin(), packed.end()),
            (std::set<std::string>{p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.o_proj",
                                   p + "mlp.down_proj"}));
  // The skipped layers are the input's weights, byte for byte, with no table beside them.
  const std::map<std::string, std::string> skipped{{p + "self_attn.v_proj", "--skip v_proj"},
                                                   {p + "mlp.gate_proj", "--skip mlp\\.(gate|up)_proj"},
                                                   {p + "mlp.up_proj", "--skip mlp\\.(gate|up)_proj"},
                                                   {"lm_head", "lm_head"}};
  for (const auto& [name, reason] : skipped) {
    const CheckpointTensor* a = in.find(name + ".weight");
    const CheckpointTensor* b = out.find(name + ".weight");
    ASSERT_NE(b, nullptr) << name;
    EXPECT_EQ(b->dtype, a->dtype) << name;
    EXPECT_EQ(b->shape, a->shape) << name;
    EXPECT_EQ(out.read(*b).to_f32(), in.read(*a).to_f32()) << name;
    EXPECT_EQ(out.find(name + ".weight_lut"), nullptr) << name;
  }
  // The report and the config name them, with the rule that kept each.
  std::map<std::string, std::string> reported;
  for (const auto& l : j["layers"])
    if (l["format"] == "skipped") reported[l["name"].get<std::string>()] = l["reason"].get<std::string>();
  EXPECT_EQ(reported, skipped);
  EXPECT_EQ(j["totals"]["quantized"], 4);
  EXPECT_EQ(j["totals"]["skipped"], 4);
  const auto ignore = out.config()["quantization_config"]["ignore"].get<std::vector<std::string>>();
  EXPECT_EQ(std::set<std::string>(ignore.begin(), ignore.end()),
            (std::set<std::string>{p + "self_attn.v_proj", p + "mlp.gate_proj", p + "mlp.up_proj", "lm_head"}));
}

TEST_F(ClusterOptionsCli, JsonIsTheReportOfWhatWasWritten) {
  const std::string stdout_text = cluster("j", "--json");
  EXPECT_EQ(stdout_text.find("clustered"), std::string::npos) << "summary line printed with --json";
  const auto j = nlohmann::json::parse(stdout_text);
  const Checkpoint in = Checkpoint::open(model_), out = Checkpoint::open(dir_ / "j");
  EXPECT_EQ(j["method"], "cluster");
  // Every linear weight of the input, in file order, each against the tensors written for it.
  std::vector<const CheckpointTensor*> linear;
  for (const auto& t : in.tensors())
    if (is_linear(t.category) && t.shape.size() == 2) linear.push_back(&t);
  ASSERT_EQ(j["layers"].size(), linear.size());
  uint64_t linear_before = 0, linear_after = 0;
  for (size_t i = 0; i < linear.size(); ++i) {
    const auto& l = j["layers"][i];
    const CheckpointTensor& t = *linear[i];
    const std::string name = t.name.substr(0, t.name.size() - 7);
    EXPECT_EQ(l["name"], name);
    EXPECT_EQ(l["shape"].get<Shape>(), t.shape) << name;
    EXPECT_EQ(l["dtype"], std::string(dtype_name(t.dtype))) << name;
    EXPECT_EQ(l["bytes_before"], t.nbytes) << name;
    uint64_t written = 0;
    for (const auto& o : out.tensors())
      if (o.name.starts_with(name + ".weight")) written += o.nbytes;
    EXPECT_EQ(l["bytes_after"], written) << name;
    EXPECT_DOUBLE_EQ(l["bits_per_weight"].get<double>(), 8.0 * static_cast<double>(written) / shape_numel(t.shape)) << name;
    if (name == "lm_head") {
      EXPECT_EQ(l["format"], "skipped");
      EXPECT_EQ(l["reason"], "lm_head");
    } else {
      EXPECT_EQ(l["format"], "cluster") << name;
      EXPECT_FALSE(l.contains("reason")) << name;
      linear_before += t.nbytes;
      linear_after += written;
    }
  }
  uint64_t before = 0, after = 0;
  for (const auto& t : in.tensors()) before += t.nbytes;
  for (const auto& t : out.tensors()) after += t.nbytes;
  const auto& totals = j["totals"];
  EXPECT_EQ(totals["tensors_in"], in.tensors().size());
  EXPECT_EQ(totals["tensors_out"], out.tensors().size());
  EXPECT_EQ(totals["quantized"], 7);
  EXPECT_EQ(totals["skipped"], 1);
  EXPECT_EQ(totals["bytes_before"], before);
  EXPECT_EQ(totals["bytes_after"], after);
  EXPECT_EQ(totals["linear_bytes_before"], linear_before);
  EXPECT_EQ(totals["linear_bytes_after"], linear_after);
  EXPECT_EQ(j["quantization_config"], out.config()["quantization_config"]);
  EXPECT_EQ(j["quantization_config"]["lut_dtype"], "F32");
}

TEST_F(ClusterOptionsCli, SeedDrawsTheKmeansPlusPlusStartOnly) {
  cluster("a", "--init kmeans++ --seed 1");
  cluster("b", "--init kmeans++ --seed 1");
  cluster("c", "--init kmeans++ --seed 2");
  EXPECT_TRUE(same_weights("a", "b"));
  EXPECT_GE(differing_tables("a", "c"), 4);
  // The exact 1-D start draws nothing: the seed changes nothing.
  cluster("d", "--init opt1d --seed 1");
  cluster("e", "--init opt1d --seed 2");
  EXPECT_TRUE(same_weights("d", "e"));
}

TEST_F(ClusterOptionsCli, InitChoosesTheStartingTables) {
  // auto is the exact 1-D optimum at every table size (quant/edkm.h).
  cluster("auto", "");
  cluster("opt1d", "--init opt1d");
  EXPECT_TRUE(same_weights("auto", "opt1d"));
  // Under Lloyd, the optimum is a fixed point and k-means++ a local optimum at best: the
  // optimal start never leaves more squared error, and on some layer clearly less.
  cluster("ko", "--algorithm kmeans --init opt1d");
  cluster("kp", "--algorithm kmeans --init kmeans++");
  const auto optimal = squared_error("ko"), sampled = squared_error("kp");
  ASSERT_EQ(optimal.size(), 7u);
  int better = 0;
  for (const auto& [name, e] : optimal) {
    EXPECT_LE(e, sampled.at(name) * (1 + 1e-6)) << name;
    better += e < 0.99 * sampled.at(name);
  }
  EXPECT_GE(better, 3);
  // Both are valid tables: 2^3 finite entries, ascending, inside the layer's weight range.
  const Checkpoint in = Checkpoint::open(model_);
  for (const std::string out : {"ko", "kp"})
    for (const auto& [name, t] : tables(out)) {
      const std::vector<float> w = in.read(*in.find(name + ".weight")).to_f32();
      const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
      ASSERT_EQ(t.size(), 8u) << out << " " << name;
      EXPECT_TRUE(std::is_sorted(t.begin(), t.end())) << out << " " << name;
      for (float c : t) {
        EXPECT_TRUE(std::isfinite(c)) << out << " " << name;
        EXPECT_GE(c, *lo) << out << " " << name;
        EXPECT_LE(c, *hi) << out << " " << name;
      }
    }
}

TEST_F(ClusterOptionsCli, ItersBoundsTheRounds) {
  // k-means (30 rounds unless --iters is given) from a k-means++ start: Lloyd rounds never
  // raise the squared error, and one round leaves it clearly higher than a hundred.
  cluster("k1", "--algorithm kmeans --init kmeans++ --iters 1");
  cluster("k100", "--algorithm kmeans --init kmeans++ --iters 100");
  const auto one = squared_error("k1"), many = squared_error("k100");
  int lower = 0;
  for (const auto& [name, e] : many) {
    EXPECT_LE(e, one.at(name) * (1 + 1e-6)) << name;
    lower += e < 0.97 * one.at(name);
  }
  EXPECT_GE(lower, 4);
  // DKM at a temperature where every round moves the centroids (--epsilon 0: no early stop):
  // 1, 2 and 20 rounds give three different tables for every layer.
  cluster("d1", "--tau 0.2 --epsilon 0 --iters 1");
  cluster("d2", "--tau 0.2 --epsilon 0 --iters 2");
  cluster("d20", "--tau 0.2 --epsilon 0 --iters 20");
  EXPECT_EQ(differing_tables("d1", "d2"), 7);
  EXPECT_EQ(differing_tables("d2", "d20"), 7);
}

TEST_F(ClusterOptionsCli, EpsilonStopsTheRoundsEarly) {
  // An epsilon no move can exceed stops after the first round, in DKM and in k-means alike;
  // epsilon 0 runs every round allowed.
  cluster("d1", "--tau 0.2 --iters 1");
  cluster("dbig", "--tau 0.2 --iters 20 --epsilon 1e9");
  cluster("d0", "--tau 0.2 --iters 20 --epsilon 0");
  EXPECT_TRUE(same_weights("d1", "dbig"));
  EXPECT_EQ(differing_tables("d1", "d0"), 7);
  cluster("k1", "--algorithm kmeans --init kmeans++ --iters 1");
  cluster("kbig", "--algorithm kmeans --init kmeans++ --iters 100 --epsilon 1e9");
  cluster("k0", "--algorithm kmeans --init kmeans++ --iters 100 --epsilon 0");
  EXPECT_TRUE(same_weights("k1", "kbig"));
  EXPECT_GE(differing_tables("k1", "k0"), 4);
}

TEST_F(ClusterOptionsCli, TauSetsTheTemperature) {
  // Near zero, DKM's soft assignments are hard ones: from the exact 1-D optimum (a Lloyd
  // fixed point) the tables stay k-means' own.
  cluster("kmeans", "--algorithm kmeans");
  cluster("cold", "--tau 1e-6");
  EXPECT_EQ(differing_tables("kmeans", "cold"), 0);
  // Warmer, every value pulls on every centroid: tables drawn off the optimum, more error.
  cluster("warm", "--tau 0.2");
  EXPECT_EQ(differing_tables("kmeans", "warm"), 7);
  const auto cold = squared_error("cold"), warm = squared_error("warm");
  for (const auto& [name, e] : cold) EXPECT_GT(warm.at(name), 1.1 * e) << name;
  // Far too hot, the centroids merge: the report says so for each layer, naming the --tau
  // given, and the k-means-refined optimum is written instead.
  const auto j = nlohmann::json::parse(cluster("hot", "--tau 1000 --json"));
  for (const auto& l : j["layers"]) {
    if (l["format"] == "skipped") continue;
    ASSERT_TRUE(l.contains("note")) << l.dump();
    EXPECT_NE(l["note"].get<std::string>().find("(--tau 1000.000000 is too high"), std::string::npos) << l["note"];
  }
  EXPECT_EQ(differing_tables("kmeans", "hot"), 0);
}

}  // namespace
}  // namespace modelpress::quant
