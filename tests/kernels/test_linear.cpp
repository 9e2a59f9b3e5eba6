// run_linear for every format against the exact product of what the format multiplies (the
// stored codes times their scales, and for the int8 formats the activations quantized by the
// documented rule), computed here in double, to f32 rounding; linear_supported, workspace
// sizing, the fallback log; DenseF32 paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu_features.h"
#include "kernels/dense_f32.h"
#include "kernels/packed_linear.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;
using testing::Shape;

// DenseF32 vs the double product: f32 accumulation only.
constexpr double kDenseTol = 1e-5;
// Packed formats vs the exact product of their dequantized operands: f32 rounding only
// (accumulation, the scale multiplies), relative to sum_k |x w| + |b|. A dropped bias or a
// scale from the wrong group is off by orders of magnitude more.
constexpr double kRoundingTol = 2e-5;

// A layer quantized from a float weight by the test's own simple quantizers, owning its data.
struct TestLayer {
  std::vector<float> w, bias;         // (N, K), (N)
  std::vector<int8_t> q8;
  std::vector<float> scale8;          // w ~= q8 * scale8, error <= scale8 / 2
  std::vector<uint8_t> packed4, zeros4;
  std::vector<float> scales4;         // error <= scales4 / 2 (symmetric) or scales4 (asymmetric)
  PackedLinear view;
};

TestLayer make(Rng& rng, LinearFormat format, int64_t n, int64_t k, int64_t group = 32, bool symmetric = true) {
  TestLayer l;
  l.w = rng.normals(n * k, 0.05f);
  l.bias = rng.normals(n, 0.2f);
  l.view.format = format;
  l.view.n = n;
  l.view.k = k;
  l.view.bias = l.bias.data();
  switch (format) {
    case LinearFormat::DenseF32:
      l.view.dense = l.w.data();
      break;
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8:
      l.q8.resize(n * k);
      l.scale8.resize(n);
      for (int64_t j = 0; j < n; ++j) {
        float absmax = 0.0f;
        for (int64_t t = 0; t < k; ++t) absmax = std::max(absmax, std::fabs(l.w[j * k + t]));
        l.scale8[j] = absmax / 127.0f;
        for (int64_t t = 0; t < k; ++t) l.q8[j * k + t] = static_cast<int8_t>(std::nearbyint(l.w[j * k + t] / l.scale8[j]));
      }
      l.view.int8 = {l.q8.data(), l.scale8.data(), n, k};
      break;
    case LinearFormat::W4A16: {
      const int64_t groups = k / group;
      l.packed4.assign(n * k / 2, 0);
      l.scales4.resize(n * groups);
      if (!symmetric) l.zeros4.resize(n * groups);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t g = 0; g < groups; ++g) {
          const float* v = &l.w[j * k + g * group];
          float lo = 0.0f, hi = 0.0f, absmax = 0.0f;
          for (int64_t t = 0; t < group; ++t) lo = std::min(lo, v[t]), hi = std::max(hi, v[t]), absmax = std::max(absmax, std::fabs(v[t]));
          float s;
          int zero;
          if (symmetric) s = absmax / 7.0f, zero = 8;
          else s = (hi - lo) / 15.0f, zero = std::clamp(static_cast<int>(std::nearbyint(-lo / s)), 0, 15);
          l.scales4[j * groups + g] = s;
          if (!symmetric) l.zeros4[j * groups + g] = static_cast<uint8_t>(zero);
          for (int64_t t = 0; t < group; ++t) {
            const int u = std::clamp(static_cast<int>(std::nearbyint(v[t] / s)) + zero, 0, 15);
            const int64_t e = g * group + t;
            l.packed4[j * (k / 2) + e / 2] |= static_cast<uint8_t>(e % 2 == 0 ? u : u << 4);
          }
        }
      l.view.w4 = {l.packed4.data(), l.scales4.data(), symmetric ? nullptr : l.zeros4.data(), n, k, group};
      break;
    }
    case LinearFormat::Lut:
      ADD_FAILURE() << "LUT layers are built by tests/kernels/test_lut.cpp";
      break;
  }
  return l;
}

std::vector<float> make_x(Rng& rng, int64_t m, int64_t k) {
  std::vector<float> x = rng.normals(m * k);
  for (int64_t i = 0; i < m; ++i) x[i * k + k / 2] *= 10.0f;  // an outlier feature
  return x;
}

