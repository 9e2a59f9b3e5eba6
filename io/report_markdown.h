// The validation report as Markdown: a summary and one table row per layer (what
// `modelpress validate` prints), plus the LLM.int8 decomposition table when there is one.
#pragma once
#include <string>

#include "io/validation_report.h"

namespace modelpress {

std::string validation_report_markdown(const ValidationReport& report);

}  // namespace modelpress
