// The LLaMA-family decoder (LLaMA, Mistral, Qwen2 with q/k/v biases, Qwen3 with q/k norms,
// SmolLM2) and its Mixtral-style MoE variant, run in f32 with every linear layer through
// kernels::run_linear (model/linear.h). Grouped-query attention, RoPE (model/ops.h), RMSNorm,
// SwiGLU, tied embeddings. A KV cache makes token-by-token decoding cost one row per layer.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/linear.h"
#include "model/ops.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::model {

// Keys and values of every layer for positions [0, length): layer l, kv head h, position p
// at ((l * kv_heads + h) * capacity + p) * head_dim.
struct KvCache {
  int64_t capacity = 0, length = 0;
  std::vector<float> k, v;
};

class DecoderModel {
 public:
  // Reads every weight the config implies; Errors name a missing or misshapen tensor.
  DecoderModel(const Checkpoint& checkpoint, const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  KvCache new_cache(int64_t capacity) const;
  // Runs `tokens` at positions cache.length, ... and appends their keys and values to the
  // cache. Returns the final-norm hidden states (tokens.size(), hidden). Throws Error for a
  // token id outside the vocabulary or a cache too small.
  std::vector<float> forward(std::span<const int32_t> tokens, KvCache& cache, RunContext& ctx) const;
  // Logits (rows, vocab) of final hidden states.
  void logits(const float* hidden, int64_t rows, float* out, RunContext& ctx) const;
  // Every linear layer, in forward order (calibration, reports).
  std::vector<const Linear*> linears() const;

 private:
  struct Layer {
    std::vector<float> input_norm, post_norm, q_norm, k_norm;
    Linear q, k, v, o;
    Linear gate, up, down;                      // dense FFN
    Linear router;                              // MoE
    std::vector<Linear> w1, w2, w3;             // MoE experts: gate, down, up
  };
  void attention_block(const Layer& layer, int64_t index, float* x, int64_t t, KvCache& cache, RunContext& ctx) const;
  void mlp(const Layer& layer, const float* h, int64_t t, float* out, RunContext& ctx) const;
  void moe(const Layer& layer, const float* h, int64_t t, float* out, RunContext& ctx) const;

  ModelConfig config_;
  std::shared_ptr<std::vector<float>> embed_;  // (vocab, hidden)
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  Linear lm_head_;
  Rope rope_;
};

}  // namespace modelpress::model