// Runs the layer with a workspace of exactly linear_workspace_bytes, deliberately misaligned
// (the contract allows any alignment), ending at the end of its allocation so ASan sees any
// overrun.
std::vector<float> run(const PackedLinear& layer, const std::vector<float>& x, int64_t m) {
  const size_t bytes = linear_workspace_bytes(layer, m);
  std::vector<unsigned char> ws(bytes + 1);
  std::vector<float> y(m * layer.n, std::numeric_limits<float>::quiet_NaN());
  run_linear(layer, x.data(), m, y.data(), Backend::Cpu, ws.data() + 1);
  return y;
}

// The weight the layer's kernel multiplies, decoded here from the test's stored codes and
// scales: q8 * scale8 per row; (u - zero) * scale per group of K for W4A16.
std::vector<float> dequantized_weight(const TestLayer& l) {
  const PackedLinear& v = l.view;
  const int64_t n = v.n, k = v.k;
  std::vector<float> w(n * k);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t t = 0; t < k; ++t) {
      float& e = w[j * k + t];
      switch (v.format) {
        case LinearFormat::DenseF32: e = l.w[j * k + t]; break;
        case LinearFormat::W8A8:
        case LinearFormat::LlmInt8: e = l.q8[j * k + t] * l.scale8[j]; break;
        case LinearFormat::W4A16: {
          const int64_t g = j * (k / v.w4.group) + t / v.w4.group;
          const uint8_t byte = l.packed4[j * (k / 2) + t / 2];
          const int u = t % 2 == 0 ? byte & 0xF : byte >> 4;
          e = static_cast<float>(u - (l.zeros4.empty() ? 8 : l.zeros4[g])) * l.scales4[g];
          break;
        }
        case LinearFormat::Lut: ADD_FAILURE() << "not built here"; break;
      }
    }
  return w;
}

// The activations as the int8 formats multiply them, by the rule kernels/activation_quant.h
// documents, written here: outlier columns (any |x| >= threshold; LlmInt8 only) are used as
// they are; every other element becomes q * absmax / 127 with q = round_half_even(x * (127 /
// absmax) in f32), absmax over the row's non-outlier elements. The rule is exact (the
// reciprocal is an f32), so the test can reproduce each code. Other formats take x as it is.
std::vector<float> activations_as_multiplied(const PackedLinear& layer, const std::vector<float>& x, int64_t m) {
  if (layer.format != LinearFormat::W8A8 && layer.format != LinearFormat::LlmInt8) return x;
  const int64_t k = layer.k;
  const float threshold = layer.format == LinearFormat::LlmInt8 ? layer.threshold : 0.0f;
  auto is_outlier = [&](float v) { return threshold > 0.0f && std::fabs(v) >= threshold; };
  std::vector<bool> outlier_col(k, false);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = 0; t < k; ++t)
      if (is_outlier(x[i * k + t])) outlier_col[t] = true;
  std::vector<float> out(x.size());
  for (int64_t i = 0; i < m; ++i) {
    float absmax = 0.0f;
    for (int64_t t = 0; t < k; ++t)
      if (!is_outlier(x[i * k + t])) absmax = std::max(absmax, std::fabs(x[i * k + t]));
    const float scale = absmax / 127.0f, reciprocal = 127.0f / absmax;
    for (int64_t t = 0; t < k; ++t) {
      const float v = x[i * k + t];
      const float q = std::clamp(std::nearbyint(v * reciprocal), -127.0f, 127.0f);
      out[i * k + t] = outlier_col[t] ? v : q * scale;
    }
  }
  return out;
}

// The exact product of what the layer multiplies (double), and its rounding scale.
testing::Expected exact_product(const TestLayer& l, const std::vector<float>& x, int64_t m) {
  return testing::matmul_double(activations_as_multiplied(l.view, x, m), dequantized_weight(l), l.view.bias, m,
                                l.view.n, l.view.k);
}

const Shape kShapes[] = {{1, 2048, 512}, {7, 33, 128}, {3, 1, 96}, {1, 1, 32}, {9, 70, 544}};

