#include "eval/decoder_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "io/error.h"
#include "model/decoder.h"

namespace modelpress::eval {
namespace {

constexpr int64_t kLogitRows = 32;  // logits are computed this many rows at a time (memory: rows x vocab)

// log(sum(exp(z))) in f64.
double log_sum_exp(const float* z, int64_t n) {
  const float mx = *std::max_element(z, z + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(z[i] - mx));
  return mx + std::log(sum);
}

int64_t argmax(const float* z, int64_t n) { return std::max_element(z, z + n) - z; }

struct Window {
  int64_t begin, end, first_target;  // tokens [begin, end); targets [first_target, end)
};

std::vector<Window> windows_of(int64_t n, int64_t ctx, int64_t stride) {
  std::vector<Window> w;
  int64_t prev_end = 0;
  for (int64_t begin = 0;; begin += stride) {
    const int64_t end = std::min(begin + ctx, n);
    w.push_back({begin, end, std::max(prev_end, begin + 1)});
    prev_end = end;
    if (end == n) break;
  }
  return w;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Linear interpolation between closest ranks (numpy's default).
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

void check_pair(const model::DecoderModel& m, const model::DecoderModel* ref) {
  if (!ref) return;
  const auto& a = m.config();
  const auto& b = ref->config();
  if (a.vocab != b.vocab)
    throw Error("--reference: its vocabulary has " + std::to_string(b.vocab) + " tokens, the model's " +
                std::to_string(a.vocab) + "; KL divergence needs the same vocabulary");
  if (a.hidden != b.hidden)
    throw Error("--reference: its hidden size " + std::to_string(b.hidden) + " differs from the model's " +
                std::to_string(a.hidden) + "; compare a model with the checkpoint it was compressed from");
}

}  // namespace

DecoderEval evaluate_decoder(const model::DecoderModel& model, const model::DecoderModel* reference,
                             std::span<const int32_t> tokens, const DecoderEvalOptions& o) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t max_pos = model.config().max_positions;
  if (o.ctx < 2) throw Error("--ctx must be at least 2");
  if (o.ctx > max_pos)
    throw Error("--ctx " + std::to_string(o.ctx) + " exceeds the model's maximum position " + std::to_string(max_pos));
  if (reference && o.ctx > reference->config().max_positions)
    throw Error("--ctx " + std::to_string(o.ctx) + " exceeds the reference's maximum position " +
                std::to_string(reference->config().max_positions));
  if (n < 2) throw Error("the text gives " + std::to_string(n) + " token(s); perplexity needs at least 2");
  // A text shorter than the window is one window over all of it.
  const int64_t window = std::min(o.ctx, n);
  const int64_t stride = o.stride > 0 ? o.stride : std::max<int64_t>(1, window / 2);
  if (stride > window) throw Error("--stride must lie in [1, --ctx]");
  check_pair(model, reference);

  DecoderEval r;
  r.tokens = n;
  r.ctx = window;
  r.stride = stride;
  r.has_reference = reference != nullptr;
  r.bucket = std::max<int64_t>(1, window / 16);
  const int64_t vocab = model.config().vocab;
  const std::vector<Window> windows = windows_of(n, window, stride);
  r.windows = static_cast<int64_t>(windows.size());

  double nll_sum = 0, ref_nll_sum = 0;
  int64_t agree = 0;
  std::vector<double> klds;
  std::vector<double> bucket_sum((window + r.bucket - 1) / r.bucket, 0.0);
  std::vector<int64_t> bucket_count(bucket_sum.size(), 0);
  model::RunContext ctx, ref_ctx;
  ctx.backend = ref_ctx.backend = o.backend;
  std::vector<float> logits(static_cast<size_t>(kLogitRows * vocab)), ref_logits;
  if (reference) ref_logits.resize(logits.size());

  for (size_t wi = 0; wi < windows.size(); ++wi) {
    const Window& w = windows[wi];
    const auto window_tokens = tokens.subspan(static_cast<size_t>(w.begin), static_cast<size_t>(w.end - w.begin));
    model::KvCache cache = model.new_cache(w.end - w.begin);
    const std::vector<float> hidden = model.forward(window_tokens, cache, ctx);
    std::vector<float> ref_hidden;
    if (reference) {
      model::KvCache ref_cache = reference->new_cache(w.end - w.begin);
      ref_hidden = reference->forward(window_tokens, ref_cache, ref_ctx);
    }
    const int64_t h = model.config().hidden;
    // Row i of the window predicts token begin + i + 1.
    const int64_t first_row = w.first_target - w.begin - 1, last_row = w.end - w.begin - 2;
    for (int64_t row0 = first_row; row0 <= last_row; row0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, last_row - row0 + 1);
      model.logits(hidden.data() + row0 * h, rows, logits.data(), ctx);
      if (reference) reference->logits(ref_hidden.data() + row0 * h, rows, ref_logits.data(), ref_ctx);
      std::vector<double> nll(static_cast<size_t>(rows)), ref_nll(nll.size()), kld(nll.size());
      std::vector<char> same(nll.size());
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < rows; ++i) {
        const float* z = logits.data() + i * vocab;
        const int32_t target = tokens[static_cast<size_t>(w.begin + row0 + i + 1)];
        const double lse = log_sum_exp(z, vocab);
        nll[i] = lse - z[target];
        if (!reference) continue;
        const float* zr = ref_logits.data() + i * vocab;
        const double lse_r = log_sum_exp(zr, vocab);
        ref_nll[i] = lse_r - zr[target];
        double k = 0;
        for (int64_t v = 0; v < vocab; ++v) {
          const double lp_r = zr[v] - lse_r, lp = z[v] - lse;
          k += std::exp(lp_r) * (lp_r - lp);
        }
        kld[i] = std::max(k, 0.0);  // rounding can leave a tiny negative for identical rows
        same[i] = argmax(z, vocab) == argmax(zr, vocab);
      }
      for (int64_t i = 0; i < rows; ++i) {
        nll_sum += nll[i];
        if (!reference) continue;
        ref_nll_sum += ref_nll[i];
        klds.push_back(kld[i]);
        agree += same[i];
        const size_t b = static_cast<size_t>((row0 + i + 1) / r.bucket);
        bucket_sum[b] += kld[i];
        ++bucket_count[b];
      }
      r.scored += rows;
    }
    if (o.on_window) o.on_window(static_cast<int64_t>(wi + 1), r.windows);
  }
  r.first_nonfinite = ctx.first_nonfinite;
  r.reference_first_nonfinite = ref_ctx.first_nonfinite;
  r.nll = nll_sum / static_cast<double>(r.scored);
  r.perplexity = std::exp(r.nll);
  if (reference) {
    r.reference_nll = ref_nll_sum / static_cast<double>(r.scored);
    r.reference_perplexity = std::exp(r.reference_nll);
    double sum = 0;
    for (double k : klds) sum += k;
    r.kld_mean = sum / static_cast<double>(klds.size());
    r.kld_median = percentile(klds, 0.5);
    r.kld_p99 = percentile(klds, 0.99);
    r.kld_max = *std::max_element(klds.begin(), klds.end());
    r.top1_agreement = static_cast<double>(agree) / static_cast<double>(r.scored);
    for (size_t b = 0; b < bucket_sum.size(); ++b)
      r.kld_by_position.push_back(bucket_count[b] ? bucket_sum[b] / static_cast<double>(bucket_count[b]) : NAN);
  }
  if (o.decode_tokens > 0) {
    const auto prompt = tokens.first(static_cast<size_t>(window));
    const int64_t room = max_pos - static_cast<int64_t>(prompt.size());
    const int64_t steps = std::min(o.decode_tokens, room);
    r.speed = time_decoding(model, prompt, steps, o.backend);
    if (reference) r.reference_speed = time_decoding(*reference, prompt, steps, o.backend);
  }
  return r;
}

