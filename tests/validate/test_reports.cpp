// The report writers: JSON keys (the stable interface scripts read), Markdown table,
// HTML that is self-contained and well-formed enough for a browser, and file output.
#include <gtest/gtest.h>

#include <filesystem>
#include <cctype>
#include <vector>

#include "io/error.h"
#include "io/report_file.h"
#include "io/report_html.h"
#include "io/report_json.h"
#include "io/report_markdown.h"
#include "io/svg_chart.h"
#include "tests/test_util.h"
#include "tests/validate/sample_report.h"

namespace modelpress {
namespace {

using testing::read_file;
using testing::sample_report;
using testing::TempDir;

TEST(ReportJson, StableKeys) {
  const auto j = validation_report_json(sample_report());
  for (const char* key : {"schema_version", "original", "compressed", "method", "backend", "backend_note",
                          "activations", "size", "accuracy", "latency", "layers", "notes"})
    EXPECT_TRUE(j.contains(key)) << key;
  for (const char* key : {"kind", "rows", "seed", "calibration_file", "calibration_source"})
    EXPECT_TRUE(j["activations"].contains(key)) << key;
  for (const char* key : {"original_checkpoint_bytes", "compressed_checkpoint_bytes", "checkpoint_ratio",
                          "original_layer_bytes", "bits_per_weight", "packed_layer_bytes", "layer_ratio"})
    EXPECT_TRUE(j["size"].contains(key)) << key;
  for (const char* key : {"mean_relative_error", "worst_relative_error", "worst_layer"})
    EXPECT_TRUE(j["accuracy"].contains(key)) << key;
  for (const char* key : {"packed_total_us", "dense_total_us", "speedup"}) EXPECT_TRUE(j["latency"].contains(key)) << key;

  ASSERT_EQ(j["layers"].size(), 6u);
  for (const auto& l : j["layers"]) {
    for (const char* key : {"name", "format", "out_features", "in_features", "rows", "original_bytes", "packed_bytes",
                            "bits_per_weight", "error", "latency", "steps", "outliers"})
      EXPECT_TRUE(l.contains(key)) << key;
    for (const char* key : {"relative_error", "sqnr_db", "cosine", "max_abs_error"})
      EXPECT_TRUE(l["error"].contains(key)) << key;
    for (const char* key : {"packed_median_us", "packed_runs", "dense_median_us", "dense_runs", "speedup"})
      EXPECT_TRUE(l["latency"].contains(key)) << key;
  }
  const auto& first = j["layers"][0];
  EXPECT_TRUE(first["error"]["sqnr_db"].is_null());  // exact layer: +inf is written as null
  EXPECT_EQ(first["error"]["relative_error"], 0.0);
  EXPECT_EQ(first["steps"].size(), 3u);
  EXPECT_EQ(first["steps"][1]["step"], 100);
  for (const char* key : {"threshold", "count", "share", "columns", "without_decomposition", "paper_mode",
                          "paper_mode_note"})
    EXPECT_TRUE(first["outliers"].contains(key)) << key;
  EXPECT_EQ(first["outliers"]["count"], 3);
  EXPECT_TRUE(j["layers"][1]["outliers"].is_null());
  EXPECT_TRUE(j["layers"][2]["outliers"]["paper_mode"].is_null());
  EXPECT_EQ(j["accuracy"]["worst_layer"], "model.layers.2.mlp.down_proj");
  EXPECT_NEAR(j["accuracy"]["worst_relative_error"].get<double>(), 0.024, 1e-12);
}

TEST(ReportJson, NaNErrorRanksWorst) {
  ValidationReport r = sample_report(3);
  r.layers[1].error.relative_error = std::nan("");
  const auto j = validation_report_json(r);
  EXPECT_TRUE(j["accuracy"]["worst_relative_error"].is_null());
  EXPECT_EQ(j["accuracy"]["worst_layer"], r.layers[1].name);
}

TEST(ReportMarkdown, OneRowPerLayer) {
  const std::string md = validation_report_markdown(sample_report());
  EXPECT_NE(md.find("| layer | format |"), std::string::npos);
  for (const auto& l : sample_report().layers) EXPECT_NE(md.find("| " + l.name + " | llm-int8 |"), std::string::npos);
  EXPECT_NE(md.find("| inf |"), std::string::npos);  // the exact layer's SQNR
  EXPECT_NE(md.find("LLM.int8 outlier decomposition"), std::string::npos);
  EXPECT_NE(md.find("per calibration step"), std::string::npos);
  EXPECT_NE(md.find("activations: synthetic"), std::string::npos);
}

// Tag balance: every element opened is closed in order, except HTML's void elements and
// self-closing SVG tags. Enough to catch a writer that forgets a closing tag.
void expect_balanced(const std::string& html) {
  std::vector<std::string> open;
  for (size_t p = html.find('<'); p != std::string::npos; p = html.find('<', p + 1)) {
    if (html.compare(p, 2, "<!") == 0) continue;  // <!DOCTYPE html>
    const size_t end = html.find('>', p);
    ASSERT_NE(end, std::string::npos) << "unterminated tag at byte " << p;
    std::string tag = html.substr(p + 1, end - p - 1);
    const bool closing = !tag.empty() && tag[0] == '/';
    if (closing) tag.erase(0, 1);
    size_t n = 0;
    while (n < tag.size() && std::isalnum(static_cast<unsigned char>(tag[n]))) ++n;
    const std::string name = tag.substr(0, n);
    ASSERT_FALSE(name.empty()) << "a bare '<' at byte " << p << " (unescaped text?)";
    if (closing) {
      ASSERT_FALSE(open.empty()) << "stray </" << name << ">";
      ASSERT_EQ(open.back(), name) << "</" << name << "> closes <" << open.back() << ">";
      open.pop_back();
    } else if (name != "meta" && name != "br" && tag.back() != '/') {
      open.push_back(name);
    }
  }
  EXPECT_TRUE(open.empty()) << "unclosed <" << (open.empty() ? "" : open.back()) << ">";
}

TEST(ReportHtml, SelfContainedAndWellFormed) {
  const std::string html = validation_report_html(sample_report());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  size_t svgs = 0;
  for (size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 3u);  // error, latency, size
  // No scripts, no external resources: the only URL is the SVG namespace name.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  std::string rest = html;
  for (size_t p; (p = rest.find("http://www.w3.org/2000/svg")) != std::string::npos;) rest.erase(p, 26);
  EXPECT_EQ(rest.find("http:"), std::string::npos);
  EXPECT_EQ(rest.find("https:"), std::string::npos);
  EXPECT_EQ(rest.find("//"), std::string::npos);
  // User text is escaped.
  EXPECT_NE(html.find("a note with &lt;markup&gt; &amp; &quot;quotes&quot;"), std::string::npos);
  EXPECT_EQ(html.find("<markup>"), std::string::npos);
  EXPECT_NE(html.find(">exact<"), std::string::npos);  // the infinite-SQNR bar's label
  expect_balanced(html);
}

TEST(SvgChart, BarsPerValueAndErrors) {
  BarChart c;
  c.title = "t <1>";
  c.categories = {"a", "b"};
  c.series = {{"s1", "#000", {1, -2}}, {"s2", "#111", {std::nan(""), 3}}};
  const std::string svg = svg_bar_chart(c);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("t &lt;1&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">n/a<"), std::string::npos);
  size_t bars = 0;
  for (size_t p = svg.find("fill=\"#000\"><title>"); p != std::string::npos; p = svg.find("fill=\"#000\"><title>", p + 1))
    ++bars;
  EXPECT_EQ(bars, 2u);
  expect_balanced(svg);
  c.series[0].values.pop_back();
  EXPECT_THROW(svg_bar_chart(c), Error);
}

TEST(ReportFile, ExtensionPicksTheForm) {
  TempDir dir;
  const auto r = sample_report(2);
  write_validation_report(dir / "r.json", r);
  write_validation_report(dir / "r.md", r);
  write_validation_report(dir / "R.HTML", r);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "r.json"))["layers"].size(), 2u);
  EXPECT_EQ(read_file(dir / "r.md").rfind("## modelpress validate", 0), 0u);
  EXPECT_EQ(read_file(dir / "R.HTML").rfind("<!DOCTYPE html>", 0), 0u);
  try {
    write_validation_report(dir / "r.txt", r);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.txt"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(".html, .md or .json"), std::string::npos);
  }
  // Nothing else is left in the folder: no temporary files, no r.txt.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 3u);
}

}  // namespace
}  // namespace modelpress
