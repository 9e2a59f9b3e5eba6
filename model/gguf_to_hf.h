// A GGUF LLaMA file as a Hugging Face checkpoint: every tensor under its transformers name
// (q/k rows back in transformers' order, block types dequantized to f32) and the
// config.json transformers' LlamaForCausalLM reads. `modelpress convert X.gguf --hf` writes
// it, so the GGUF model can be compressed by every pass and loaded by transformers.
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/tensor.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::model {

// config.json for the GGUF file's model (an Error for an architecture the forward lacks).
nlohmann::json hf_config_for_gguf(const Checkpoint& gguf);
// Calls `emit` with every tensor, in transformers' order (embeddings, layer by layer, norm,
// lm_head when the file has its own). An Error names a GGUF tensor that has no
// transformers name (so nothing is dropped silently).
void for_each_hf_tensor(const Checkpoint& gguf, const std::function<void(const std::string&, const Tensor&)>& emit);

}  // namespace modelpress::model
