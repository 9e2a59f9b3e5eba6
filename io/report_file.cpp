#include "io/report_file.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "io/error.h"
#include "io/file_util.h"
#include "io/report_html.h"
#include "io/report_json.h"
#include "io/report_markdown.h"

namespace modelpress {

ReportKind report_kind_for(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".json") return ReportKind::Json;
  if (ext == ".md" || ext == ".markdown") return ReportKind::Markdown;
  if (ext == ".html" || ext == ".htm") return ReportKind::Html;
  fail_file(path, "unknown report type '" + ext + "': name the file .html, .md or .json");
}

void write_validation_report(const std::string& path, const ValidationReport& report) {
  std::string text;
  switch (report_kind_for(path)) {
    case ReportKind::Json: text = validation_report_json(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n"; break;
    case ReportKind::Markdown: text = validation_report_markdown(report); break;
    case ReportKind::Html: text = validation_report_html(report); break;
  }
  write_text_file(path, text);
}

}  // namespace modelpress
