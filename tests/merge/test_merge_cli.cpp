// `modelpress merge ...` as a user meets it: help, the summaries, --json, usage errors (exit
// 2), input errors (one line naming the file and tensor, exit 1, no output left behind), and
// the options --scale, --weight, --density and --shuffle/--seed checked by what they do to the
// weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "io/synthetic_checkpoint.h"
#include "merge/merge_state.h"
#include "tests/cli_runner.h"
#include "tests/merge/merge_test_util.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::CommandResult;
using testing::lines;
using testing::run;
using testing::TempDir;

void synth(const std::string& path, uint64_t seed, int intermediate = 48) {
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 24;
  o.intermediate = intermediate;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = 40;
  o.seed = seed;
  o.dtype = DType::F32;
  write_synthetic_checkpoint(path, o);
}

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(MergeCli, HelpListsTheMethods) {
  TempDir dir;
  CommandResult r = run(dir, "merge --help");
  EXPECT_EQ(r.status, 0);
  for (const char* m : {"--config", "ewa", "opcm", "average", "task-arithmetic", "continual-ties", "ties"}) EXPECT_NE(r.out.find(m), std::string::npos) << m;
  r = run(dir, "merge opcm --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--alpha"), std::string::npos);
  EXPECT_NE(r.out.find("--state"), std::string::npos);
}

