// The streaming driver behind `modelpress quantize`: reads a checkpoint tensor by tensor
// in file order, quantizes each linear weight that is not skipped, and writes a Hugging
// Face folder in the method's convention (bitsandbytes int8 for LLM.int8, compressed-tensors
// for W8A8 / W4A16) with config.json's quantization_config. Every other tensor (norms,
// embeddings, biases, skipped layers) is copied unchanged, byte for byte, in the kernel
// where the input is a file view. Peak memory is one layer: its input view, its codes.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tensor.h"
#include "quant/edkm.h"
#include "quant/packed_layer.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::quant {

struct QuantizeOptions {
  kernels::LinearFormat method = kernels::LinearFormat::LlmInt8;  // LlmInt8, W8A8 or W4A16
  LlmInt8Options llm_int8;
  W4A16Options w4a16;
  // Lut (`modelpress cluster`): the clustering, and optionally each layer's importance per
  // input column (diag(X^T X) of its calibration rows) for the sensitivity-weighted variant;
  // the GGUF methods' scale search weighs its error with the same importance.
  ClusterOptions cluster;
  std::function<std::vector<float>(const std::string& module, int64_t in_features)> importance;
  // ECMAScript regexes searched in each linear layer's module name ("model.layers.0.mlp.
  // down_proj"); a layer any of them matches stays unquantized.
  std::vector<std::string> skip;
  // Left unquantized by default, as transformers and llm-compressor do: the output head
  // (lm_head; tied or not, quality is most sensitive there) and MoE routers (tiny, and
  // routing decisions flip under quantization noise). Embeddings are not linear layers and
  // are always copied.
  bool skip_lm_head = true;
  bool skip_routers = true;
  uint64_t max_shard_bytes = 5'000'000'000;
  bool overwrite = false;
  // A GGUF whose linear weights are already block-quantized (Q4_1, Q8_0, ...) is refused:
  // their dequantized values would be quantized again, this method's error on top of the
  // file's. True does it anyway.
  bool allow_requantize = false;
  // GGUF output (quant/gguf_quantize.h): the ggml block type the quantized layers are written
  // in (Q8_0, Q4_0, Q4_1) and whether each block's parameters are searched (gguf_blocks.h).
  uint32_t gguf_type = 0;
  bool gguf_scale_search = true;
};

struct LayerReport {
  std::string name;        // module prefix
  Shape shape;             // (out, in)
  DType dtype;             // of the input weight
  std::string format;      // "llm-int8", "w8a8", "w4a16", or "skipped"
  std::string reason;      // why a layer was skipped ("lm_head", "router", "--skip REGEX")
  std::string note;        // what the pass reported about the layer (PackedLayer::note), or ""
  uint64_t bytes_before = 0;  // input weight tensor
  uint64_t bytes_after = 0;   // tensors written for it (weight, scales, ...; no bias)
  double bits_per_weight = 0; // 8 * bytes_after / elements
};

struct QuantizeReport {
  std::string method;                  // "llm-int8", ...
  std::vector<LayerReport> layers;     // every linear weight, in file order
  size_t tensors_in = 0, tensors_out = 0;
  size_t quantized = 0, skipped = 0;
  uint64_t bytes_before = 0, bytes_after = 0;          // all tensors
  uint64_t linear_bytes_before = 0, linear_bytes_after = 0;  // quantized layers only
  nlohmann::json quantization_config;
};

// Called once per input tensor, before it is processed.
using QuantizeProgress = std::function<void(size_t index, size_t total, const std::string& tensor)>;

// Throws Error (naming the file or tensor) for an input that is already quantized, a bad
// skip regex, a layer the pass rejects (not float, NaN/Inf, group size not dividing K) or
// when no layer is left to quantize. The output folder appears only when complete.
QuantizeReport quantize_checkpoint(const Checkpoint& in, const std::string& out_dir, const QuantizeOptions& options,
                                   const QuantizeProgress& progress = {});

// The report as JSON (stable keys: method, layers[], totals{...}, quantization_config).
nlohmann::ordered_json report_json(const QuantizeReport& report);

}  // namespace modelpress::quant
