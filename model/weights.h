// Where the forward gets its weights: a checkpoint's tensors under their Hugging Face names,
// each checked against the shape the config implies. Linear layers come back in the format
// the checkpoint stores them (packed layers through quant/'s decoders, the rest dense). A
// GGUF LLaMA file answers to the same names (blk.N.attn_q.weight is
// model.layers.N.self_attn.q_proj.weight); its block types are dequantized to f32, and its
// q/k rows are put back in Hugging Face's order (convert_hf_to_gguf.py permutes them for
// llama.cpp's interleaved RoPE).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "io/tensor.h"
#include "model/linear.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::model {

// The Hugging Face name of a GGUF LLaMA tensor name ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"); other names come back unchanged.
std::string hf_name_of_gguf(const std::string& gguf);

class WeightSource {
 public:
  // `heads` / `kv_heads`: for GGUF's q/k permutation.
  WeightSource(const Checkpoint& checkpoint, int64_t heads, int64_t kv_heads);

  const std::string& label() const { return label_; }
  // True when the checkpoint has the tensor `name` or a packed layer `name` (a prefix).
  bool has(const std::string& name) const;
  // The tensor as f32; an Error naming it when missing or not of shape `expected`.
  std::vector<float> tensor(const std::string& name, const Shape& expected) const;
  // The linear layer `prefix` (weight (n, k), bias (n) when the checkpoint has one).
  Linear linear(const std::string& prefix, int64_t n, int64_t k) const;
  // The name the checkpoint stores the Hugging Face name `hf_name` under.
  std::string stored_name(const std::string& hf_name) const;
  // The dense weight `prefix`.weight (n, k) as f32, in Hugging Face's row order.
  std::vector<float> dense_weight(const std::string& prefix, int64_t n, int64_t k) const;

 private:
  std::vector<float> unpermute_for_gguf(const std::string& hf_name, std::vector<float> w, int64_t n, int64_t k) const;

  const Checkpoint& ck_;
  std::string label_;
  bool gguf_ = false;
  int64_t heads_ = 0, kv_heads_ = 0;
  std::unordered_set<std::string> packed_;
};

}  // namespace modelpress::model
