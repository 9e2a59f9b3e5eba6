// modelpress validate --original A --compressed B: runs every packed layer of B through its
// kernel and against A's original weight, and reports accuracy, size and latency (a
// Markdown summary on stdout, or JSON with --json; --report writes .html/.md/.json).
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/progress.h"
#include "io/error.h"
#include "io/report_file.h"
#include "io/report_json.h"
#include "io/report_markdown.h"
#include "kernels/backend.h"
#include "eval/validate.h"

namespace modelpress::cli {
namespace {

struct ValidateCommandOptions {
  eval::ValidateOptions run;
  std::string backend = "auto";
  std::string report;
  bool json = false;
};

// The backend to run on; `note` says why auto picked what it did. An explicit cuda that
// cannot run is an error, not a silent CPU run: the user asked for GPU numbers.
kernels::Backend pick_backend(const std::string& wanted, std::string& note, bool& fall_back) {
  if (wanted == "cpu") return kernels::Backend::Cpu;
  const kernels::BackendInfo* cuda = nullptr;
  const auto backends = kernels::list_backends();
  for (const auto& b : backends)
    if (b.name == "cuda") cuda = &b;
  const bool usable = cuda && cuda->usable;
  if (wanted == "cuda") {
    if (!usable)
      throw Error("--backend cuda: not available (" + (cuda ? cuda->detail : std::string("built without CUDA")) +
                  "); use --backend cpu or auto");
    return kernels::Backend::Cuda;
  }
  if (usable) {
    fall_back = true;  // the GPU is there; the driver still checks its kernels take the layers
    return kernels::Backend::Cuda;
  }
  note = "auto: cuda unavailable (" + (cuda ? cuda->detail : std::string("built without CUDA")) + "), using cpu";
  return kernels::Backend::Cpu;
}

// --report renames its file over the target: an existing file that is an input (the
// calibration file, a checkpoint file, or any file inside a checkpoint folder such as its
// config.json) would be silently replaced. Refused before any work.
void refuse_report_over_input(const std::string& report, const eval::ValidateOptions& run) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(report, ec)) return;
  for (const std::string& in : {run.original, run.compressed, run.calibration}) {
    if (in.empty()) continue;
    const bool inside = fs::is_directory(in, ec) && fs::equivalent(fs::absolute(report).parent_path(), in, ec);
    if (inside || fs::equivalent(report, in, ec))
      throw Error(report + ": --report would overwrite a file of the input " + in + "; write the report elsewhere");
  }
}

}  // namespace

void set_validate_command(CLI::App& app) {
  auto opts = std::make_shared<ValidateCommandOptions>();
  auto& r = opts->run;
  CLI::App* cmd = app.add_subcommand("validate", "Run every packed layer of a compressed checkpoint through its kernel "
                                                 "and compare with the original: error, size, latency");
  cmd->add_option("--original", r.original, "The checkpoint the compressed one was made from")->required();
  cmd->add_option("--compressed", r.compressed, "The compressed checkpoint (bitsandbytes int8, compressed-tensors, or modelpress-palettization from `cluster`)")
      ->required();
  cmd->add_option("--calib", r.calibration, "Calibration file with recorded layer inputs "
                                            "(tools/record_calibration.py); default: synthetic activations");
  cmd->add_option("--backend", opts->backend, "Where the kernels run: cpu, cuda, or auto (cuda when usable)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--rows", r.rows, "Activation rows (tokens) per layer; with --calib at most this many, "
                                    "spread evenly over the file's rows")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--seed", r.seed, "Seed of the synthetic activations")->capture_default_str();
  cmd->add_option("--runs", r.timed_runs, "Timed kernel runs per layer, at most: the median is reported, and a "
                                       "kernel stops after 5 runs once 0.3 s are spent on it")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--report", opts->report, "Also write the report to FILE: .html, .md or .json by extension");
  cmd->add_option("--dump-outputs", r.dump_outputs,
                  "Also write FILE.safetensors with each layer's activations <layer>.x, kernel output <layer>.y "
                  "and dense output <layer>.y_reference (f32), for comparing with other tools");
  cmd->add_flag("--json", opts->json, "Print the report as JSON instead of the Markdown summary");
  cmd->callback([opts] {
    auto& run = opts->run;
    if (!opts->report.empty()) {
      report_kind_for(opts->report);  // a bad name fails before the work
      refuse_report_over_input(opts->report, run);
    }
    run.backend = pick_backend(opts->backend, run.backend_note, run.fall_back_to_cpu);
    std::unique_ptr<Progress> progress;
    run.on_layer = [&progress](size_t i, size_t n, const std::string& name) {
      if (!progress) progress = std::make_unique<Progress>("validate", n);
      progress->step(name);
    };
    const ValidationReport report = eval::validate_checkpoints(run);
    progress.reset();  // end the progress line before printing
    if (!opts->report.empty()) write_validation_report(opts->report, report);
    if (opts->json)
      std::cout << validation_report_json(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                << "\n";
    else
      std::cout << validation_report_markdown(report);
    if (!opts->report.empty() && !opts->json) std::cout << "\nreport written to " << opts->report << "\n";
  });
}

}  // namespace modelpress::cli
