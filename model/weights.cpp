#include "model/weights.h"

#include <regex>

#include "io/checkpoint.h"
#include "io/error.h"

namespace modelpress::model {
namespace {

// Hugging Face LLaMA names <-> llama.cpp's GGUF names (llama.cpp's LLM_TENSOR_NAMES).
const std::vector<std::pair<std::string, std::string>>& whole_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  return names;
}
const std::vector<std::pair<std::string, std::string>>& in_layer_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"input_layernorm", "attn_norm"},        {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},          {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},          {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"},     {"self_attn.k_norm", "attn_k_norm"},
      {"mlp.gate_proj", "ffn_gate"},           {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"},
  };
  return names;
}

std::string gguf_name_of(const std::string& hf) {
  for (const auto& [from, to] : whole_names())
    if (hf == from) return to;
  static const std::regex layer(R"(^model\.layers\.(\d+)\.(.+)\.(weight|bias)$)");
  std::smatch m;
  if (std::regex_match(hf, m, layer))
    for (const auto& [from, to] : in_layer_names())
      if (m[2] == from) return "blk." + m[1].str() + "." + to + "." + m[3].str();
  return hf;  // not a name GGUF has: reported missing under its Hugging Face name
}

}  // namespace

std::string hf_name_of_gguf(const std::string& gguf) {
  for (const auto& [hf, to] : whole_names())
    if (gguf == to) return hf;
  static const std::regex layer(R"(^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$)");
  std::smatch m;
  if (std::regex_match(gguf, m, layer))
    for (const auto& [hf, to] : in_layer_names())
      if (m[2] == to) return "model.layers." + m[1].str() + "." + hf + "." + m[3].str();
  return gguf;
}

WeightSource::WeightSource(const Checkpoint& checkpoint, int64_t heads, int64_t kv_heads)
    : ck_(checkpoint), heads_(heads), kv_heads_(kv_heads) {
  gguf_ = checkpoint.format() == CheckpointFormat::Gguf;
  label_ = gguf_ ? checkpoint.files().front() : checkpoint.folder();
  if (!gguf_)
    for (auto& name : quant::packed_layer_names(checkpoint)) packed_.insert(std::move(name));
}

std::string WeightSource::stored_name(const std::string& hf_name) const {
  return gguf_ ? gguf_name_of(hf_name) : hf_name;
}

bool WeightSource::has(const std::string& name) const {
  return packed_.count(name) || ck_.find(stored_name(name)) != nullptr;
}

std::vector<float> WeightSource::tensor(const std::string& name, const Shape& expected) const {
  const std::string stored = stored_name(name);
  const CheckpointTensor* t = ck_.find(stored);
  if (!t) fail_file(label_, "tensor " + stored + " is missing (the forward needs it)");
  if (t->shape != expected)
    fail_file(label_, "tensor " + stored + " has shape " + shape_to_string(t->shape) + ", the config implies " +
                          shape_to_string(expected));
  return ck_.read(*t).to_f32();
}

std::vector<float> WeightSource::unpermute_for_gguf(const std::string& hf_name, std::vector<float> w, int64_t n,
                                                    int64_t k) const {
  // convert_hf_to_gguf.py's LlamaModel.permute: rows of each head go from [half0 | half1]
  // (rotate_half) to interleaved pairs: reshape(h, 2, d/2, K).swapaxes(1, 2). Undo it.
  int64_t h = 0;
  if (hf_name.ends_with("self_attn.q_proj")) h = heads_;
  else if (hf_name.ends_with("self_attn.k_proj")) h = kv_heads_;
  if (h == 0) return w;
  const int64_t d = n / h, half = d / 2;
  std::vector<float> out(w.size());
  for (int64_t head = 0; head < h; ++head)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t stored_row = head * d + i * 2 + j;  // interleaved
        const int64_t hf_row = head * d + j * half + i;   // halves
        std::copy_n(w.data() + stored_row * k, k, out.data() + hf_row * k);
      }
  return out;
}

std::vector<float> WeightSource::dense_weight(const std::string& prefix, int64_t n, int64_t k) const {
  std::vector<float> w = tensor(prefix + ".weight", {n, k});
  return gguf_ ? unpermute_for_gguf(prefix, std::move(w), n, k) : w;
}

Linear WeightSource::linear(const std::string& prefix, int64_t n, int64_t k) const {
  if (packed_.count(prefix)) {
    quant::PackedLayer layer = quant::load_packed_layer(ck_, prefix);
    if (layer.n != n || layer.k != k)
      fail_file(label_, "packed layer " + prefix + " is " + shape_to_string({layer.n, layer.k}) +
                            ", the config implies " + shape_to_string({n, k}));
    return Linear(std::move(layer));
  }
  quant::PackedLayer layer;
  layer.name = prefix;
  layer.format = kernels::LinearFormat::DenseF32;
  layer.n = n;
  layer.k = k;
  layer.dense = dense_weight(prefix, n, k);
  if (has(prefix + ".bias")) layer.bias = tensor(prefix + ".bias", {n});
  return Linear(std::move(layer));
}

}  // namespace modelpress::model
