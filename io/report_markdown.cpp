#include "io/report_markdown.h"

#include <cmath>
#include <sstream>

#include "io/checkpoint_writer.h"
#include "io/report_text.h"

namespace modelpress {
namespace {

namespace rt = report_text;

// A table cell: '|' would end the cell and a newline the row.
std::string cell(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

double ratio(double num, double den) { return den > 0 ? num / den : std::nan(""); }

}  // namespace

std::string validation_report_markdown(const ValidationReport& r) {
  const ReportTotals t = report_totals(r);
  std::ostringstream o;
  o << "## modelpress validate\n\n";
  o << "- original: `" << r.original << "` (" << format_bytes(r.original_checkpoint_bytes) << ")\n";
  o << "- compressed: `" << r.compressed << "` (" << format_bytes(r.compressed_checkpoint_bytes) << ", "
    << rt::ratio(ratio(static_cast<double>(r.original_checkpoint_bytes),
                       static_cast<double>(r.compressed_checkpoint_bytes)))
    << " smaller)\n";
  o << "- method: " << r.method << "; backend: " << r.backend;
  if (!r.backend_note.empty()) o << " (" << r.backend_note << ")";
  o << "\n- activations: " << r.activations;
  if (r.activations == "calibration") {
    o << " from `" << r.calibration_path << "`";
    if (!r.calibration_source.empty()) o << " (source: " << r.calibration_source << ")";
  } else {
    o << " (heavy-tailed with outlier channels, seed " << r.seed << ")";
  }
  o << ", up to " << r.rows << " rows per layer\n\n";

  o << "| layer | format | out x in | bits/w | bytes (orig -> packed) | rel. error | SQNR dB | cosine | max abs err "
       "| packed us | dense us | speedup | outlier cols |\n";
  o << "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& l : r.layers) {
    o << "| " << cell(l.name) << " | " << cell(l.format) << " | " << l.n << "x" << l.k << " | "
      << rt::fixed(l.bits_per_weight, 2) << " | " << format_bytes(l.original_bytes) << " -> "
      << format_bytes(l.packed_bytes) << " | " << rt::relative_error(l.error.relative_error) << " | "
      << rt::sqnr_db(l.error.sqnr_db) << " | " << rt::cosine(l.error.cosine) << " | "
      << rt::max_abs(l.error.max_abs_error) << " | " << rt::microseconds(l.packed_latency.median_us) << " | "
      << rt::microseconds(l.dense_latency.median_us) << " | "
      << rt::ratio(ratio(l.dense_latency.median_us, l.packed_latency.median_us)) << " | ";
    if (l.outliers) o << l.outliers->columns.size() << " (" << rt::percent(l.outliers->share) << ")";
    else o << "-";
    o << " |\n";
  }

  o << "\nTotals over " << r.layers.size() << " packed layers: weights " << format_bytes(t.original_layer_bytes)
    << " -> " << format_bytes(t.packed_layer_bytes) << " ("
    << rt::ratio(ratio(static_cast<double>(t.original_layer_bytes), static_cast<double>(t.packed_layer_bytes)))
    << "); relative error mean " << rt::relative_error(t.mean_relative_error) << ", worst "
    << rt::relative_error(t.worst_relative_error);
  if (!t.worst_layer.empty()) o << " (" << t.worst_layer << ")";
  o << "; latency " << rt::microseconds(t.packed_us) << " us packed vs " << rt::microseconds(t.dense_us)
    << " us dense f32 (" << rt::ratio(ratio(t.dense_us, t.packed_us)) << ").\n";

  bool any_outliers = false;
  for (const auto& l : r.layers) any_outliers = any_outliers || l.outliers.has_value();
  if (any_outliers) {
    o << "\n### LLM.int8 outlier decomposition (relative error)\n\n";
    o << "| layer | threshold | outlier cols | share | decomposed | without (threshold 0) | paper mode (fp16 cols) |\n";
    o << "|---|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& l : r.layers) {
      if (!l.outliers) continue;
      const auto& x = *l.outliers;
      o << "| " << cell(l.name) << " | " << rt::fixed(x.threshold, 1) << " | " << x.columns.size() << " | "
        << rt::percent(x.share) << " | " << rt::relative_error(l.error.relative_error) << " | "
        << rt::relative_error(x.without_decomposition.relative_error) << " | "
        << (x.paper_mode ? rt::relative_error(x.paper_mode->relative_error) : std::string("-")) << " |\n";
    }
  }

  const auto steps = step_summaries(r);
  if (!steps.empty()) {
    o << "\n### Relative error per calibration step (over layers)\n\n| step | layers | mean | worst |\n"
         "|---:|---:|---:|---:|\n";
    for (const auto& x : steps)
      o << "| " << x.step << " | " << x.layers << " | " << rt::relative_error(x.mean_relative_error) << " | "
        << rt::relative_error(x.worst_relative_error) << " |\n";
  }

  if (!r.notes.empty()) {
    o << "\nNotes:\n";
    for (const auto& n : r.notes) o << "- " << n << "\n";
  }
  return o.str();
}

}  // namespace modelpress
