// Internal to quant/: each checkpoint convention's encoder, decoder and config writer.
// packed_layer.cpp dispatches to them by format (writing) or by what a checkpoint holds
// (reading). One file per convention: bitsandbytes.cpp, compressed_tensors.cpp.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/tensor.h"
#include "quant/packed_layer.h"

namespace modelpress {
class Checkpoint;
struct CheckpointTensor;
}

namespace modelpress::quant {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// A read-only tensor that owns `values` (moved in, no copy): encoding a 4096 x 11008 layer
// must not copy its 45 MB of codes once more on the way to the writer.
template <class T>
Tensor owning_tensor(std::vector<T>&& values, DType dtype, Shape shape) {
  auto owner = std::make_shared<std::vector<T>>(std::move(values));
  if (static_cast<int64_t>(owner->size() * sizeof(T)) != shape_numel(shape) * static_cast<int64_t>(dtype_size(dtype)))
    throw Error("internal error: " + std::to_string(owner->size()) + " values do not fill a " +
                std::string(dtype_name(dtype)) + " tensor of shape " + shape_to_string(shape));
  const auto* data = reinterpret_cast<const std::byte*>(owner->data());
  return Tensor::view(dtype, std::move(shape), data, std::move(owner));
}

// bitsandbytes LLM.int8 (bitsandbytes.cpp).
void encode_bitsandbytes(PackedLayer&& layer, NamedTensors& out);
nlohmann::json bitsandbytes_config(const PackedLayer* example, const std::vector<std::string>& skipped);
PackedLayer load_bitsandbytes(const Checkpoint& ck, const std::string& name);
// The f32 SCB whose SCB / 127 is exactly `scale` (the row absmax the pass divided by, up to
// the rare case where two absmax values share one f32 quotient).
float scb_from_scale(float scale);

// compressed-tensors int-quantized (W8A8) and pack-quantized (W4A16) (compressed_tensors.cpp).
void encode_compressed_tensors(PackedLayer&& layer, NamedTensors& out);
nlohmann::json compressed_tensors_config(kernels::LinearFormat format, const PackedLayer* example,
                                         const std::vector<std::string>& skipped);
PackedLayer load_compressed_tensors(const Checkpoint& ck, const std::string& name);
// The compressed-tensors release whose loader (ModelCompressor, the compressor classes,
// pack_to_int32) this encoding was checked against; written as quantization_config.version.
inline constexpr const char* kCompressedTensorsVersion = "0.20.0";

// Palettized (LUT) layers: modelpress' own convention (lut_encoding.cpp).
inline constexpr const char* kLutQuantMethod = "modelpress-palettization";
void encode_lut(PackedLayer&& layer, NamedTensors& out);
nlohmann::json lut_config(const PackedLayer* example, const std::vector<std::string>& skipped,
                          const std::string& algorithm);
PackedLayer load_lut(const Checkpoint& ck, const std::string& name);

// Shared by the decoders.
const CheckpointTensor& require_tensor(const Checkpoint& ck, const std::string& name, const std::string& why);
std::vector<float> read_f32(const Checkpoint& ck, const CheckpointTensor& t);
void read_bias_into(const Checkpoint& ck, const std::string& name, PackedLayer& layer);

}  // namespace modelpress::quant
