// modelpress merge ewa|opcm|average|task-arithmetic|ties: EWA collapses every MoE layer to
// one dense FFN (or, with --share-rate, pulls the experts toward their mean and keeps the
// MoE); OPCM and its baselines merge fine-tuned models into a base one model at a time,
// writing a merged checkpoint that is also the --state of the next run (docs/MERGING.md).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>

#include "cli/commands.h"
#include "cli/progress.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "merge/continual.h"
#include "merge/ewa.h"

namespace modelpress::cli {
namespace {

struct EwaCommandOptions {
  std::string input, output, max_shard = "5GB";
  double share_rate = -1;
  bool overwrite = false, json = false;
};

struct ContinualCommandOptions {
  std::string base, state, output, max_shard = "5GB";
  std::vector<std::string> add;
  double alpha = 0.5, scale = std::numeric_limits<double>::quiet_NaN(), density = 0.2;
  std::vector<double> weight;
  bool allow_repeat = false;
  uint64_t seed = 0;
  bool shuffle = false, overwrite = false, json = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void set_ewa(CLI::App& merge) {
  auto opts = std::make_shared<EwaCommandOptions>();
  CLI::App* cmd = merge.add_subcommand(
      "ewa", "EWA: collapse every MoE layer to one dense FFN, the mean of its experts (routers dropped, "
             "config.json turned into the dense architecture); --share-rate B instead applies "
             "W_i <- (1-B) W_i + B mean_j W_j to every expert and keeps the MoE");
  cmd->add_option("input", opts->input, "MoE checkpoint to read (folder or .safetensors)")->required();
  cmd->add_option("-o,--output", opts->output, "Output folder (created; must not exist unless --overwrite)")->required();
  cmd->add_option("--share-rate", opts->share_rate, "Keep the MoE and move each expert this far toward the mean, in [0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", opts->overwrite, "Replace an existing output folder once the new one is complete");
  cmd->add_flag("--json", opts->json, "Print the report as JSON");
  cmd->callback([opts] {
    merge::EwaOptions o;
    o.share_rate = opts->share_rate;
    o.max_shard_bytes = parse_byte_size(opts->max_shard);
    o.overwrite = opts->overwrite;
    const auto start = std::chrono::steady_clock::now();
    const Checkpoint ck = Checkpoint::open(opts->input);
    merge::EwaReport r;
    {
      Progress progress("merge ewa", ck.tensors().size());
      r = merge::ewa_checkpoint(ck, opts->output, o, [&](size_t, size_t, const std::string& n) { progress.step(n); });
    }
    const double s = seconds_since(start);
    if (opts->json) {
      nlohmann::ordered_json j;
      j["mode"] = o.share_rate >= 0 ? "share-rate" : "collapse";
      if (o.share_rate >= 0) j["share_rate"] = o.share_rate;
      j["family"] = r.family;
      j["architecture_in"] = r.architecture_in;
      j["architecture_out"] = r.architecture_out;
      j["moe_layers"] = r.moe_layers;
      j["experts"] = r.experts;
      j["intermediate_size"] = r.intermediate_size;
      j["tensors_in"] = r.tensors_in;
      j["tensors_out"] = r.tensors_out;
      j["routers_dropped"] = r.dropped;
      j["notes"] = r.notes;
      std::cout << j.dump(2) << "\n";
      return;
    }
    if (o.share_rate >= 0)
      std::printf("share-rate %.4g applied to %zu experts in %zu MoE layers (%s), MoE kept\n", o.share_rate, r.experts,
                  r.moe_layers, r.family.c_str());
    else
      std::printf("collapsed %zu MoE layers of %zu experts (%s) to dense FFNs of width %lld: %s -> %s, %zu router "
                  "tensors dropped\n",
                  r.moe_layers, r.experts, r.family.c_str(), static_cast<long long>(r.intermediate_size),
                  r.architecture_in.c_str(), r.architecture_out.c_str(), r.dropped);
    size_t shown = 0;
    for (const auto& n : r.notes)
      if (shown++ < 4) std::printf("  %s\n", n.c_str());
    if (r.notes.size() > 4) std::printf("  ... %zu more notes (--json lists all)\n", r.notes.size() - 4);
    std::printf("wrote %zu tensors to %s in %.1f s\n", r.tensors_out, opts->output.c_str(), s);
  });
}

void set_continual(CLI::App& merge, merge::MergeMethod method, const std::string& help) {
  auto opts = std::make_shared<ContinualCommandOptions>();
  const std::string name = merge::method_name(method);
  CLI::App* cmd = merge.add_subcommand(name, help);
  if (method == merge::MergeMethod::Average)
    cmd->add_option("--base", opts->base, "Optional: a checkpoint every model is checked against (not part of the mean)");
  else
    cmd->add_option("--base", opts->base, "Pretrained checkpoint the task models were fine-tuned from")->required();
  cmd->add_option("--add", opts->add, "Fine-tuned model(s) to merge, in order")->required()->expected(1, -1);
  cmd->add_option("--state", opts->state, "Continue the merge whose output folder this is (it holds the merged "
                                          "weights and modelpress_merge_state.json)");
  cmd->add_option("-o,--output", opts->output, "Output folder: merged checkpoint and its merge state")->required();
  if (method == merge::MergeMethod::Opcm)
    cmd->add_option("--alpha", opts->alpha, "Share of the singular-value sum whose subspace new task vectors avoid")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
  if (method == merge::MergeMethod::TaskArithmetic || method == merge::MergeMethod::ContinualTies)
    cmd->add_option("--scale", opts->scale,
                    std::string("Scale s of each added task vector (default ") +
                        (method == merge::MergeMethod::ContinualTies ? "0.5" : "0.3") + ")");
  if (method == merge::MergeMethod::TaskArithmetic || method == merge::MergeMethod::Average)
    cmd->add_option("--weight", opts->weight,
                    method == merge::MergeMethod::Average
                        ? "Weight of each --add model in the mean, in order (default 1 each)"
                        : "Scale of each --add model's task vector, in order (default --scale for all)")
        ->expected(1, -1);
  if (method == merge::MergeMethod::ContinualTies)
    cmd->add_option("--density", opts->density, "Fraction of each task vector's entries kept by magnitude, in (0, 1]")
        ->capture_default_str();
  cmd->add_flag("--allow-repeat", opts->allow_repeat,
                "With --state: merge a model even if the state already holds it (by fingerprint)");
  cmd->add_flag("--shuffle", opts->shuffle, "Merge the --add models in an order drawn from --seed");
  cmd->add_option("--seed", opts->seed, "Seed of --shuffle")->capture_default_str();
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", opts->overwrite, "Replace an existing output folder once the new one is complete");
  cmd->add_flag("--json", opts->json, "Print the report as JSON");
  auto* scale_option = cmd->get_option_no_throw("--scale");
  cmd->callback([opts, method, name, scale_option] {
    // Usage errors before any file is opened: NaN is not "not given", and density is a fraction.
    if (scale_option && scale_option->count() > 0 && !std::isfinite(opts->scale))
      throw CLI::ValidationError("--scale", "must be a finite number");
    for (double w : opts->weight)
      if (!std::isfinite(w)) throw CLI::ValidationError("--weight", "must be finite numbers");
    if (!opts->weight.empty() && scale_option && scale_option->count() > 0)
      throw CLI::ValidationError("--weight", "give --scale (one for all) or --weight (one per model), not both");
    if (!opts->weight.empty() && opts->weight.size() != opts->add.size())
      throw CLI::ValidationError("--weight", "give one weight per --add model (" + std::to_string(opts->add.size()) + ")");
    if (!(opts->density > 0 && opts->density <= 1))
      throw CLI::ValidationError("--density", "must lie in (0, 1] (a fraction: 0.2 keeps 20%)");
    merge::ContinualOptions o;
    o.method = method;
    o.alpha = opts->alpha;
    if (scale_option && scale_option->count() > 0) o.scale = opts->scale;
    o.density = opts->density;
    o.weights = opts->weight;
    o.allow_repeat = opts->allow_repeat;
    o.shuffle = opts->shuffle;
    o.seed = opts->seed;
    o.max_shard_bytes = parse_byte_size(opts->max_shard);
    o.overwrite = opts->overwrite;
    const auto start = std::chrono::steady_clock::now();
    merge::ContinualReport r;
    {
      std::unique_ptr<Progress> progress;
      r = merge::merge_continual(opts->base, opts->add, opts->state, opts->output, o,
                                 [&](size_t, size_t total, const std::string& n) {
                                   if (!progress) progress = std::make_unique<Progress>("merge " + name, total);
                                   progress->step(n);
                                 });
    }
    const double s = seconds_since(start);
    if (opts->json) {
      nlohmann::ordered_json j;
      j["method"] = r.method;
      j["added"] = r.added;
      j["task_vector_norms"] = r.task_vector_norms;
      j["models_total"] = r.models_total;
      j["merged_task_vector_norm"] = r.merged_norm;
      if (method == merge::MergeMethod::Opcm) {
        j["lambda"] = r.lambda;
        j["mean_task_vector_norm"] = r.mean_norm;
        j["projected_tensors"] = r.projected;
        j["svd_seconds"] = r.svd_seconds;
      }
      j["seconds"] = s;
      j["state"] = merge::state_to_json(r.state);
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("%s: merged %zu model(s), %zu in all\n", name.c_str(), r.added.size(), r.models_total);
    for (size_t i = 0; i < r.added.size(); ++i)
      std::printf("  %-40s ||tau|| = %.6g\n", r.added[i].c_str(), r.task_vector_norms[i]);
    if (method == merge::MergeMethod::Opcm)
      std::printf("lambda %.6g, merged task vector norm %.6g (mean task vector norm %.6g), %zu projected tensors, "
                  "SVD %.1f s\n",
                  r.lambda, r.merged_norm, r.mean_norm, r.projected, r.svd_seconds);
    else
      std::printf("merged task vector norm %.6g\n", r.merged_norm);
    std::printf("wrote %zu tensors and the merge state to %s in %.1f s\n", r.tensors, opts->output.c_str(), s);
  });
}

}  // namespace

void set_merge_command(CLI::App& app) {
  CLI::App* merge = app.add_subcommand("merge", "Merge models: a mergekit YAML (--config), TIES, EWA expert averaging, OPCM "
                                                "continual merging and its baselines (average, task-arithmetic, continual-ties)");
  merge->require_subcommand(0, 1);
  set_merge_batch_commands(*merge);
  set_ewa(*merge);
  set_continual(*merge, merge::MergeMethod::Opcm,
                "OPCM: merge fine-tuned models one at a time, each task vector projected off the merged task "
                "vector's principal subspace, the result rescaled to the mean task-vector norm");
  set_continual(*merge, merge::MergeMethod::Average,
                "Continual (weighted) averaging: theta <- (W theta + w theta_new) / (W + w), W the weight merged so far");
  set_continual(*merge, merge::MergeMethod::TaskArithmetic, "Task arithmetic: theta <- theta + s (theta_new - theta_0)");
  set_continual(*merge, merge::MergeMethod::ContinualTies,
                "fusion_bench's continual TIES: each new task vector TIES-merged (trim to --density, elect signs, "
                "disjoint mean) with the merged task vector, s times the result added; not the paper's batch TIES "
                "(`merge ties`)");
}

}  // namespace modelpress::cli
