// Shapes, kernel names and the two report formats of `modelpress bench`.
#include "bench/kernel_bench.h"

#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace modelpress::bench {

std::string shape_string(const BenchShape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
}

bool parse_shape(const std::string& text, BenchShape* out, std::string* why) {
  int64_t v[3];
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    size_t end = pos;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
    const bool sep_ok = i < 2 ? end < text.size() && (text[end] == 'x' || text[end] == 'X') : end == text.size();
    if (end == pos || end - pos > 9 || !sep_ok) {
      if (why) *why = "'" + text + "' is not MxNxK with positive integers (for example 1x4096x4096)";
      return false;
    }
    v[i] = std::stoll(text.substr(pos, end - pos));
    if (v[i] <= 0) {
      if (why) *why = "'" + text + "': every dimension must be at least 1";
      return false;
    }
    pos = end + 1;
  }
  *out = {v[0], v[1], v[2]};
  return true;
}

const std::vector<std::string>& bench_kernel_names() {
  // lut3 / lut4: palettized weights (docs/CLUSTERING.md), 3- and 4-bit indices, one table.
  static const std::vector<std::string> names = {"dense", "int8-gemm", "w8a8", "llm-int8", "w4a16", "w4a16-asym",
                                                 "lut3", "lut4"};
  return names;
}

std::vector<BenchShape> default_shapes(const std::string& backend) {
  if (backend == "cuda")
    // The goals of docs/PERFORMANCE.md: W4A16 decode (batch 1 and 16) on an 8192^2 weight, the
    // LLM.int8 layer (512 tokens, 4096^2 weight) and the W8A8 GEMM at 8192^3.
    return {{1, 8192, 8192}, {16, 8192, 8192}, {512, 4096, 4096}, {8192, 8192, 8192}};
  // Two CPU cores: decode and a small prefill at 4096^2.
  return {{1, 4096, 4096}, {16, 4096, 4096}, {256, 4096, 4096}};
}

namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

std::string bench_report_markdown(const BenchReport& r) {
  std::string s = "backend " + r.backend + ": " + r.device + "\n\n";
  s += "| kernel | MxNxK | median | runs | rot | GB/s | TOP/s | x dense | note |\n";
  s += "|---|---|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& row : r.rows) {
    const std::string median = row.median_us >= 1000 ? fixed(row.median_us / 1000, 3) + " ms"
                                                     : fixed(row.median_us, 1) + " us";
    s += "| " + row.kernel + " | " + shape_string(row.shape) + " | " + median + " | " + std::to_string(row.runs) +
         " | " + std::to_string(row.rotation) + " | " + fixed(row.gbps, 1) + " | " + fixed(row.tops, 3) + " | " +
         fixed(row.vs_dense, 2) + " | " + row.note + " |\n";
  }
  for (const auto& n : r.notes) s += "\n" + n;
  if (!r.notes.empty()) s += "\n";
  return s;
}

std::string bench_report_json(const BenchReport& r) {
  nlohmann::ordered_json j;
  j["backend"] = r.backend;
  j["device"] = r.device;
  j["rows"] = nlohmann::ordered_json::array();
  for (const auto& row : r.rows) {
    nlohmann::ordered_json e;
    e["kernel"] = row.kernel;
    e["m"] = row.shape.m;
    e["n"] = row.shape.n;
    e["k"] = row.shape.k;
    e["median_us"] = row.median_us;
    e["runs"] = row.runs;
    e["rotation"] = row.rotation;
    e["calls"] = row.calls;
    e["bytes"] = row.bytes;
    e["ops"] = row.ops;
    e["gb_per_s"] = row.gbps;
    e["tera_ops_per_s"] = row.tops;
    e["vs_dense"] = row.vs_dense;
    e["note"] = row.note;
    j["rows"].push_back(e);
  }
  j["notes"] = r.notes;
  return j.dump(2) + "\n";
}

}  // namespace modelpress::bench
