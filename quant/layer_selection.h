// Internal to quant/: which linear weights a quantize run touches, shared by the
// safetensors driver (quantize_checkpoint.cpp) and the GGUF one (gguf_quantize.cpp).
#pragma once
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "io/checkpoint.h"
#include "quant/quantize_checkpoint.h"

namespace modelpress::quant {

bool ends_with(std::string_view s, std::string_view suffix);

// Quantizing quantized codes again would silently compound the error (or fail on an int8
// "weight" deep inside the run); says so up front (a quantization_config, or packed tensors).
void refuse_quantized_input(const Checkpoint& in, const std::string& path);

struct SkipRule {
  std::string text;
  std::regex re;
};
// --skip patterns compiled; Error naming a pattern that is not a valid regex.
std::vector<SkipRule> compile_skips(const std::vector<std::string>& skips);

// The weights the drivers quantize: 2-D linear weights named <module>.weight.
bool is_layer_weight(const CheckpointTensor& t);
// Why a layer stays unquantized ("" when it does not): lm_head, router, or the --skip rule.
std::string skip_reason(const CheckpointTensor& t, const std::string& prefix, const QuantizeOptions& options,
                        const std::vector<SkipRule>& skips);

// GGUF layers stored in a block type (Q4_1, Q8_0, ...) that this run would quantize: refused
// with the file, the count, an example and the way out (--allow-requantize).
void refuse_block_quantized_layers(const Checkpoint& in, const QuantizeOptions& options,
                                   const std::vector<SkipRule>& skips);

}  // namespace modelpress::quant
