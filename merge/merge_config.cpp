#include "merge/merge_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "io/error.h"

namespace modelpress::merge {
namespace {

// Every error names the file and the place in it ("models[1].parameters.density").
[[noreturn]] void fail(const std::string& path, const std::string& where, const std::string& what) {
  throw Error(path + ": " + (where.empty() ? "" : where + ": ") + what);
}

// A mapping key as text; YAML allows any node as a key (`? [a, b] : c`, `? : c`), mergekit's
// schema only strings.
std::string key_of(const YAML::Node& key, const std::string& path, const std::string& where) {
  if (!key.IsScalar()) fail(path, where, "a key that is not a plain string");
  return key.Scalar();
}

void check_keys(const YAML::Node& node, const std::set<std::string>& allowed, const std::string& path,
                const std::string& where) {
  if (!node.IsMap()) fail(path, where, "expected a mapping");
  for (const auto& kv : node) {
    const std::string key = key_of(kv.first, path, where);
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(path, where.empty() ? key : where + "." + key, "unknown key (allowed here: " + list + ")");
    }
  }
}

double number(const YAML::Node& node, const std::string& path, const std::string& where) {
  if (!node.IsScalar()) fail(path, where, "expected a number");
  const std::string s = node.Scalar();
  if (s == "true" || s == "True") return 1;  // mergekit (2024) coerces booleans to 1.0 / 0.0
  if (s == "false" || s == "False") return 0;
  double v = 0;
  try {
    v = node.as<double>();
  } catch (const YAML::Exception&) {
    fail(path, where, "'" + s + "' is not a number");
  }
  if (!std::isfinite(v)) fail(path, where, "'" + s + "' is not a finite number");
  return v;
}

ParameterValue parse_value(const YAML::Node& node, const std::string& path, const std::string& where) {
  ParameterValue v;
  if (node.IsSequence()) {
    if (node.size() == 0) fail(path, where, "an empty gradient");
    for (size_t i = 0; i < node.size(); ++i) v.values.push_back(number(node[i], path, where + "[" + std::to_string(i) + "]"));
  } else {
    v.values.push_back(number(node, path, where));
  }
  return v;
}

// A parameter: a number, a gradient (list of numbers), or a list of {filter, value}.
Parameter parse_parameter(const YAML::Node& node, const std::string& path, const std::string& where) {
  Parameter p;
  const bool conditional = node.IsSequence() && node.size() > 0 && node[0].IsMap();
  if (node.IsMap())
    fail(path, where, "a single {filter, value} must be written as a list (mergekit rejects it too): - filter: ...");
  if (!conditional) {
    p.push_back({"", parse_value(node, path, where)});
    return p;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const YAML::Node& entry = node[i];
    check_keys(entry, {"filter", "value"}, path, at);
    if (!entry["value"]) fail(path, at, "missing 'value'");
    ConditionalValue c;
    if (entry["filter"]) {
      if (!entry["filter"].IsScalar()) fail(path, at + ".filter", "expected a string");
      c.filter = entry["filter"].Scalar();
      if (c.filter == "*") c.filter.clear();
    }
    c.value = parse_value(entry["value"], path, at + ".value");
    p.push_back(std::move(c));
  }
  return p;
}

Parameters parse_parameters(const YAML::Node& node, const std::string& path, const std::string& where) {
  Parameters out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) fail(path, where, "expected a mapping of parameter names to values");
  for (const auto& kv : node) {
    const std::string name = key_of(kv.first, path, where);
    out[name] = parse_parameter(kv.second, path, where + "." + name);
  }
  return out;
}

// A model reference: a local path. mergekit's `repo@revision` and `model+lora` forms name
// things modelpress does not fetch or apply.
std::string parse_model(const YAML::Node& node, const std::string& path, const std::string& where) {
  if (!node || !node.IsScalar() || node.Scalar().empty()) fail(path, where, "expected a model path");
  const std::string m = node.Scalar();
  if (m.find('+') != std::string::npos)
    fail(path, where, "'" + m + "': LoRA references (model+lora) are not supported; merge the adapter first");
  return m;
}

std::optional<DType> parse_dtype_key(const YAML::Node& node, const std::string& path, const std::string& where) {
  if (!node || node.IsNull()) return std::nullopt;
  std::string s = node.Scalar();
  if (s.rfind("torch.", 0) == 0) s = s.substr(6);
  if (s == "float32") return DType::F32;
  if (s == "float16") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  fail(path, where, "'" + node.Scalar() + "' is not one of float32, float16, bfloat16");
}

