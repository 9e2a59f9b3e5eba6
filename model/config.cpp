#include "model/config.h"

#include <set>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/gguf_reader.h"

namespace modelpress::model {
namespace {

const std::set<std::string> kBert = {"BertModel", "BertForMaskedLM", "BertForSequenceClassification",
                                     "BertForPreTraining"};
const std::set<std::string> kVit = {"ViTModel", "ViTForImageClassification", "DeiTModel",
                                    "DeiTForImageClassification"};
const std::set<std::string> kDecoders = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                         "Qwen3ForCausalLM", "MixtralForCausalLM"};

// Reads config keys with errors that name the file and the key.
struct Keys {
  const nlohmann::json& j;
  const std::string& path;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t positive(const char* key) const {
    if (!has(key)) fail_file(path, std::string("missing \"") + key + "\", which the architecture needs");
    if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
      fail_file(path, std::string("\"") + key + "\" must be a positive integer, not " + j[key].dump());
    return j[key].get<int64_t>();
  }
  int64_t positive_or(const char* key, int64_t fallback) const { return has(key) ? positive(key) : fallback; }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_number()) fail_file(path, std::string("\"") + key + "\" must be a number, not " + j[key].dump());
    return j[key].get<double>();
  }
  bool flag_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_boolean()) fail_file(path, std::string("\"") + key + "\" must be true or false");
    return j[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_string()) fail_file(path, std::string("\"") + key + "\" must be a string");
    return j[key].get<std::string>();
  }
};

// transformers 4 writes "rope_scaling" (and "rope_theta" beside it); transformers 5 writes
// one "rope_parameters" object holding rope_theta, rope_type and the scaling keys.
const char* rope_key(const nlohmann::json& j) {
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) return "rope_parameters";
  return "rope_scaling";
}

RopeScaling parse_rope_scaling(const nlohmann::json& j, const std::string& path) {
  RopeScaling s;
  const char* key = rope_key(j);
  if (!j.contains(key) || j[key].is_null()) return s;
  const nlohmann::json& r = j[key];
  if (!r.is_object()) fail_file(path, std::string("\"") + key + "\" must be an object");
  Keys k{r, path};
  std::string type = k.string_or("rope_type", k.string_or("type", "default"));
  if (type == "default") return s;
  s.factor = k.number_or("factor", 1.0);
  if (!(s.factor > 0)) fail_file(path, "rope_scaling.factor must be positive");
  if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::Llama3;
    s.low_freq_factor = k.number_or("low_freq_factor", 1.0);
    s.high_freq_factor = k.number_or("high_freq_factor", 4.0);
    s.original_max_positions = k.positive_or("original_max_position_embeddings", 8192);
    if (!(s.high_freq_factor > s.low_freq_factor))
      fail_file(path, "rope_scaling: high_freq_factor must exceed low_freq_factor");
  } else {
    fail_file(path, "rope_scaling type \"" + type + "\" is not supported (default, linear, llama3)");
  }
  return s;
}

// BERT and ViT alike: multi-head attention without grouping, LayerNorm (eps
// layer_norm_eps), exact GELU.
void read_gelu_encoder(ModelConfig& c, const Keys& k, const char* family) {
  c.kv_heads = c.heads;
  if (c.hidden % c.heads != 0) fail_file(k.path, "hidden_size is not a multiple of num_attention_heads");
  c.head_dim = c.hidden / c.heads;
  c.norm_eps = k.number_or("layer_norm_eps", 1e-12);
  c.hidden_act = k.string_or("hidden_act", "gelu");
  if (c.hidden_act != "gelu")
    fail_file(k.path, "hidden_act \"" + c.hidden_act + "\" is not supported for " + family + " (gelu)");
}

void check_heads(ModelConfig& c, const std::string& path) {
  if (c.kv_heads > c.heads || c.heads % c.kv_heads != 0)
    fail_file(path, "num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " +
                        std::to_string(c.kv_heads));
  if (c.head_dim % 2 != 0) fail_file(path, "head_dim " + std::to_string(c.head_dim) + " is odd (RoPE rotates pairs)");
}

}  // namespace

std::string supported_architectures() {
  std::string s;
  for (const auto* set : {&kBert, &kVit, &kDecoders})
    for (const auto& a : *set) s += (s.empty() ? "" : ", ") + a;
  return s + "; GGUF general.architecture llama";
}

