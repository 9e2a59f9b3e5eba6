// The CUDA backend through the public entry point (kernels/packed_linear.h), in every build:
// with a GPU, run_linear on Backend::Cuda matches Backend::Cpu for every format on odd shapes;
// without one (or without CUDA in the build), linear_supported says why and run_linear throws.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/packed_linear.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;
using testing::str;

bool cuda_usable() {
  for (const auto& b : list_backends())
    if (b.name == "cuda") return b.usable;
  return false;
}

// One layer of each format over the same random weight, built from the dense weight so the
// tests can give each a tolerance against the CPU run of the same format.
struct Layers {
  std::vector<float> w, bias, scale, w4_scales;
  std::vector<int8_t> q;
  std::vector<uint8_t> packed, zeros;
  std::vector<int32_t> fp16_cols;
  std::vector<uint16_t> fp16_w;
  std::vector<uint8_t> lut_idx;
  std::vector<float> lut, row_scale;
  PackedLinear dense, w8a8, llm, w4, w4_asym, lut3;
};

Layers make_layers(Rng& rng, int64_t n, int64_t k, int64_t group) {
  Layers l;
  l.w = rng.normals(n * k, 0.05f);
  l.bias = rng.normals(n, 0.1f);
  l.q.resize(n * k);
  l.scale.resize(n);
  for (int64_t j = 0; j < n; ++j) {
    float amax = 0;
    for (int64_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(l.w[j * k + t]));
    l.scale[j] = amax / 127.0f;
    for (int64_t t = 0; t < k; ++t) l.q[j * k + t] = static_cast<int8_t>(std::lrint(l.w[j * k + t] / l.scale[j]));
  }
  l.packed.resize(n * k / 2);
  for (auto& b : l.packed) b = static_cast<uint8_t>(rng.integer(0, 255));
  l.w4_scales.resize(n * (k / group));
  for (auto& s : l.w4_scales) s = rng.uniform(0.001f, 0.02f);
  l.zeros.resize(l.w4_scales.size());
  for (auto& z : l.zeros) z = static_cast<uint8_t>(rng.integer(0, 15));
  l.fp16_cols = {static_cast<int32_t>(k / 2)};
  for (int64_t j = 0; j < n; ++j) l.fp16_w.push_back(testing::f32_to_f16_bits(l.w[j * k + k / 2]));

  auto base = [&](LinearFormat f) {
    PackedLinear p;
    p.format = f;
    p.n = n;
    p.k = k;
    p.bias = l.bias.data();
    return p;
  };
  l.dense = base(LinearFormat::DenseF32);
  l.dense.dense = l.w.data();
  l.w8a8 = base(LinearFormat::W8A8);
  l.w8a8.int8 = {l.q.data(), l.scale.data(), n, k};
  l.llm = base(LinearFormat::LlmInt8);
  l.llm.int8 = l.w8a8.int8;
  l.llm.fp16_columns = {l.fp16_cols.data(), l.fp16_w.data(), 1};
  l.w4 = base(LinearFormat::W4A16);
  l.w4.w4 = {l.packed.data(), l.w4_scales.data(), nullptr, n, k, group};
  l.w4_asym = l.w4;
  l.w4_asym.w4.zeros = l.zeros.data();
  // 3-bit palettized: one table per tensor, row scales.
  l.lut_idx.resize(static_cast<size_t>(n * lut_row_bytes(k, 3)));
  for (auto& b : l.lut_idx) b = static_cast<uint8_t>(rng.integer(0, 255));
  l.lut = rng.normals(8, 0.05f);
  l.row_scale = rng.normals(n, 1.0f);
  l.lut3 = base(LinearFormat::Lut);
  l.lut3.lut = {l.lut_idx.data(), l.lut.data(), l.row_scale.data(), n, k, n, 3};
  return l;
}

std::vector<float> run(const PackedLinear& layer, const std::vector<float>& x, int64_t m, Backend b) {
  std::vector<float> y(layer.n * m, std::numeric_limits<float>::quiet_NaN());  // poisoned
  std::vector<unsigned char> ws(linear_workspace_bytes(layer, m));
  run_linear(layer, x.data(), m, y.data(), b, ws.data());
  return y;
}

