// A tiny random ViT checkpoint (transformers' ViTModel / ViTForImageClassification names and
// config keys), written without torch so C++ and CLI tests can run a ViT everywhere.
#pragma once
#include <cmath>
#include <random>
#include <string>

#include "io/checkpoint_writer.h"
#include "io/tensor.h"

namespace modelpress::testing {

inline void write_tiny_vit(const std::string& dir, int64_t labels = 0, uint64_t seed = 1) {
  const int64_t h = 16, inter = 24, layers = 2, image = 8, patch = 4, ch = 2, tokens = (image / patch) * (image / patch) + 1;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  CheckpointWriter w(dir, nullptr, {});
  auto emit = [&](const std::string& name, Shape shape, float scale, float offset = 0.0f) {
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (auto& x : v) x = offset + scale * nd(rng);
    w.append(name, Tensor::from_f32(v, DType::F32, std::move(shape)));
  };
  const std::string root = labels > 0 ? "vit." : "";
  emit(root + "embeddings.cls_token", {1, 1, h}, 0.5f);
  emit(root + "embeddings.position_embeddings", {1, tokens, h}, 0.5f);
  emit(root + "embeddings.patch_embeddings.projection.weight", {h, ch, patch, patch}, 0.25f);
  emit(root + "embeddings.patch_embeddings.projection.bias", {h}, 0.1f);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = root + "encoder.layer." + std::to_string(l) + ".";
    for (const char* lin : {"attention.attention.query", "attention.attention.key", "attention.attention.value",
                            "attention.output.dense"}) {
      emit(p + lin + ".weight", {h, h}, 0.25f);
      emit(p + lin + ".bias", {h}, 0.1f);
    }
    emit(p + "intermediate.dense.weight", {inter, h}, 0.25f);
    emit(p + "intermediate.dense.bias", {inter}, 0.1f);
    emit(p + "output.dense.weight", {h, inter}, 0.2f);
    emit(p + "output.dense.bias", {h}, 0.1f);
    for (const char* ln : {"layernorm_before", "layernorm_after"}) {
      emit(p + ln + ".weight", {h}, 0.1f, 1.0f);
      emit(p + ln + ".bias", {h}, 0.1f);
    }
  }
  emit(root + "layernorm.weight", {h}, 0.1f, 1.0f);
  emit(root + "layernorm.bias", {h}, 0.1f);
  if (labels > 0) {
    emit("classifier.weight", {labels, h}, 0.3f);
    emit("classifier.bias", {labels}, 0.1f);
  }
  w.set_config({{"architectures", {labels > 0 ? "ViTForImageClassification" : "ViTModel"}},
                {"model_type", "vit"},
                {"hidden_size", h},
                {"num_hidden_layers", layers},
                {"num_attention_heads", 4},
                {"intermediate_size", inter},
                {"image_size", image},
                {"patch_size", patch},
                {"num_channels", ch},
                {"layer_norm_eps", 1e-12},
                {"hidden_act", "gelu"},
                {"qkv_bias", true}});
  w.finish();
}

}  // namespace modelpress::testing
