// What the forward needs to know about a model, read from its config.json (Hugging Face) or
// from GGUF metadata (`general.architecture`, `llama.*`). Every field the architecture needs
// must be there: a missing or nonsensical one is an Error naming the file and the key, so a
// model never runs on a guessed shape.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace modelpress {
class Checkpoint;
class GgufFile;
}

namespace modelpress::model {

enum class Family {
  Bert,     // BertModel encoder (all-MiniLM-L6-v2, sentence-transformers)
  Decoder,  // LLaMA family: LLaMA, Mistral, Qwen2, Qwen3, SmolLM2; Mixtral-style MoE
  Vit,      // ViTModel / DeiTModel image encoder (and their image-classification heads)
};

// RoPE frequency scaling (config.json "rope_scaling"). Llama3 follows transformers'
// _compute_llama3_parameters; Linear divides positions by the factor.
struct RopeScaling {
  enum class Type { None, Linear, Llama3 } type = Type::None;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_positions = 8192;
};

struct ModelConfig {
  Family family = Family::Decoder;
  std::string architecture;  // as the checkpoint names it: "LlamaForCausalLM", "BertModel", "llama"
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  int64_t vocab = 0, max_positions = 0;
  double norm_eps = 1e-5;
  std::string hidden_act;  // "silu", "gelu"
  // Decoders
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qk_norm = false;         // Qwen3: RMSNorm over each head of q and k before RoPE
  bool attention_bias = false;  // Qwen2: q/k/v projections carry biases (read when present)
  int64_t experts = 0;          // Mixtral: local experts per layer (0: dense FFN)
  int64_t experts_per_token = 0;
  // BERT
  int64_t type_vocab = 0;
  // ViT / DeiT: square images of image_size pixels cut into patch_size patches; DeiT adds a
  // distillation token after the CLS token.
  int64_t image_size = 0, patch_size = 0, channels = 0;
  bool distillation_token = false;
  bool qkv_bias = true;
};

// From a Hugging Face config.json object; `path` names the file in errors.
ModelConfig config_from_json(const nlohmann::json& config, const std::string& path);
// From GGUF metadata (general.architecture "llama").
ModelConfig config_from_gguf(const GgufFile& gguf);
// The checkpoint's config: GGUF metadata for a GGUF file, config.json otherwise (an Error
// when there is none).
ModelConfig config_for_checkpoint(const Checkpoint& checkpoint);

// "BertModel, LlamaForCausalLM, ..." for error messages.
std::string supported_architectures();

}  // namespace modelpress::model
