// The ViT image encoder (transformers' ViTModel and DeiTModel, with their image-
// classification heads), f32, every linear layer through kernels::run_linear: the patch
// embedding is the convolution written as a linear layer over flattened patches (channel,
// row, column order, as the conv weight [hidden, C, P, P] is laid out), then the CLS token (and
// DeiT's distillation token), position embeddings, pre-norm blocks (LayerNorm before
// attention and before the MLP, exact-erf GELU) and the final LayerNorm.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/linear.h"

namespace modelpress {
class Checkpoint;
}

namespace modelpress::model {

class VitModel {
 public:
  VitModel(const Checkpoint& checkpoint, const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  int64_t tokens_per_image() const { return config_.max_positions; }
  // Pixels of one image: (channels, image_size, image_size) f32, already normalized as the
  // model's image processor would. Several images run as one stack of rows, each attending
  // to itself. Returns the final-norm hidden states (images x tokens_per_image, hidden).
  std::vector<float> forward(const std::vector<const float*>& images, RunContext& ctx) const;
  bool has_classifier() const { return classifier_.n() > 0; }
  int64_t labels() const { return classifier_.n(); }
  // Logits of the classification head on each image's CLS state: (images, labels).
  std::vector<float> classify(const std::vector<float>& states, int64_t images, RunContext& ctx) const;
  std::vector<const Linear*> linears() const;

 private:
  struct Layer {
    Linear q, k, v, attn_out, inter, out;
    std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b;
  };
  ModelConfig config_;
  Linear patch_;  // (hidden, C * P * P)
  std::vector<float> cls_, distill_, position_, ln_w_, ln_b_;
  std::vector<Layer> layers_;
  Linear classifier_;
};

// Deterministic synthetic images for evaluating without an image data set: smooth gradients
// and stripes with seeded noise, values in [-1, 1] (the range ViT's processors normalize
// to). Image i of seed s is always the same. (channels, size, size) each.
std::vector<std::vector<float>> synthetic_images(int64_t count, int64_t channels, int64_t size, uint64_t seed);

}  // namespace modelpress::model
