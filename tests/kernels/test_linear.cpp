// run_linear for every format against x W^T in f32 (computed in double) within stated
// tolerances; linear_supported, workspace sizing, the fallback log; DenseF32 paths.
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
// Packed formats: a per-element bound from the quantization steps (below), plus this much
// f32 rounding relative to sum_k |x w|.
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

// Per-element bound of |y - x W^T| for the packed formats: each operand's quantization error
// times the other operand, summed over K.
std::vector<double> quantization_bound(const TestLayer& l, const std::vector<float>& x, int64_t m, bool symmetric4) {
  const int64_t n = l.view.n, k = l.view.k;
  std::vector<double> bound(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    // Activation step: row absmax over non-outlier elements / 127 (x error <= half of it;
    // outlier columns are exact, so counting them too only loosens the bound).
    const float threshold = l.view.format == LinearFormat::LlmInt8 ? l.view.threshold : 0.0f;
    float absmax = 0.0f;
    for (int64_t t = 0; t < k; ++t) {
      const float a = std::fabs(x[i * k + t]);
      if (threshold <= 0.0f || a < threshold) absmax = std::max(absmax, a);
    }
    const double xe = absmax / 127.0 / 2.0;
    for (int64_t j = 0; j < n; ++j) {
      double b = 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const double ax = std::fabs(x[i * k + t]), aw = std::fabs(l.w[j * k + t]);
        if (l.view.format == LinearFormat::W4A16) {
          const double s = l.scales4[j * (k / l.view.w4.group) + t / l.view.w4.group];
          b += ax * s * (symmetric4 ? 0.5 : 1.0);
        } else {
          const double we = l.scale8[j] / 2.0;
          b += ax * we + aw * xe + xe * we;
        }
      }
      bound[i * n + j] = b;
    }
  }
  return bound;
}

const Shape kShapes[] = {{1, 2048, 512}, {7, 33, 128}, {3, 1, 96}, {1, 1, 32}, {9, 70, 544}};

TEST(RunLinear, EveryFormatIsCloseToTheFloatProduct) {
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
        const auto want = testing::matmul_double(x, l.w, l.bias.data(), s.m, s.n, s.k);
        const auto got = run(l.view, x, s.m);
        if (f == LinearFormat::DenseF32) {
          EXPECT_TRUE(testing::within(got, want.y, want.magnitude, kDenseTol));
          continue;
        }
        const auto bound = quantization_bound(l, x, s.m, symmetric);
        for (size_t e = 0; e < got.size(); ++e) {
          const double err = std::fabs(got[e] - want.y[e]);
          ASSERT_LE(err, bound[e] + kRoundingTol * want.magnitude[e] + 1e-6) << "element " << e;
        }
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
  const auto want = testing::matmul_double(x, l.w, l.bias.data(), 2, 11, 80);
  const auto bound = quantization_bound(l, x, 2, true);
  for (size_t e = 0; e < y.size(); ++e) ASSERT_LE(std::fabs(y[e] - want.y[e]), bound[e] + 1e-5);
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
