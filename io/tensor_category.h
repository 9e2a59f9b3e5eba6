// What role a tensor plays in the model, decided once per tensor from its name and rank by
// one ordered rule table (tensor_category.cpp), so passes never pattern-match names
// themselves. Covers Hugging Face names (LLaMA/Mistral/Qwen, BERT, GPT-2, MoE variants) and
// GGUF names (blk.N.attn_q.weight, ...).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace modelpress {

enum class TensorCategory {
  AttentionLinear,  // q/k/v/o projections, fused qkv
  MlpLinear,        // dense FFN projections
  ExpertLinear,     // MoE expert projections (per expert or fused 3-D)
  Router,           // MoE gate / router weights
  OtherLinear,      // any other 2-D weight (poolers, classifier heads, projections)
  Embedding,        // token / position / type embeddings
  LmHead,           // output projection to the vocabulary
  Norm,             // LayerNorm / RMSNorm weights and biases
  Bias,             // linear biases
  Other,            // buffers, scalars, quantization side tensors (scales, SCB, ...)
};

std::string_view category_name(TensorCategory c);  // "attention_linear", ...
TensorCategory classify_tensor(std::string_view name, size_t rank);
// Linear weights are what compression passes act on.
bool is_linear(TensorCategory c);

}  // namespace modelpress
