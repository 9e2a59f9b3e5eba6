#include "model/gguf_to_hf.h"

#include <set>

#include "io/checkpoint.h"
#include "io/error.h"
#include "model/config.h"
#include "model/weights.h"

namespace modelpress::model {
namespace {

const ModelConfig gguf_config(const Checkpoint& ck) {
  if (ck.format() != CheckpointFormat::Gguf) throw Error(ck.folder() + ": not a GGUF file");
  return config_from_gguf(*ck.gguf());
}

Tensor f32(const std::vector<float>& v, Shape shape) { return Tensor::from_f32(v, DType::F32, std::move(shape)); }

}  // namespace

nlohmann::json hf_config_for_gguf(const Checkpoint& ck) {
  const ModelConfig c = gguf_config(ck);
  const auto& m = ck.gguf()->metadata();
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", c.hidden},
      {"intermediate_size", c.intermediate},
      {"num_hidden_layers", c.layers},
      {"num_attention_heads", c.heads},
      {"num_key_value_heads", c.kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab},
      {"max_position_embeddings", c.max_positions},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"torch_dtype", "float32"},
  };
  for (const char* key : {"bos_token_id", "eos_token_id", "padding_token_id"}) {
    const std::string g = std::string("tokenizer.ggml.") + key;
    if (m.contains(g) && m[g].is_number_integer())
      j[std::string(key) == "padding_token_id" ? "pad_token_id" : key] = m[g].get<int64_t>();
  }
  if (m.contains("general.name") && m["general.name"].is_string())
    j["modelpress_source"] = {{"gguf", ck.files().front()}, {"general.name", m["general.name"].get<std::string>()}};
  return j;
}

void for_each_hf_tensor(const Checkpoint& ck, const std::function<void(const std::string&, const Tensor&)>& emit) {
  const ModelConfig c = gguf_config(ck);
  WeightSource w(ck, c.heads, c.kv_heads);
  const int64_t h = c.hidden, qd = c.heads * c.head_dim, kvd = c.kv_heads * c.head_dim;
  std::set<std::string> used;  // GGUF names consumed, to find any left over
  auto vec = [&](const std::string& name, Shape shape) {
    used.insert(w.stored_name(name));
    emit(name, f32(w.tensor(name, shape), shape));
  };
  auto lin = [&](const std::string& prefix, int64_t n, int64_t k) {
    used.insert(w.stored_name(prefix + ".weight"));
    emit(prefix + ".weight", f32(w.dense_weight(prefix, n, k), {n, k}));
  };
  vec("model.embed_tokens.weight", {c.vocab, h});
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    vec(p + "input_layernorm.weight", {h});
    lin(p + "self_attn.q_proj", qd, h);
    lin(p + "self_attn.k_proj", kvd, h);
    lin(p + "self_attn.v_proj", kvd, h);
    lin(p + "self_attn.o_proj", h, qd);
    vec(p + "post_attention_layernorm.weight", {h});
    lin(p + "mlp.gate_proj", c.intermediate, h);
    lin(p + "mlp.up_proj", c.intermediate, h);
    lin(p + "mlp.down_proj", h, c.intermediate);
  }
  vec("model.norm.weight", {h});
  if (!c.tie_word_embeddings) lin("lm_head", c.vocab, h);
  for (const auto& t : ck.tensors())
    if (!used.count(t.name))
      fail_file(ck.files().front(), "tensor " + t.name + " has no Hugging Face LLaMA name; refusing to drop it");
}

}  // namespace modelpress::model
