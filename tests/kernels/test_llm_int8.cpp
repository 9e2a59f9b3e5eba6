// LLM.int8 / W8A8 mixed product: fast path vs reference, vs an f32 product of the dequantized
// operands, and vs the unquantized x W^T within the quantization error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/activation_quant.h"
#include "kernels/half.h"
#include "kernels/llm_int8.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;
using testing::Shape;

// Named tolerances (relative to sum_k |x w| per output):
// fast vs reference: same operands, f32 rounding in a different order.
constexpr double kFastVsRefTol = 2e-6;
// vs the double product of the exact dequantized operands: only f32 rounding of the
// dequantization and the outlier sum.
constexpr double kVsDequantizedTol = 2e-6;

// A W8A8 layer built from a float weight with a plain per-row absmax quantizer, and the
// storage it points into.
struct Layer {
  std::vector<float> w;       // (N, K) original
  std::vector<int8_t> q;      // (N, K)
  std::vector<float> scale;   // (N)
  std::vector<float> bias;    // (N)
  std::vector<int32_t> fcols;
  std::vector<uint16_t> f16;  // (count, N)
  PackedLinear view;
};

Layer make_layer(Rng& rng, int64_t n, int64_t k, float threshold, bool with_bias, const std::vector<int32_t>& fp16_cols) {
  Layer l;
  l.w = rng.normals(n * k, 0.05f);
  l.q.resize(n * k);
  l.scale.resize(n);
  for (int64_t j = 0; j < n; ++j) {
    float absmax = 0.0f;
    for (int64_t t = 0; t < k; ++t) absmax = std::max(absmax, std::fabs(l.w[j * k + t]));
    l.scale[j] = absmax / 127.0f;
    for (int64_t t = 0; t < k; ++t)
      l.q[j * k + t] = static_cast<int8_t>(absmax > 0 ? std::nearbyint(l.w[j * k + t] / l.scale[j]) : 0);
  }
  if (with_bias) l.bias = rng.normals(n, 0.5f);
  l.fcols = fp16_cols;
  for (int32_t c : fp16_cols)
    for (int64_t j = 0; j < n; ++j) l.f16.push_back(testing::f32_to_f16_bits(l.w[j * k + c]));
  l.view.format = threshold > 0 ? LinearFormat::LlmInt8 : LinearFormat::W8A8;
  l.view.n = n;
  l.view.k = k;
  l.view.int8 = {l.q.data(), l.scale.data(), n, k};
  l.view.threshold = threshold;
  l.view.fp16_columns = {l.fcols.data(), l.f16.data(), static_cast<int64_t>(l.fcols.size())};
  l.view.bias = with_bias ? l.bias.data() : nullptr;
  return l;
}

// Activations with systematic outlier features, as LLM.int8 describes them: two columns,
// large in most rows and certainly in row 0 (so both are outlier columns at threshold 6),
// small in some others (which the column rule must still zero).
std::vector<float> make_x(Rng& rng, int64_t m, int64_t k) {
  std::vector<float> x = rng.normals(m * k, 1.0f);
  for (int64_t i = 0; i < m; ++i) {
    x[i * k + k / 3] *= 12.0f;
    x[i * k + k - 1] = rng.uniform(-20.0f, 20.0f);
  }
  x[k / 3] = 9.5f;
  x[k - 1] = -15.0f;
  return x;
}

std::vector<float> run(void (*fn)(const PackedLinear&, const float*, int64_t, float*, void*), const Layer& l,
                       const std::vector<float>& x, int64_t m) {
  std::vector<unsigned char> ws(llm_int8_workspace_bytes(m, l.view.n, l.view.k));
  std::vector<float> y(m * l.view.n, std::nanf(""));
  fn(l.view, x.data(), m, y.data(), ws.data());
  return y;
}

// {130, 513, 70}: M x N >= 2^16 and M x N x outliers >= 2^16, so the OpenMP branches of the
// fast path's epilogue and 16-bit outlier product run (no other shape here reaches them).
const Shape kShapes[] = {{1, 2048, 513}, {7, 33, 129}, {3, 1, 17},     {1, 1, 2},
                         {4, 65, 64},    {66, 67, 2050}, {130, 513, 70}};

