// modelpress merge --config merge.yml: a mergekit YAML configuration run by the batch
// merger (merge/batch_merge.h); and `merge ties`, the paper's (batch) TIES from the command
// line, which writes the equivalent YAML so the output folder records how it was made.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/progress.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "merge/batch_merge.h"
#include "merge/merge_config.h"

namespace modelpress::cli {
namespace {

struct BatchCommon {
  std::string output, max_shard = "5GB";
  uint64_t seed = 0;
  bool overwrite = false, json = false;
};

void run_plan(const merge::MergePlan& plan, const BatchCommon& c) {
  merge::BatchMergeOptions o;
  o.seed = c.seed;
  o.max_shard_bytes = parse_byte_size(c.max_shard);
  o.overwrite = c.overwrite;
  o.version = MODELPRESS_VERSION;
  const auto start = std::chrono::steady_clock::now();
  merge::BatchMergeReport r;
  {
    std::unique_ptr<Progress> progress;
    r = merge::run_batch_merge(plan, c.output, o, [&](size_t, size_t total, const std::string& n) {
      if (!progress) progress = std::make_unique<Progress>("merge " + plan.method, total);
      progress->step(n);
    });
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (c.json) {
    nlohmann::ordered_json j;
    j["method"] = r.method;
    j["base_model"] = r.base;
    j["models"] = r.models;
    j["tensors"] = r.tensors;
    j["layers"] = r.layers;
    j["dtype"] = r.out_dtype;
    j["seconds"] = s;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("%s: merged %zu model(s)%s%s into %lld layers, %zu tensors (%s)\n", r.method.c_str(), r.models.size(),
              r.base.empty() ? "" : " onto ", r.base.c_str(), static_cast<long long>(r.layers), r.tensors,
              r.out_dtype.c_str());
  std::printf("wrote %s (with mergekit_config.yml and README.md) in %.1f s\n", c.output.c_str(), s);
}

void add_common(CLI::App* cmd, BatchCommon& c, bool output_required) {
  auto* o = cmd->add_option("-o,--output", c.output, "Output folder (created; must not exist unless --overwrite)");
  if (output_required) o->required();
  cmd->add_option("--seed", c.seed, "Seed of DARE's random drop masks (the same seed gives the same output)")
      ->capture_default_str();
  cmd->add_option("--max-shard-size", c.max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", c.overwrite, "Replace an existing output folder once the new one is complete");
  cmd->add_flag("--json", c.json, "Print the report as JSON");
}

std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }  // a JSON string is a YAML scalar

std::string number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

}  // namespace

void set_merge_batch_commands(CLI::App& merge) {
  // merge --config FILE -o OUT
  auto config_path = std::make_shared<std::string>();
  auto common = std::make_shared<BatchCommon>();
  merge.add_option("--config", *config_path,
                   "A mergekit YAML configuration (merge_method: task_arithmetic, ties, dare_ties, dare_linear, linear, "
                   "slerp, model_stock or passthrough; models: or slices:); see docs/MERGING.md");
  add_common(&merge, *common, false);
  // Runs before any subcommand's callback: a subcommand must not start work that --config contradicts.
  merge.parse_complete_callback([&merge, config_path] {
    if (!merge.get_subcommands().empty() && !config_path->empty())
      throw CLI::ValidationError("--config", "is not used together with a method subcommand");
  });
  merge.callback([&merge, config_path, common] {
    if (!merge.get_subcommands().empty()) return;
    if (config_path->empty()) throw CLI::RequiredError("merge: --config FILE or a method subcommand");
    if (common->output.empty()) throw CLI::RequiredError("-o,--output");
    run_plan(merge::read_merge_config(*config_path), *common);
  });

  // merge ties: the paper's TIES over every model at once.
  struct TiesOptions {
    std::string base;
    std::vector<std::string> add;
    std::vector<double> weight;
    double density = 0.2, lambda = 1;
    bool no_normalize = false;
  };
  auto t = std::make_shared<TiesOptions>();
  auto tc = std::make_shared<BatchCommon>();
  CLI::App* cmd = merge.add_subcommand(
      "ties", "TIES (Yadav et al. 2023, as mergekit): trim each task vector to its largest --density fraction, elect a "
              "sign per entry by the summed weighted task vectors, average the agreeing entries (weighted)");
  cmd->add_option("--base", t->base, "Pretrained checkpoint the models were fine-tuned from")->required();
  cmd->add_option("--add", t->add, "Fine-tuned models to merge")->required()->expected(1, -1);
  cmd->add_option("--weight", t->weight, "Weight of each --add model, in the same order (default 1 each)")
      ->expected(1, -1);
  cmd->add_option("--density", t->density, "Fraction of each task vector's entries kept by magnitude, in (0, 1]")
      ->capture_default_str();
  cmd->add_option("--lambda", t->lambda, "Scale of the merged task vector")->capture_default_str();
  cmd->add_flag("--no-normalize", t->no_normalize, "Sum the agreeing weighted entries instead of averaging them");
  add_common(cmd, *tc, true);
  cmd->callback([t, tc] {
    if (!(t->density > 0 && t->density <= 1))
      throw CLI::ValidationError("--density", "must lie in (0, 1] (a fraction: 0.2 keeps 20%)");
    if (!std::isfinite(t->lambda)) throw CLI::ValidationError("--lambda", "must be a finite number");
    if (!t->weight.empty() && t->weight.size() != t->add.size())
      throw CLI::ValidationError("--weight", "give one weight per --add model (" + std::to_string(t->add.size()) + ")");
    for (double w : t->weight)
      if (!std::isfinite(w)) throw CLI::ValidationError("--weight", "must be finite numbers");
    // The equivalent mergekit configuration: what runs, and what the output records.
    std::ostringstream y;
    y << "merge_method: ties\nbase_model: " << quoted(t->base) << "\nparameters:\n  normalize: "
      << (t->no_normalize ? "false" : "true") << "\n  lambda: " << number(t->lambda) << "\nmodels:\n";
    for (size_t i = 0; i < t->add.size(); ++i)
      y << "  - model: " << quoted(t->add[i]) << "\n    parameters:\n      weight: "
        << number(t->weight.empty() ? 1.0 : t->weight[i]) << "\n      density: " << number(t->density) << "\n";
    run_plan(merge::parse_merge_config(y.str(), "merge ties"), *tc);
  });
}

}  // namespace modelpress::cli
