// A deterministic LLaMA-style Hugging Face checkpoint for tests and benchmarks, and the
// fallback default model when the real one cannot be downloaded. Same options and seed give
// the same bytes on every machine (own PRNG and Box-Muller, no std:: distributions).
//
// What makes it realistic enough to exercise compression:
// - linear weights ~ N(0, 1/in_features), residual-output projections (o_proj, down_proj)
//   scaled down by 1/sqrt(2 * layers) as GPT-2 does, plus rare 10x weight outliers (1 in
//   2000), the heavy tail trained weights show;
// - embeddings ~ N(0, 0.02);
// - RMSNorm gains 1 + N(0, 0.05), except a few fixed hidden channels whose gain is
//   `outlier_gain` in every layer: after the norm those channels carry the large-magnitude
//   activation outliers LLM.int8() was built for. config.json lists them under
//   "modelpress_synthetic" (transformers keeps unknown config keys as attributes).
#pragma once
#include <cstdint>
#include <string>

#include "io/dtype.h"

namespace modelpress {

struct SyntheticOptions {
  int layers = 4;
  int hidden = 256;
  int intermediate = 688;
  int heads = 8;
  int kv_heads = 4;
  int vocab = 1024;
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  int outlier_channels = 4;
  float outlier_gain = 24.0f;
  uint64_t max_shard_bytes = 5'000'000'000;
  bool overwrite = false;
};

// Writes the checkpoint folder (config.json and the weights) to `dir`.
void write_synthetic_checkpoint(const std::string& dir, const SyntheticOptions& options);

}  // namespace modelpress
