// The passes (quant/packed_layer.h) on small tensors with known answers, against naive
// versions of the same math on odd shapes, and every bad input: not 2-D, not float, NaN or
// Inf (the error names the tensor and the index), all-zero rows, group sizes.
#include <gtest/gtest.h>

#include <cmath>

#include "io/error.h"
#include "io/float_convert.h"
#include "quant/packed_layer.h"
#include "quant/rtn.h"
#include "tests/quant/quant_test_util.h"

namespace modelpress::quant {
namespace {

using kernels::LinearFormat;
using testing::f32_tensor;
using testing::gaussian_values;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LlmInt8, KnownAnswerAndAllZeroRow) {
  // Row 0: absmax 4, 127 / 4 = 31.75: codes round(31.75, -63.5, 15.875, 127) with -63.5 -> -64
  // (ties to even). Row 1 is all zero: codes 0, scale 0, no NaN (bitsandbytes would divide
  // by zero here).
  const Tensor w = f32_tensor({1.0f, -2.0f, 0.5f, 4.0f, 0.0f, 0.0f, 0.0f, 0.0f}, {2, 4});
  const PackedLayer l = quantize_llm_int8("m.fc", w, nullptr, {});
  EXPECT_EQ(l.format, LinearFormat::LlmInt8);
  EXPECT_EQ(l.name, "m.fc");
  EXPECT_EQ(l.n, 2);
  EXPECT_EQ(l.k, 4);
  EXPECT_EQ(l.q8, (std::vector<int8_t>{32, -64, 16, 127, 0, 0, 0, 0}));
  EXPECT_EQ(l.scale8, (std::vector<float>{4.0f / 127.0f, 0.0f}));
  EXPECT_EQ(l.threshold, 6.0f);
  EXPECT_TRUE(l.bias.empty());
  // The same values in BF16 and F16 give the same codes.
  for (DType dt : {DType::BF16, DType::F16}) {
    const PackedLayer b = quantize_llm_int8("m.fc", f32_tensor(w.to_f32(), {2, 4}, dt), nullptr, {});
    EXPECT_EQ(b.q8, l.q8);
    EXPECT_EQ(b.scale8, l.scale8);
  }
  EXPECT_EQ(l.weight_bytes(), 8u + 4 * 2 + 1);
  const auto d = dequantize_layer(l);
  for (float v : d) EXPECT_TRUE(std::isfinite(v));
}

// bitsandbytes' int8_vectorwise_quant in plain scalar code: round(w * (127.0 / absmax)),
// where torch computes 127.0 / absmax as reciprocal(absmax) * 127.
std::vector<int8_t> naive_int8(const std::vector<float>& w, int64_t n, int64_t k, std::vector<float>& absmax) {
  std::vector<int8_t> q(w.size());
  absmax.assign(static_cast<size_t>(n), 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) absmax[r] = std::max(absmax[r], std::abs(w[r * k + c]));
    const float inv = (1.0f / absmax[r]) * 127.0f;
    for (int64_t c = 0; c < k; ++c) q[r * k + c] = static_cast<int8_t>(std::nearbyint(w[r * k + c] * inv));
  }
  return q;
}

TEST(LlmInt8, TieBreaksLikeBitsandbytes) {
  // Found against bitsandbytes 0.50 (tests/interop/test_bitsandbytes_interop.py): with
  // absmax 0.2325439453125, w = 0.11077880859375 is exactly 60.5 steps, and torch's
  // reciprocal-then-multiply gives 60.499996 -> 60, where 127 / absmax would give 61.
  const Tensor w = f32_tensor({0.11077880859375f, 0.2325439453125f}, {1, 2}, DType::F16);
  EXPECT_EQ(quantize_llm_int8("fc", w, nullptr, {}).q8, (std::vector<int8_t>{60, 127}));
}

TEST(LlmInt8, MatchesNaiveOnOddShapes) {
  // {37, 129} stays single-threaded; {300, 517} is large enough for the parallel path.
  for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 129}, {300, 517}, {1, 1}}) {
    std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), static_cast<uint64_t>(n * k), 0.02f);
    w[0] = 0.5f;  // an outlier weight
    for (DType dt : {DType::F32, DType::BF16}) {
      const Tensor t = f32_tensor(w, {n, k}, dt);
      const std::vector<float> exact = t.to_f32();
      std::vector<float> absmax;
      const auto q = naive_int8(exact, n, k, absmax);
      const PackedLayer l = quantize_llm_int8("x", t, nullptr, {.threshold = 3.5f});
      EXPECT_EQ(l.q8, q) << n << "x" << k;
      EXPECT_EQ(l.threshold, 3.5f);
      for (int64_t r = 0; r < n; ++r) {
        EXPECT_EQ(l.scale8[r], absmax[r] / 127.0f);
        for (int64_t c = 0; c < k; ++c)
          ASSERT_LE(std::abs(exact[r * k + c] - l.q8[r * k + c] * l.scale8[r]), l.scale8[r] * 0.5001f);
      }
    }
  }
}

