#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "io/checkpoint.h"
#include "io/error.h"
#include "model/weights.h"

namespace modelpress::model {

DecoderModel::DecoderModel(const Checkpoint& checkpoint, const ModelConfig& c)
    : config_(c), rope_(c.head_dim, c.rope_theta, c.rope_scaling) {
  WeightSource w(checkpoint, c.heads, c.kv_heads);
  const int64_t h = c.hidden, qd = c.heads * c.head_dim, kvd = c.kv_heads * c.head_dim;
  embed_ = std::make_shared<std::vector<float>>(w.tensor("model.embed_tokens.weight", {c.vocab, h}));
  layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) {
    Layer& L = layers_[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    L.input_norm = w.tensor(p + "input_layernorm.weight", {h});
    L.post_norm = w.tensor(p + "post_attention_layernorm.weight", {h});
    L.q = w.linear(p + "self_attn.q_proj", qd, h);
    L.k = w.linear(p + "self_attn.k_proj", kvd, h);
    L.v = w.linear(p + "self_attn.v_proj", kvd, h);
    L.o = w.linear(p + "self_attn.o_proj", h, qd);
    if (c.qk_norm) {
      L.q_norm = w.tensor(p + "self_attn.q_norm.weight", {c.head_dim});
      L.k_norm = w.tensor(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    if (c.experts > 0) {
      const std::string m = p + "block_sparse_moe.";
      L.router = w.linear(m + "gate", c.experts, h);
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string x = m + "experts." + std::to_string(e) + ".";
        L.w1.push_back(w.linear(x + "w1", c.intermediate, h));
        L.w2.push_back(w.linear(x + "w2", h, c.intermediate));
        L.w3.push_back(w.linear(x + "w3", c.intermediate, h));
      }
    } else {
      L.gate = w.linear(p + "mlp.gate_proj", c.intermediate, h);
      L.up = w.linear(p + "mlp.up_proj", c.intermediate, h);
      L.down = w.linear(p + "mlp.down_proj", h, c.intermediate);
    }
  }
  final_norm_ = w.tensor("model.norm.weight", {h});
  // A checkpoint that stores lm_head uses it even when the config says tied (some writers
  // keep both); without one the embedding table is the head.
  if (w.has("lm_head") || w.has("lm_head.weight"))
    lm_head_ = w.linear("lm_head", c.vocab, h);
  else if (c.tie_word_embeddings)
    lm_head_ = Linear::dense_view("lm_head", embed_->data(), c.vocab, h, embed_);
  else
    fail_file(w.label(), "tensor lm_head.weight is missing and the config does not tie the embeddings");
}

KvCache DecoderModel::new_cache(int64_t capacity) const {
  KvCache cache;
  cache.capacity = capacity;
  const size_t n = static_cast<size_t>(config_.layers * config_.kv_heads * capacity * config_.head_dim);
  cache.k.resize(n);
  cache.v.resize(n);
  return cache;
}

std::vector<float> DecoderModel::forward(std::span<const int32_t> tokens, KvCache& cache, RunContext& ctx) const {
  const int64_t t = static_cast<int64_t>(tokens.size()), h = config_.hidden;
  if (cache.length + t > cache.capacity)
    throw Error("forward: " + std::to_string(cache.length + t) + " positions exceed the KV cache's " +
                std::to_string(cache.capacity));
  std::vector<float> x(static_cast<size_t>(t * h));
  for (int64_t i = 0; i < t; ++i) {
    const int32_t id = tokens[static_cast<size_t>(i)];
    if (id < 0 || id >= config_.vocab)
      throw Error("forward: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(config_.vocab) + ")");
    std::copy_n(embed_->data() + id * h, h, x.data() + i * h);
  }
  std::vector<float> normed(x.size()), ffn(x.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    attention_block(L, static_cast<int64_t>(l), x.data(), t, cache, ctx);
    normed = x;
    rms_norm(normed.data(), t, h, L.post_norm.data(), config_.norm_eps);
    if (config_.experts > 0) moe(L, normed.data(), t, ffn.data(), ctx);
    else mlp(L, normed.data(), t, ffn.data(), ctx);
    add_in_place(x.data(), ffn.data(), t * h);
  }
  cache.length += t;
  rms_norm(x.data(), t, h, final_norm_.data(), config_.norm_eps);
  return x;
}

void DecoderModel::attention_block(const Layer& L, int64_t index, float* x, int64_t t, KvCache& cache,
                                   RunContext& ctx) const {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden, d = c.head_dim, qd = c.heads * d, kvd = c.kv_heads * d;
  std::vector<float> normed(x, x + t * h);
  rms_norm(normed.data(), t, h, L.input_norm.data(), c.norm_eps);
  std::vector<float> q(static_cast<size_t>(t * qd)), k(static_cast<size_t>(t * kvd)), v(k.size());
  L.q.run(normed.data(), t, q.data(), ctx);
  L.k.run(normed.data(), t, k.data(), ctx);
  L.v.run(normed.data(), t, v.data(), ctx);
  if (c.qk_norm) {  // Qwen3: per-head RMSNorm before RoPE
    rms_norm(q.data(), t * c.heads, d, L.q_norm.data(), c.norm_eps);
    rms_norm(k.data(), t * c.kv_heads, d, L.k_norm.data(), c.norm_eps);
  }
  rope_.apply(q.data(), t, c.heads, cache.length);
  rope_.apply(k.data(), t, c.kv_heads, cache.length);
  // Append k, v to the cache: layer `index`, head-major.
  const int64_t layer_base = index * c.kv_heads * cache.capacity * d;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t hh = 0; hh < c.kv_heads; ++hh) {
      const int64_t dst = layer_base + (hh * cache.capacity + cache.length + i) * d;
      std::copy_n(k.data() + i * kvd + hh * d, d, cache.k.data() + dst);
      std::copy_n(v.data() + i * kvd + hh * d, d, cache.v.data() + dst);
    }
  std::vector<float> att(static_cast<size_t>(t * qd));
  const HeadRows kr{cache.k.data() + layer_base, cache.capacity * d, d};
  const HeadRows vr{cache.v.data() + layer_base, cache.capacity * d, d};
  attention(q.data(), t, kr, vr, cache.length + t, c.heads, c.kv_heads, d, /*causal=*/true, att.data());
  std::vector<float> o(static_cast<size_t>(t * h));
  L.o.run(att.data(), t, o.data(), ctx);
  add_in_place(x, o.data(), t * h);
}

void DecoderModel::mlp(const Layer& L, const float* h, int64_t t, float* out, RunContext& ctx) const {
  const int64_t inter = config_.intermediate;
  std::vector<float> gate(static_cast<size_t>(t * inter)), up(gate.size());
  L.gate.run(h, t, gate.data(), ctx);
  L.up.run(h, t, up.data(), ctx);
  silu_mul(gate.data(), up.data(), t * inter);
  L.down.run(gate.data(), t, out, ctx);
}

void DecoderModel::moe(const Layer& L, const float* h, int64_t t, float* out, RunContext& ctx) const {
  // MixtralSparseMoeBlock: softmax over the router logits (f32), the top-k experts per token
  // (ties to the lower index), their weights renormalized to sum 1, and each expert's
  // SwiGLU FFN run on the rows routed to it.
  const int64_t e_count = config_.experts, top = config_.experts_per_token, hd = config_.hidden;
  const int64_t inter = config_.intermediate;
  std::vector<float> logits(static_cast<size_t>(t * e_count));
  L.router.run(h, t, logits.data(), ctx);
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(e_count));
  std::vector<std::vector<float>> weights(static_cast<size_t>(e_count));
  for (int64_t i = 0; i < t; ++i) {
    const float* z = logits.data() + i * e_count;
    const float mx = *std::max_element(z, z + e_count);
    std::vector<double> p(static_cast<size_t>(e_count));
    double sum = 0;
    for (int64_t e = 0; e < e_count; ++e) sum += p[e] = std::exp(static_cast<double>(z[e] - mx));
    std::vector<int64_t> order(static_cast<size_t>(e_count));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    double chosen = 0;
    for (int64_t j = 0; j < top; ++j) chosen += p[order[j]] / sum;
    for (int64_t j = 0; j < top; ++j) {
      rows[order[j]].push_back(i);
      weights[order[j]].push_back(static_cast<float>(p[order[j]] / sum / chosen));
    }
  }
  std::fill(out, out + t * hd, 0.0f);
  for (int64_t e = 0; e < e_count; ++e) {
    const auto& r = rows[static_cast<size_t>(e)];
    if (r.empty()) continue;
    const int64_t m = static_cast<int64_t>(r.size());
    std::vector<float> xin(static_cast<size_t>(m * hd)), gate(static_cast<size_t>(m * inter)), up(gate.size()),
        y(xin.size());
    for (int64_t j = 0; j < m; ++j) std::copy_n(h + r[j] * hd, hd, xin.data() + j * hd);
    L.w1[e].run(xin.data(), m, gate.data(), ctx);
    L.w3[e].run(xin.data(), m, up.data(), ctx);
    silu_mul(gate.data(), up.data(), m * inter);
    L.w2[e].run(gate.data(), m, y.data(), ctx);
    for (int64_t j = 0; j < m; ++j) {
      const float wt = weights[static_cast<size_t>(e)][static_cast<size_t>(j)];
      float* dst = out + r[j] * hd;
      for (int64_t i = 0; i < hd; ++i) dst[i] += wt * y[j * hd + i];
    }
  }
}

void DecoderModel::logits(const float* hidden, int64_t rows, float* out, RunContext& ctx) const {
  lm_head_.run(hidden, rows, out, ctx);
}

std::vector<const Linear*> DecoderModel::linears() const {
  std::vector<const Linear*> all;
  for (const Layer& L : layers_) {
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.o}) all.push_back(l);
    if (config_.experts > 0) {
      all.push_back(&L.router);
      for (size_t e = 0; e < L.w1.size(); ++e)
        for (const Linear* l : {&L.w1[e], &L.w3[e], &L.w2[e]}) all.push_back(l);
    } else {
      for (const Linear* l : {&L.gate, &L.up, &L.down}) all.push_back(l);
    }
  }
  all.push_back(&lm_head_);
  return all;
}

}  // namespace modelpress::model
