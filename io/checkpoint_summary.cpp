#include "io/checkpoint_summary.h"

#include <map>
#include <string>

#include "io/checkpoint.h"

namespace modelpress {
namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && std::string_view(s).substr(s.size() - suffix.size()) == suffix;
}

// A compressed-tensors packed weight stores its real shape in the sibling `weight_shape`.
int64_t logical_numel(const Checkpoint& ck, const CheckpointTensor& t) {
  if (ends_with(t.name, "weight_packed")) {
    const std::string shape_name = t.name.substr(0, t.name.size() - 6) + "shape";
    if (const CheckpointTensor* s = ck.find(shape_name); s && s->shape.size() == 1) {
      int64_t n = 1;
      for (float d : ck.read(*s).to_f32()) n *= static_cast<int64_t>(d);
      return n;
    }
  }
  // A palettized weight (modelpress cluster) too: its indices count as the weight's
  // parameters, the table and row scales as their own.
  if (ends_with(t.name, ".weight_lut_indices")) {
    const std::string shape_name = t.name.substr(0, t.name.size() - 12) + "shape";
    if (const CheckpointTensor* s = ck.find(shape_name); s && s->shape.size() == 1) {
      int64_t n = 1;
      for (float d : ck.read(*s).to_f32()) n *= static_cast<int64_t>(d);
      return n;
    }
  }
  return shape_numel(t.shape);
}

}  // namespace

nlohmann::ordered_json detect_quantization(const Checkpoint& ck) {
  nlohmann::ordered_json q;
  if (const GgufFile* g = ck.gguf()) {
    std::map<std::string, int> types;
    for (const auto& t : ck.tensors()) ++types[t.stored_type];
    q["method"] = "gguf";
    q["tensor_types"] = types;
    if (g->metadata().contains("general.file_type")) q["file_type"] = g->metadata()["general.file_type"];
    return q;
  }
  int scb = 0, packed = 0, scaled = 0, lut = 0;
  for (const auto& t : ck.tensors()) {
    if (ends_with(t.name, ".weight_lut_indices")) ++lut;
    if (ends_with(t.name, ".SCB")) ++scb;
    if (ends_with(t.name, ".weight_packed")) ++packed;
    if (ends_with(t.name, ".weight_scale")) ++scaled;
  }
  const auto& cfg = ck.config();
  if (cfg.is_object() && cfg.contains("quantization_config") && cfg["quantization_config"].is_object()) {
    const auto& qc = cfg["quantization_config"];
    q["method"] = qc.value("quant_method", std::string("unknown"));
    q["config"] = qc;
  } else if (lut > 0) {
    q["method"] = "modelpress-palettization";
  } else if (scb > 0) {
    q["method"] = "bitsandbytes";
  } else if (packed > 0 || scaled > 0) {
    q["method"] = "compressed-tensors";
  } else {
    q["method"] = "none";
  }
  if (scb > 0) q["int8_layers"] = scb;
  if (packed > 0) q["packed_layers"] = packed;
  if (scaled > 0) q["scaled_layers"] = scaled;
  if (lut > 0) q["palettized_layers"] = lut;
  return q;
}

nlohmann::ordered_json summarize_checkpoint(const Checkpoint& ck, const std::string& path) {
  nlohmann::ordered_json s;
  s["path"] = path;
  s["format"] = format_name(ck.format());
  s["files"] = ck.files();
  s["architecture"] = ck.architecture();
  s["carried_files"] = ck.carried_files();
  s["quantization"] = detect_quantization(ck);

  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  std::map<std::string, std::array<int64_t, 3>> categories;  // tensors, parameters, bytes
  int64_t total_params = 0, total_bytes = 0;
  for (const auto& t : ck.tensors()) {
    const int64_t params = t.category == TensorCategory::Other ? 0 : logical_numel(ck, t);
    const std::string cat(category_name(t.category));
    tensors.push_back({{"name", t.name},
                       {"dtype", t.stored_type},
                       {"shape", t.shape},
                       {"bytes", t.nbytes},
                       {"parameters", params},
                       {"category", cat}});
    auto& c = categories[cat];
    c[0] += 1;
    c[1] += params;
    c[2] += static_cast<int64_t>(t.nbytes);
    total_params += params;
    total_bytes += static_cast<int64_t>(t.nbytes);
  }
  s["tensors"] = std::move(tensors);
  s["categories"] = nlohmann::ordered_json::object();
  for (const auto& [name, c] : categories)
    s["categories"][name] = {{"tensors", c[0]}, {"parameters", c[1]}, {"bytes", c[2]}};
  s["totals"] = {{"tensors", ck.tensors().size()}, {"parameters", total_params}, {"bytes", total_bytes}};
  return s;
}

}  // namespace modelpress