TEST(W8A8, PerChannelScalesInTheWeightDtype) {
  const int64_t n = 9, k = 70;
  const std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), 5, 0.1f);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const Tensor t = f32_tensor(w, {n, k}, dt);
    const std::vector<float> exact = t.to_f32();
    const PackedLayer l = quantize_w8a8("m.q_proj", t, nullptr);
    EXPECT_EQ(l.format, LinearFormat::W8A8);
    EXPECT_EQ(l.scale_dtype, dt);
    ASSERT_EQ(l.scale8.size(), static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      float absmax = 0;
      for (int64_t c = 0; c < k; ++c) absmax = std::max(absmax, std::abs(exact[r * k + c]));
      const float scale = round_scale_up(absmax / 127.0f, dt);
      EXPECT_EQ(l.scale8[r], scale);
      for (int64_t c = 0; c < k; ++c) {
        EXPECT_EQ(l.q8[r * k + c], static_cast<int8_t>(std::nearbyint(exact[r * k + c] / scale)));
        EXPECT_LE(std::abs(l.q8[r * k + c]), 127);
      }
    }
    EXPECT_EQ(l.weight_bytes(), static_cast<uint64_t>(n * k + n * dtype_size(dt)));
  }
}

TEST(W4A16, SymmetricKnownAnswer) {
  // The range rule: absmax 7.5 -> scale 1; codes [7, -8, 0, 2, 0, 2, 3, -1], nibbles u = q + 8 low first.
  const Tensor w = f32_tensor({7.5f, -7.5f, 0.5f, 1.5f, -0.5f, 2.5f, 3.0f, -1.0f}, {1, 8});
  const PackedLayer l =
      quantize_w4a16("m.up", w, nullptr, {.group_size = 8, .symmetric = true, .scale_search = false});
  EXPECT_EQ(l.format, LinearFormat::W4A16);
  EXPECT_EQ(l.group, 8);
  EXPECT_EQ(l.scales4, std::vector<float>{1.0f});
  EXPECT_TRUE(l.zeros4.empty());
  EXPECT_EQ(l.packed4, (std::vector<uint8_t>{0x0F, 0xA8, 0xA8, 0x7B}));
  EXPECT_EQ(dequantize_layer(l), (std::vector<float>{7, -8, 0, 2, 0, 2, 3, -1}));
  // weight_packed (1 word) + one f32 scale + weight_shape (2 x int64)
  EXPECT_EQ(l.weight_bytes(), 4u + 4 + 16);
}

TEST(W4A16, ScaleSearchKnownAnswer) {
  // One large weight and seven of magnitude 1. The range rule (scale 8 / 7.5) rounds the ones
  // to 1.0667 and clamps 8 to 7.4667: squared error 0.315. Codes {7, +-1} refitted by least
  // squares give scale (56 + 7) / (49 + 7) = 1.125: error 0.125^2 * 8 = 0.125, the best any
  // scale reaches (codes {6, +-1} refit to 1.279, error 0.65).
  const std::vector<float> v{8, 1, 1, 1, -1, -1, 1, -1};
  const PackedLayer searched = quantize_w4a16("m.up", f32_tensor(v, {1, 8}), nullptr, {.group_size = 8});
  EXPECT_EQ(searched.scales4, std::vector<float>{1.125f});
  EXPECT_TRUE(searched.searched_scales);
  EXPECT_EQ(dequantize_layer(searched), (std::vector<float>{7.875f, 1.125f, 1.125f, 1.125f, -1.125f, -1.125f, 1.125f,
                                                            -1.125f}));
  const PackedLayer range =
      quantize_w4a16("m.up", f32_tensor(v, {1, 8}), nullptr, {.group_size = 8, .scale_search = false});
  EXPECT_FLOAT_EQ(range.scales4[0], 8.0f / 7.5f);
  EXPECT_FALSE(range.searched_scales);
}

