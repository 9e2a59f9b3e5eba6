// modelpress inspect PATH [--json]: every tensor with its dtype, shape, bytes and category,
// totals, the architecture and any quantization already applied.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "io/checkpoint_summary.h"
#include "io/checkpoint_writer.h"

namespace modelpress::cli {
namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
};

std::string shape_text(const nlohmann::ordered_json& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i].get<int64_t>());
  return s + "]";
}

std::string count_text(int64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1'000) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

void print_text(const nlohmann::ordered_json& s) {
  size_t name_width = 4;
  for (const auto& t : s["tensors"]) name_width = std::max(name_width, t["name"].get<std::string>().size());
  std::printf("%-*s  %-7s  %-20s  %12s  %s\n", static_cast<int>(name_width), "name", "dtype", "shape", "bytes", "category");
  for (const auto& t : s["tensors"])
    std::printf("%-*s  %-7s  %-20s  %12lld  %s\n", static_cast<int>(name_width), t["name"].get<std::string>().c_str(),
                t["dtype"].get<std::string>().c_str(), shape_text(t["shape"]).c_str(),
                static_cast<long long>(t["bytes"].get<int64_t>()), t["category"].get<std::string>().c_str());
  std::printf("\n%-18s  %8s  %12s  %12s\n", "category", "tensors", "parameters", "size");
  for (const auto& [name, c] : s["categories"].items())
    std::printf("%-18s  %8lld  %12s  %12s\n", name.c_str(), static_cast<long long>(c["tensors"].get<int64_t>()),
                count_text(c["parameters"].get<int64_t>()).c_str(), format_bytes(c["bytes"].get<uint64_t>()).c_str());
  const auto& tot = s["totals"];
  std::printf("%-18s  %8lld  %12s  %12s\n\n", "total", static_cast<long long>(tot["tensors"].get<int64_t>()),
              count_text(tot["parameters"].get<int64_t>()).c_str(), format_bytes(tot["bytes"].get<uint64_t>()).c_str());
  std::printf("format:        %s (%zu file%s)\n", s["format"].get<std::string>().c_str(), s["files"].size(),
              s["files"].size() == 1 ? "" : "s");
  std::printf("architecture:  %s\n", s["architecture"].get<std::string>().c_str());
  const auto& q = s["quantization"];
  std::string qtext = q["method"].get<std::string>();
  if (q.contains("tensor_types")) {
    qtext += " (";
    bool first = true;
    for (const auto& [type, n] : q["tensor_types"].items()) {
      qtext += (first ? "" : ", ") + type + " x" + std::to_string(n.get<int>());
      first = false;
    }
    qtext += ")";
  }
  if (q.contains("int8_layers")) qtext += " (" + std::to_string(q["int8_layers"].get<int>()) + " int8 layers)";
  if (q.contains("packed_layers")) qtext += " (" + std::to_string(q["packed_layers"].get<int>()) + " packed layers)";
  std::printf("quantization:  %s\n", qtext.c_str());
  if (!s["carried_files"].empty()) {
    std::string files;
    for (const auto& f : s["carried_files"]) files += (files.empty() ? "" : ", ") + f.get<std::string>();
    std::printf("side files:    %s\n", files.c_str());
  }
}

}  // namespace

void set_inspect_command(CLI::App& app) {
  auto opts = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "List every tensor (dtype, shape, bytes, category), totals, the "
                                                "architecture and any existing quantization");
  cmd->add_option("path", opts->path, "Checkpoint: a Hugging Face folder, a .safetensors or .gguf file, or a "
                                      "model.safetensors.index.json")
      ->required();
  cmd->add_flag("--json", opts->json, "Print JSON with stable keys instead of tables");
  cmd->callback([opts] {
    const Checkpoint ck = Checkpoint::open(opts->path);
    const auto summary = summarize_checkpoint(ck, opts->path);
    if (opts->json)
      std::cout << summary.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    else
      print_text(summary);
  });
}

}  // namespace modelpress::cli
