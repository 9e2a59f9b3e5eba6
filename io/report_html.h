// The validation report as one self-contained HTML page: inline CSS, SVG charts drawn by
// io/svg_chart.h, no scripts and no external resources, so it opens anywhere (a CI
// artifact, an air-gapped machine) and renders the same. Charts: per-layer SQNR (with the
// LLM.int8 decomposition variants when measured), per-layer latency packed vs dense, and
// checkpoint size before and after; then the per-layer table.
#pragma once
#include <string>

#include "io/validation_report.h"

namespace modelpress {

std::string validation_report_html(const ValidationReport& report);

}  // namespace modelpress