TEST(W4A16, AsymmetricKnownAnswer) {
  // Group 0 [0, 15]: scale 1, zero -8 (zeros4 0); group 1 [-1, 2]: scale 0.2, zero -3 (zeros4 5).
  const Tensor w = f32_tensor({0.0f, 15.0f, -1.0f, 2.0f}, {1, 4});
  const PackedLayer l = quantize_w4a16("m.up", w, nullptr, {.group_size = 2, .symmetric = false});
  EXPECT_EQ(l.zeros4, (std::vector<uint8_t>{0, 5}));
  EXPECT_EQ(l.scales4[0], 1.0f);
  EXPECT_FLOAT_EQ(l.scales4[1], 0.2f);
  EXPECT_EQ(l.packed4, (std::vector<uint8_t>{0xF0, 0xF0}));
  const auto d = dequantize_layer(l);
  EXPECT_EQ(d[0], 0.0f);
  EXPECT_EQ(d[1], 15.0f);
  EXPECT_NEAR(d[2], -1.0f, 1e-6);
  EXPECT_NEAR(d[3], 2.0f, 1e-6);
}

TEST(W4A16, MatchesRtnOnOddRowCounts) {
  const int64_t n = 33, k = 256;
  const std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), 17, 0.05f);
  for (bool symmetric : {true, false})
    for (DType dt : {DType::F16, DType::BF16, DType::F32}) {
      double squared_error[2] = {0.0, 0.0};
      for (bool search : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "symmetric " << symmetric << " " << dtype_name(dt) << " search " << search);
        const Tensor t = f32_tensor(w, {n, k}, dt);
        const PackedLayer l =
            quantize_w4a16("m.up", t, nullptr, {.group_size = 64, .symmetric = symmetric, .scale_search = search});
        RtnOptions o;
        o.bits = 4;
        o.symmetric = symmetric;
        o.granularity = Granularity::Group;
        o.group_size = 64;
        o.grid = SymmetricGrid::Full;
        o.scale_dtype = dt;
        o.scale_search = search;
        const RtnWeight ref = quantize_rtn(t.to_f32(), n, k, o);
        EXPECT_EQ(l.scale_dtype, dt);
        EXPECT_EQ(l.scales4, ref.scales);
        EXPECT_EQ(l.packed4, pack_nibbles(ref.q, n, k));
        if (symmetric) {
          EXPECT_TRUE(l.zeros4.empty());
        } else {
          ASSERT_EQ(l.zeros4.size(), ref.zeros.size());
          for (size_t i = 0; i < ref.zeros.size(); ++i) EXPECT_EQ(l.zeros4[i], ref.zeros[i] + 8);
        }
        const auto d = dequantize_layer(l);
        const auto exact = t.to_f32();
        for (int64_t i = 0; i < n * k; ++i) {
          squared_error[search] += (d[i] - exact[i]) * static_cast<double>(d[i] - exact[i]);
          // The range rule keeps every weight within half a step; the search may clip.
          if (!search) ASSERT_LE(std::abs(d[i] - exact[i]), l.scales4[(i / k) * (k / 64) + (i % k) / 64] * 0.5001f);
        }
      }
      // Measured on these Gaussian weights: 0.847 (symmetric), 0.894-0.899 (asymmetric).
      EXPECT_LT(squared_error[1], (symmetric ? 0.87 : 0.92) * squared_error[0]) << dtype_name(dt);
    }
}

TEST(Passes, AllZeroRowsGiveZeroCodesAndFiniteScales) {
  std::vector<float> w(4 * 16, 0.0f);
  for (int c = 0; c < 16; ++c) w[16 + c] = 0.01f * static_cast<float>(c - 8);  // only row 1 is nonzero
  const Tensor t = f32_tensor(w, {4, 16}, DType::BF16);
  const PackedLayer a = quantize_llm_int8("z", t, nullptr, {});
  const PackedLayer b = quantize_w8a8("z", t, nullptr);
  const PackedLayer c = quantize_w4a16("z", t, nullptr, {.group_size = 8, .symmetric = true});
  const PackedLayer d = quantize_w4a16("z", t, nullptr, {.group_size = 8, .symmetric = false});
  for (const PackedLayer* l : {&a, &b, &c, &d}) {
    for (float s : l->scale8) EXPECT_TRUE(std::isfinite(s));
    for (float s : l->scales4) EXPECT_TRUE(std::isfinite(s) && s > 0);
    const auto deq = dequantize_layer(*l);
    for (int r : {0, 2, 3})
      for (int col = 0; col < 16; ++col) EXPECT_EQ(deq[r * 16 + col], 0.0f) << method_name(l->format);
  }
  EXPECT_EQ(a.scale8[0], 0.0f);  // SCB 0: what the row is
  EXPECT_GT(b.scale8[0], 0.0f);  // compressed-tensors: epsilon, never 0
  for (int col = 0; col < 16; ++col) EXPECT_EQ(a.q8[col], 0);
}

