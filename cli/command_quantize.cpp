// modelpress quantize IN -o OUT --method llm-int8|w8a8|w4a16: quantizes every linear layer
// (lm_head and MoE routers stay unquantized, as do layers matching --skip) and writes a
// checkpoint that transformers + bitsandbytes (llm-int8) or vLLM / compressed-tensors
// (w8a8, w4a16) load. Ends with a summary table; --json prints the full per-layer report.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/progress.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "cli/calibration_importance.h"
#include "io/gguf_dequant.h"
#include "model/weights.h"
#include "quant/gguf_quantize.h"
#include "quant/quantize_checkpoint.h"

namespace modelpress::cli {
namespace {

struct QuantizeCommandOptions {
  std::string input, output, method, calib, max_shard = "5GB", scale_search = "on";  // w4a16's default
  float threshold = 6.0f;
  int64_t group_size = 128;
  bool asymmetric = false, overwrite = false, json = false, allow_requantize = false;
  std::vector<std::string> skip;
};

void print_summary(const quant::QuantizeReport& r, double seconds, const std::string& output) {
  // Before: bytes read from the input as stored (a GGUF block type counts at its size in the
  // file); after: bytes written (the same tensors dequantized where the input was blocked).
  uint64_t skipped_before = 0, skipped_after = 0;
  for (const auto& l : r.layers)
    if (l.format == "skipped") {
      skipped_before += l.bytes_before;
      skipped_after += l.bytes_after;
    }
  const uint64_t other = r.bytes_before - r.linear_bytes_before - skipped_before;
  const uint64_t other_after = r.bytes_after - r.linear_bytes_after - skipped_after;
  const size_t other_tensors = r.tensors_in - r.quantized - r.skipped;
  auto bits = [](uint64_t bytes, uint64_t elements) { return elements ? 8.0 * bytes / elements : 0.0; };
  uint64_t quantized_elements = 0, skipped_elements = 0;
  for (const auto& l : r.layers)
    (l.format == "skipped" ? skipped_elements : quantized_elements) += static_cast<uint64_t>(shape_numel(l.shape));

  std::printf("%-22s  %7s  %12s     %12s  %12s\n", "", "tensors", "before", "after", "bits/weight");
  std::printf("%-22s  %7zu  %12s  -> %12s  %12.2f\n", ("quantized (" + r.method + ")").c_str(), r.quantized,
              format_bytes(r.linear_bytes_before).c_str(), format_bytes(r.linear_bytes_after).c_str(),
              bits(r.linear_bytes_after, quantized_elements));
  if (r.skipped > 0) {
    std::map<std::string, int> reasons;
    for (const auto& l : r.layers)
      if (l.format == "skipped") ++reasons[l.reason];
    std::string why;
    for (const auto& [reason, n] : reasons) why += (why.empty() ? "" : ", ") + reason + (n > 1 ? " x" + std::to_string(n) : "");
    std::printf("%-22s  %7zu  %12s  -> %12s  %12.2f  (%s)\n", "linear, kept", r.skipped,
                format_bytes(skipped_before).c_str(), format_bytes(skipped_after).c_str(),
                bits(skipped_after, skipped_elements), why.c_str());
  }
  std::printf("%-22s  %7zu  %12s  -> %12s\n", "other tensors, copied", other_tensors, format_bytes(other).c_str(),
              format_bytes(other_after).c_str());
  std::printf("%-22s  %7zu  %12s  -> %12s  (%.2fx smaller)\n", "total", r.tensors_in, format_bytes(r.bytes_before).c_str(),
              format_bytes(r.bytes_after).c_str(),
              r.bytes_after ? static_cast<double>(r.bytes_before) / static_cast<double>(r.bytes_after) : 0.0);
  std::printf("wrote %zu tensors to %s in %.1f s\n", r.tensors_out, output.c_str(), seconds);
}

}  // namespace

void set_quantize_command(CLI::App& app) {
  auto opts = std::make_shared<QuantizeCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Quantize the linear layers of a checkpoint. Embeddings, norms, lm_head and MoE routers are kept "
                  "as they are (copied), as are layers matching --skip");
  cmd->add_option("input", opts->input, "Checkpoint to read (folder, .safetensors, .gguf)")->required();
  cmd->add_option("-o,--output", opts->output, "Output folder (created; must not exist unless --overwrite)")->required();
  cmd->add_option("--method", opts->method,
                  "llm-int8: int8 weights + 16-bit outlier activation columns, bitsandbytes layout "
                  "(transformers load_in_8bit); w8a8: int8 per-channel weights, dynamic int8 per-token activations; "
                  "w4a16: 4-bit group-wise weights, 16-bit activations (w8a8 and w4a16 in the compressed-tensors "
                  "format vLLM loads); q8_0, q4_0, q4_1: llama.cpp's block types, from a GGUF input to an -o FILE.gguf "
                  "that llama.cpp loads")
      ->required()
      ->check(CLI::IsMember({"llm-int8", "w8a8", "w4a16", "q8_0", "q4_0", "q4_1"}));
  // Validators of our own: CLI11's range checks print the limits of double in full.
  auto* threshold =
      cmd->add_option("--threshold", opts->threshold,
                      "llm-int8 only: activation outlier threshold written to the config (0 turns the "
                      "decomposition off)")
          ->capture_default_str()
          ->check(CLI::Validator(
              [](const std::string& v) -> std::string {
                const double t = std::strtod(v.c_str(), nullptr);
                return std::isfinite(t) && t >= 0 ? "" : "must be a finite number >= 0, got " + v;
              },
              "FLOAT>=0"));
  auto* group_size =
      cmd->add_option("--group-size", opts->group_size, "w4a16 only: input columns per scale; must divide every layer's K")
          ->capture_default_str()
          ->check(CLI::Validator(
              [](const std::string& v) -> std::string {
                return std::strtoll(v.c_str(), nullptr, 10) >= 1 ? "" : "must be a positive integer, got " + v;
              },
              "INT>=1"));
  auto* asymmetric = cmd->add_flag("--asymmetric", opts->asymmetric, "w4a16 only: per-group zero points (default symmetric)");
  auto* scale_search =
      cmd->add_option("--scale-search", opts->scale_search,
                      "w4a16 and the GGUF methods: on: each group's scale (and zero point) chosen for the least squared "
                      "weight error (clipping ratios searched, then refitted); off: the range rule, absmax / 7.5 (or "
                      "(max - min) / 15), which keeps every weight within half a step, and for q8_0/q4_0/q4_1 llama.cpp's "
                      "reference quantization byte for byte. Default: on for w4a16 and q8_0, off for q4_0 and q4_1, "
                      "where the search lowered the weight error but not the model's KLD (docs/FORMATS.md)")
          ->check(CLI::IsMember({"on", "off"}));
  auto* calib = cmd->add_option(
      "--calib", opts->calib,
      "q8_0, q4_0, q4_1: a calibration file (modelpress calibrate on the same model): the scale search weighs each "
      "weight's error by its input column's diag(X^T X), as llama.cpp's importance matrix does (turns the search on)");
  cmd->add_option("--skip", opts->skip, "Regex searched in module names (e.g. 'layers\\.0\\.' or 'down_proj'); "
                                        "matching layers stay unquantized (repeatable)");
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", opts->overwrite, "Replace an existing output folder once the new one is complete");
  cmd->add_flag("--allow-requantize", opts->allow_requantize,
                "Quantize a GGUF whose linear weights are already block-quantized (Q4_1, Q8_0, ...): their "
                "dequantized values are quantized again, adding this method's error to the file's (refused otherwise)");
  cmd->add_flag("--json", opts->json, "Print the per-layer report as JSON instead of the summary table");
  cmd->callback([opts, threshold, group_size, asymmetric, scale_search, calib] {
    // An option of another method is a mistake worth stopping for, not something to ignore.
    if (opts->method != "llm-int8" && threshold->count() > 0)
      throw CLI::ValidationError("--threshold", "applies to --method llm-int8 only");
    const uint32_t gguf_type = quant::gguf_method_type(opts->method);
    for (const CLI::Option* o : {group_size, asymmetric})
      if (opts->method != "w4a16" && o->count() > 0)
        throw CLI::ValidationError(o->get_name(), "applies to --method w4a16 only");
    if (opts->method != "w4a16" && gguf_type == 0 && scale_search->count() > 0)
      throw CLI::ValidationError("--scale-search", "applies to --method w4a16, q8_0, q4_0 and q4_1 only");
    if (calib->count() > 0 && gguf_type == 0)
      throw CLI::ValidationError("--calib", "applies to --method q8_0, q4_0 and q4_1 only");
    if (calib->count() > 0 && scale_search->count() > 0 && opts->scale_search == "off")
      throw CLI::ValidationError("--calib", "weighs the scale search; it does nothing with --scale-search off");
    const bool gguf_output = opts->output.ends_with(".gguf");
    if (gguf_output && gguf_type == 0)
      throw CLI::ValidationError("--output", "--method " + opts->method + " writes a Hugging Face folder, not " +
                                                 opts->output + "; GGUF output takes --method q8_0, q4_0 or q4_1");
    if (!gguf_output && gguf_type != 0)
      throw CLI::ValidationError("--output", "--method " + opts->method + " writes a GGUF file: give -o a name ending in .gguf");
    static const std::map<std::string, kernels::LinearFormat> methods{{"llm-int8", kernels::LinearFormat::LlmInt8},
                                                                      {"w8a8", kernels::LinearFormat::W8A8},
                                                                      {"w4a16", kernels::LinearFormat::W4A16}};
    quant::QuantizeOptions q;
    if (gguf_type == 0) q.method = methods.at(opts->method);
    q.llm_int8.threshold = opts->threshold;
    q.w4a16.group_size = opts->group_size;
    q.w4a16.symmetric = !opts->asymmetric;
    q.w4a16.scale_search = opts->scale_search == "on";
    q.gguf_type = gguf_type;
    q.gguf_scale_search =
        scale_search->count() > 0 ? opts->scale_search == "on" : (gguf_type == ggml_type::Q8_0 || calib->count() > 0);
    // The calibration file has Hugging Face module names; the GGUF driver asks by GGUF name.
    if (calib->count() > 0)
      q.importance = calibration_importance(opts->calib, [](const std::string& gguf_module) {
        const std::string hf = model::hf_name_of_gguf(gguf_module + ".weight");
        return hf.substr(0, hf.size() - 7);
      });
    q.skip = opts->skip;
    q.max_shard_bytes = parse_byte_size(opts->max_shard);
    q.overwrite = opts->overwrite;
    q.allow_requantize = opts->allow_requantize;
    const auto start = std::chrono::steady_clock::now();
    const Checkpoint ck = Checkpoint::open(opts->input);
    quant::QuantizeReport report;
    {
      Progress progress("quantize", ck.tensors().size());
      auto step = [&](size_t, size_t, const std::string& name) { progress.step(name); };
      report = gguf_type != 0 ? quant::quantize_to_gguf(opts->input, opts->output, q, step)
                              : quant::quantize_checkpoint(ck, opts->output, q, step);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (opts->json) std::cout << quant::report_json(report).dump(2) << "\n";
    else print_summary(report, seconds, opts->output);
  });
}

}  // namespace modelpress::cli
