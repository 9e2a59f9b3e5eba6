#include "model/bert.h"

#include <cmath>

#include "io/checkpoint.h"
#include "io/error.h"
#include "model/ops.h"
#include "model/weights.h"

namespace modelpress::model {

BertModel::BertModel(const Checkpoint& checkpoint, const ModelConfig& c) : config_(c) {
  WeightSource w(checkpoint, c.heads, c.kv_heads);
  // BertModel's own names, or under "bert." when saved from a task model (BertForMaskedLM).
  const std::string root = w.has("embeddings.word_embeddings.weight") ? "" : "bert.";
  const int64_t h = c.hidden;
  word_ = w.tensor(root + "embeddings.word_embeddings.weight", {c.vocab, h});
  position_ = w.tensor(root + "embeddings.position_embeddings.weight", {c.max_positions, h});
  token_type_ = w.tensor(root + "embeddings.token_type_embeddings.weight", {c.type_vocab, h});
  emb_ln_w_ = w.tensor(root + "embeddings.LayerNorm.weight", {h});
  emb_ln_b_ = w.tensor(root + "embeddings.LayerNorm.bias", {h});
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = root + "encoder.layer." + std::to_string(i) + ".";
    Layer L;
    L.q = w.linear(p + "attention.self.query", h, h);
    L.k = w.linear(p + "attention.self.key", h, h);
    L.v = w.linear(p + "attention.self.value", h, h);
    L.attn_out = w.linear(p + "attention.output.dense", h, h);
    L.attn_ln_w = w.tensor(p + "attention.output.LayerNorm.weight", {h});
    L.attn_ln_b = w.tensor(p + "attention.output.LayerNorm.bias", {h});
    L.inter = w.linear(p + "intermediate.dense", c.intermediate, h);
    L.out = w.linear(p + "output.dense", h, c.intermediate);
    L.out_ln_w = w.tensor(p + "output.LayerNorm.weight", {h});
    L.out_ln_b = w.tensor(p + "output.LayerNorm.bias", {h});
    layers_.push_back(std::move(L));
  }
  if (w.has(root + "pooler.dense") || w.has(root + "pooler.dense.weight")) pooler_ = w.linear(root + "pooler.dense", h, h);
}

std::vector<float> BertModel::pool(const float* first_token_states, int64_t n, RunContext& ctx) const {
  if (!has_pooler()) throw Error("forward: this BERT checkpoint has no pooler");
  std::vector<float> y(static_cast<size_t>(n * config_.hidden));
  pooler_.run(first_token_states, n, y.data(), ctx);
  for (float& v : y) v = std::tanh(v);
  return y;
}

std::vector<float> BertModel::forward(std::span<const int32_t> tokens, RunContext& ctx) const {
  return forward_batch({tokens}, ctx);
}

std::vector<float> BertModel::forward_batch(const std::vector<std::span<const int32_t>>& seqs, RunContext& ctx) const {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden;
  std::vector<int64_t> start;  // row of each sequence's first token
  int64_t t = 0;
  for (const auto& s : seqs) {
    const int64_t len = static_cast<int64_t>(s.size());
    if (len > c.max_positions)
      throw Error("forward: " + std::to_string(len) + " tokens exceed the model's " + std::to_string(c.max_positions) +
                  " positions");
    start.push_back(t);
    t += len;
  }
  start.push_back(t);
  std::vector<float> x(static_cast<size_t>(t * h));
  for (size_t s = 0; s < seqs.size(); ++s)
    for (int64_t i = 0; i < static_cast<int64_t>(seqs[s].size()); ++i) {
      const int32_t id = seqs[s][static_cast<size_t>(i)];
      if (id < 0 || id >= c.vocab)
        throw Error("forward: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                    std::to_string(c.vocab) + ")");
      float* row = x.data() + (start[s] + i) * h;
      for (int64_t j = 0; j < h; ++j) row[j] = word_[id * h + j] + token_type_[j] + position_[i * h + j];
    }
  layer_norm(x.data(), t, h, emb_ln_w_.data(), emb_ln_b_.data(), c.norm_eps);
  std::vector<float> q(x.size()), k(x.size()), v(x.size()), att(x.size()), y(x.size());
  std::vector<float> inter(static_cast<size_t>(t * c.intermediate));
  for (const Layer& L : layers_) {
    L.q.run(x.data(), t, q.data(), ctx);
    L.k.run(x.data(), t, k.data(), ctx);
    L.v.run(x.data(), t, v.data(), ctx);
    for (size_t s = 0; s < seqs.size(); ++s) {  // each sequence attends to itself only
      const int64_t r0 = start[s], len = start[s + 1] - start[s];
      attention(q.data() + r0 * h, len, HeadRows{k.data() + r0 * h, c.head_dim, h},
                HeadRows{v.data() + r0 * h, c.head_dim, h}, len, c.heads, c.heads, c.head_dim, /*causal=*/false,
                att.data() + r0 * h);
    }
    L.attn_out.run(att.data(), t, y.data(), ctx);
    add_in_place(x.data(), y.data(), t * h);
    layer_norm(x.data(), t, h, L.attn_ln_w.data(), L.attn_ln_b.data(), c.norm_eps);
    L.inter.run(x.data(), t, inter.data(), ctx);
    gelu_erf(inter.data(), t * c.intermediate);
    L.out.run(inter.data(), t, y.data(), ctx);
    add_in_place(x.data(), y.data(), t * h);
    layer_norm(x.data(), t, h, L.out_ln_w.data(), L.out_ln_b.data(), c.norm_eps);
  }
  return x;
}

std::vector<float> BertModel::sentence_embedding(std::span<const int32_t> tokens, RunContext& ctx) const {
  return sentence_embeddings({tokens}, ctx).front();
}

std::vector<std::vector<float>> BertModel::sentence_embeddings(const std::vector<std::span<const int32_t>>& sentences,
                                                               RunContext& ctx) const {
  const std::vector<float> states = forward_batch(sentences, ctx);
  const int64_t h = config_.hidden;
  std::vector<std::vector<float>> out;
  int64_t row = 0;
  for (const auto& s : sentences) {
    const int64_t t = static_cast<int64_t>(s.size());
    std::vector<double> sum(static_cast<size_t>(h), 0.0);
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < h; ++j) sum[j] += states[(row + i) * h + j];
    row += t;
    std::vector<float> e(static_cast<size_t>(h));
    double norm = 0;
    for (int64_t j = 0; j < h; ++j) {
      e[j] = static_cast<float>(sum[j] / static_cast<double>(std::max<int64_t>(t, 1)));
      norm += static_cast<double>(e[j]) * e[j];
    }
    // sentence-transformers' Normalize: x / max(||x||, 1e-12)
    const double inv = 1.0 / std::max(std::sqrt(norm), 1e-12);
    for (float& f : e) f = static_cast<float>(f * inv);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<const Linear*> BertModel::linears() const {
  std::vector<const Linear*> all;
  for (const Layer& L : layers_)
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.attn_out, &L.inter, &L.out}) all.push_back(l);
  if (has_pooler()) all.push_back(&pooler_);
  return all;
}

}  // namespace modelpress::model