TEST(Passes, NonFloatWeightIsAnErrorNamingTheTensor) {
  const Tensor w = Tensor::zeros(DType::I32, {4, 4});
  for (auto run : std::vector<std::function<void()>>{
           [&] { quantize_llm_int8("model.layers.0.mlp.up_proj", w, nullptr, {}); },
           [&] { quantize_w8a8("model.layers.0.mlp.up_proj", w, nullptr); },
           [&] { quantize_w4a16("model.layers.0.mlp.up_proj", w, nullptr, {.group_size = 2}); },
           [&] { dense_layer("model.layers.0.mlp.up_proj", w, nullptr); }}) {
    const std::string e = error_of(run);
    EXPECT_NE(e.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("I32 is not a float dtype"), std::string::npos) << e;
  }
}

TEST(Passes, WeightThatIsNot2DIsAnError) {
  for (const Shape& shape : {Shape{8}, Shape{2, 2, 2}, Shape{}}) {
    const Tensor w = Tensor::zeros(DType::F32, shape);
    const std::string e = error_of([&] { quantize_llm_int8("m.fc", w, nullptr, {}); });
    EXPECT_NE(e.find("m.fc.weight: a linear weight must be 2-D"), std::string::npos) << e;
    EXPECT_NE(error_of([&] { quantize_w4a16("m.fc", w, nullptr, {.group_size = 2}); }).find("2-D"), std::string::npos);
    EXPECT_NE(error_of([&] { quantize_w8a8("m.fc", w, nullptr); }).find("2-D"), std::string::npos);
  }
  EXPECT_NE(error_of([&] { quantize_w8a8("m.fc", Tensor::zeros(DType::F32, {0, 4}), nullptr); }).find("empty"),
            std::string::npos);
}

TEST(Passes, NanOrInfIsAnErrorNamingTensorAndIndex) {
  const int64_t n = 300, k = 302;  // large enough for the parallel path
  std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), 3);
  w[static_cast<size_t>(250 * k + 7)] = std::numeric_limits<float>::infinity();
  w[static_cast<size_t>(123 * k + 45)] = std::nanf("");  // the first one in row order
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const Tensor t = f32_tensor(w, {n, k}, dt);
    for (auto run : std::vector<std::function<void()>>{
             [&] { quantize_llm_int8("model.layers.3.self_attn.o_proj", t, nullptr, {}); },
             [&] { quantize_w8a8("model.layers.3.self_attn.o_proj", t, nullptr); },
             [&] { quantize_w4a16("model.layers.3.self_attn.o_proj", t, nullptr, {.group_size = 2}); },
             [&] { dense_layer("model.layers.3.self_attn.o_proj", t, nullptr); }}) {
      const std::string e = error_of(run);
      EXPECT_NE(e.find("model.layers.3.self_attn.o_proj.weight: NaN at [123, 45] (element 37191)"), std::string::npos)
          << e;
    }
  }
  std::vector<float> inf(6, 1.0f);
  inf[4] = -std::numeric_limits<float>::infinity();
  const std::string e = error_of([&] { quantize_llm_int8("fc", f32_tensor(inf, {2, 3}), nullptr, {}); });
  EXPECT_NE(e.find("fc.weight: -Inf at [1, 1]"), std::string::npos) << e;
}

TEST(Passes, GroupSizeMustDivideK) {
  const Tensor w = f32_tensor(gaussian_values(4 * 96, 1), {4, 96});
  const std::string e = error_of([&] { quantize_w4a16("m.down_proj", w, nullptr, {.group_size = 128}); });
  EXPECT_NE(e.find("m.down_proj.weight: group size 128 does not divide the 96 input columns"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { quantize_w4a16("m", w, nullptr, {.group_size = 0}); }).find("group size 0"), std::string::npos);
  EXPECT_NE(error_of([&] { quantize_w4a16("m", w, nullptr, {.group_size = 3}); }).find("odd"), std::string::npos);
  EXPECT_NO_THROW(quantize_w4a16("m", w, nullptr, {.group_size = 32}));
}

