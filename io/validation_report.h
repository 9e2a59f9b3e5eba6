// What `modelpress validate` measured, as plain data. quant/validate.cpp fills it; the
// writers in io/report_{json,markdown,html}.h turn it into files. It lives in io (layer 2)
// so the writers need nothing from the passes.
//
// Non-finite numbers are meaningful here: an SQNR of +inf means the packed layer
// reproduced the reference exactly. Each writer decides how to show them (JSON: null).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace modelpress {

// How far a layer's output y is from the reference y_ref = x W^T + b (both f32, summed in
// double). See docs/VALIDATE.md for the conventions at zero norms.
struct OutputError {
  double relative_error = 0;  // ||y - y_ref||_F / ||y_ref||_F
  double sqnr_db = 0;         // 10 log10(||y_ref||^2 / ||y - y_ref||^2); +inf when y == y_ref
  double cosine = 1;          // <y, y_ref> / (||y|| ||y_ref||)
  double max_abs_error = 0;   // max |y - y_ref|
};

// The error on the rows of one calibration step (diffusion timestep, ...).
struct StepError {
  int64_t step = 0;
  int64_t rows = 0;
  OutputError error;
};

// LLM.int8 only: what the outlier decomposition does on this layer's activations.
struct OutlierAnalysis {
  float threshold = 0;
  std::vector<int32_t> columns;        // feature columns with any |x| >= threshold
  double share = 0;                    // columns.size() / K
  OutputError without_decomposition;   // the same layer with threshold 0 (plain W8A8)
  // Outlier columns with 16-bit weights from the original (the paper's mode), when the
  // pass offers it; otherwise empty and `paper_mode_note` says why.
  std::optional<OutputError> paper_mode;
  std::string paper_mode_note;
};

struct Latency {
  double median_us = 0;
  int runs = 0;
};

struct LayerReport {
  std::string name;    // module prefix: "encoder.layer.0.attention.self.query"
  std::string format;  // quant::method_name: "llm-int8", "w8a8", "w4a16"
  int64_t n = 0, k = 0;
  int64_t rows = 0;    // activation rows the layer was run on
  uint64_t original_bytes = 0;  // the original weight tensor as stored
  uint64_t packed_bytes = 0;    // the packed weight with scales (PackedLayer::weight_bytes)
  double bits_per_weight = 0;
  OutputError error;
  std::vector<StepError> steps;  // per calibration step, when the calibration file has steps
  std::optional<OutlierAnalysis> outliers;
  Latency packed_latency, dense_latency;  // the packed kernel and the DenseF32 baseline
};

struct ValidationReport {
  std::string original, compressed;   // paths as given
  std::string method;                 // the packed layers' method ("llm-int8", ...), or "mixed"
  std::string backend;                // the backend that ran ("cpu", "cuda")
  std::string backend_note;           // e.g. why --backend auto fell back to cpu
  std::string activations;            // "synthetic" or "calibration"
  std::string calibration_path;       // when activations == "calibration"
  std::string calibration_source;     // the calibration file's __metadata__ "source"
  uint64_t seed = 0;                  // synthetic activations
  int64_t rows = 0;                   // requested rows per layer
  uint64_t original_checkpoint_bytes = 0;    // every tensor of each checkpoint
  uint64_t compressed_checkpoint_bytes = 0;
  std::vector<LayerReport> layers;
  std::vector<std::string> notes;     // anything the reader should know (skipped checks, ...)
};

// Sums over the layers, shared by every writer so they agree.
struct ReportTotals {
  uint64_t original_layer_bytes = 0, packed_layer_bytes = 0;
  uint64_t layer_weights = 0;                // sum of N * K
  double bits_per_weight = 0;                // 8 * packed_layer_bytes / layer_weights
  double packed_us = 0, dense_us = 0;        // sum of per-layer medians
  double worst_relative_error = 0;           // max over layers (+inf if any is)
  double mean_relative_error = 0;
  std::string worst_layer;
};
ReportTotals report_totals(const ValidationReport& report);

// Per calibration step, over the layers: a layer-by-step table would run to thousands of
// rows for a diffusion recording, so the Markdown and HTML pages show this (the JSON keeps
// every pair). Ascending by step.
struct StepSummary {
  int64_t step = 0;
  size_t layers = 0;
  double mean_relative_error = 0, worst_relative_error = 0;  // NaN ranks worst
};
std::vector<StepSummary> step_summaries(const ValidationReport& report);

}  // namespace modelpress
