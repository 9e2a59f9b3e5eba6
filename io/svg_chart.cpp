#include "io/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "io/error.h"

namespace modelpress {
namespace {

// Layout constants (pixels). Text metrics are estimated, not measured (there is no font
// engine here): 6.2 px per character of the 11 px sans-serif labels is a safe overestimate
// for the names we print.
constexpr double kCharWidth = 6.2;
constexpr double kTitleY = 18, kLegendY = 38, kPlotTop = 62;
constexpr double kBottom = 44;  // tick labels and the axis label under the plot
constexpr double kRightMargin = 64;  // room for value labels right of the longest bar
constexpr double kGroupGap = 8;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string default_format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// Ticks are round numbers by construction: the shortest form shows them best.
std::string tick_format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `ticks` intervals.
double nice_step(double span, int ticks) {
  const double raw = span / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

// Keeps the end of a long name (its distinguishing part: layer index and module) and marks
// the cut with an ellipsis.
std::string fit_label(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars || max_chars < 2) return s;
  return "\u2026" + s.substr(s.size() - (max_chars - 1));
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string svg_bar_chart(const BarChart& chart) {
  for (const auto& s : chart.series)
    if (s.values.size() != chart.categories.size())
      throw Error("chart '" + chart.title + "': series '" + s.label + "' has " + std::to_string(s.values.size()) +
                  " values for " + std::to_string(chart.categories.size()) + " categories");
  const auto fmt = chart.format ? chart.format : default_format;
  const double width = std::max(chart.width, 400);
  const size_t n_series = std::max<size_t>(1, chart.series.size());

  // Value domain over the finite values, always including 0 (bars start there).
  double lo = 0, hi = 0;
  bool any_inf = false;
  for (const auto& s : chart.series)
    for (const double v : s.values) {
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      } else if (std::isinf(v)) {
        any_inf = true;
      }
    }
  if (hi == lo) hi = lo + 1;
  const double span = hi - lo;
  if (any_inf) hi += 0.1 * span;  // infinite bars reach past every finite one
  if (lo < 0) lo -= 0.12 * span;  // room for the value labels left of negative bars
  const double step = nice_step(hi - lo, 5);
  lo = std::floor(lo / step) * step;
  hi = std::ceil(hi / step) * step;

  size_t longest = 0;
  for (const auto& c : chart.categories) longest = std::max(longest, c.size());
  const size_t max_chars = static_cast<size_t>(0.4 * width / kCharWidth);
  const double label_w = std::min<double>(static_cast<double>(std::min(longest, max_chars)) * kCharWidth + 12, 0.4 * width);
  const double x0 = label_w, x1 = width - kRightMargin;
  const auto sx = [&](double v) { return x0 + (std::clamp(v, lo, hi) - lo) / (hi - lo) * (x1 - x0); };

  const double bar_h = n_series == 1 ? 16 : 12;
  const double group_h = static_cast<double>(n_series) * bar_h + kGroupGap;
  const double plot_h = std::max<double>(group_h, static_cast<double>(chart.categories.size()) * group_h);
  const double height = kPlotTop + plot_h + kBottom;

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(width) << "\" height=\"" << num(height)
    << "\" viewBox=\"0 0 " << num(width) << " " << num(height)
    << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\" role=\"img\">\n";
  o << "<title>" << xml_escape(chart.title) << "</title>\n";
  o << "<rect x=\"0\" y=\"0\" width=\"" << num(width) << "\" height=\"" << num(height) << "\" fill=\"#ffffff\"/>\n";
  o << "<text x=\"" << num(width / 2) << "\" y=\"" << num(kTitleY)
    << "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" << xml_escape(chart.title) << "</text>\n";

  // Legend: a swatch and a label per series, left to right.
  double lx = x0;
  for (const auto& s : chart.series) {
    o << "<rect x=\"" << num(lx) << "\" y=\"" << num(kLegendY - 9) << "\" width=\"10\" height=\"10\" fill=\""
      << xml_escape(s.color) << "\"/>";
    o << "<text x=\"" << num(lx + 14) << "\" y=\"" << num(kLegendY) << "\">" << xml_escape(s.label) << "</text>\n";
    lx += 14 + static_cast<double>(s.label.size()) * kCharWidth + 20;
  }

  // Grid lines and tick labels (under the bars, so drawn first).
  const double plot_bottom = kPlotTop + plot_h;
  for (double v = lo; v <= hi + step * 1e-9; v += step) {
    const double x = sx(v);
    const bool zero = std::abs(v) < step * 1e-9;
    o << "<line x1=\"" << num(x) << "\" y1=\"" << num(kPlotTop - 4) << "\" x2=\"" << num(x) << "\" y2=\""
      << num(plot_bottom) << "\" stroke=\"" << (zero ? "#555555" : "#e0e0e0") << "\"/>";
    o << "<text x=\"" << num(x) << "\" y=\"" << num(plot_bottom + 14) << "\" text-anchor=\"middle\" fill=\"#555555\">"
      << xml_escape(tick_format(zero ? 0.0 : v)) << "</text>\n";
  }
  o << "<text x=\"" << num((x0 + x1) / 2) << "\" y=\"" << num(plot_bottom + 34)
    << "\" text-anchor=\"middle\" fill=\"#333333\">" << xml_escape(chart.axis_label) << "</text>\n";

  for (size_t c = 0; c < chart.categories.size(); ++c) {
    const double gy = kPlotTop + static_cast<double>(c) * group_h;
    const std::string& name = chart.categories[c];
    o << "<text x=\"" << num(x0 - 6) << "\" y=\"" << num(gy + static_cast<double>(n_series) * bar_h / 2 + 4)
      << "\" text-anchor=\"end\"><title>" << xml_escape(name) << "</title>" << xml_escape(fit_label(name, max_chars))
      << "</text>\n";
    for (size_t s = 0; s < chart.series.size(); ++s) {
      const ChartSeries& series = chart.series[s];
      const double v = series.values[c];
      const double y = gy + static_cast<double>(s) * bar_h;
      const double base = sx(0);
      std::string label;
      double end = base;
      if (std::isnan(v)) {
        label = series.missing_label;
        if (label.empty()) continue;
      } else {
        end = std::isinf(v) ? (v > 0 ? x1 : x0) : sx(v);
        label = std::isinf(v) ? (v > 0 ? chart.infinity_label : "-" + chart.infinity_label) : fmt(v);
        const double bx = std::min(base, end), bw = std::max(std::abs(end - base), 1.0);
        o << "<rect x=\"" << num(bx) << "\" y=\"" << num(y + 1) << "\" width=\"" << num(bw) << "\" height=\""
          << num(bar_h - 2) << "\" fill=\"" << xml_escape(series.color) << "\"><title>" << xml_escape(name) << " \u2014 "
          << xml_escape(series.label) << ": " << xml_escape(label) << "</title></rect>";
      }
      const bool left = end < base;
      o << "<text x=\"" << num(left ? end - 3 : end + 3) << "\" y=\"" << num(y + bar_h - 3)
        << "\" font-size=\"10\" fill=\"#333333\"" << (left ? " text-anchor=\"end\"" : "") << ">" << xml_escape(label)
        << "</text>\n";
    }
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace modelpress
