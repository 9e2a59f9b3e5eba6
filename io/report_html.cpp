#include "io/report_html.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "io/checkpoint_writer.h"
#include "io/report_text.h"
#include "io/svg_chart.h"

namespace modelpress {
namespace {

namespace rt = report_text;

// Colour-blind-safe pairs from the Tableau 10 palette.
constexpr const char* kBlue = "#4e79a7";
constexpr const char* kOrange = "#f28e2b";
constexpr const char* kGreen = "#59a14f";
constexpr const char* kGrey = "#9d9d9d";

constexpr const char* kStyle = R"(
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1140px; padding: 0 12px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 13px; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; font-family: monospace; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card .v { font-size: 22px; font-weight: bold; } .card .k { font-size: 12px; color: #666; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 11px; width: 100%; }
th, td { border: 1px solid #e2e2e2; padding: 2px 5px; text-align: right; white-space: nowrap; }
td.wrap { white-space: normal; text-align: left; font-family: monospace; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; font-family: monospace; }
tr:nth-child(even) td { background: #fafafa; }
.notes li { color: #7a5200; }
svg { display: block; margin: 8px 0; max-width: 100%; height: auto; }
)";

std::string esc(const std::string& s) { return xml_escape(s); }

double ratio(double num, double den) { return den > 0 ? num / den : std::nan(""); }

std::string megabytes(double mb) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", mb);
  return buf;
}

void card(std::ostringstream& o, const std::string& value, const std::string& key) {
  o << "<div class=\"card\"><div class=\"v\">" << esc(value) << "</div><div class=\"k\">" << esc(key)
    << "</div></div>\n";
}

std::string error_chart(const ValidationReport& r) {
  BarChart c;
  c.title = "Output SQNR per layer (dB, higher is better)";
  c.axis_label = "SQNR = 10 log10(|y_ref|\u00b2 / |y - y_ref|\u00b2) in dB; y_ref = x W\u1d40 with the original f32 weight";
  c.infinity_label = "exact";
  c.format = [](double v) { return rt::fixed(v, 1); };
  ChartSeries packed{"packed layer, as stored (" + r.method + ")", kBlue, {}};
  ChartSeries plain{"LLM.int8 without decomposition (threshold 0)", kOrange, {}, ""};
  ChartSeries paper{"LLM.int8 paper mode (fp16 outlier weight columns)", kGreen, {}, ""};
  bool any_outliers = false, any_paper = false;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& l : r.layers) {
    c.categories.push_back(l.name);
    packed.values.push_back(l.error.sqnr_db);
    any_outliers = any_outliers || l.outliers.has_value();
    any_paper = any_paper || (l.outliers && l.outliers->paper_mode);
    plain.values.push_back(l.outliers ? l.outliers->without_decomposition.sqnr_db : nan);
    paper.values.push_back(l.outliers && l.outliers->paper_mode ? l.outliers->paper_mode->sqnr_db : nan);
  }
  c.series.push_back(std::move(packed));
  if (any_outliers) c.series.push_back(std::move(plain));
  if (any_paper) c.series.push_back(std::move(paper));
  return svg_bar_chart(c);
}

std::string latency_chart(const ValidationReport& r) {
  BarChart c;
  c.title = "Kernel latency per layer on " + r.backend + " (median, \u00b5s, lower is better)";
  c.axis_label = "microseconds per call, " + std::to_string(r.rows) + " rows";
  c.format = [](double v) { return rt::microseconds(v); };
  ChartSeries packed{"packed (" + r.method + ")", kBlue, {}};
  ChartSeries dense{"dense f32 baseline", kGrey, {}};
  for (const auto& l : r.layers) {
    c.categories.push_back(l.name);
    packed.values.push_back(l.packed_latency.median_us);
    dense.values.push_back(l.dense_latency.median_us);
  }
  c.series = {std::move(packed), std::move(dense)};
  return svg_bar_chart(c);
}

std::string size_chart(const ValidationReport& r, const ReportTotals& t) {
  BarChart c;
  c.title = "Size before and after (MB)";
  c.axis_label = "megabytes (10^6 bytes)";
  c.format = megabytes;
  c.categories = {"whole checkpoint", "packed layers' weights"};
  c.series = {{"original", kGrey,
               {static_cast<double>(r.original_checkpoint_bytes) / 1e6, static_cast<double>(t.original_layer_bytes) / 1e6}},
              {"compressed", kBlue,
               {static_cast<double>(r.compressed_checkpoint_bytes) / 1e6,
                static_cast<double>(t.packed_layer_bytes) / 1e6}}};
  return svg_bar_chart(c);
}

void layer_table(std::ostringstream& o, const ValidationReport& r) {
  o << "<div class=\"scroll\"><table>\n<tr><th class=\"l\">layer</th><th>format</th><th>out &times; in</th><th>bits/w</th><th>original</th>"
       "<th>packed</th><th>rel. error</th><th>SQNR dB</th><th>cosine</th><th>max abs err</th><th>packed &micro;s</th>"
       "<th>dense &micro;s</th><th>speedup</th><th>outlier cols</th></tr>\n";
  for (const auto& l : r.layers) {
    o << "<tr><td class=\"l\">" << esc(l.name) << "</td><td>" << esc(l.format) << "</td><td>" << l.n << " &times; "
      << l.k << "</td><td>" << rt::fixed(l.bits_per_weight, 2) << "</td><td>" << esc(format_bytes(l.original_bytes))
      << "</td><td>" << esc(format_bytes(l.packed_bytes)) << "</td><td>" << rt::relative_error(l.error.relative_error)
      << "</td><td>" << rt::sqnr_db(l.error.sqnr_db) << "</td><td>" << rt::cosine(l.error.cosine) << "</td><td>"
      << rt::max_abs(l.error.max_abs_error) << "</td><td>" << rt::microseconds(l.packed_latency.median_us)
      << "</td><td>" << rt::microseconds(l.dense_latency.median_us) << "</td><td>"
      << rt::ratio(ratio(l.dense_latency.median_us, l.packed_latency.median_us)) << "</td><td>";
    if (l.outliers) o << l.outliers->columns.size() << " (" << rt::percent(l.outliers->share) << ")";
    else o << "&ndash;";
    o << "</td></tr>\n";
  }
  o << "</table></div>\n";
}

void outlier_table(std::ostringstream& o, const ValidationReport& r) {
  o << "<h2>LLM.int8 outlier decomposition</h2>\n<p>Feature columns of the activations holding any |x| &ge; "
       "threshold go through a floating-point product; the rest through int8. Relative error of each variant:</p>\n";
  o << "<div class=\"scroll\"><table>\n<tr><th class=\"l\">layer</th><th>threshold</th><th>outlier cols</th><th>share of K</th>"
       "<th>decomposed</th><th>without (threshold 0)</th><th>paper mode</th><th class=\"l\">columns</th></tr>\n";
  for (const auto& l : r.layers) {
    if (!l.outliers) continue;
    const auto& x = *l.outliers;
    std::string cols;
    for (size_t i = 0; i < x.columns.size() && i < 8; ++i) cols += (i ? ", " : "") + std::to_string(x.columns[i]);
    if (x.columns.size() > 8) cols += ", \u2026";
    o << "<tr><td class=\"l\">" << esc(l.name) << "</td><td>" << rt::fixed(x.threshold, 1) << "</td><td>"
      << x.columns.size() << "</td><td>" << rt::percent(x.share) << "</td><td>"
      << rt::relative_error(l.error.relative_error) << "</td><td>"
      << rt::relative_error(x.without_decomposition.relative_error) << "</td><td>"
      << (x.paper_mode ? rt::relative_error(x.paper_mode->relative_error) : std::string("&ndash;"))
      << "</td><td class=\"wrap\">" << esc(cols) << "</td></tr>\n";
  }
  o << "</table></div>\n";
}

}  // namespace

std::string validation_report_html(const ValidationReport& r) {
  const ReportTotals t = report_totals(r);
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>modelpress validate: " << esc(r.compressed) << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n";
  o << "<h1>modelpress validate</h1>\n<dl class=\"meta\">\n";
  const auto meta = [&](const std::string& k, const std::string& v) {
    o << "<dt>" << esc(k) << "</dt><dd>" << esc(v) << "</dd>\n";
  };
  meta("original", r.original + " (" + format_bytes(r.original_checkpoint_bytes) + ")");
  meta("compressed", r.compressed + " (" + format_bytes(r.compressed_checkpoint_bytes) + ")");
  meta("method", r.method);
  meta("backend", r.backend + (r.backend_note.empty() ? "" : " (" + r.backend_note + ")"));
  std::string act = r.activations + ", up to " + std::to_string(r.rows) + " rows per layer";
  if (r.activations == "calibration")
    act += ", from " + r.calibration_path + (r.calibration_source.empty() ? "" : " (source: " + r.calibration_source + ")");
  else
    act += " (heavy-tailed, outlier channels, seed " + std::to_string(r.seed) + ")";
  meta("activations", act);
  o << "</dl>\n<div class=\"cards\">\n";
  card(o, rt::ratio(ratio(static_cast<double>(r.original_checkpoint_bytes), static_cast<double>(r.compressed_checkpoint_bytes))),
       "checkpoint smaller");
  card(o, rt::fixed(t.bits_per_weight, 2),
       "bits per weight (packed layers)");
  card(o, rt::relative_error(t.mean_relative_error), "mean relative error");
  card(o, rt::relative_error(t.worst_relative_error), "worst relative error" + (t.worst_layer.empty() ? "" : ": " + t.worst_layer));
  card(o, rt::ratio(ratio(t.dense_us, t.packed_us)), "kernel speed vs dense f32");
  o << "</div>\n";

  if (!r.notes.empty()) {
    o << "<ul class=\"notes\">\n";
    for (const auto& n : r.notes) o << "<li>" << esc(n) << "</li>\n";
    o << "</ul>\n";
  }
  o << "<h2>Accuracy</h2>\n" << error_chart(r);
  o << "<h2>Latency</h2>\n" << latency_chart(r);
  o << "<h2>Size</h2>\n" << size_chart(r, t);
  o << "<h2>Layers</h2>\n";
  layer_table(o, r);
  bool any_outliers = false;
  for (const auto& l : r.layers) any_outliers = any_outliers || l.outliers.has_value();
  if (any_outliers) outlier_table(o, r);
  const auto steps = step_summaries(r);
  if (!steps.empty()) {
    o << "<h2>Per calibration step</h2>\n<div class=\"scroll\"><table>\n<tr><th>step</th><th>layers</th><th>mean rel. error</th>"
         "<th>worst rel. error</th></tr>\n";
    for (const auto& s : steps)
      o << "<tr><td>" << s.step << "</td><td>" << s.layers << "</td><td>" << rt::relative_error(s.mean_relative_error)
        << "</td><td>" << rt::relative_error(s.worst_relative_error) << "</td></tr>\n";
    o << "</table></div>\n";
  }
  o << "<p style=\"color:#888;font-size:11px;margin-top:24px\">Written by modelpress validate. Keys and definitions: "
       "docs/VALIDATE.md in the modelpress repository.</p>\n</body>\n</html>\n";
  return o.str();
}

}  // namespace modelpress
