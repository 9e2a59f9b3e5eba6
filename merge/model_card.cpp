#include "merge/model_card.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <vector>

namespace modelpress::merge {
namespace {

// Hub-style ids ("org/name") go in the front matter's base_model list; local paths do not
// name anything a hub can link to (mergekit's rule: absolute, ~, or more than one '/').
bool hub_id(const std::string& m) {
  if (m.empty() || m[0] == '/' || m[0] == '~' || m[0] == '.') return false;
  return std::count(m.begin(), m.end(), '/') <= 1;
}

}  // namespace

std::string model_card(const MergePlan& plan, const BatchMergeReport& report, const std::string& out,
                       const std::string& version) {
  std::ostringstream s;
  std::vector<std::string> ids;
  if (hub_id(report.base)) ids.push_back(report.base);
  for (const auto& m : report.models)
    if (hub_id(m)) ids.push_back(m);
  s << "---\n";
  if (!ids.empty()) {
    s << "base_model:\n";
    for (const auto& id : ids) s << "- " << id << "\n";
  }
  s << "library_name: transformers\ntags:\n- modelpress\n- mergekit\n- merge\n---\n";
  std::string name = std::filesystem::path(out).filename().string();
  if (name.empty()) name = std::filesystem::path(out).parent_path().filename().string();
  s << "# " << name << "\n\n";
  s << "A merge of pre-trained language models made with modelpress " << version << " from a mergekit configuration.\n\n";
  s << "## Merge details\n\n";
  s << "Method: `" << plan.method << "`";
  if (!report.base.empty() && plan.method != "linear" && plan.method != "passthrough")
    s << ", with " << report.base << " as the base";
  s << ". " << report.layers << " layers, " << report.tensors << " tensors, stored as " << report.out_dtype << ".\n\n";
  s << "Models merged:\n\n";
  for (const auto& m : report.models) s << "* " << m << "\n";
  s << "\n## Configuration\n\nThe YAML this model was made from (also in `mergekit_config.yml`):\n\n```yaml\n"
    << plan.source_text << (plan.source_text.empty() || plan.source_text.back() == '\n' ? "" : "\n") << "```\n";
  return s.str();
}

}  // namespace modelpress::merge
