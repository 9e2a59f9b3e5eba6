#include "io/synthetic_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "io/float_convert.h"
#include "io/tensor.h"

namespace modelpress {
namespace {

// splitmix64: tiny, fast, and identical everywhere.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
};

uint64_t hash_name(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Each tensor draws from its own stream seeded by its name, so tensors do not depend on the
// order they are generated in.
std::vector<float> gaussian(const std::string& name, uint64_t seed, size_t n, double stddev, bool heavy_tail) {
  Rng rng{hash_name(name, seed)};
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(rng.uniform()));
    const double a = 2.0 * std::numbers::pi * rng.uniform();
    v[i] = static_cast<float>(stddev * r * std::cos(a));
    if (i + 1 < n) v[i + 1] = static_cast<float>(stddev * r * std::sin(a));
  }
  if (heavy_tail)
    for (size_t i = 0; i < n; ++i)
      if (rng.next() % 2000 == 0) v[i] *= 10.0f;
  return v;
}

}  // namespace

void write_synthetic_checkpoint(const std::string& dir, const SyntheticOptions& o) {
  if (o.layers < 1 || o.hidden < 1 || o.intermediate < 1 || o.vocab < 1 || o.heads < 1 || o.kv_heads < 1)
    throw Error("synthetic checkpoint: layers, hidden, intermediate, vocab and heads must be positive");
  if (o.hidden % o.heads != 0 || o.heads % o.kv_heads != 0)
    throw Error("synthetic checkpoint: hidden must be a multiple of heads, and heads of kv-heads");
  if (o.outlier_channels < 0 || o.outlier_channels > o.hidden)
    throw Error("synthetic checkpoint: outlier channels must be between 0 and hidden");
  if (!dtype_is_float(o.dtype)) throw Error("synthetic checkpoint: dtype must be a float type");

  const int64_t h = o.hidden, f = o.intermediate, head_dim = o.hidden / o.heads;
  const int64_t kv = head_dim * o.kv_heads;
  // Outlier channels: spread over the hidden size, the same in every layer, all distinct (a
  // channel already taken, as the +i%3 jitter and the clamp give when they are dense, moves to
  // the next free one; at most `hidden` of them, so there is one).
  std::vector<int64_t> outliers;
  std::vector<bool> taken(static_cast<size_t>(h), false);
  for (int i = 0; i < o.outlier_channels; ++i) {
    int64_t c = std::min((static_cast<int64_t>(i) * 2 + 1) * h / (2 * o.outlier_channels) + i % 3, h - 1);
    while (taken[static_cast<size_t>(c)]) c = (c + 1) % h;
    taken[static_cast<size_t>(c)] = true;
    outliers.push_back(c);
  }

  CheckpointWriterOptions wo;
  wo.max_shard_bytes = o.max_shard_bytes;
  wo.overwrite = o.overwrite;
  wo.expected_tensors = 3 + 9 * static_cast<size_t>(o.layers);
  CheckpointWriter writer(dir, nullptr, wo);

  auto emit = [&](const std::string& name, Shape shape, std::vector<float> values) {
    writer.append(name, Tensor::from_f32(values, o.dtype, std::move(shape)));
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in, double extra_scale) {
    emit(name, {out, in}, gaussian(name, o.seed, static_cast<size_t>(out * in),
                                   extra_scale / std::sqrt(static_cast<double>(in)), true));
  };
  auto norm = [&](const std::string& name) {
    std::vector<float> g = gaussian(name, o.seed, static_cast<size_t>(h), 0.05, false);
    for (auto& x : g) x += 1.0f;
    for (int64_t c : outliers) g[static_cast<size_t>(c)] = o.outlier_gain;
    emit(name, {h}, std::move(g));
  };

  const double residual_scale = 1.0 / std::sqrt(2.0 * o.layers);
  emit("model.embed_tokens.weight", {o.vocab, h},
       gaussian("model.embed_tokens.weight", o.seed, static_cast<size_t>(o.vocab * h), 0.02, false));
  for (int l = 0; l < o.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    norm(p + "input_layernorm.weight");
    linear(p + "self_attn.q_proj.weight", h, h, 1.0);
    linear(p + "self_attn.k_proj.weight", kv, h, 1.0);
    linear(p + "self_attn.v_proj.weight", kv, h, 1.0);
    linear(p + "self_attn.o_proj.weight", h, h, residual_scale);
    norm(p + "post_attention_layernorm.weight");
    linear(p + "mlp.gate_proj.weight", f, h, 1.0);
    linear(p + "mlp.up_proj.weight", f, h, 1.0);
    linear(p + "mlp.down_proj.weight", h, f, residual_scale);
  }
  norm("model.norm.weight");
  linear("lm_head.weight", o.vocab, h, 1.0);

  const char* torch_dtype = o.dtype == DType::BF16 ? "bfloat16" : o.dtype == DType::F16 ? "float16" : "float32";
  writer.set_config({
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", h},
      {"intermediate_size", f},
      {"num_hidden_layers", o.layers},
      {"num_attention_heads", o.heads},
      {"num_key_value_heads", o.kv_heads},
      {"head_dim", head_dim},
      {"vocab_size", o.vocab},
      {"max_position_embeddings", 2048},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", false},
      {"torch_dtype", torch_dtype},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"modelpress_synthetic", {{"seed", o.seed}, {"outlier_channels", outliers}}},
  });
  writer.finish();
}

}  // namespace modelpress