// Each format against the exact product of its own operands, not against x W^T with a
// bound from the quantization steps: such a bound (sum_k of worst cases) is loose enough to
// pass a dropped bias or one scale per row instead of per group.
TEST(RunLinear, EveryFormatIsTheExactProductOfItsOperands) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::shape_name(s));
    const std::vector<float> x = make_x(rng, s.m, s.k);
    for (LinearFormat f : {LinearFormat::DenseF32, LinearFormat::W8A8, LinearFormat::LlmInt8, LinearFormat::W4A16})
      for (bool symmetric : {true, false}) {
        if (!symmetric && f != LinearFormat::W4A16) continue;
        SCOPED_TRACE(testing::str(format_name(f), symmetric ? "" : " asymmetric"));
        const TestLayer l = make(rng, f, s.n, s.k, 32, symmetric);
        std::string why;
        ASSERT_TRUE(linear_supported(l.view, Backend::Cpu, &why)) << why;
        const auto want = exact_product(l, x, s.m);
        EXPECT_TRUE(testing::within(run(l.view, x, s.m), want.y, want.magnitude,
                                    f == LinearFormat::DenseF32 ? kDenseTol : kRoundingTol));
      }
  }
}

TEST(RunLinear, LlmInt8DecompositionBeatsW8A8OnOutlierFeatures) {
  // The reason LLM.int8 exists: one large feature inflates every row's absmax under W8A8.
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t m = 16, n = 64, k = 512;
  std::vector<float> x = rng.normals(m * k);
  for (int64_t i = 0; i < m; ++i) x[i * k + 100] = 60.0f;
  TestLayer l = make(rng, LinearFormat::W8A8, n, k);
  const auto want = testing::matmul_double(x, l.w, l.bias.data(), m, n, k);
  auto rms_error = [&](const std::vector<float>& y) {
    double e = 0.0;
    for (size_t i = 0; i < y.size(); ++i) e += (y[i] - want.y[i]) * (y[i] - want.y[i]);
    return std::sqrt(e / static_cast<double>(y.size()));
  };
  const double w8a8 = rms_error(run(l.view, x, m));
  l.view.format = LinearFormat::LlmInt8;
  l.view.threshold = 6.0f;
  const double llm_int8 = rms_error(run(l.view, x, m));
  EXPECT_LT(llm_int8 * 3.0, w8a8) << "LLM.int8 " << llm_int8 << " vs W8A8 " << w8a8;
}

TEST(RunLinear, W8A8IgnoresThresholdAndFp16Columns) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  TestLayer l = make(rng, LinearFormat::W8A8, 20, 64);
  const std::vector<float> x = make_x(rng, 3, 64);
  const auto plain = run(l.view, x, 3);
  const int32_t col = 32;
  const std::vector<uint16_t> f16(20, 0x3C00);
  l.view.threshold = 1.0f;
  l.view.fp16_columns = {&col, f16.data(), 1};
  EXPECT_EQ(run(l.view, x, 3), plain);
}

// Without a usable GPU (or without CUDA in the build) the CUDA backend refuses, saying why;
// with one, tests/cuda/test_cuda_backend.cpp compares it with the CPU.
TEST(RunLinear, CudaWithoutAGpuIsRefusedAndRunThrows) {
  for (const auto& b : list_backends())
    if (b.name == "cuda" && b.usable) GTEST_SKIP() << "a GPU is usable here";
  Rng rng;
  const TestLayer l = make(rng, LinearFormat::DenseF32, 4, 8);
  std::string why;
  EXPECT_FALSE(linear_supported(l.view, Backend::Cuda, &why));
  EXPECT_NE(why.find("CUDA"), std::string::npos) << why;
  std::vector<float> x(8), y(4);
  EXPECT_THROW(run_linear(l.view, x.data(), 1, y.data(), Backend::Cuda, nullptr), std::invalid_argument);
}

TEST(RunLinear, RejectsInconsistentLayouts) {
  Rng rng;
  std::string why;
  TestLayer l = make(rng, LinearFormat::W4A16, 4, 64);
  l.view.w4.group = 48;  // does not divide K
  EXPECT_FALSE(linear_supported(l.view, Backend::Cpu, &why));
  EXPECT_NE(why.find("group 48"), std::string::npos) << why;
  TestLayer q = make(rng, LinearFormat::LlmInt8, 4, 64);
  q.view.int8.k = 63;
  EXPECT_FALSE(linear_supported(q.view, Backend::Cpu, &why));
  EXPECT_NE(why.find("does not match"), std::string::npos) << why;
  q.view.int8.k = 64;
  const int32_t cols[] = {5, 5};
  const uint16_t w16[8] = {};
  q.view.fp16_columns = {cols, w16, 2};
  EXPECT_FALSE(linear_supported(q.view, Backend::Cpu, &why));
  EXPECT_NE(why.find("ascend"), std::string::npos) << why;
  PackedLinear empty;
  EXPECT_FALSE(linear_supported(empty, Backend::Cpu, &why));
  std::vector<float> x(64), y(4);
  EXPECT_THROW(run_linear(l.view, x.data(), 1, y.data(), Backend::Cpu, nullptr), std::invalid_argument);
}