Speed time_decoding(const model::DecoderModel& model, std::span<const int32_t> prompt, int64_t decode_tokens,
                    kernels::Backend backend) {
  using clock = std::chrono::steady_clock;
  const int64_t vocab = model.config().vocab;
  model::RunContext ctx;
  ctx.backend = backend;
  model::KvCache cache = model.new_cache(static_cast<int64_t>(prompt.size()) + decode_tokens);
  std::vector<float> logits(static_cast<size_t>(vocab));
  Speed s;
  s.prefill_tokens = static_cast<int64_t>(prompt.size());
  s.decode_tokens = decode_tokens;
  auto t0 = clock::now();
  std::vector<float> hidden = model.forward(prompt, cache, ctx);
  const int64_t h = model.config().hidden;
  model.logits(hidden.data() + (s.prefill_tokens - 1) * h, 1, logits.data(), ctx);
  auto t1 = clock::now();
  s.prefill_tokens_per_s = static_cast<double>(s.prefill_tokens) / std::chrono::duration<double>(t1 - t0).count();
  if (decode_tokens <= 0) return s;
  t0 = clock::now();
  for (int64_t i = 0; i < decode_tokens; ++i) {
    const int32_t next = static_cast<int32_t>(argmax(logits.data(), vocab));  // greedy
    hidden = model.forward(std::span<const int32_t>(&next, 1), cache, ctx);
    model.logits(hidden.data(), 1, logits.data(), ctx);
  }
  t1 = clock::now();
  s.decode_tokens_per_s = static_cast<double>(decode_tokens) / std::chrono::duration<double>(t1 - t0).count();
  return s;
}

}  // namespace modelpress::eval
