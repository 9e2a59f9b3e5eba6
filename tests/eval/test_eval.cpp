// Model-level metrics: Spearman against known rankings; perplexity with a sliding window
// scores every token once; a model against itself has KLD 0 and full top-1 agreement, and a
// quantized one a small positive KLD; a bad ctx, stride or reference is refused.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/decoder_eval.h"
#include "eval/encoder_eval.h"
#include "io/checkpoint.h"
#include "io/error.h"
#include "io/synthetic_checkpoint.h"
#include "model/model.h"
#include "quant/quantize_checkpoint.h"
#include "tests/test_util.h"

namespace modelpress::eval {
namespace {

using modelpress::testing::TempDir;

TEST(Spearman, KnownRankings) {
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 30, 41}), 1.0, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
  // Ties take average ranks: scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 3, 2, 4}), 0.9486832980505138, 1e-12);
  EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3})));
}

SyntheticOptions tiny(int vocab = 64) {
  SyntheticOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = vocab;
  o.dtype = DType::F32;
  o.outlier_channels = 0;
  return o;
}

std::vector<int32_t> text_ids(size_t n, int vocab) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7 + i / 3) % static_cast<size_t>(vocab));
  return ids;
}

TEST(DecoderEval, SlidingWindowScoresEveryTokenButTheFirstOnce) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  const auto m = model::load_model(dir / "m");
  const auto ids = text_ids(101, 64);
  DecoderEvalOptions o;
  o.ctx = 32;
  o.stride = 12;
  const DecoderEval r = evaluate_decoder(*m.decoder, nullptr, ids, o);
  EXPECT_EQ(r.scored, 100);
  EXPECT_EQ(r.windows, 7);  // starts 0, 12, ..., 72 (the window at 72 reaches the end, 101)
  EXPECT_NEAR(r.perplexity, std::exp(r.nll), 1e-9);
  // One window over everything is the plain causal NLL; it differs from the sliding one
  // (shorter contexts) but both are finite and positive.
  o.ctx = 101;
  o.stride = 101;
  const DecoderEval whole = evaluate_decoder(*m.decoder, nullptr, ids, o);
  EXPECT_EQ(whole.windows, 1);
  EXPECT_EQ(whole.scored, 100);
  EXPECT_GT(whole.perplexity, 1.0);
}

TEST(DecoderEval, ModelAgainstItselfHasZeroKld) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  const auto a = model::load_model(dir / "m");
  const auto b = model::load_model(dir / "m");
  const auto ids = text_ids(80, 64);
  DecoderEvalOptions o;
  o.ctx = 40;
  o.stride = 20;
  const DecoderEval r = evaluate_decoder(*a.decoder, b.decoder.get(), ids, o);
  EXPECT_NEAR(r.kld_mean, 0.0, 1e-9);
  EXPECT_NEAR(r.kld_max, 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(r.top1_agreement, 1.0);
  EXPECT_DOUBLE_EQ(r.perplexity, r.reference_perplexity);
}

TEST(DecoderEval, QuantizedModelHasSmallPositiveKld) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  quant::QuantizeOptions q;
  q.method = kernels::LinearFormat::W4A16;
  q.w4a16.group_size = 32;
  quant::quantize_checkpoint(Checkpoint::open(dir / "m"), dir / "q", q);
  const auto ref = model::load_model(dir / "m");
  const auto m = model::load_model(dir / "q");
  DecoderEvalOptions o;
  o.ctx = 40;
  o.stride = 20;
  o.decode_tokens = 4;
  const DecoderEval r = evaluate_decoder(*m.decoder, ref.decoder.get(), text_ids(80, 64), o);
  EXPECT_GT(r.kld_mean, 0.0);
  EXPECT_LT(r.kld_mean, 0.5);
  EXPECT_LE(r.kld_median, r.kld_p99);
  EXPECT_LE(r.kld_p99, r.kld_max);
  EXPECT_GT(r.speed.decode_tokens_per_s, 0.0);
  EXPECT_EQ(r.speed.decode_tokens, 4);
}

TEST(DecoderEval, RefusesBadWindowsAndAnotherVocabulary) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "m", tiny());
  write_synthetic_checkpoint(dir / "other", tiny(80));
  const auto m = model::load_model(dir / "m");
  const auto other = model::load_model(dir / "other");
  const auto ids = text_ids(50, 64);
  DecoderEvalOptions o;
  o.ctx = 4096;  // the synthetic model has 2048 positions
  EXPECT_THROW(evaluate_decoder(*m.decoder, nullptr, ids, o), Error);
  o.ctx = 16;
  o.stride = 17;
  EXPECT_THROW(evaluate_decoder(*m.decoder, nullptr, ids, o), Error);
  o.stride = 8;
  try {
    evaluate_decoder(*m.decoder, other.decoder.get(), ids, o);
    FAIL() << "a reference with another vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_THROW(evaluate_decoder(*m.decoder, nullptr, std::vector<int32_t>{1}, o), Error);
}

}  // namespace
}  // namespace modelpress::eval