TEST(LlmInt8, FastMatchesReferenceOnOddShapes) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (const Shape& s : kShapes)
    for (float threshold : {0.0f, 6.0f})
      for (bool fp16 : {false, true}) {
        SCOPED_TRACE(testing::str(testing::shape_name(s), " threshold ", threshold, fp16 ? " fp16 columns and bias" : ""));
        std::vector<int32_t> cols;
        if (fp16) cols = {static_cast<int32_t>(s.k / 3), static_cast<int32_t>(s.k - 1)};
        if (cols.size() == 2 && cols[0] == cols[1]) cols.pop_back();
        const Layer l = make_layer(rng, s.n, s.k, threshold, fp16, cols);
        const std::vector<float> x = make_x(rng, s.m, s.k);
        const auto want = run(llm_int8_linear_ref, l, x, s.m);
        const auto got = run(llm_int8_linear, l, x, s.m);
        const auto mag = testing::matmul_double(x, l.w, l.view.bias, s.m, s.n, s.k);
        std::vector<double> want_d(want.begin(), want.end());
        EXPECT_TRUE(testing::within(got, want_d, mag.magnitude, kFastVsRefTol));
      }
}

// The mixed product, spelled out on dequantized operands: regular columns use q_x * row_scale
// and q_w * scale; outlier columns use x itself and the fp16 weight where listed, else
// q_w * scale.
TEST(LlmInt8, EqualsF32ProductOfDequantizedOperands) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (const Shape& s : {Shape{5, 40, 300}, Shape{1, 17, 1025}, Shape{12, 3, 64}}) {
    SCOPED_TRACE(testing::shape_name(s));
    const std::vector<int32_t> fcols = {static_cast<int32_t>(s.k - 1)};  // k / 3 stays int8
    const Layer l = make_layer(rng, s.n, s.k, 6.0f, true, fcols);
    const std::vector<float> x = make_x(rng, s.m, s.k);
    std::vector<int8_t> qx(s.m * s.k);
    std::vector<float> rs(s.m);
    std::vector<int32_t> cols(s.k);
    std::vector<uint8_t> flags(s.k);
    const int64_t count = quantize_activations_ref(x.data(), s.m, s.k, 6.0f, qx.data(), rs.data(), cols.data(), flags.data());
    ASSERT_GE(count, 2);  // both systematic columns
    std::vector<bool> outlier(s.k, false);
    for (int64_t c = 0; c < count; ++c) outlier[cols[c]] = true;
    std::vector<float> xd(s.m * s.k), wd(s.n * s.k);
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t t = 0; t < s.k; ++t) xd[i * s.k + t] = outlier[t] ? x[i * s.k + t] : qx[i * s.k + t] * rs[i];
    for (int64_t j = 0; j < s.n; ++j)
      for (int64_t t = 0; t < s.k; ++t)
        wd[j * s.k + t] = outlier[t] && t == s.k - 1 ? f16_bits_to_f32(l.f16[j]) : l.q[j * s.k + t] * l.scale[j];
    const auto want = testing::matmul_double(xd, wd, l.bias.data(), s.m, s.n, s.k);
    EXPECT_TRUE(testing::within(run(llm_int8_linear, l, x, s.m), want.y, want.magnitude, kVsDequantizedTol));
    EXPECT_TRUE(testing::within(run(llm_int8_linear_ref, l, x, s.m), want.y, want.magnitude, kVsDequantizedTol));
  }
}

