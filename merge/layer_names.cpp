#include "merge/layer_names.h"

#include <array>
#include <string_view>

namespace modelpress::merge {

std::optional<LayerName> layer_of(const std::string& tensor) {
  static constexpr std::array<std::string_view, 4> kStacks = {"layers.", "layer.", "h.", "blocks."};
  std::optional<LayerName> best;
  for (std::string_view stack : kStacks) {
    for (size_t pos = tensor.find(stack); pos != std::string::npos; pos = tensor.find(stack, pos + 1)) {
      if (pos != 0 && tensor[pos - 1] != '.') continue;  // "self_attn.h." is not "model.h."
      const size_t at = pos + stack.size();
      size_t end = at;
      while (end < tensor.size() && tensor[end] >= '0' && tensor[end] <= '9') ++end;
      if (end == at || end >= tensor.size() || tensor[end] != '.' || end - at > 9) continue;
      if (!best || at < best->at) best = LayerName{std::stoll(tensor.substr(at, end - at)), at, end - at};
      break;
    }
  }
  return best;
}

std::string with_layer(const std::string& tensor, const LayerName& layer, int64_t index) {
  return tensor.substr(0, layer.at) + std::to_string(index) + tensor.substr(layer.at + layer.length);
}

std::optional<int64_t> config_layer_count(const nlohmann::json& config, std::string* key) {
  for (const char* k : {"num_hidden_layers", "n_layer", "num_layers", "n_layers"}) {
    const auto it = config.find(k);
    if (it != config.end() && it->is_number_integer()) {
      if (key) *key = k;
      return it->get<int64_t>();
    }
  }
  return std::nullopt;
}

}  // namespace modelpress::merge
