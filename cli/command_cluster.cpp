// modelpress cluster IN -o OUT --bits B: palettizes every linear layer (lm_head and MoE
// routers stay dense, as do --skip matches) by DKM over unique values (eDKM) or plain
// k-means, and writes the modelpress-palettization checkpoint (docs/CLUSTERING.md) that
// validate, inspect and decompress read. With --calib, each weight counts by its input
// column's diag(X^T X) from the calibration file (the sensitivity-weighted variant).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/calibration_importance.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "quant/quantize_checkpoint.h"

namespace modelpress::cli {
namespace {

struct ClusterCommandOptions {
  std::string input, output, calib, algorithm = "dkm", init = "auto", lut_dtype = "f16", max_shard = "5GB";
  int bits = 4;
  int64_t group_size = 0;
  double tau = quant::kDefaultRelativeTau, epsilon = 1e-4;
  int iters = 8;
  uint64_t seed = 0;
  bool channel_scale = false, overwrite = false, json = false, allow_requantize = false;
  std::vector<std::string> skip;
};

// An integer option's range check with a one-line message (CLI11's own prints the limits of
// double in full for its number validators).
CLI::Validator int_range(const std::string& option, long lo, long hi, const std::string& why) {
  return CLI::Validator(
      [=](std::string& v) {
        char* end = nullptr;
        const long x = std::strtol(v.c_str(), &end, 10);
        if (end == v.c_str() || *end != '\0' || x < lo || x > hi)
          return option + " " + v + " is outside " + std::to_string(lo) + ".." + std::to_string(hi) + why;
        return std::string();
      },
      std::to_string(lo) + ".." + std::to_string(hi));
}

// A real option's range check, named by `range` in the message (finite values only).
CLI::Validator real_range(const std::string& option, double lo, double hi, const std::string& range) {
  return CLI::Validator(
      [=](std::string& v) {
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end != '\0' || !std::isfinite(x) || x < lo || x > hi)
          return option + " " + v + " is outside " + range;
        return std::string();
      },
      range);
}

}  // namespace

