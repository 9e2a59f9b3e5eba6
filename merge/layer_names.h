// Which transformer layer a tensor belongs to, from its name, and the same name in another
// layer: what slices (`layer_range`), per-layer parameter gradients and passthrough's
// renumbering need. Covers the naming of every family modelpress reads: `model.layers.N.`
// (LLaMA, Mistral, Qwen, Gemma, Phi-3), `transformer.h.N.` (GPT-2, Falcon), `encoder.layer.N.`
// (BERT), `blocks.N.` (ViT variants), `model.decoder.layers.N.` (OPT).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace modelpress::merge {

struct LayerName {
  int64_t index = -1;  // the layer's number
  size_t at = 0;       // where the number starts in the name
  size_t length = 0;   // how many digits
};

// The first ".layers.N." / ".layer.N." / ".h.N." / ".blocks.N." segment (also at the start of
// the name); nullopt for tensors outside the layer stack (embeddings, final norm, head).
std::optional<LayerName> layer_of(const std::string& tensor);

// `tensor` with its layer number replaced by `index` (tensor must be in a layer).
std::string with_layer(const std::string& tensor, const LayerName& layer, int64_t index);

// The layer count config.json declares: num_hidden_layers, n_layer, num_layers or n_layers
// (the first present); nullopt when none is. key: set to the key found.
std::optional<int64_t> config_layer_count(const nlohmann::json& config, std::string* key = nullptr);

}  // namespace modelpress::merge
