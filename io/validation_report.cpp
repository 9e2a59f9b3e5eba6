#include "io/validation_report.h"

#include <cmath>
#include <map>

namespace modelpress {

ReportTotals report_totals(const ValidationReport& report) {
  ReportTotals t;
  double sum_rel = 0;
  size_t counted = 0;
  for (const auto& l : report.layers) {
    t.original_layer_bytes += l.original_bytes;
    t.packed_layer_bytes += l.packed_bytes;
    t.layer_weights += static_cast<uint64_t>(l.n * l.k);
    t.packed_us += l.packed_latency.median_us;
    t.dense_us += l.dense_latency.median_us;
    const double e = l.error.relative_error;
    // NaN (a kernel produced NaN/inf) ranks worst of all, so it cannot hide behind max().
    const double w = t.worst_relative_error;
    const bool worse = t.worst_layer.empty() || (std::isnan(e) && !std::isnan(w)) || (!std::isnan(w) && e > w);
    if (worse) {
      t.worst_relative_error = e;
      t.worst_layer = l.name;
    }
    sum_rel += e;
    ++counted;
  }
  t.bits_per_weight = t.layer_weights ? 8.0 * static_cast<double>(t.packed_layer_bytes) /
                                          static_cast<double>(t.layer_weights)
                                    : 0;
  t.mean_relative_error = counted ? sum_rel / static_cast<double>(counted) : 0;
  return t;
}

std::vector<StepSummary> step_summaries(const ValidationReport& report) {
  std::map<int64_t, StepSummary> by_step;
  for (const auto& l : report.layers)
    for (const auto& s : l.steps) {
      StepSummary& x = by_step[s.step];
      x.step = s.step;
      const double e = s.error.relative_error;
      if (x.layers == 0 || std::isnan(e) || e > x.worst_relative_error) x.worst_relative_error = e;
      x.mean_relative_error += e;  // summed here, divided below
      ++x.layers;
    }
  std::vector<StepSummary> out;
  for (auto& [step, x] : by_step) {
    x.mean_relative_error /= static_cast<double>(x.layers);
    out.push_back(x);
  }
  return out;
}

}  // namespace modelpress