TEST(Passes, BiasIsKeptAsF32AndChecked) {
  const Tensor w = f32_tensor(gaussian_values(3 * 4, 2), {3, 4});
  const Tensor b = f32_tensor({0.5f, -1.0f, 2.0f}, {3}, DType::BF16);
  EXPECT_EQ(quantize_w8a8("m", w, &b).bias, (std::vector<float>{0.5f, -1.0f, 2.0f}));
  const Tensor wrong = f32_tensor({1.0f, 2.0f}, {2});
  EXPECT_NE(error_of([&] { quantize_llm_int8("m", w, &wrong, {}); }).find("m.bias: bias of shape [2]"),
            std::string::npos);
  const Tensor nan_bias = f32_tensor({0.0f, std::nanf(""), 0.0f}, {3});
  EXPECT_NE(error_of([&] { quantize_llm_int8("m", w, &nan_bias, {}); }).find("m.bias: bias holds NaN"),
            std::string::npos);
  EXPECT_NE(error_of([&] { quantize_llm_int8("m", w, nullptr, {.threshold = -1.0f}); }).find("threshold"),
            std::string::npos);
}

TEST(Passes, DenseLayerAndViews) {
  const Tensor w = f32_tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = f32_tensor({1, -1}, {2});
  const PackedLayer d = dense_layer("fc", w, &b);
  EXPECT_EQ(d.dense, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(d.weight_bytes(), 24u);
  const kernels::PackedLinear v = d.view();
  EXPECT_EQ(v.format, LinearFormat::DenseF32);
  EXPECT_EQ(v.dense, d.dense.data());
  EXPECT_EQ(v.bias, d.bias.data());

  const PackedLayer q = quantize_w4a16("fc", f32_tensor(gaussian_values(4 * 8, 3), {4, 8}), nullptr,
                                       {.group_size = 4, .symmetric = false});
  const kernels::PackedLinear qv = q.view();
  EXPECT_EQ(qv.w4.packed, q.packed4.data());
  EXPECT_EQ(qv.w4.zeros, q.zeros4.data());
  EXPECT_EQ(qv.w4.group, 4);
  EXPECT_EQ(qv.n, 4);
  EXPECT_EQ(qv.bias, nullptr);
  const PackedLayer i8 = quantize_llm_int8("fc", w, nullptr, {.threshold = 0.0f});
  EXPECT_EQ(i8.view().int8.q, i8.q8.data());
  EXPECT_EQ(i8.view().threshold, 0.0f);
  EXPECT_EQ(i8.view().fp16_columns.count, 0);
}

TEST(Fp16Columns, KeepsOriginalColumnsForPaperMode) {
  const int64_t n = 3, k = 5;
  std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), 4);
  const Tensor t = f32_tensor(w, {n, k}, DType::BF16);
  const std::vector<float> exact = t.to_f32();
  PackedLayer l = quantize_llm_int8("m.fc", t, nullptr, {});
  keep_fp16_columns(l, t, {1, 4});
  EXPECT_EQ(l.fp16_cols, (std::vector<int32_t>{1, 4}));
  ASSERT_EQ(l.fp16_w.size(), 6u);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t r = 0; r < n; ++r)
      EXPECT_EQ(l.fp16_w[c * n + r], f32_to_f16(exact[r * k + l.fp16_cols[c]]));  // (cols, N)
  const kernels::PackedLinear v = l.view();
  EXPECT_EQ(v.fp16_columns.count, 2);
  EXPECT_EQ(v.fp16_columns.cols, l.fp16_cols.data());
  EXPECT_EQ(l.weight_bytes(), static_cast<uint64_t>(n * k + 4 * n + 1 + 2 * 2 * n + 2 * 4));

  EXPECT_NE(error_of([&] { keep_fp16_columns(l, t, {4, 1}); }).find("ascending"), std::string::npos);
  EXPECT_NE(error_of([&] { keep_fp16_columns(l, t, {5}); }).find("outside [0, 5)"), std::string::npos);
  EXPECT_NE(error_of([&] { keep_fp16_columns(l, f32_tensor(w, {k, n}), {0}); }).find("original weight has shape"),
            std::string::npos);
  PackedLayer w8 = quantize_w8a8("m.fc", t, nullptr);
  EXPECT_NE(error_of([&] { keep_fp16_columns(w8, t, {0}); }).find("LLM.int8"), std::string::npos);
  std::vector<float> big = w;
  big[1] = 1e6f;  // beyond f16
  const Tensor tb = f32_tensor(big, {n, k});
  PackedLayer lb = quantize_llm_int8("m.fc", tb, nullptr, {});
  EXPECT_NE(error_of([&] { keep_fp16_columns(lb, tb, {1}); }).find("does not fit in f16"), std::string::npos);
}

}  // namespace
}  // namespace modelpress::quant
