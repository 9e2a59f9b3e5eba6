// A packed linear layer with its own storage, the pass functions that produce one from a
// weight, and its encoding into (and decoding from) checkpoint tensors. The kernels see a
// layer through view(), a kernels::PackedLinear pointing into this storage.
//
// Encodings (each method owns its checkpoint naming):
//   bitsandbytes LLM.int8:  <p>.weight int8 (N, K), <p>.SCB f32 (N) = row absmax,
//                           <p>.weight_format u8 scalar 0, <p>.bias unchanged
//   compressed-tensors W8A8 (int-quantized): <p>.weight int8 (N, K), <p>.weight_scale (N, 1)
//   compressed-tensors W4A16 (pack-quantized): <p>.weight_packed int32 (N, K/8),
//                           <p>.weight_scale (N, K/G), <p>.weight_shape int64 [N, K],
//                           <p>.weight_zero_point (asymmetric only)
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tensor.h"
#include "kernels/packed_linear.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::quant {

struct PackedLayer {
  std::string name;  // module prefix: "model.layers.0.mlp.up_proj"
  kernels::LinearFormat format = kernels::LinearFormat::DenseF32;
  int64_t n = 0, k = 0;
  std::vector<float> dense;     // DenseF32
  std::vector<int8_t> q8;       // W8A8, LlmInt8: (N, K)
  std::vector<float> scale8;    // (N): w ~= q * scale
  std::vector<uint8_t> packed4; // W4A16: (N, K/2), low nibble first
  std::vector<float> scales4;   // (N, K/group)
  std::vector<uint8_t> zeros4;  // (N, K/group), empty when symmetric
  bool searched_scales = false; // W4A16: least-squares scales (search_params), observer "mse"
  int64_t group = 0;
  float threshold = 6.0f;       // LlmInt8
  std::vector<int32_t> fp16_cols;   // LlmInt8 paper mode: outlier columns kept in 16-bit
  std::vector<uint16_t> fp16_w;     // (cols, N) f16 bits
  std::vector<float> bias;      // (N) or empty
  // Lut (quant/edkm.h, encoding in quant/lut_encoding.cpp): `group` is the rows per table.
  int lut_bits = 0;                   // 1..8
  std::vector<uint8_t> lut_indices;   // (N, kernels::lut_row_bytes(K, bits)), LSB first
  std::vector<float> lut;             // (N / group, 2^bits): the values the stored table decodes to
  std::vector<int8_t> lut_q;          // lut_dtype I8: the codes, lut = code * lut_q_scale[table]
  std::vector<float> lut_q_scale;     // lut_dtype I8: (N / group)
  std::vector<float> lut_row_scale;   // (N) per-row scales (stored as scale_dtype), or empty
  DType lut_dtype = DType::F16;       // F16, F32 or I8
  DType original_dtype = DType::F32;  // of the clustered weight: what decompress restores
  // How compressed-tensors' weight_scale is stored (W8A8, W4A16): the original weight's
  // dtype (F16/BF16/F32), as llm-compressor writes it, so vLLM's params_dtype copy is exact.
  // The passes round every scale up to this dtype before computing codes, so scale8 /
  // scales4 hold exactly the stored values. LLM.int8 ignores it (SCB is always f32).
  DType scale_dtype = DType::F32;
  // What the pass wants its user to know about this layer (e.g. a clustering fallback), or "".
  std::string note;

  kernels::PackedLinear view() const;
  // Bytes the packed weight takes in a checkpoint (weights, scales, zero points; no bias).
  uint64_t weight_bytes() const;
  double bits_per_weight() const { return 8.0 * static_cast<double>(weight_bytes()) / static_cast<double>(n * k); }
};

// Passes: pure functions of the weight (N, K) (any float dtype) and optional bias (N).
// They throw Error naming `name` for a weight that is not 2-D, not float, or holds NaN/Inf.
struct LlmInt8Options {
  float threshold = 6.0f;
};
PackedLayer quantize_llm_int8(const std::string& name, const Tensor& weight, const Tensor* bias,
                              const LlmInt8Options& options);
PackedLayer quantize_w8a8(const std::string& name, const Tensor& weight, const Tensor* bias);
struct W4A16Options {
  int64_t group_size = 128;
  bool symmetric = true;
  // Least-squares scales and zero points per group (search_params) instead of the range rule.
  bool scale_search = true;
};
PackedLayer quantize_w4a16(const std::string& name, const Tensor& weight, const Tensor* bias,
                           const W4A16Options& options);
// The unquantized layer (f32 copy), the baseline validate measures against.
PackedLayer dense_layer(const std::string& name, const Tensor& weight, const Tensor* bias);

// Checkpoint encoding: (tensor name, tensor) pairs in the order they should be written.
std::vector<std::pair<std::string, Tensor>> encode_layer(const PackedLayer& layer);
// config.json "quantization_config" for a checkpoint of layers of `format`.
// `skipped`: module names left unquantized.
nlohmann::json quantization_config(kernels::LinearFormat format, const PackedLayer* example,
                                   const std::vector<std::string>& skipped);

// Decoding a compressed checkpoint (bitsandbytes int8 or compressed-tensors): the module
// prefixes of its packed linear layers, in file order, and one layer read back.
std::vector<std::string> packed_layer_names(const Checkpoint& checkpoint);
PackedLayer load_packed_layer(const Checkpoint& checkpoint, const std::string& name);

// ---- Additions (issue: quantization core) ----------------------------------------------

// LLM.int8 paper mode: keep weight columns `cols` (ascending, distinct, in [0, K)) of the
// original weight (N, K) in f16 beside the int8 weight (fills fp16_cols / fp16_w). The
// bitsandbytes checkpoint format has no place for them, so encode_layer does not write
// them; validate uses them to measure the paper's variant against bitsandbytes'
// (outlier columns through the dequantized int8 weight). Throws Error for a layer that is
// not LlmInt8, a weight of another shape, bad column indices, or a value beyond f16.
void keep_fp16_columns(PackedLayer& layer, const Tensor& original_weight, const std::vector<int32_t>& cols);

// encode_layer without copying: the returned tensors own the layer's buffers (moved out).
std::vector<std::pair<std::string, Tensor>> encode_layer(PackedLayer&& layer);

// The dequantized weight (N, K) as f32: what every loader of the encoding computes.
std::vector<float> dequantize_layer(const PackedLayer& layer);

// Method names as the CLI and reports spell them: "dense", "llm-int8", "w8a8", "w4a16".
const char* method_name(kernels::LinearFormat format);

}  // namespace modelpress::quant
