// The driver behind `modelpress quantize IN.gguf -o OUT.gguf --method q8_0|q4_0|q4_1`: what
// llama-quantize does, with modelpress's block quantizers (quant/gguf_blocks.h). The output
// keeps the input's metadata record for record (architecture, tokenizer, everything) but
// general.file_type and general.quantization_version, and its tensors in the same order
// with the same names. The layers the safetensors driver would quantize (linear weights;
// not the output head, routers or --skip matches) are written in the block type; every other
// tensor is copied as stored, byte for byte, as is a layer whose row length is not a multiple
// of 32 (named in the report). The output appears only when complete.
#pragma once
#include <string>

#include "quant/quantize_checkpoint.h"

namespace modelpress::quant {

// Throws Error naming the file for a non-GGUF input, a GGUF whose layers are already
// block-quantized (unless allow_requantize), a bad --skip or no layer left to quantize.
QuantizeReport quantize_to_gguf(const std::string& input, const std::string& output, const QuantizeOptions& options,
                                const QuantizeProgress& progress = {});

// The ggml type of a GGUF method name ("q8_0", "q4_0", "q4_1"), 0 for another name.
uint32_t gguf_method_type(const std::string& method);

}  // namespace modelpress::quant
