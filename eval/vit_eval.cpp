#include "eval/vit_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "eval/metrics.h"
#include "io/error.h"
#include "model/vit.h"

namespace modelpress::eval {
namespace {

// Validate's cosine (eval/metrics.h), with its conventions for zero and non-finite outputs.
double cosine(const float* a, const float* b, int64_t n) {
  return compare_outputs({a, static_cast<size_t>(n)}, {b, static_cast<size_t>(n)}).cosine;
}

double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); }

}  // namespace

VitEval evaluate_vit(const model::VitModel& model, const model::VitModel* reference, int64_t images, uint64_t seed,
                     kernels::Backend backend) {
  const auto& c = model.config();
  if (images < 1) throw Error("--images must be at least 1");
  if (reference) {
    const auto& r = reference->config();
    if (r.hidden != c.hidden || r.image_size != c.image_size || r.patch_size != c.patch_size ||
        r.channels != c.channels || r.distillation_token != c.distillation_token)
      throw Error("--reference: another ViT shape (hidden size, image, patch or tokens differ from the model's)");
    if (reference->labels() != model.labels())
      throw Error("--reference: its classifier has " + std::to_string(reference->labels()) + " labels, the model's " +
                  std::to_string(model.labels()));
  }
  VitEval r;
  r.images = images;
  r.seed = seed;
  r.has_reference = reference != nullptr;
  r.has_logits = model.has_classifier();
  model::RunContext ctx, ref_ctx;
  ctx.backend = ref_ctx.backend = backend;
  const int64_t h = c.hidden, per = model.tokens_per_image(), labels = model.labels();
  constexpr int64_t kBatch = 8;
  double seconds = 0;
  int64_t agree = 0;
  const auto all = model::synthetic_images(images, c.channels, c.image_size, seed);
  for (int64_t b0 = 0; b0 < images; b0 += kBatch) {
    const int64_t n = std::min(kBatch, images - b0);
    std::vector<const float*> batch;
    for (int64_t i = 0; i < n; ++i) batch.push_back(all[static_cast<size_t>(b0 + i)].data());
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> states = model.forward(batch, ctx);
    std::vector<float> logits;
    if (r.has_logits) logits = model.classify(states, n, ctx);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!reference) continue;
    const std::vector<float> ref_states = reference->forward(batch, ref_ctx);
    for (int64_t i = 0; i < n; ++i)
      r.cls_cosine.push_back(cosine(states.data() + i * per * h, ref_states.data() + i * per * h, h));
    if (!r.has_logits) continue;
    const std::vector<float> ref_logits = reference->classify(ref_states, n, ref_ctx);
    for (int64_t i = 0; i < n; ++i) {
      const float* a = logits.data() + i * labels;
      const float* b = ref_logits.data() + i * labels;
      r.logit_cosine.push_back(cosine(a, b, labels));
      agree += (std::max_element(a, a + labels) - a) == (std::max_element(b, b + labels) - b);
    }
  }
  r.images_per_s = static_cast<double>(images) / std::max(seconds, 1e-9);
  r.first_nonfinite = ctx.first_nonfinite;
  r.reference_first_nonfinite = ref_ctx.first_nonfinite;
  if (reference) {
    r.cls_cosine_mean = mean(r.cls_cosine);
    r.cls_cosine_min = *std::min_element(r.cls_cosine.begin(), r.cls_cosine.end());
    if (r.has_logits) {
      r.logit_cosine_mean = mean(r.logit_cosine);
      r.logit_cosine_min = *std::min_element(r.logit_cosine.begin(), r.logit_cosine.end());
      r.top1_agreement = static_cast<double>(agree) / static_cast<double>(images);
    }
  }
  return r;
}

}  // namespace modelpress::eval
