// modelpress bench: per kernel and shape, median latency, bandwidth, operations per second and
// the ratio to the dense baseline of the same run (bench/kernel_bench.h), on the CPU or the GPU.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "bench/kernel_bench.h"
#include "cli/commands.h"
#include "io/error.h"
#include "kernels/backend.h"

namespace modelpress::cli {
namespace {

struct BenchCommandOptions {
  bench::BenchOptions run;
  std::string backend = "auto";
  std::string kernels;
  std::string shapes;
  bool json = false;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// "cpu" or "cuda"; an explicit cuda that cannot run is an error (the user asked for GPU
// numbers), auto falls back to the CPU and says so in `note`.
std::string resolve_backend(const std::string& wanted, std::string& note) {
  if (wanted == "cpu") return "cpu";
  const kernels::BackendInfo* cuda = nullptr;
  const auto backends = kernels::list_backends();
  for (const auto& b : backends)
    if (b.name == "cuda") cuda = &b;
  const std::string detail = cuda ? cuda->detail : std::string("built without CUDA");
  if (cuda && cuda->usable) return "cuda";
  if (wanted == "cuda") throw Error("--backend cuda: not available (" + detail + "); use --backend cpu or auto");
  note = "auto: cuda unavailable (" + detail + "), using cpu";
  return "cpu";
}

}  // namespace

void set_bench_command(CLI::App& app) {
  auto opts = std::make_shared<BenchCommandOptions>();
  auto& r = opts->run;
  CLI::App* cmd = app.add_subcommand(
      "bench", "Time the kernels (dense baseline, int8 GEMM, W8A8, LLM.int8, W4A16) per shape: median latency, "
               "GB/s, TOP/s and the ratio to the dense baseline measured in the same run");
  cmd->add_option("--backend", opts->backend, "Where to run: cpu, cuda, or auto (cuda when usable)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  std::string names;
  for (const auto& k : bench::bench_kernel_names()) names += (names.empty() ? "" : ",") + k;
  cmd->add_option("--kernels", opts->kernels, "Comma-separated kernels (default all: " + names +
                                                  "); dense always runs as the baseline")
      ->check([](const std::string& v) -> std::string {
        for (const auto& k : split_commas(v)) {
          const auto& all = bench::bench_kernel_names();
          if (std::find(all.begin(), all.end(), k) == all.end()) return "unknown kernel '" + k + "'";
        }
        return "";
      });
  cmd->add_option("--shapes", opts->shapes, "Comma-separated MxNxK (x: M x K, W: N x K); default per backend")
      ->check([](const std::string& v) -> std::string {
        for (const auto& s : split_commas(v)) {
          bench::BenchShape shape;
          std::string why;
          if (!bench::parse_shape(s, &shape, &why)) return why;
        }
        return "";
      });
  cmd->add_option("--runs", r.runs, "Timed runs per case (default 10 on cpu, 100 on cuda)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", r.warmup, "Untimed runs first")->capture_default_str()->check(CLI::Range(0, 10000));
  cmd->add_option("--max-seconds", r.max_seconds, "Per case, stop timing past this (after 5 runs)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--group", r.group, "W4A16 group size")->capture_default_str()->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  cmd->add_option("--dtype", r.dtype, "CUDA activations and outputs")->capture_default_str()
      ->check(CLI::IsMember({"f16", "bf16"}));
  cmd->add_option("--seed", r.seed, "Seed of the random inputs")->capture_default_str();
  cmd->add_flag("--json", opts->json, "Print JSON (stable keys) instead of the Markdown table");
  cmd->callback([opts] {
    auto& run = opts->run;
    run.kernels = split_commas(opts->kernels);
    run.shapes.clear();
    for (const auto& s : split_commas(opts->shapes)) {
      bench::BenchShape shape;
      bench::parse_shape(s, &shape, nullptr);
      run.shapes.push_back(shape);
    }
    std::string note;
    run.backend = resolve_backend(opts->backend, note);
    bench::BenchReport report;
    if (run.backend == "cuda") {
#ifdef MODELPRESS_HAVE_CUDA
      report = bench::run_cuda_bench(run);
#endif
    } else {
      report = bench::run_cpu_bench(run);
    }
    if (!note.empty()) report.notes.insert(report.notes.begin(), note);
    std::cout << (opts->json ? bench::bench_report_json(report) : bench::bench_report_markdown(report));
  });
}

}  // namespace modelpress::cli