// Against the unquantized product: |x - x~| <= rs/2 and |w - w~| <= ws/2 per element (0 for
// outlier columns' x, and for fp16 columns' w up to f16 rounding), so
//   |y - y~| <= sum_k (|x| ws/2 + |w| rs/2 + rs ws/4) (+ f16 and f32 rounding).
TEST(LlmInt8, WithinQuantizationErrorOfFloatProduct) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t m = 6, n = 50, k = 777;
  for (float threshold : {0.0f, 6.0f}) {
    SCOPED_TRACE(testing::str("threshold ", threshold));
    const Layer l = make_layer(rng, n, k, threshold, true, {});
    const std::vector<float> x = make_x(rng, m, k);
    std::vector<int8_t> qx(m * k);
    std::vector<float> rs(m);
    std::vector<int32_t> cols(k);
    std::vector<uint8_t> flags(k);
    const int64_t count = quantize_activations_ref(x.data(), m, k, threshold, qx.data(), rs.data(), cols.data(), flags.data());
    std::vector<bool> outlier(k, false);
    for (int64_t c = 0; c < count; ++c) outlier[cols[c]] = true;
    const auto exact = testing::matmul_double(x, l.w, l.bias.data(), m, n, k);
    const auto y = run(llm_int8_linear, l, x, m);
    double worst_w8a8 = 0.0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double bound = 1e-5 * exact.magnitude[i * n + j];
        for (int64_t t = 0; t < k; ++t) {
          const double xe = outlier[t] ? 0.0 : rs[i] / 2, we = l.scale[j] / 2;
          bound += std::fabs(x[i * k + t]) * we + std::fabs(l.w[j * k + t]) * xe + xe * we;
        }
        const double err = std::fabs(y[i * n + j] - exact.y[i * n + j]);
        ASSERT_LE(err, bound) << "row " << i << " col " << j;
        worst_w8a8 = std::max(worst_w8a8, err / exact.magnitude[i * n + j]);
      }
    RecordProperty(testing::str("worst_relative_error_threshold_", static_cast<int>(threshold)), testing::str(worst_w8a8));
  }
}

TEST(LlmInt8, OutlierColumnTakesFp16WeightWhenListedElseDequantizedInt8) {
  // K = 3, one row; column 1 is an outlier (x = 10). Its int8 weight dequantizes to
  // 127 * 0.01 = 1.27 while the fp16 column holds 1.5: the output shows which was used.
  const std::vector<int8_t> q = {0, 127, 0};
  const std::vector<float> scale = {0.01f};
  const std::vector<int32_t> cols = {1};
  const std::vector<uint16_t> f16 = {0x3E00};  // 1.5
  const std::vector<float> x = {0.0f, 10.0f, 0.0f};
  PackedLinear l;
  l.format = LinearFormat::LlmInt8;
  l.n = 1;
  l.k = 3;
  l.int8 = {q.data(), scale.data(), 1, 3};
  l.threshold = 6.0f;
  std::vector<unsigned char> ws(llm_int8_workspace_bytes(1, 1, 3));
  for (auto fn : {llm_int8_linear_ref, llm_int8_linear}) {
    float y = 0.0f;
    l.fp16_columns = {};
    fn(l, x.data(), 1, &y, ws.data());
    EXPECT_FLOAT_EQ(y, 10.0f * 127 * 0.01f);
    l.fp16_columns = {cols.data(), f16.data(), 1};
    fn(l, x.data(), 1, &y, ws.data());
    EXPECT_FLOAT_EQ(y, 15.0f);
    l.threshold = 0.0f;  // W8A8: column 1 goes through int8 like the others: 127 * 127 * (10/127) * 0.01
    fn(l, x.data(), 1, &y, ws.data());
    EXPECT_NEAR(y, 12.7f, 1e-5f);
    l.threshold = 6.0f;
  }
}

TEST(LlmInt8, W8A8FormatIgnoresThresholdWhenCalledDirectly) {
  // PackedLayer::view() leaves the default threshold 6 in a W8A8 layer; the kernels (not
  // only run_linear) must still run it without decomposition.
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t m = 5, n = 9, k = 70;
  Layer l = make_layer(rng, n, k, 0.0f, true, {});
  const std::vector<float> x = make_x(rng, m, k);  // holds outlier columns at threshold 6
  for (auto fn : {llm_int8_linear_ref, llm_int8_linear}) {
    l.view.threshold = 0.0f;
    const auto plain = run(fn, l, x, m);
    l.view.threshold = 6.0f;
    EXPECT_EQ(run(fn, l, x, m), plain);
    l.view.format = LinearFormat::LlmInt8;  // the same fields as LLM.int8 do decompose
    EXPECT_NE(run(fn, l, x, m), plain);
    l.view.format = LinearFormat::W8A8;
  }
}

}  // namespace
}  // namespace modelpress::kernels
