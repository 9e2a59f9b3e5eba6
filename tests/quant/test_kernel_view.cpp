// PackedLayer::view() as the kernels read it: run_linear on the CPU backend over each pass's
// output equals x W^T + b computed here from dequantize_layer (the weights every loader
// sees). Checks that the quant side and the kernel side agree on layouts (nibble order,
// zero points, scales, bias), not the kernels' own accuracy (tests/kernels does that).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/packed_linear.h"
#include "quant/packed_layer.h"
#include "tests/quant/quant_test_util.h"

namespace modelpress::quant {
namespace {

using testing::f32_tensor;
using testing::gaussian_values;

std::vector<float> reference(const PackedLayer& l, const std::vector<float>& x, int64_t m) {
  const std::vector<float> w = dequantize_layer(l);
  std::vector<float> y(static_cast<size_t>(m * l.n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < l.n; ++j) {
      double s = l.bias.empty() ? 0.0 : l.bias[j];
      for (int64_t c = 0; c < l.k; ++c) s += static_cast<double>(x[i * l.k + c]) * w[j * l.k + c];
      y[i * l.n + j] = static_cast<float>(s);
    }
  return y;
}

// Relative Frobenius error of y against ref.
double rel_error(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += (y[i] - ref[i]) * static_cast<double>(y[i] - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

std::vector<float> run(const PackedLayer& l, const std::vector<float>& x, int64_t m) {
  const kernels::PackedLinear v = l.view();
  std::string why;
  EXPECT_TRUE(kernels::linear_supported(v, kernels::Backend::Cpu, &why)) << why;
  std::vector<std::byte> ws(kernels::linear_workspace_bytes(v, m));
  std::vector<float> y(static_cast<size_t>(m * l.n));
  kernels::run_linear(v, x.data(), m, y.data(), kernels::Backend::Cpu, ws.data());
  return y;
}

TEST(KernelView, EveryPassRunsThroughRunLinear) {
  const int64_t m = 5, n = 24, k = 256;
  const Tensor w = f32_tensor(gaussian_values(n * k, 31, 0.05f), {n, k}, DType::BF16);
  const Tensor b = f32_tensor(gaussian_values(n, 32), {n});
  const std::vector<float> x = gaussian_values(m * k, 33);  // no |x| >= 6: no outlier columns
  // Weight-only and dense layers multiply f32 activations: only summation order differs.
  for (const PackedLayer& l : {dense_layer("fc", w, &b), quantize_w4a16("fc", w, &b, {.group_size = 64}),
                               quantize_w4a16("fc", w, &b, {.group_size = 32, .symmetric = false})}) {
    const auto y = run(l, x, m);
    EXPECT_LT(rel_error(y, reference(l, x, m)), 1e-5) << method_name(l.format);
  }
  // int8 layers also quantize the activations per row: about 1/127 of a row's range.
  for (const PackedLayer& l : {quantize_w8a8("fc", w, &b), quantize_llm_int8("fc", w, &b, {})}) {
    const auto y = run(l, x, m);
    EXPECT_LT(rel_error(y, reference(l, x, m)), 2e-2) << method_name(l.format);
  }
}

}  // namespace
}  // namespace modelpress::quant
