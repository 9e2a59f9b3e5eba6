// modelpress decompress IN -o OUT: a compressed checkpoint (palettized by `modelpress
// cluster`, or bitsandbytes int8 / compressed-tensors) back to dense weights any tool loads.
#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/progress.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "quant/lut_decompress.h"

namespace modelpress::cli {

void set_decompress_command(CLI::App& app) {
  struct Options {
    std::string input, output, dtype = "auto", max_shard = "5GB";
    bool overwrite = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "decompress", "Write a dense checkpoint from a compressed one (palettized, bitsandbytes int8, compressed-tensors)");
  cmd->add_option("input", opts->input, "Compressed checkpoint to read")->required();
  cmd->add_option("-o,--output", opts->output, "Output folder (created; must not exist unless --overwrite)")->required();
  cmd->add_option("--dtype", opts->dtype, "Dense weight dtype: auto (the original's where recorded: a palettized layer's own, compressed-tensors' scale dtype, config.json's dtype for bitsandbytes; else f32), f32, f16, bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", opts->overwrite, "Replace an existing output folder once the new one is complete");
  cmd->callback([opts] {
    quant::DecompressOptions o;
    if (opts->dtype == "f32") o.dtype = DType::F32;
    else if (opts->dtype == "f16") o.dtype = DType::F16;
    else if (opts->dtype == "bf16") o.dtype = DType::BF16;
    o.overwrite = opts->overwrite;
    o.max_shard_bytes = parse_byte_size(opts->max_shard);
    const auto start = std::chrono::steady_clock::now();
    const Checkpoint ck = Checkpoint::open(opts->input);
    quant::DecompressReport r;
    {
      Progress progress("decompress", ck.tensors().size());
      r = quant::decompress_checkpoint(ck, opts->output, o, [&](size_t, size_t, const std::string& n) { progress.step(n); });
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("decompressed %zu layers: %s -> %s, wrote %zu tensors to %s in %.2f s\n", r.layers,
                format_bytes(r.bytes_in).c_str(), format_bytes(r.bytes_out).c_str(), r.tensors_out, opts->output.c_str(),
                seconds);
  });
}

}  // namespace modelpress::cli
