// A small but complete validation report for the writer tests and the headless-browser
// rendering test: layers with every optional part (outliers, paper mode, steps), an exact
// layer (SQNR +inf) and a layer without outlier analysis.
#pragma once
#include <cmath>
#include <limits>
#include <string>

#include "io/validation_report.h"

namespace modelpress::testing {

inline ValidationReport sample_report(int layers = 6) {
  ValidationReport r;
  r.original = "models/tiny";
  r.compressed = "out/tiny-int8";
  r.method = "llm-int8";
  r.backend = "cpu";
  r.activations = "synthetic";
  r.seed = 7;
  r.rows = 64;
  r.original_checkpoint_bytes = 9'000'000;
  r.compressed_checkpoint_bytes = 2'600'000;
  r.notes.push_back("a note with <markup> & \"quotes\"");
  for (int i = 0; i < layers; ++i) {
    LayerReport l;
    l.name = "model.layers." + std::to_string(i / 2) + (i % 2 ? ".mlp.down_proj" : ".self_attn.q_proj");
    l.format = "llm-int8";
    l.n = 256;
    l.k = i % 2 ? 688 : 256;
    l.rows = 64;
    l.original_bytes = static_cast<uint64_t>(l.n * l.k * 4);
    l.packed_bytes = static_cast<uint64_t>(l.n * l.k + l.n * 4);
    l.bits_per_weight = 8.0 * static_cast<double>(l.packed_bytes) / static_cast<double>(l.n * l.k);
    const double rel = 0.004 * (i + 1);
    l.error = {rel, -20 * std::log10(rel), 1 - rel * rel / 2, 0.01 * (i + 1)};
    if (i == 0) l.error = {0, std::numeric_limits<double>::infinity(), 1, 0};
    l.packed_latency = {120.0 + 10 * i, 25};
    l.dense_latency = {100.0 + 30 * i, 25};
    if (i != 1) {
      OutlierAnalysis o;
      o.threshold = 6;
      o.columns = {3, 17, 200};
      o.share = 3.0 / static_cast<double>(l.k);
      o.without_decomposition = {0.08, -20 * std::log10(0.08), 0.9968, 0.9};
      if (i % 3 == 0) o.paper_mode = OutputError{rel * 0.9, -20 * std::log10(rel * 0.9), 1, 0.01};
      else o.paper_mode_note = "not measured";
      l.outliers = o;
    }
    if (i < 2)
      for (int s = 0; s < 3; ++s) l.steps.push_back({s * 100, 20 + s, {rel * (1 + s), -20 * std::log10(rel * (1 + s)), 1, 0.1}});
    r.layers.push_back(l);
  }
  return r;
}

}  // namespace modelpress::testing