TEST(MergeCli, OpcmThenContinueAndJson) {
  TempDir dir;
  synth(dir / "base", 1);
  synth(dir / "a", 2);
  synth(dir / "b", 3);
  CommandResult r = run(dir, "merge opcm --base " + q(dir / "base") + " --add " + q(dir / "a") + " " + q(dir / "b") + " -o " + q(dir / "m"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("merged 2 model(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lambda"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;  // no progress line when stderr is not a terminal
  // "a" is already in the state: refused (one line naming it, nothing written) unless --allow-repeat.
  r = run(dir, "merge opcm --base " + q(dir / "base") + " --add " + q(dir / "a") + " --state " + q(dir / "m") + " -o " + q(dir / "m2"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("is already in the merge"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "m2"));
  r = run(dir, "merge opcm --json --allow-repeat --base " + q(dir / "base") + " --add " + q(dir / "a") + " --state " +
                   q(dir / "m") + " -o " + q(dir / "m2"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["models_total"], 3);
  EXPECT_EQ(j["state"]["models"].size(), 3u);
  EXPECT_GT(j["lambda"].get<double>(), 1.0);
  EXPECT_TRUE(std::filesystem::exists(dir / "m2/modelpress_merge_state.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "m2/config.json"));
}

TEST(MergeCli, UsageErrorsExitTwo) {
  TempDir dir;
  for (const std::string args : {"merge", "merge opcm -o x", "merge opcm --base b --add a -o x --alpha 1.5",
                                 "merge ties --base b --add a -o x --density 1.5",
                                 "merge ties --base b --add a -o x --density 0",
                                 "merge continual-ties --base b --add a -o x --density 20",
                                 "merge task-arithmetic --base b --add a -o x --scale nan",
                                 "merge task-arithmetic --base b --add a -o x --scale inf",
                                 "merge task-arithmetic --base b --add a c -o x --weight 1",
                                 "merge task-arithmetic --base b --add a -o x --weight 1 --scale 2",
                                 "merge average --add a c -o x --weight 1 nan",
                                 "merge ties --base b --add a -o x --weight nan",
                                 "merge --config c.yml", "merge --config c.yml -o x opcm --base b --add a",
                                 "merge ewa in -o x --share-rate 2", "merge frobnicate"}) {
    const CommandResult r = run(dir, args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
  }
}

TEST(MergeCli, InputErrorsAreOneLineAndLeaveNothing) {
  TempDir dir;
  synth(dir / "base", 1);
  synth(dir / "wide", 2, 64);  // a different intermediate size: shapes differ
  CommandResult r = run(dir, "merge task-arithmetic --base " + q(dir / "base") + " --add " + q(dir / "wide") + " -o " + q(dir / "out"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("model.layers.0.mlp"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[64, 24]"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  r = run(dir, "merge ewa " + q(dir / "base") + " -o " + q(dir / "out"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no experts found"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
}

// Small f32 models with tensors of several sizes: the base N(0, 1), a task model the base plus
// 0.1 N(0, 1) of its own (all magnitudes distinct, so top-k has no ties); model -1 is the base.
const std::vector<std::pair<std::string, Shape>> kSmall{{"model.embed_tokens.weight", {20, 8}},
                                                        {"model.layers.0.mlp.up_proj.weight", {12, 8}},
                                                        {"model.layers.0.mlp.down_proj.weight", {8, 12}},
                                                        {"model.norm.weight", {8}}};

void write_small(const std::string& dir, int model) {
  std::vector<std::pair<std::string, Tensor>> t;
  for (const auto& [name, shape] : kSmall) {
    const size_t n = static_cast<size_t>(shape_numel(shape));
    std::vector<float> v = testing::gaussian_values(n, std::hash<std::string>{}(name));
    if (model >= 0) {
      const std::vector<float> own = testing::gaussian_values(n, 1000 * (model + 1) + std::hash<std::string>{}(name));
      for (size_t i = 0; i < n; ++i) v[i] += 0.1f * own[i];
    }
    t.emplace_back(name, testing::f32_tensor(v, shape));
  }
  testing::write_checkpoint(dir, t, nlohmann::json{{"model_type", "llama"}});
}

nlohmann::json state_file(const std::string& dir) {
  return nlohmann::json::parse(testing::read_file(dir + "/" + merge::kStateFile));
}

TEST(MergeCli, TaskArithmeticScaleMultipliesTheSumOfTaskVectors) {
  TempDir dir;
  write_small(dir / "base", -1);
  write_small(dir / "a", 0);
  write_small(dir / "b", 1);
  // 0.7 and a negation (a legitimate scale, not "not given"): base + s (tau_a + tau_b).
  for (const double s : {0.7, -0.5}) {
    const std::string out = dir / ("out" + std::to_string(s));
    const CommandResult r = run(dir, "merge task-arithmetic --base " + q(dir / "base") + " --add " + q(dir / "a") + " " +
                                         q(dir / "b") + " --scale " + std::to_string(s) + " -o " + q(out));
    ASSERT_EQ(r.status, 0) << r.err;
    for (const auto& [name, shape] : kSmall) {
      const auto base = testing::tensor_f32(dir / "base", name), a = testing::tensor_f32(dir / "a", name),
                 b = testing::tensor_f32(dir / "b", name);
      std::vector<float> want(base.size());
      for (size_t i = 0; i < base.size(); ++i)
        want[i] = static_cast<float>(base[i] + s * ((double(a[i]) - base[i]) + (double(b[i]) - base[i])));
      EXPECT_LT(testing::max_abs_diff(testing::tensor_f32(out, name), want), 1e-5) << s << " " << name;
    }
    EXPECT_EQ(state_file(out)["weights"], nlohmann::json::array({s, s}));
  }
}

TEST(MergeCli, ContinualTiesDensityKeepsThatShareOfEachTaskVector) {
  // Continual TIES adds the first task vector untrimmed (fusion_bench), so the first model
  // here is the base itself: the merged task vector is then s * trim(tau_b) alone, and its
  // nonzero entries are exactly the ones --density kept: floor(d k / 100) + 1 of each
  // tensor's d (merge/ties.h: the threshold entry survives), the largest |tau_b|.
  TempDir dir;
  write_small(dir / "base", -1);
  write_small(dir / "same", -1);
  write_small(dir / "b", 0);
  for (const int k : {25, 50, 100}) {
    const std::string out = dir / ("top" + std::to_string(k));
    const CommandResult r = run(dir, "merge continual-ties --base " + q(dir / "base") + " --add " + q(dir / "same") + " " +
                                         q(dir / "b") + " --density " + std::to_string(k / 100.0) + " --scale 2 -o " + q(out));
    ASSERT_EQ(r.status, 0) << r.err;
    for (const auto& [name, shape] : kSmall) {
      const auto base = testing::tensor_f32(dir / "base", name), b = testing::tensor_f32(dir / "b", name),
                 merged = testing::tensor_f32(out, name);
      const size_t d = base.size();
      size_t kept = 0;
      float smallest_kept = INFINITY, largest_dropped = 0;
      for (size_t i = 0; i < d; ++i) {
        const float tau = b[i] - base[i];
        if (merged[i] != base[i]) {
          ++kept;
          smallest_kept = std::min(smallest_kept, std::abs(tau));
          EXPECT_NEAR(merged[i] - base[i], 2 * tau, 1e-5) << name << "[" << i << "]";
        } else {
          largest_dropped = std::max(largest_dropped, std::abs(tau));
        }
      }
      EXPECT_EQ(kept, std::min(d, static_cast<size_t>(std::floor(d * (k / 100.0))) + 1)) << k << "% of " << name;
      EXPECT_GT(smallest_kept, largest_dropped) << k << "% of " << name;
    }
    EXPECT_DOUBLE_EQ(state_file(out)["density"].get<double>(), k / 100.0);
  }
}

TEST(MergeCli, ShuffleMergesInAnOrderDrawnFromTheSeed) {
  // Continual TIES depends on the order models arrive in, so the order can be seen in the weights.
  TempDir dir;
  write_small(dir / "base", -1);
  const std::vector<std::string> given{dir / "a", dir / "b", dir / "c"};
  for (int i = 0; i < 3; ++i) write_small(given[static_cast<size_t>(i)], i);
  const std::string add = " --add " + q(given[0]) + " " + q(given[1]) + " " + q(given[2]);
  auto merge_ties = [&](const std::string& out, const std::string& args) {
    const CommandResult r = run(dir, "merge continual-ties --json --base " + q(dir / "base") + args + " -o " + q(dir / out));
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out)["added"].get<std::vector<std::string>>();
  };
  auto weights = [&](const std::string& out) { return testing::safetensors_data(dir / (out + "/model.safetensors")); };

  std::set<std::vector<std::string>> orders;
  std::string moved_out, moved_seed;  // a shuffled merge whose order is not the given one
  std::vector<std::string> moved;
  for (int seed = 0; seed < 4; ++seed) {
    const std::string seed_text = std::to_string(seed), out = std::string("s").append(seed_text);
    const auto order = merge_ties(out, add + " --shuffle --seed " + seed_text);
    EXPECT_TRUE(std::is_permutation(order.begin(), order.end(), given.begin(), given.end()));
    EXPECT_EQ(state_file(dir / out)["models"].get<std::vector<std::string>>(), order);
    orders.insert(order);
    if (order != given && moved.empty()) moved = order, moved_out = out, moved_seed = seed_text;
  }
  EXPECT_GE(orders.size(), 2u);
  ASSERT_FALSE(moved.empty());
  // The same seed, the same order and the same bytes.
  EXPECT_EQ(merge_ties("again", add + " --shuffle --seed " + moved_seed), moved);
  EXPECT_TRUE(weights("again") == weights(moved_out));
  // The shuffled merge is the plain merge of the models in the drawn order (the merge itself
  // is reordered, not only the report), which differs from the merge in the given order.
  merge_ties("by-hand", " --add " + q(moved[0]) + " " + q(moved[1]) + " " + q(moved[2]));
  EXPECT_TRUE(weights("by-hand") == weights(moved_out));
  EXPECT_EQ(merge_ties("plain", add), given);
  EXPECT_FALSE(weights("plain") == weights(moved_out));
  // Without --shuffle a seed changes nothing.
  EXPECT_EQ(merge_ties("seed-only", add + " --seed " + moved_seed), given);
  EXPECT_TRUE(weights("seed-only") == weights("plain"));
}

TEST(MergeCli, PerModelWeightsAndTheirState) {
  TempDir dir;
  write_small(dir / "base", -1);
  write_small(dir / "a", 0);
  write_small(dir / "b", 1);
  write_small(dir / "c", 2);
  // task-arithmetic: base + 0.7 tau_a - 0.2 tau_b, then continued with c at --scale 0.4.
  CommandResult r = run(dir, "merge task-arithmetic --base " + q(dir / "base") + " --add " + q(dir / "a") + " " +
                                 q(dir / "b") + " --weight 0.7 -0.2 -o " + q(dir / "ab"));
  ASSERT_EQ(r.status, 0) << r.err;
  r = run(dir, "merge task-arithmetic --base " + q(dir / "base") + " --add " + q(dir / "c") + " --scale 0.4 --state " +
                   q(dir / "ab") + " -o " + q(dir / "abc"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(state_file(dir / "abc")["weights"], nlohmann::json::array({0.7, -0.2, 0.4}));
  EXPECT_EQ(state_file(dir / "abc")["model_fingerprints"].size(), 3u);
  for (const auto& [name, shape] : kSmall) {
    const auto base = testing::tensor_f32(dir / "base", name), a = testing::tensor_f32(dir / "a", name),
               b = testing::tensor_f32(dir / "b", name), c = testing::tensor_f32(dir / "c", name);
    std::vector<float> want(base.size());
    for (size_t i = 0; i < base.size(); ++i)
      want[i] = static_cast<float>(base[i] + 0.7 * (double(a[i]) - base[i]) - 0.2 * (double(b[i]) - base[i]) +
                                   0.4 * (double(c[i]) - base[i]));
    EXPECT_LT(testing::max_abs_diff(testing::tensor_f32(dir / "abc", name), want), 1e-6) << name;
  }
  // average without --base, weighted: (a + 3 b) / 4; continued with c (weight 4): (a + 3 b + 4 c) / 8.
  r = run(dir, "merge average --add " + q(dir / "a") + " " + q(dir / "b") + " --weight 1 3 -o " + q(dir / "avg"));
  ASSERT_EQ(r.status, 0) << r.err;
  r = run(dir, "merge average --add " + q(dir / "c") + " --weight 4 --state " + q(dir / "avg") + " -o " + q(dir / "avg3"));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& [name, shape] : kSmall) {
    const auto a = testing::tensor_f32(dir / "a", name), b = testing::tensor_f32(dir / "b", name),
               c = testing::tensor_f32(dir / "c", name);
    std::vector<float> two(a.size()), three(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      two[i] = static_cast<float>((double(a[i]) + 3.0 * b[i]) / 4);
      three[i] = static_cast<float>((double(a[i]) + 3.0 * b[i] + 4.0 * c[i]) / 8);
    }
    EXPECT_LT(testing::max_abs_diff(testing::tensor_f32(dir / "avg", name), two), 1e-6) << name;
    EXPECT_LT(testing::max_abs_diff(testing::tensor_f32(dir / "avg3", name), three), 1e-6) << name;
  }
  // The same model twice in one run is refused unless --allow-repeat.
  r = run(dir, "merge average --add " + q(dir / "a") + " " + q(dir / "a") + " -o " + q(dir / "twice"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("is given twice"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "twice"));
}

TEST(MergeCli, TiesIsThePapersAndDoesNotDependOnOrder) {
  TempDir dir;
  write_small(dir / "base", -1);
  for (int i = 0; i < 3; ++i) write_small(dir / ("m" + std::to_string(i)), i);
  const std::string models = q(dir / "m0") + " " + q(dir / "m1") + " " + q(dir / "m2"),
                    reversed = q(dir / "m2") + " " + q(dir / "m1") + " " + q(dir / "m0");
  CommandResult r = run(dir, "merge ties --base " + q(dir / "base") + " --add " + models + " --density 0.4 -o " + q(dir / "fwd"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("ties: merged 3 model(s)"), std::string::npos) << r.out;
  r = run(dir, "merge ties --base " + q(dir / "base") + " --add " + reversed + " --density 0.4 -o " + q(dir / "rev"));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& [name, shape] : kSmall)
    EXPECT_EQ(testing::tensor_f32(dir / "fwd", name), testing::tensor_f32(dir / "rev", name)) << name;
  // The YAML it ran is beside the weights, and running it again gives the same bytes.
  const std::string yaml = testing::read_file(dir / "fwd/mergekit_config.yml");
  EXPECT_NE(yaml.find("merge_method: ties"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("density: 0.4"), std::string::npos) << yaml;
  r = run(dir, "merge --config " + q(dir / "fwd/mergekit_config.yml") + " -o " + q(dir / "again"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(testing::safetensors_data(dir / "again/model.safetensors") == testing::safetensors_data(dir / "fwd/model.safetensors"));
  // A bad configuration: one line naming the file and key, exit 1, nothing written.
  std::ofstream(dir / "bad.yml") << "merge_method: ties\nbase_model: x\nmodel:\n  - model: y\n";
  r = run(dir, "merge --config " + q(dir / "bad.yml") + " -o " + q(dir / "bad"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("bad.yml: model: unknown key"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "bad"));
}

TEST(MergeCli, BatchMergeBytesDoNotDependOnTheThreadCount) {
  TempDir dir;
  write_small(dir / "base", -1);
  for (int i = 0; i < 3; ++i) write_small(dir / ("m" + std::to_string(i)), i);
  std::string yaml = "merge_method: dare_ties\nbase_model: " + (dir / "base") + "\nmodels:\n";
  for (int i = 0; i < 3; ++i)
    yaml += "  - {model: " + (dir / ("m" + std::to_string(i))) + ", parameters: {weight: 0.5, density: 0.3}}\n";
  std::ofstream(dir / "dare.yml") << yaml;
  std::vector<std::string> outputs;
  for (const char* threads : {"1", "2", "5"}) {
    ::setenv("OMP_NUM_THREADS", threads, 1);
    const std::string out = dir / (std::string("t") + threads);
    const CommandResult r = run(dir, "merge --config " + q(dir / "dare.yml") + " --seed 11 -o " + q(out));
    ASSERT_EQ(r.status, 0) << r.err;
    outputs.push_back(testing::safetensors_data(out + "/model.safetensors"));
  }
  ::unsetenv("OMP_NUM_THREADS");
  EXPECT_TRUE(outputs[0] == outputs[1]);
  EXPECT_TRUE(outputs[0] == outputs[2]);
}

}  // namespace
}  // namespace modelpress
