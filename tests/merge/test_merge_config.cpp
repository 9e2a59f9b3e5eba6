// mergekit YAML read into a merge plan (merge/merge_config.h): the forms mergekit accepts,
// its parameter lookup (source, slice, top level; first matching filter; gradients over a
// slice), and a one-line error naming the key for everything it does not.
#include <gtest/gtest.h>

#include "io/error.h"
#include "merge/merge_config.h"

namespace modelpress {
namespace {

using merge::parse_merge_config;

std::string error_of(const std::string& yaml) {
  try {
    parse_merge_config(yaml, "m.yml");
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.rfind("m.yml: ", 0), 0u) << msg;
    return msg;
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

TEST(MergeConfig, ModelsFormWithPerModelParametersAndTheBaseAppended) {
  const auto plan = parse_merge_config(R"(
merge_method: ties
base_model: ./base
models:
  - model: ./a
    parameters: {weight: 0.7, density: 0.5}
  - model: ./b
    parameters:
      weight: [0.1, 0.9]
      density: 0.3
parameters:
  normalize: true
  lambda: 0.8
dtype: bfloat16
)",
                                       "m.yml");
  EXPECT_EQ(plan.method, "ties");
  EXPECT_EQ(plan.base_model, "./base");
  ASSERT_EQ(plan.slices.size(), 1u);
  const auto& s = plan.slices[0];
  ASSERT_EQ(s.sources.size(), 3u);  // a, b, and the base mergekit's planner appends
  EXPECT_EQ(s.sources[2].model, "./base");
  EXPECT_TRUE(s.sources[2].implicit_base);
  EXPECT_EQ(*plan.dtype, DType::BF16);
  EXPECT_FALSE(plan.from_slices);
  EXPECT_DOUBLE_EQ(*merge::lookup_parameter(plan, s, &s.sources[0], "weight", "x", 0.3), 0.7);
  // A gradient: 0.1 at t = 0, 0.9 at t = 1, linear between.
  EXPECT_DOUBLE_EQ(*merge::lookup_parameter(plan, s, &s.sources[1], "weight", "x", 0.25), 0.3);
  // Per-model lookups fall through to the top level; a parameter nobody sets is absent.
  EXPECT_DOUBLE_EQ(*merge::lookup_parameter(plan, s, &s.sources[0], "lambda", "x", 0), 0.8);
  EXPECT_FALSE(merge::lookup_parameter(plan, s, &s.sources[2], "density", "x", 0));
}

TEST(MergeConfig, FiltersMatchSubstringsFirstMatchWins) {
  const auto plan = parse_merge_config(R"(
merge_method: slerp
base_model: a
slices:
  - sources:
      - {model: a, layer_range: [0, 4]}
      - {model: b, layer_range: [2, 6]}
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 1]
    - filter: mlp
      value: 0.25
    - value: 0.6
)",
                                       "m.yml");
  ASSERT_EQ(plan.slices.size(), 1u);
  EXPECT_TRUE(plan.from_slices);
  const auto& s = plan.slices[0];
  EXPECT_EQ(s.sources[1].begin, 2);
  EXPECT_EQ(s.sources[1].end, 6);
  auto t = [&](const std::string& name, double at) { return *merge::lookup_parameter(plan, s, nullptr, "t", name, at); };
  EXPECT_DOUBLE_EQ(t("model.layers.1.self_attn.q_proj.weight", 0.75), 0.75);  // between 0.5 and 1
  EXPECT_DOUBLE_EQ(t("model.layers.1.mlp.up_proj.weight", 0.75), 0.25);
  EXPECT_DOUBLE_EQ(t("model.norm.weight", 0.75), 0.6);
}

TEST(MergeConfig, SourceParametersComeBeforeTheSlicesAndTheTopLevel) {
  const auto plan = parse_merge_config(R"(
merge_method: linear
slices:
  - sources:
      - model: a
        layer_range: [0, 2]
        parameters: {weight: 3}
      - model: b
        layer_range: [0, 2]
    parameters: {weight: 2}
parameters: {weight: 1}
)",
                                       "m.yml");
  const auto& s = plan.slices[0];
  EXPECT_DOUBLE_EQ(*merge::lookup_parameter(plan, s, &s.sources[0], "weight", "x", 0), 3);
  EXPECT_DOUBLE_EQ(*merge::lookup_parameter(plan, s, &s.sources[1], "weight", "x", 0), 2);
  EXPECT_DOUBLE_EQ(*merge::lookup_parameter(plan, plan.slices[0], nullptr, "weight", "x", 0), 2);
}

TEST(MergeConfig, EveryMistakeIsNamed) {
  EXPECT_NE(error_of("merge_method: ties\nmodels: [\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of("merge_method: frankenmerge\nmodels: [{model: a}]").find("'frankenmerge' is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: opcm\nmodels: [{model: a}]").find("modelpress merge opcm"), std::string::npos);
  const std::string typo = error_of("merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    paramters: {weight: 1}");
  EXPECT_NE(typo.find("models[0].paramters: unknown key"), std::string::npos) << typo;
  EXPECT_NE(error_of("merge_method: ties\nmodels: [{model: a}]\ntokenizer: {source: base}").find("tokenizer: unknown key"),
            std::string::npos);
  const std::string bad_param =
      error_of("merge_method: ties\nmodels:\n  - model: a\n    parameters: {weight: 1, desnity: 0.5}");
  EXPECT_NE(bad_param.find("models[0].parameters.desnity: not a parameter of ties"), std::string::npos) << bad_param;
  EXPECT_NE(error_of("merge_method: linear\nmodels:\n  - model: a\n    parameters: {density: 0.5}").find("density"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels:\n  - model: a\n    parameters: {normalize: true}")
                .find("global parameter"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels:\n  - model: a\n    parameters: {weight: .nan}").find("not a finite"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels:\n  - model: a\n    parameters: {weight: abc}").find("not a number"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: slerp\nmodels: [{model: a}]\nparameters:\n  t: {filter: mlp, value: 0.5}")
                .find("must be written as a list"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels: [{model: a}]\nslices: []").find("exactly one of"), std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\n").find("exactly one of"), std::string::npos);
  EXPECT_NE(error_of("models: [{model: a}]").find("merge_method: missing"), std::string::npos);
  EXPECT_NE(error_of("merge_method: passthrough\nslices:\n  - sources: [{model: a, layer_range: [4, 2]}]")
                .find("slices[0].sources[0].layer_range"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: passthrough\nslices:\n  - sources: [{model: a, layer_range: [0, 2]}, {model: b, "
                     "layer_range: [0, 3]}]")
                .find("same number of layers"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels: [{model: a}]\ndtype: float8").find("dtype"), std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels: [{model: a+lora}]").find("LoRA"), std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels: [{model: a}]\ntokenizer_source: union").find("union"), std::string::npos);
  // Found by fuzz/fuzz_merge_config.cpp: YAML keys that are not strings (once an uncaught
  // yaml-cpp exception); fuzz/regressions/merge_config/key-not-a-string is the input.
  EXPECT_NE(error_of("? : \xec" "f[").find("not a plain string"), std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\n? [a, b]\n: c\n").find("not a plain string"), std::string::npos);
  EXPECT_NE(error_of("merge_method: ties\nmodels:\n  - model: a\n    parameters: {? {x: 1} : 2}\n").find("not a plain string"),
            std::string::npos);
}

TEST(MergeConfig, ReadingAMissingFileNamesIt) {
  try {
    merge::read_merge_config("/nonexistent/merge.yml");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/merge.yml"), std::string::npos);
  }
}

}  // namespace
}  // namespace modelpress
