#include "io/report_json.h"

#include <cmath>

namespace modelpress {

nlohmann::ordered_json json_number(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

namespace {

using nlohmann::ordered_json;

ordered_json error_json(const OutputError& e) {
  return {{"relative_error", json_number(e.relative_error)},
          {"sqnr_db", json_number(e.sqnr_db)},
          {"cosine", json_number(e.cosine)},
          {"max_abs_error", json_number(e.max_abs_error)}};
}

double ratio(double num, double den) { return den > 0 ? num / den : std::nan(""); }

ordered_json layer_json(const LayerReport& l) {
  ordered_json j;
  j["name"] = l.name;
  j["format"] = l.format;
  j["out_features"] = l.n;
  j["in_features"] = l.k;
  j["rows"] = l.rows;
  j["original_bytes"] = l.original_bytes;
  j["packed_bytes"] = l.packed_bytes;
  j["bits_per_weight"] = json_number(l.bits_per_weight);
  j["error"] = error_json(l.error);
  j["latency"] = {{"packed_median_us", json_number(l.packed_latency.median_us)},
                  {"packed_runs", l.packed_latency.runs},
                  {"dense_median_us", json_number(l.dense_latency.median_us)},
                  {"dense_runs", l.dense_latency.runs},
                  {"speedup", json_number(ratio(l.dense_latency.median_us, l.packed_latency.median_us))}};
  ordered_json steps = ordered_json::array();
  for (const auto& s : l.steps) steps.push_back({{"step", s.step}, {"rows", s.rows}, {"error", error_json(s.error)}});
  j["steps"] = std::move(steps);
  if (l.outliers) {
    const auto& o = *l.outliers;
    j["outliers"] = {{"threshold", o.threshold},
                     {"count", o.columns.size()},
                     {"share", json_number(o.share)},
                     {"columns", o.columns},
                     {"without_decomposition", error_json(o.without_decomposition)},
                     {"paper_mode", o.paper_mode ? error_json(*o.paper_mode) : ordered_json(nullptr)},
                     {"paper_mode_note", o.paper_mode_note}};
  } else {
    j["outliers"] = nullptr;
  }
  return j;
}

}  // namespace

ordered_json validation_report_json(const ValidationReport& r) {
  const ReportTotals t = report_totals(r);
  ordered_json j;
  j["schema_version"] = 1;
  j["original"] = r.original;
  j["compressed"] = r.compressed;
  j["method"] = r.method;
  j["backend"] = r.backend;
  j["backend_note"] = r.backend_note;
  j["activations"] = {{"kind", r.activations},
                      {"rows", r.rows},
                      {"seed", r.seed},
                      {"calibration_file", r.calibration_path},
                      {"calibration_source", r.calibration_source}};
  j["size"] = {{"original_checkpoint_bytes", r.original_checkpoint_bytes},
               {"compressed_checkpoint_bytes", r.compressed_checkpoint_bytes},
               {"checkpoint_ratio", json_number(ratio(static_cast<double>(r.original_checkpoint_bytes),
                                                 static_cast<double>(r.compressed_checkpoint_bytes)))},
               {"original_layer_bytes", t.original_layer_bytes},
               {"bits_per_weight", json_number(t.bits_per_weight)},
               {"packed_layer_bytes", t.packed_layer_bytes},
               {"layer_ratio", json_number(ratio(static_cast<double>(t.original_layer_bytes),
                                            static_cast<double>(t.packed_layer_bytes)))}};
  j["accuracy"] = {{"mean_relative_error", json_number(t.mean_relative_error)},
                   {"worst_relative_error", json_number(t.worst_relative_error)},
                   {"worst_layer", t.worst_layer}};
  j["latency"] = {{"packed_total_us", json_number(t.packed_us)},
                  {"dense_total_us", json_number(t.dense_us)},
                  {"speedup", json_number(ratio(t.dense_us, t.packed_us))}};
  ordered_json layers = ordered_json::array();
  for (const auto& l : r.layers) layers.push_back(layer_json(l));
  j["layers"] = std::move(layers);
  j["notes"] = r.notes;
  return j;
}

}  // namespace modelpress
