// The driver behind `modelpress decompress`: rewrites a compressed checkpoint (palettized,
// and equally bitsandbytes int8 or compressed-tensors) as a dense one any tool loads. Each
// packed layer's tensors become one <p>.weight holding the dequantized weight, written
// where the layer's first tensor was; every other tensor is copied unchanged, and config.json
// loses its quantization_config. The input is only read; the output appears when complete.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "io/dtype.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::quant {

struct DecompressOptions {
  // Dtype of the dense weights; empty: the dtype the layer was made from (a palettized
  // layer records it; compressed-tensors keeps scales in it; for bitsandbytes int8, the
  // model dtype config.json records; otherwise F32).
  std::optional<DType> dtype;
  bool overwrite = false;
  uint64_t max_shard_bytes = 5'000'000'000;
};

struct DecompressReport {
  size_t layers = 0, tensors_in = 0, tensors_out = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
};

// Throws Error naming the checkpoint when it holds no packed layer, or a layer that does not
// decode (a malformed tensor named by the decoder).
DecompressReport decompress_checkpoint(const Checkpoint& in, const std::string& out_dir, const DecompressOptions& options,
                                       const std::function<void(size_t, size_t, const std::string&)>& progress = {});

}  // namespace modelpress::quant
