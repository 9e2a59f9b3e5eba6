#include "quant/layer_selection.h"

#include "io/error.h"

namespace modelpress::quant {
namespace {

bool is_float_storage(const std::string& stored_type) {
  return stored_type == "F32" || stored_type == "F16" || stored_type == "BF16" || stored_type == "F64";
}

}  // namespace

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void refuse_quantized_input(const Checkpoint& in, const std::string& path) {
  const auto& cfg = in.config();
  if (cfg.is_object() && cfg.contains("quantization_config")) {
    const auto& qc = cfg["quantization_config"];
    const std::string method = qc.is_object() ? qc.value("quant_method", std::string("unknown")) : "unknown";
    throw Error(path + ": already quantized (config.json quantization_config, quant_method " + method +
                "); quantize the original checkpoint instead");
  }
  for (const auto& t : in.tensors())
    for (const char* suffix : {".SCB", ".weight_packed", ".weight_scale", ".weight_lut_indices"})
      if (ends_with(t.name, suffix))
        throw Error(path + ": already quantized (tensor " + t.name + "); quantize the original checkpoint instead");
}

std::vector<SkipRule> compile_skips(const std::vector<std::string>& skips) {
  std::vector<SkipRule> rules;
  for (const auto& s : skips) {
    try {
      rules.push_back({s, std::regex(s, std::regex::ECMAScript)});
    } catch (const std::regex_error& e) {
      throw Error("--skip '" + s + "' is not a valid regular expression: " + e.what());
    }
  }
  return rules;
}

bool is_layer_weight(const CheckpointTensor& t) {
  return is_linear(t.category) && t.shape.size() == 2 && ends_with(t.name, ".weight");
}

std::string skip_reason(const CheckpointTensor& t, const std::string& prefix, const QuantizeOptions& options,
                        const std::vector<SkipRule>& skips) {
  if (options.skip_lm_head && t.category == TensorCategory::LmHead) return "lm_head";
  if (options.skip_routers && t.category == TensorCategory::Router) return "router";
  for (const auto& rule : skips)
    if (std::regex_search(prefix, rule.re)) return "--skip " + rule.text;
  return "";
}

void refuse_block_quantized_layers(const Checkpoint& in, const QuantizeOptions& options,
                                   const std::vector<SkipRule>& skips) {
  if (in.format() != CheckpointFormat::Gguf) return;  // safetensors integer weights: the pass's own error
  size_t count = 0;
  const CheckpointTensor* example = nullptr;
  for (const auto& t : in.tensors())
    if (is_layer_weight(t) && !is_float_storage(t.stored_type) &&
        skip_reason(t, t.name.substr(0, t.name.size() - 7), options, skips).empty()) {
      ++count;
      if (!example) example = &t;
    }
  if (count == 0) return;
  throw Error(in.files()[example->file] + ": " + std::to_string(count) + " linear weights are already quantized in the file (" +
              example->name + " is " + example->stored_type +
              "); quantizing them again adds this method's error to the file's. Start from the f16/f32 original, "
              "or pass --allow-requantize; nothing written");
}

}  // namespace modelpress::quant