// Every parameter must be one the method reads, at a level where it is read.
void check_parameters(const Parameters& ps, const MethodParameters& known, bool per_model_level,
                      const std::string& method, const std::string& path, const std::string& where) {
  for (const auto& [name, p] : ps) {
    const bool model_param = std::count(known.per_model.begin(), known.per_model.end(), name) > 0;
    const bool global_param = std::count(known.global.begin(), known.global.end(), name) > 0;
    if (!model_param && !global_param) {
      std::string list;
      for (const auto& n : known.per_model) list += (list.empty() ? "" : ", ") + n;
      for (const auto& n : known.global) list += (list.empty() ? "" : ", ") + n;
      fail(path, where + "." + name,
           "not a parameter of " + method + (list.empty() ? " (it takes none)" : " (it reads: " + list + ")"));
    }
    if (per_model_level && !model_param)
      fail(path, where + "." + name, "is a global parameter of " + method + "; put it under the top-level parameters");
  }
}

}  // namespace

double ParameterValue::at(double t) const {
  if (values.size() == 1) return values[0];
  // Evenly spaced knots over [0, 1], linear between them (mergekit: s = t (n-1)).
  const double s = std::clamp(t, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t i0 = std::min(static_cast<size_t>(s), values.size() - 1);
  const size_t i1 = std::min(values.size() - 1, i0 + 1);
  const double f = s - static_cast<double>(i0);
  return (1 - f) * values[i0] + f * values[i1];
}

const std::vector<std::string>& batch_method_names() {
  static const std::vector<std::string> names = {"task_arithmetic", "ties",        "dare_ties",  "dare_linear",
                                                 "linear",          "slerp",       "model_stock", "passthrough"};
  return names;
}

MethodParameters method_parameters(const std::string& m) {
  if (m == "task_arithmetic") return {{"weight"}, {"normalize", "lambda", "int8_mask"}};
  if (m == "ties") return {{"weight", "density"}, {"normalize", "rescale", "lambda", "int8_mask"}};
  if (m == "dare_ties" || m == "dare_linear") return {{"weight", "density"}, {"normalize", "rescale", "lambda", "int8_mask"}};
  if (m == "linear") return {{"weight"}, {"normalize"}};
  if (m == "slerp") return {{}, {"t"}};
  if (m == "model_stock") return {{}, {"filter_wise"}};
  if (m == "passthrough") return {{"scale"}, {}};
  return {};
}

namespace {
MergePlan parse_plan(const std::string& text, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(path, "", "not valid YAML: " + std::string(e.what()));
  }
  check_keys(root,
             {"merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "tokenizer_source"},
             path, "");
  MergePlan plan;
  plan.source_text = text;
  plan.source_path = path;
  if (!root["merge_method"] || !root["merge_method"].IsScalar()) fail(path, "merge_method", "missing");
  plan.method = root["merge_method"].Scalar();
  const auto& names = batch_method_names();
  if (std::find(names.begin(), names.end(), plan.method) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    const std::string hint = plan.method == "opcm" || plan.method == "ewa"
                                 ? " (run `modelpress merge " + plan.method + "` for it)"
                                 : "";
    fail(path, "merge_method", "'" + plan.method + "' is not supported (supported: " + list + ")" + hint);
  }
  const MethodParameters known = method_parameters(plan.method);
  if (root["base_model"]) plan.base_model = parse_model(root["base_model"], path, "base_model");
  plan.parameters = parse_parameters(root["parameters"], path, "parameters");
  check_parameters(plan.parameters, known, false, plan.method, path, "parameters");
  plan.dtype = parse_dtype_key(root["dtype"], path, "dtype");
  plan.out_dtype = parse_dtype_key(root["out_dtype"], path, "out_dtype");
  if (const YAML::Node tok = root["tokenizer_source"]; tok && !tok.IsNull()) {
    if (!tok.IsScalar()) fail(path, "tokenizer_source", "expected 'base' or a model path");
    plan.tokenizer_source = tok.Scalar();
    if (plan.tokenizer_source == "union")
      fail(path, "tokenizer_source", "'union' (building a merged vocabulary) is not supported; use 'base' or a model path");
  }

  const bool has_models = static_cast<bool>(root["models"]), has_slices = static_cast<bool>(root["slices"]);
  if (has_models == has_slices) fail(path, "", "give exactly one of 'models' and 'slices'");
  if (has_models) {
    const YAML::Node models = root["models"];
    if (!models.IsSequence() || models.size() == 0) fail(path, "models", "expected a non-empty list");
    Slice slice;
    for (size_t i = 0; i < models.size(); ++i) {
      const std::string at = "models[" + std::to_string(i) + "]";
      check_keys(models[i], {"model", "parameters"}, path, at);
      SliceSource s;
      s.model = parse_model(models[i]["model"], path, at + ".model");
      s.parameters = parse_parameters(models[i]["parameters"], path, at + ".parameters");
      check_parameters(s.parameters, known, true, plan.method, path, at + ".parameters");
      slice.sources.push_back(std::move(s));
    }
    // As mergekit's planner: a base model the list leaves out still takes part (as the base).
    if (!plan.base_model.empty() &&
        std::none_of(slice.sources.begin(), slice.sources.end(), [&](const SliceSource& s) { return s.model == plan.base_model; })) {
      SliceSource b;
      b.model = plan.base_model;
      b.implicit_base = true;
      slice.sources.push_back(std::move(b));
    }
    plan.slices.push_back(std::move(slice));
  } else {
    plan.from_slices = true;
    const YAML::Node slices = root["slices"];
    if (!slices.IsSequence() || slices.size() == 0) fail(path, "slices", "expected a non-empty list");
    for (size_t i = 0; i < slices.size(); ++i) {
      const std::string at = "slices[" + std::to_string(i) + "]";
      check_keys(slices[i], {"sources", "parameters"}, path, at);
      Slice slice;
      slice.parameters = parse_parameters(slices[i]["parameters"], path, at + ".parameters");
      check_parameters(slice.parameters, known, false, plan.method, path, at + ".parameters");
      const YAML::Node sources = slices[i]["sources"];
      if (!sources || !sources.IsSequence() || sources.size() == 0) fail(path, at + ".sources", "expected a non-empty list");
      for (size_t j = 0; j < sources.size(); ++j) {
        const std::string sat = at + ".sources[" + std::to_string(j) + "]";
        check_keys(sources[j], {"model", "layer_range", "parameters"}, path, sat);
        SliceSource s;
        s.model = parse_model(sources[j]["model"], path, sat + ".model");
        const YAML::Node range = sources[j]["layer_range"];
        if (!range || !range.IsSequence() || range.size() != 2) fail(path, sat + ".layer_range", "expected [start, end]");
        const double b = number(range[0], path, sat + ".layer_range[0]"), e = number(range[1], path, sat + ".layer_range[1]");
        if (b != std::floor(b) || e != std::floor(e) || b < 0 || e <= b)
          fail(path, sat + ".layer_range", "expected whole numbers 0 <= start < end");
        s.begin = static_cast<int64_t>(b);
        s.end = static_cast<int64_t>(e);
        s.parameters = parse_parameters(sources[j]["parameters"], path, sat + ".parameters");
        check_parameters(s.parameters, known, true, plan.method, path, sat + ".parameters");
        slice.sources.push_back(std::move(s));
      }
      const int64_t len = slice.sources[0].end - slice.sources[0].begin;
      for (const auto& s : slice.sources)
        if (s.end - s.begin != len) fail(path, at + ".sources", "every source of a slice must span the same number of layers");
      plan.slices.push_back(std::move(slice));
    }
  }
  return plan;
}
}  // namespace

MergePlan parse_merge_config(const std::string& text, const std::string& path) {
  try {
    return parse_plan(text, path);
  } catch (const YAML::Exception& e) {
    // Every node access above is checked; this is the net for the shape yaml-cpp refuses
    // in a way not foreseen there (found by fuzz/fuzz_merge_config.cpp), still one line.
    fail(path, "", std::string("cannot be read as a merge configuration: ") + e.what());
  }
}

MergePlan read_merge_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the merge configuration");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_merge_config(ss.str(), path);
}

namespace {
std::optional<double> evaluate(const Parameters& ps, const std::string& name, const std::string& tensor, double t) {
  const auto it = ps.find(name);
  if (it == ps.end()) return std::nullopt;
  for (const auto& c : it->second)
    if (c.filter.empty() || tensor.find(c.filter) != std::string::npos) return c.value.at(t);
  return std::nullopt;
}
}  // namespace

std::optional<double> lookup_parameter(const MergePlan& plan, const Slice& slice, const SliceSource* source,
                                       const std::string& name, const std::string& tensor, double t) {
  if (source)
    if (auto v = evaluate(source->parameters, name, tensor, t)) return v;
  if (auto v = evaluate(slice.parameters, name, tensor, t)) return v;
  return evaluate(plan.parameters, name, tensor, t);
}

}  // namespace modelpress::merge
