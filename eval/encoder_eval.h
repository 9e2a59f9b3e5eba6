// Model-level accuracy of a sentence encoder: the sentence embedding (mean pooling, then L2
// normalization, as sentence-transformers computes it for all-MiniLM-L6-v2) of every
// sentence, and against a reference model: the cosine of each sentence's embedding to the
// reference's, and the Spearman rank correlation between the two models' cosine similarities
// over all sentence pairs (does the compressed model still rank sentences the same).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/packed_linear.h"

namespace modelpress::model {
class BertModel;
}

namespace modelpress::eval {

struct EncoderEvalOptions {
  kernels::Backend backend = kernels::Backend::Cpu;
  std::function<void(int64_t, int64_t)> on_sentence;  // (done, total)
};

struct EncoderEval {
  int64_t sentences = 0, tokens = 0;
  double tokens_per_s = 0;
  bool has_reference = false;
  std::vector<double> cosine;  // per sentence, to the reference's embedding
  double cosine_mean = 0, cosine_min = 0, cosine_p01 = 0;  // p01: the 1st percentile
  double spearman = 0;  // of pairwise similarities (needs at least 3 sentences)
  int64_t pairs = 0;
  std::string first_nonfinite, reference_first_nonfinite;
};

// `sentences`: token ids of each sentence, special tokens included, already truncated.
EncoderEval evaluate_encoder(const model::BertModel& model, const model::BertModel* reference,
                             const std::vector<std::vector<int32_t>>& sentences, const EncoderEvalOptions& options);

// Spearman's rank correlation (average ranks for ties); NaN when either side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace modelpress::eval