void set_cluster_command(CLI::App& app) {
  auto opts = std::make_shared<ClusterCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "cluster", "Palettize every linear layer: 2^bits centroids per tensor (or per group of output rows) by "
                 "DKM on the unique weight values (eDKM) or plain k-means; b-bit indices + lookup table");
  cmd->add_option("input", opts->input, "Checkpoint to read (folder, .safetensors, .gguf)")->required();
  cmd->add_option("-o,--output", opts->output, "Output folder (created; must not exist unless --overwrite)")->required();
  cmd->add_option("--bits", opts->bits, "Index width, 1..8 (2^bits centroids)")
      ->required()
      ->check(int_range("--bits", 1, 8, " (a table has 2 to 256 entries)"));
  cmd->add_option("--group-size", opts->group_size,
                  "Output rows sharing one table; must divide every layer's rows (0: one table per tensor)")
      ->capture_default_str();
  cmd->add_option("--tau", opts->tau,
                  "DKM softmax temperature relative to each table's weight variance (the same at any weight scale)")
      ->capture_default_str()
      ->check(real_range("--tau", 1e-6, 1e6, "1e-6..1e6"));
  CLI::Option* iters = cmd->add_option("--iters", opts->iters, "Most DKM rounds (k-means: 30 unless given)")
                           ->capture_default_str()
                           ->check(int_range("--iters", 1, 100000, ""));
  cmd->add_option("--epsilon", opts->epsilon,
                  "Stop when no centroid moves by more than epsilon x the table's standard deviation")
      ->capture_default_str()
      ->check(real_range("--epsilon", 0, std::numeric_limits<double>::max(), ">= 0"));
  cmd->add_option("--calib", opts->calib,
                  "Calibration file (docs/CALIBRATION.md): weigh each weight by its input column's diag(X^T X)");
  cmd->add_option("--algorithm", opts->algorithm, "dkm (differentiable k-means) or kmeans (Lloyd, the baseline)")
      ->capture_default_str()
      ->check(CLI::IsMember({"dkm", "kmeans"}));
  cmd->add_option("--init", opts->init, "auto or opt1d (the exact optimal 1-D k-means), or kmeans++")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "kmeans++", "opt1d"}));
  cmd->add_option("--lut-dtype", opts->lut_dtype, "Table entries: f16, f32 or int8 (one f32 scale per table)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f16", "f32", "int8"}));
  cmd->add_flag("--channel-scale", opts->channel_scale, "Divide each output row by its absmax first; store the scales");
  cmd->add_option("--seed", opts->seed, "k-means++ sampling seed")->capture_default_str();
  cmd->add_option("--skip", opts->skip, "Regex searched in module names; matching layers stay dense (repeatable)");
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", opts->overwrite, "Replace an existing output folder once the new one is complete");
  cmd->add_flag("--allow-requantize", opts->allow_requantize,
                "Cluster a GGUF whose linear weights are already block-quantized (refused otherwise: their dequantized "
                "values would be quantized again)");
  cmd->add_flag("--json", opts->json, "Print the per-layer report as JSON instead of the summary line");
  cmd->callback([opts, iters] {
    quant::QuantizeOptions q;
    q.method = kernels::LinearFormat::Lut;
    quant::ClusterOptions& c = q.cluster;
    c.bits = opts->bits;
    c.group_size = opts->group_size;
    c.algorithm = opts->algorithm == "kmeans" ? quant::ClusterAlgorithm::KMeans : quant::ClusterAlgorithm::Dkm;
    c.init = opts->init == "opt1d"      ? quant::ClusterInit::Optimal1D
             : opts->init == "kmeans++" ? quant::ClusterInit::KMeansPlusPlus
                                        : quant::ClusterInit::Auto;
    c.dkm.tau = opts->tau;
    c.dkm.max_iters = opts->iters;
    if (iters->count() > 0) c.kmeans_iters = opts->iters;
    c.dkm.epsilon = opts->epsilon;
    c.channel_scale = opts->channel_scale;
    c.lut_dtype = opts->lut_dtype == "f32" ? DType::F32 : opts->lut_dtype == "int8" ? DType::I8 : DType::F16;
    c.seed = opts->seed;
    if (opts->group_size < 0) throw CLI::ValidationError("--group-size", "must be >= 0 (0: one table per tensor)");
    q.skip = opts->skip;
    q.max_shard_bytes = parse_byte_size(opts->max_shard);
    q.overwrite = opts->overwrite;
    q.allow_requantize = opts->allow_requantize;
    if (!opts->calib.empty()) q.importance = calibration_importance(opts->calib);
    const auto start = std::chrono::steady_clock::now();
    const Checkpoint ck = Checkpoint::open(opts->input);
    quant::QuantizeReport report;
    {
      Progress progress("cluster", ck.tensors().size());
      report = quant::quantize_checkpoint(ck, opts->output, q,
                                          [&](size_t, size_t, const std::string& name) { progress.step(name); });
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (opts->json) {
      std::cout << quant::report_json(report).dump(2) << "\n";
      return;
    }
    for (const auto& l : report.layers)
      if (!l.note.empty()) std::fprintf(stderr, "modelpress: note: %s: %s\n", l.name.c_str(), l.note.c_str());
    uint64_t elements = 0;
    for (const auto& l : report.layers)
      if (l.format != "skipped") elements += static_cast<uint64_t>(shape_numel(l.shape));
    std::printf("clustered %zu linear layers (%d-bit, %s, %s) %s -> %s (%.3f bits/weight), %zu kept dense\n",
                report.quantized, opts->bits, opts->algorithm.c_str(),
                opts->group_size ? ("groups of " + std::to_string(opts->group_size) + " rows").c_str() : "per tensor",
                format_bytes(report.linear_bytes_before).c_str(), format_bytes(report.linear_bytes_after).c_str(),
                elements ? 8.0 * static_cast<double>(report.linear_bytes_after) / static_cast<double>(elements) : 0.0,
                report.skipped);
    std::printf("wrote %zu tensors to %s in %.2f s\n", report.tensors_out, opts->output.c_str(), seconds);
  });
}

}  // namespace modelpress::cli
