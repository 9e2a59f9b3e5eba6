// Writes a validation report to a file whose extension picks the form: .json, .md
// (.markdown) or .html (.htm). The file is written through a temporary name and renamed,
// so an interrupted run never leaves half a report.
#pragma once
#include <string>

#include "io/validation_report.h"

namespace modelpress {

enum class ReportKind { Json, Markdown, Html };

// Throws Error naming `path` for any other extension, before any work is done.
ReportKind report_kind_for(const std::string& path);
void write_validation_report(const std::string& path, const ValidationReport& report);

}  // namespace modelpress