TEST(RunLinear, FallbackIsLoggedOnceNeverSilent) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  // Group 16: the AVX2 W4A16 kernel needs multiples of 32, so run_linear takes the reference.
  const TestLayer l = make(rng, LinearFormat::W4A16, 11, 80, 16);
  const std::vector<float> x = make_x(rng, 2, 80);
  ::testing::internal::CaptureStderr();
  const auto y = run(l.view, x, 2);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("modelpress: W4A16 11x80 group 16"), std::string::npos) << log;
  EXPECT_NE(log.find("reference"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << "one line: " << log;
  ::testing::internal::CaptureStderr();
  run(l.view, x, 2);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  const auto want = exact_product(l, x, 2);
  EXPECT_TRUE(testing::within(y, want.y, want.magnitude, kRoundingTol));
}

TEST(RunLinear, ZeroRowsIsANoOp) {
  Rng rng;
  const TestLayer l = make(rng, LinearFormat::LlmInt8, 3, 32);
  float y = 42.0f;
  run_linear(l.view, nullptr, 0, &y, Backend::Cpu, nullptr);
  EXPECT_EQ(y, 42.0f);
  EXPECT_EQ(linear_workspace_bytes(make(rng, LinearFormat::DenseF32, 3, 32).view, 100), 0u);
}

TEST(RunLinear, Names) {
  EXPECT_STREQ(backend_name(Backend::Cpu), "cpu");
  EXPECT_STREQ(backend_name(Backend::Cuda), "cuda");
  EXPECT_STREQ(format_name(LinearFormat::DenseF32), "dense-f32");
  EXPECT_STREQ(format_name(LinearFormat::W8A8), "w8a8");
  EXPECT_STREQ(format_name(LinearFormat::LlmInt8), "llm-int8");
  EXPECT_STREQ(format_name(LinearFormat::W4A16), "w4a16");
}

TEST(DenseF32, EigenBuildsMatchReferenceOnOddShapes) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (const Shape& s : {Shape{1, 2048, 513}, Shape{7, 33, 129}, Shape{3, 1, 17}, Shape{1, 1, 1}, Shape{65, 130, 300}}) {
    SCOPED_TRACE(testing::shape_name(s));
    const std::vector<float> w = rng.normals(s.n * s.k), x = rng.normals(s.m * s.k), bias = rng.normals(s.n);
    for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
      const auto want = testing::matmul_double(x, w, b, s.m, s.n, s.k);
      std::vector<float> ref(s.m * s.n), base(s.m * s.n), fast(s.m * s.n);
      dense_f32_linear_ref(w.data(), s.n, s.k, b, x.data(), s.m, ref.data());
      detail::dense_f32_eigen_baseline(w.data(), s.n, s.k, b, x.data(), s.m, base.data());
      dense_f32_linear(w.data(), s.n, s.k, b, x.data(), s.m, fast.data());
      EXPECT_TRUE(testing::within(ref, want.y, want.magnitude, 1e-7));
      EXPECT_TRUE(testing::within(base, want.y, want.magnitude, kDenseTol));
      EXPECT_TRUE(testing::within(fast, want.y, want.magnitude, kDenseTol));
      if (cpu_features().avx2_fma) {
        std::vector<float> avx2(s.m * s.n);
        detail::dense_f32_eigen_avx2(w.data(), s.n, s.k, b, x.data(), s.m, avx2.data());
        EXPECT_TRUE(testing::within(avx2, want.y, want.magnitude, kDenseTol));
      }
      if (detail::dense_f32_avx512_available()) {
        std::vector<float> avx512(s.m * s.n);
        detail::dense_f32_eigen_avx512(w.data(), s.n, s.k, b, x.data(), s.m, avx512.data());
        EXPECT_TRUE(testing::within(avx512, want.y, want.magnitude, kDenseTol));
      }
    }
  }
}

}  // namespace
}  // namespace modelpress::kernels
