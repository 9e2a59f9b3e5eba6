// The BERT encoder (transformers' BertModel; all-MiniLM-L6-v2 is one), f32, every linear
// layer through kernels::run_linear, and the sentence embedding sentence-transformers
// computes from it (mean pooling over the tokens, L2-normalized).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/linear.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::model {

class BertModel {
 public:
  BertModel(const Checkpoint& checkpoint, const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  // Last hidden states (tokens.size(), hidden) of one unpadded sequence (token type 0).
  std::vector<float> forward(std::span<const int32_t> tokens, RunContext& ctx) const;
  // Several sequences in one pass, without padding: their rows are stacked for the linear
  // layers (one large product instead of many small ones) and each attends only to itself.
  // Returns the stacked last hidden states (sum of lengths, hidden).
  std::vector<float> forward_batch(const std::vector<std::span<const int32_t>>& sequences, RunContext& ctx) const;
  // Mean of the last hidden states over the tokens, L2-normalized (hidden).
  std::vector<float> sentence_embedding(std::span<const int32_t> tokens, RunContext& ctx) const;
  // The same for several sentences in one batch: (sentences, hidden).
  std::vector<std::vector<float>> sentence_embeddings(const std::vector<std::span<const int32_t>>& sentences,
                                                      RunContext& ctx) const;
  // BertPooler, when the checkpoint has one: tanh(dense(first token's state)), rows (n, hidden).
  // Sentence embeddings do not use it; calibration runs it so its layer is recorded too.
  bool has_pooler() const { return pooler_.n() > 0; }
  std::vector<float> pool(const float* first_token_states, int64_t n, RunContext& ctx) const;
  std::vector<const Linear*> linears() const;

 private:
  struct Layer {
    Linear q, k, v, attn_out, inter, out;
    std::vector<float> attn_ln_w, attn_ln_b, out_ln_w, out_ln_b;
  };
  ModelConfig config_;
  std::vector<float> word_, position_, token_type_, emb_ln_w_, emb_ln_b_;
  std::vector<Layer> layers_;
  Linear pooler_;
};

}  // namespace modelpress::model
