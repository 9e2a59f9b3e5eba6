#include "eval/encoder_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "io/error.h"
#include "model/bert.h"

namespace modelpress::eval {
namespace {

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[order[k]] = avg;
    i = j + 1;
  }
  return r;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (saa == 0 || sbb == 0) return NAN;
  return sab / std::sqrt(saa * sbb);
}

EncoderEval evaluate_encoder(const model::BertModel& model, const model::BertModel* reference,
                             const std::vector<std::vector<int32_t>>& sentences, const EncoderEvalOptions& o) {
  if (sentences.empty()) throw Error("the text has no sentence to embed");
  if (reference && reference->config().hidden != model.config().hidden)
    throw Error("--reference: its hidden size " + std::to_string(reference->config().hidden) + " differs from the model's " +
                std::to_string(model.config().hidden));
  if (reference && reference->config().vocab != model.config().vocab)
    throw Error("--reference: its vocabulary has " + std::to_string(reference->config().vocab) +
                " tokens, the model's " + std::to_string(model.config().vocab));
  EncoderEval r;
  r.sentences = static_cast<int64_t>(sentences.size());
  r.has_reference = reference != nullptr;
  model::RunContext ctx, ref_ctx;
  ctx.backend = ref_ctx.backend = o.backend;
  std::vector<std::vector<float>> emb, ref_emb;
  double seconds = 0;
  // Batches of about kBatchTokens tokens: one large product per linear layer, not one per sentence.
  constexpr int64_t kBatchTokens = 512;
  for (size_t i = 0; i < sentences.size();) {
    std::vector<std::span<const int32_t>> batch;
    int64_t batch_tokens = 0;
    for (; i < sentences.size() && (batch.empty() || batch_tokens + static_cast<int64_t>(sentences[i].size()) <= kBatchTokens); ++i) {
      batch.emplace_back(sentences[i]);
      batch_tokens += static_cast<int64_t>(sentences[i].size());
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& e : model.sentence_embeddings(batch, ctx)) emb.push_back(std::move(e));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.tokens += batch_tokens;
    if (reference)
      for (auto& e : reference->sentence_embeddings(batch, ref_ctx)) ref_emb.push_back(std::move(e));
    if (o.on_sentence) o.on_sentence(static_cast<int64_t>(i), r.sentences);
  }
  r.tokens_per_s = static_cast<double>(r.tokens) / std::max(seconds, 1e-9);
  r.first_nonfinite = ctx.first_nonfinite;
  r.reference_first_nonfinite = ref_ctx.first_nonfinite;
  if (!reference) return r;
  for (size_t i = 0; i < emb.size(); ++i) r.cosine.push_back(dot(emb[i], ref_emb[i]));  // both unit length
  r.cosine_mean = std::accumulate(r.cosine.begin(), r.cosine.end(), 0.0) / static_cast<double>(r.cosine.size());
  std::vector<double> sorted = r.cosine;
  std::sort(sorted.begin(), sorted.end());
  r.cosine_min = sorted.front();
  r.cosine_p01 = sorted[static_cast<size_t>(0.01 * static_cast<double>(sorted.size() - 1))];
  if (emb.size() >= 3) {
    std::vector<double> sim, ref_sim;
    for (size_t i = 0; i < emb.size(); ++i)
      for (size_t j = i + 1; j < emb.size(); ++j) {
        sim.push_back(dot(emb[i], emb[j]));
        ref_sim.push_back(dot(ref_emb[i], ref_emb[j]));
      }
    r.pairs = static_cast<int64_t>(sim.size());
    r.spearman = spearman(sim, ref_sim);
  } else {
    r.spearman = NAN;
  }
  return r;
}

}  // namespace modelpress::eval