ModelConfig config_from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) fail_file(path, "not a JSON object");
  Keys k{j, path};
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  if (arch.empty()) {
    // sentence-transformers folders sometimes drop "architectures"; model_type still says it.
    const std::string type = k.string_or("model_type", "");
    if (type == "bert") arch = "BertModel";
    else if (type == "llama") arch = "LlamaForCausalLM";
    else if (type == "vit") arch = "ViTModel";
  }
  c.architecture = arch;
  c.hidden = k.positive("hidden_size");
  c.layers = k.positive("num_hidden_layers");
  c.heads = k.positive("num_attention_heads");
  c.intermediate = k.positive("intermediate_size");
  if (kVit.count(arch)) {
    c.family = Family::Vit;
    read_gelu_encoder(c, k, "ViT");
    c.image_size = k.positive("image_size");
    c.patch_size = k.positive("patch_size");
    c.channels = k.positive_or("num_channels", 3);
    if (c.image_size % c.patch_size != 0) fail_file(path, "image_size is not a multiple of patch_size");
    c.distillation_token = arch.rfind("DeiT", 0) == 0;
    const int64_t side = c.image_size / c.patch_size;
    c.max_positions = side * side + 1 + (c.distillation_token ? 1 : 0);
    c.qkv_bias = k.flag_or("qkv_bias", true);
    return c;
  }
  c.vocab = k.positive("vocab_size");
  c.max_positions = k.positive("max_position_embeddings");
  if (kBert.count(arch)) {
    c.family = Family::Bert;
    read_gelu_encoder(c, k, "BERT");
    c.type_vocab = k.positive_or("type_vocab_size", 2);
    const std::string pos = k.string_or("position_embedding_type", "absolute");
    if (pos != "absolute") fail_file(path, "position_embedding_type \"" + pos + "\" is not supported (absolute)");
    return c;
  }
  if (!kDecoders.count(arch))
    fail_file(path, "architecture \"" + (arch.empty() ? std::string("(none)") : arch) +
                        "\" is not supported; supported: " + supported_architectures());
  c.family = Family::Decoder;
  c.kv_heads = k.positive_or("num_key_value_heads", c.heads);
  c.head_dim = k.positive_or("head_dim", c.hidden % c.heads == 0 ? c.hidden / c.heads : 0);
  if (c.head_dim == 0) fail_file(path, "hidden_size is not a multiple of num_attention_heads and head_dim is missing");
  check_heads(c, path);
  c.norm_eps = k.number_or("rms_norm_eps", 1e-6);
  c.hidden_act = k.string_or("hidden_act", "silu");
  if (c.hidden_act != "silu") fail_file(path, "hidden_act \"" + c.hidden_act + "\" is not supported for decoders (silu)");
  c.rope_theta = k.number_or("rope_theta", 10000.0);
  if (std::string(rope_key(j)) == "rope_parameters" && j["rope_parameters"].is_object())
    c.rope_theta = Keys{j["rope_parameters"], path}.number_or("rope_theta", c.rope_theta);
  c.rope_scaling = parse_rope_scaling(j, path);
  c.tie_word_embeddings = k.flag_or("tie_word_embeddings", false);
  c.qk_norm = arch == "Qwen3ForCausalLM";
  c.attention_bias = k.flag_or("attention_bias", arch == "Qwen2ForCausalLM");
  if (k.has("sliding_window") && arch != "Qwen2ForCausalLM" && arch != "Qwen3ForCausalLM") {
    // Mistral's sliding window only matters beyond it; the forward refuses longer contexts.
    c.max_positions = std::min(c.max_positions, k.positive("sliding_window"));
  }
  if (arch == "MixtralForCausalLM") {
    c.experts = k.positive("num_local_experts");
    c.experts_per_token = k.positive("num_experts_per_tok");
    if (c.experts_per_token > c.experts) fail_file(path, "num_experts_per_tok exceeds num_local_experts");
  }
  return c;
}

ModelConfig config_from_gguf(const GgufFile& gguf) {
  const auto& m = gguf.metadata();
  const std::string& path = gguf.path();
  auto get = [&](const std::string& key) -> const nlohmann::ordered_json& {
    if (!m.contains(key)) fail_file(path, "GGUF metadata lacks " + key + ", which the architecture needs");
    return m[key];
  };
  auto positive = [&](const std::string& key) {
    const auto& v = get(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) fail_file(path, key + " must be a positive integer");
    return v.get<int64_t>();
  };
  const auto& a = get("general.architecture");
  const std::string arch = a.is_string() ? a.get<std::string>() : "";
  if (arch != "llama")
    fail_file(path, "GGUF architecture \"" + arch + "\" is not supported; supported: " + supported_architectures());
  ModelConfig c;
  c.family = Family::Decoder;
  c.architecture = arch;
  c.hidden = positive("llama.embedding_length");
  c.layers = positive("llama.block_count");
  c.heads = positive("llama.attention.head_count");
  c.kv_heads = m.contains("llama.attention.head_count_kv") ? positive("llama.attention.head_count_kv") : c.heads;
  c.intermediate = positive("llama.feed_forward_length");
  c.max_positions = positive("llama.context_length");
  if (c.hidden % c.heads != 0) fail_file(path, "llama.embedding_length is not a multiple of the head count");
  c.head_dim = c.hidden / c.heads;
  if (m.contains("llama.rope.dimension_count") && positive("llama.rope.dimension_count") != c.head_dim)
    fail_file(path, "llama.rope.dimension_count differs from the head size (partial RoPE is not supported)");
  check_heads(c, path);
  c.norm_eps = m.contains("llama.attention.layer_norm_rms_epsilon")
                   ? get("llama.attention.layer_norm_rms_epsilon").get<double>()
                   : 1e-5;
  c.rope_theta = m.contains("llama.rope.freq_base") ? get("llama.rope.freq_base").get<double>() : 10000.0;
  c.hidden_act = "silu";
  if (m.contains("llama.vocab_size")) {
    c.vocab = positive("llama.vocab_size");
  } else {
    const auto& tokens = get("tokenizer.ggml.tokens");
    if (!tokens.is_array() || tokens.empty()) fail_file(path, "tokenizer.ggml.tokens is not a list of tokens");
    c.vocab = static_cast<int64_t>(tokens.size());
  }
  c.tie_word_embeddings = gguf.find("output.weight") == nullptr;
  if (m.contains("llama.expert_count") && get("llama.expert_count").get<int64_t>() > 0)
    fail_file(path, "GGUF MoE models are not supported (read the Hugging Face checkpoint instead)");
  return c;
}

ModelConfig config_for_checkpoint(const Checkpoint& checkpoint) {
  if (checkpoint.format() == CheckpointFormat::Gguf) return config_from_gguf(*checkpoint.gguf());
  const std::string path = checkpoint.folder() + "/config.json";
  if (checkpoint.config().is_null()) fail_file(path, "missing: the forward needs the model's config.json");
  return config_from_json(checkpoint.config(), path);
}

}  // namespace modelpress::model
