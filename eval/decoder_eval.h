// Model-level accuracy of a decoder: perplexity over a text with a sliding window, and, against
// a reference model on the same tokens, the KL divergence of the next-token distributions and
// top-1 agreement; optionally batch-1 prefill and decode speed through the KV cache.
//
// Perplexity follows Hugging Face's "Perplexity of fixed-length models" guide: windows of
// `ctx` tokens start every `stride` tokens; a window scores only the tokens no earlier window
// scored (the last `end - previous end` of it), each predicted from the window's tokens before
// it; the first token of the text is never scored. PPL = exp(mean NLL over every scored
// token). (The guide weights each window by its scored tokens minus one; here every scored
// token counts once, so PPL is exactly exp of the mean token NLL.)
//
// KLD is KL(reference || model) = sum_v p_ref(v) (log p_ref(v) - log p_model(v)) per scored
// token, in f64, as llama-perplexity --kl-divergence reports it (mean, median, p99).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kernels/packed_linear.h"

namespace modelpress::model {
class DecoderModel;
}

namespace modelpress::eval {

struct DecoderEvalOptions {
  int64_t ctx = 512;   // window length; a text shorter than it is one window
  int64_t stride = 0;  // tokens between window starts; 0: half the window
  int64_t decode_tokens = 0;  // > 0: also time prefill of `ctx` tokens and this many decode steps
  kernels::Backend backend = kernels::Backend::Cpu;
  // Called after each window (windows done, windows in all).
  std::function<void(int64_t, int64_t)> on_window;
};

struct Speed {
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;
};

struct DecoderEval {
  int64_t tokens = 0, scored = 0, windows = 0, ctx = 0, stride = 0;
  double nll = 0, perplexity = 0;
  // With a reference
  bool has_reference = false;
  double reference_nll = 0, reference_perplexity = 0;
  double kld_mean = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double top1_agreement = 0;  // fraction of scored tokens where both models' argmax agree
  // Mean KLD by position in the window, in buckets of `bucket` positions (the chart).
  int64_t bucket = 0;
  std::vector<double> kld_by_position;
  // Timing (decode_tokens > 0)
  Speed speed, reference_speed;
  // Non-empty when a non-finite activation appeared: where first (model/linear.h).
  std::string first_nonfinite, reference_first_nonfinite;
};

// `tokens`: the text's token ids (at least 2). `reference` may be null. Throws Error for a ctx
// above either model's positions, a stride above the window, or models of different
// vocabularies or hidden sizes.
DecoderEval evaluate_decoder(const model::DecoderModel& model, const model::DecoderModel* reference,
                             std::span<const int32_t> tokens, const DecoderEvalOptions& options);

// Batch-1 speed: prefill `prompt` in one pass, then `decode_tokens` greedy steps.
Speed time_decoding(const model::DecoderModel& model, std::span<const int32_t> prompt, int64_t decode_tokens,
                    kernels::Backend backend);

}  // namespace modelpress::eval
