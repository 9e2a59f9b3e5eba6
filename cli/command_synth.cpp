// modelpress synth OUT: a deterministic LLaMA-style checkpoint with activation-outlier
// channels, for tests, benchmarks and as the fallback default model.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "io/synthetic_checkpoint.h"

namespace modelpress::cli {
namespace {

struct SynthCommandOptions {
  SyntheticOptions model;
  std::string output, dtype = "bf16", max_shard = "5GB";
};

}  // namespace

void set_synth_command(CLI::App& app) {
  auto opts = std::make_shared<SynthCommandOptions>();
  auto& m = opts->model;
  CLI::App* cmd = app.add_subcommand("synth", "Write a deterministic synthetic LLaMA-style checkpoint "
                                              "(realistic weight scales, activation-outlier channels)");
  cmd->add_option("output", opts->output, "Output folder")->required();
  cmd->add_option("--layers", m.layers, "Decoder layers")->capture_default_str();
  cmd->add_option("--hidden", m.hidden, "Hidden size")->capture_default_str();
  cmd->add_option("--intermediate", m.intermediate, "MLP intermediate size")->capture_default_str();
  cmd->add_option("--heads", m.heads, "Attention heads")->capture_default_str();
  cmd->add_option("--kv-heads", m.kv_heads, "Key/value heads")->capture_default_str();
  cmd->add_option("--vocab", m.vocab, "Vocabulary size")->capture_default_str();
  cmd->add_option("--dtype", opts->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--seed", m.seed, "Random seed")->capture_default_str();
  cmd->add_option("--outlier-channels", m.outlier_channels, "Hidden channels with large norm gains")->capture_default_str();
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB")->capture_default_str();
  cmd->add_flag("--overwrite", m.overwrite, "Replace an existing output folder");
  cmd->callback([opts] {
    static const std::map<std::string, DType> dtypes{{"bf16", DType::BF16}, {"f16", DType::F16}, {"f32", DType::F32}};
    opts->model.dtype = dtypes.at(opts->dtype);
    opts->model.max_shard_bytes = parse_byte_size(opts->max_shard);
    write_synthetic_checkpoint(opts->output, opts->model);
    std::cout << "wrote synthetic checkpoint to " << opts->output << "\n";
  });
}

}  // namespace modelpress::cli
