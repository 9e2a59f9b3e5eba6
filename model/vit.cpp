#include "model/vit.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "io/checkpoint.h"
#include "io/error.h"
#include "model/ops.h"
#include "model/weights.h"

namespace modelpress::model {

VitModel::VitModel(const Checkpoint& checkpoint, const ModelConfig& c) : config_(c) {
  WeightSource w(checkpoint, c.heads, c.kv_heads);
  // The base model's own names, or under "vit." / "deit." in a classification checkpoint.
  std::string root;
  for (const char* prefix : {"", "vit.", "deit."})
    if (w.has(std::string(prefix) + "embeddings.cls_token")) root = prefix;
  const int64_t h = c.hidden, p = c.patch_size, patch_in = c.channels * p * p;
  quant::PackedLayer patch;
  patch.name = root + "embeddings.patch_embeddings.projection";
  patch.n = h;
  patch.k = patch_in;
  patch.dense = w.tensor(patch.name + ".weight", {h, c.channels, p, p});  // conv as (hidden, C*P*P)
  patch.bias = w.tensor(patch.name + ".bias", {h});
  patch_ = Linear(std::move(patch));
  cls_ = w.tensor(root + "embeddings.cls_token", {1, 1, h});
  if (c.distillation_token) distill_ = w.tensor(root + "embeddings.distillation_token", {1, 1, h});
  position_ = w.tensor(root + "embeddings.position_embeddings", {1, c.max_positions, h});
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string l = root + "encoder.layer." + std::to_string(i) + ".";
    Layer L;
    L.q = w.linear(l + "attention.attention.query", h, h);
    L.k = w.linear(l + "attention.attention.key", h, h);
    L.v = w.linear(l + "attention.attention.value", h, h);
    L.attn_out = w.linear(l + "attention.output.dense", h, h);
    L.inter = w.linear(l + "intermediate.dense", c.intermediate, h);
    L.out = w.linear(l + "output.dense", h, c.intermediate);
    L.ln1_w = w.tensor(l + "layernorm_before.weight", {h});
    L.ln1_b = w.tensor(l + "layernorm_before.bias", {h});
    L.ln2_w = w.tensor(l + "layernorm_after.weight", {h});
    L.ln2_b = w.tensor(l + "layernorm_after.bias", {h});
    layers_.push_back(std::move(L));
  }
  ln_w_ = w.tensor(root + "layernorm.weight", {h});
  ln_b_ = w.tensor(root + "layernorm.bias", {h});
  if (w.has("classifier") || w.has("classifier.weight")) {
    const CheckpointTensor* t = checkpoint.find("classifier.weight");
    const int64_t labels = t && t->shape.size() == 2 ? t->shape[0] : 0;
    if (labels <= 0) fail_file(w.label(), "tensor classifier.weight is not a 2-D (labels, hidden) weight");
    classifier_ = w.linear("classifier", labels, h);
  }
}

