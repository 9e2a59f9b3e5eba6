// What `modelpress inspect` reports about a checkpoint, as JSON with stable keys:
//   path, format, files[], architecture, carried_files[],
//   quantization {method, ...details},
//   tensors[] {name, dtype, shape, bytes, parameters, category},
//   categories {name: {tensors, parameters, bytes}},
//   totals {tensors, parameters, bytes}
// "parameters" counts model weights by their logical shape (a packed 4-bit weight counts
// its unpacked elements); tensors of category "other" (quantization scales, buffers) add
// bytes but no parameters.
#pragma once
#include <nlohmann/json.hpp>

namespace modelpress {

class Checkpoint;

nlohmann::ordered_json summarize_checkpoint(const Checkpoint& checkpoint, const std::string& path);
// Existing quantization, from config.json's quantization_config, the tensor names
// (bitsandbytes .SCB, compressed-tensors weight_packed / weight_scale) and GGUF types.
nlohmann::ordered_json detect_quantization(const Checkpoint& checkpoint);

}  // namespace modelpress