TEST(CudaBackend, RunLinearMatchesCpuForEveryFormat) {
  if (!cuda_usable()) GTEST_SKIP() << "no usable CUDA backend here";
  struct Case {
    int64_t m, n, k, group;
  } cases[] = {{1, 37, 96, 32}, {5, 130, 250, 10}, {24, 33, 512, 128}, {3, 7, 2, 2},
               {9, 50, 256, 64}};  // the last: W4A16's tensor-core path (K, group multiples of 64)
  for (const auto& c : cases) {
    Rng rng;
    SCOPED_TRACE(str(rng.trace(), " M=", c.m, " N=", c.n, " K=", c.k, " group ", c.group));
    Layers l = make_layers(rng, c.n, c.k, c.group);
    std::vector<float> x = rng.normals(c.m * c.k);
    for (int64_t r = 0; r < c.m; r += 2) x[r * c.k + (c.k / 2)] = 9.0f;  // an outlier column, listed in fp16
    if (c.k > 3)
      for (int64_t r = 1; r < c.m; r += 2) x[r * c.k + 1] = -7.5f;  // one using the int8 column
    struct Format {
      const PackedLinear* layer;
      double rel;  // of the largest |y| on the CPU
    } formats[] = {{&l.dense, 2e-3}, {&l.w8a8, 1e-5}, {&l.llm, 2e-3},
                   {&l.w4, 2e-3},    {&l.w4_asym, 2e-3}, {&l.lut3, 1e-5}};
    for (const auto& f : formats) {
      SCOPED_TRACE(format_name(f.layer->format));
      std::string why;
      ASSERT_TRUE(linear_supported(*f.layer, Backend::Cuda, &why)) << why;
      const std::vector<float> cpu = run(*f.layer, x, c.m, Backend::Cpu);
      const std::vector<float> gpu = run(*f.layer, x, c.m, Backend::Cuda);
      double scale = 0;
      for (float v : cpu) scale = std::max(scale, static_cast<double>(std::fabs(v)));
      for (size_t i = 0; i < cpu.size(); ++i)
        ASSERT_NEAR(gpu[i], cpu[i], f.rel * scale + 1e-6) << "element " << i;  // NaN fails
    }
  }
}

// LLM.int8 outliers beyond f16's range (|x| > 65504) in f32 activations: the GPU's outlier
// product is f32 like the CPU's (it once rounded x to f16, making them inf).
TEST(CudaBackend, LlmInt8OutliersBeyondHalfRangeMatchCpu) {
  if (!cuda_usable()) GTEST_SKIP() << "no usable CUDA backend here";
  Rng rng;
  const int64_t m = 6, n = 40, k = 96;
  Layers l = make_layers(rng, n, k, 32);
  std::vector<float> x = rng.normals(m * k);
  for (int64_t r = 0; r < m; ++r) x[r * k + 7] = (r % 2 ? -1.0f : 1.0f) * 7.0e4f * (1.0f + 0.1f * r);
  const std::vector<float> cpu = run(l.llm, x, m, Backend::Cpu), gpu = run(l.llm, x, m, Backend::Cuda);
  double scale = 0;
  for (float v : cpu) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_TRUE(std::isfinite(gpu[i])) << "element " << i;
    ASSERT_NEAR(gpu[i], cpu[i], 1e-5 * scale) << "element " << i;
  }
}

TEST(CudaBackend, WithoutAGpuLinearSaysWhyAndRunThrows) {
  if (cuda_usable()) GTEST_SKIP() << "a GPU is usable here";
  Rng rng;
  Layers l = make_layers(rng, 8, 64, 32);
  for (const PackedLinear* p : {&l.dense, &l.w8a8, &l.llm, &l.w4, &l.lut3}) {
    std::string why;
    EXPECT_FALSE(linear_supported(*p, Backend::Cuda, &why));
    EXPECT_NE(why.find("CUDA"), std::string::npos) << why;
    std::vector<float> x(64, 1.0f), y(8);
    std::vector<unsigned char> ws(linear_workspace_bytes(*p, 1));
    EXPECT_THROW(run_linear(*p, x.data(), 1, y.data(), Backend::Cuda, ws.data()), std::invalid_argument);
    EXPECT_TRUE(linear_supported(*p, Backend::Cpu, &why)) << why;
  }
}

}  // namespace
}  // namespace modelpress::kernels