std::vector<float> VitModel::forward(const std::vector<const float*>& images, RunContext& ctx) const {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden, p = c.patch_size, side = c.image_size / p, patches = side * side;
  const int64_t per = tokens_per_image(), first_patch = per - patches, n = static_cast<int64_t>(images.size());
  const int64_t t = n * per, patch_in = c.channels * p * p, size = c.image_size;
  // Patches of every image, flattened in the conv weight's (channel, row, column) order.
  std::vector<float> flat(static_cast<size_t>(n * patches * patch_in));
  for (int64_t img = 0; img < n; ++img)
    for (int64_t py = 0; py < side; ++py)
      for (int64_t px = 0; px < side; ++px) {
        float* dst = flat.data() + ((img * patches) + py * side + px) * patch_in;
        for (int64_t ch = 0; ch < c.channels; ++ch)
          for (int64_t i = 0; i < p; ++i)
            for (int64_t j = 0; j < p; ++j)
              *dst++ = images[static_cast<size_t>(img)][(ch * size + py * p + i) * size + px * p + j];
      }
  std::vector<float> embedded(static_cast<size_t>(n * patches * h));
  patch_.run(flat.data(), n * patches, embedded.data(), ctx);
  std::vector<float> x(static_cast<size_t>(t * h));
  for (int64_t img = 0; img < n; ++img) {
    float* rows = x.data() + img * per * h;
    std::copy(cls_.begin(), cls_.end(), rows);
    if (c.distillation_token) std::copy(distill_.begin(), distill_.end(), rows + h);
    std::copy_n(embedded.data() + img * patches * h, patches * h, rows + first_patch * h);
    add_in_place(rows, position_.data(), per * h);
  }
  std::vector<float> normed(x.size()), q(x.size()), k(x.size()), v(x.size()), att(x.size()), y(x.size());
  std::vector<float> inter(static_cast<size_t>(t * c.intermediate));
  for (const Layer& L : layers_) {
    normed = x;
    layer_norm(normed.data(), t, h, L.ln1_w.data(), L.ln1_b.data(), c.norm_eps);
    L.q.run(normed.data(), t, q.data(), ctx);
    L.k.run(normed.data(), t, k.data(), ctx);
    L.v.run(normed.data(), t, v.data(), ctx);
    for (int64_t img = 0; img < n; ++img) {  // each image attends to itself only
      const int64_t r0 = img * per;
      attention(q.data() + r0 * h, per, HeadRows{k.data() + r0 * h, c.head_dim, h},
                HeadRows{v.data() + r0 * h, c.head_dim, h}, per, c.heads, c.heads, c.head_dim, /*causal=*/false,
                att.data() + r0 * h);
    }
    L.attn_out.run(att.data(), t, y.data(), ctx);
    add_in_place(x.data(), y.data(), t * h);
    normed = x;
    layer_norm(normed.data(), t, h, L.ln2_w.data(), L.ln2_b.data(), c.norm_eps);
    L.inter.run(normed.data(), t, inter.data(), ctx);
    gelu_erf(inter.data(), t * c.intermediate);
    L.out.run(inter.data(), t, y.data(), ctx);
    add_in_place(x.data(), y.data(), t * h);
  }
  layer_norm(x.data(), t, h, ln_w_.data(), ln_b_.data(), c.norm_eps);
  return x;
}

std::vector<float> VitModel::classify(const std::vector<float>& states, int64_t images, RunContext& ctx) const {
  if (!has_classifier()) throw Error("forward: this ViT checkpoint has no classifier");
  const int64_t h = config_.hidden, per = tokens_per_image();
  std::vector<float> cls(static_cast<size_t>(images * h));
  for (int64_t i = 0; i < images; ++i) std::copy_n(states.data() + i * per * h, h, cls.data() + i * h);
  std::vector<float> logits(static_cast<size_t>(images * labels()));
  classifier_.run(cls.data(), images, logits.data(), ctx);
  return logits;
}

std::vector<const Linear*> VitModel::linears() const {
  std::vector<const Linear*> all{&patch_};
  for (const Layer& L : layers_)
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.attn_out, &L.inter, &L.out}) all.push_back(l);
  if (has_classifier()) all.push_back(&classifier_);
  return all;
}

std::vector<std::vector<float>> synthetic_images(int64_t count, int64_t channels, int64_t size, uint64_t seed) {
  std::vector<std::vector<float>> out;
  for (int64_t i = 0; i < count; ++i) {
    std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(i));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double fx = 1 + 6 * u(rng), fy = 1 + 6 * u(rng), phase = 6.283 * u(rng), tilt = u(rng) - 0.5;
    std::vector<float> img(static_cast<size_t>(channels * size * size));
    for (int64_t ch = 0; ch < channels; ++ch) {
      const double gain = 0.4 + 0.5 * u(rng);
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) {
          const double sx = static_cast<double>(x) / size, sy = static_cast<double>(y) / size;
          const double v = gain * std::sin(6.283 * (fx * sx + tilt * sy) + phase + ch) * std::cos(6.283 * fy * sy) +
                           0.3 * (sx - sy) + 0.1 * (2 * u(rng) - 1);
          img[(ch * size + y) * size + x] = static_cast<float>(std::clamp(v, -1.0, 1.0));
        }
    }
    out.push_back(std::move(img));
  }
  return out;
}

}  // namespace modelpress::model
