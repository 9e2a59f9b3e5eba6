// PackedLayer::view() as the kernels read it: run_linear on the CPU backend over each pass's
// output equals x W^T + b computed here from dequantize_layer (the weights every loader
// sees). Checks that the quant side and the kernel side agree on layouts (nibble order,
// zero points, scales, bias), not the kernels' own accuracy (tests/kernels does that).
// Palettized layers from the cluster pass are checked against a dequantization written
// here from the documented layout (packed_linear.h's LutWeight), not dequantize_layer.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/packed_linear.h"
#include "quant/edkm.h"
#include "quant/packed_layer.h"
#include "tests/kernels/kernel_test_util.h"
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

// Index c of row r of a palettized layer, read bit by bit from the row's little-endian
// stream (bit c * bits + i of the row is bit i of the index), as packed_linear.h documents.
int lut_index_bit_by_bit(const PackedLayer& l, int64_t r, int64_t c) {
  const uint8_t* row = l.lut_indices.data() + r * ((l.k * l.lut_bits + 7) / 8);
  int v = 0;
  for (int i = 0; i < l.lut_bits; ++i) {
    const int64_t bit = c * l.lut_bits + i;
    v |= ((row[bit / 8] >> (bit % 8)) & 1) << i;
  }
  return v;
}

// The weight a palettized layer stores, decoded here: the index's entry of its row group's
// table (int8 tables from their codes and per-table scale), times the row's scale if any.
std::vector<float> lut_weight_decoded_here(const PackedLayer& l) {
  const int64_t entries = int64_t{1} << l.lut_bits;
  std::vector<float> w(static_cast<size_t>(l.n * l.k));
  for (int64_t r = 0; r < l.n; ++r) {
    const int64_t table = r / l.group;
    for (int64_t c = 0; c < l.k; ++c) {
      const auto e = static_cast<size_t>(table * entries + lut_index_bit_by_bit(l, r, c));
      float v = l.lut_dtype == DType::I8 ? l.lut_q[e] * l.lut_q_scale[static_cast<size_t>(table)] : l.lut[e];
      if (!l.lut_row_scale.empty()) v *= l.lut_row_scale[static_cast<size_t>(r)];
      w[static_cast<size_t>(r * l.k + c)] = v;
    }
  }
  return w;
}

TEST(KernelView, ClusteredLayersRunThroughRunLinear) {
  // Odd shapes (K = 37 splits indices across bytes at 3 and 5 bits), one table per tensor
  // and per group of rows, with and without row scales, every table dtype; M = 5 takes the
  // lookup GEMV and M = 17 the looked-up blocks through the dense GEMM.
  struct Case {
    int bits;
    int64_t n, k, group_size;  // group_size 0: one table for the tensor
    bool channel_scale;
    DType lut_dtype;
  };
  const Case cases[] = {{3, 21, 37, 0, false, DType::F16}, {3, 21, 37, 7, true, DType::F16},
                        {4, 15, 50, 5, true, DType::I8},   {5, 9, 37, 3, false, DType::F32},
                        {2, 6, 129, 1, true, DType::F32}};
  for (const Case& t : cases) {
    SCOPED_TRACE(::testing::Message() << t.bits << " bits, " << t.n << "x" << t.k << ", group " << t.group_size
                                      << (t.channel_scale ? ", row scales, " : ", ") << dtype_name(t.lut_dtype));
    std::vector<float> values = gaussian_values(static_cast<size_t>(t.n * t.k), 41, 0.05f);
    // Rows of very different size, so that a row scale (or a table) applied to the wrong
    // row shows.
    for (int64_t r = 0; r < t.n; ++r)
      for (int64_t c = 0; c < t.k; ++c) values[static_cast<size_t>(r * t.k + c)] *= static_cast<float>(1 + r % 4);
    const Tensor w = f32_tensor(values, {t.n, t.k});
    const Tensor b = f32_tensor(gaussian_values(static_cast<size_t>(t.n), 42, 0.5f), {t.n});
    ClusterOptions o;
    o.bits = t.bits;
    o.group_size = t.group_size;
    o.channel_scale = t.channel_scale;
    o.lut_dtype = t.lut_dtype;
    const PackedLayer l = cluster_weight("fc", w, &b, o);
    ASSERT_EQ(l.format, kernels::LinearFormat::Lut);
    ASSERT_EQ(l.group, t.group_size == 0 ? t.n : t.group_size);
    ASSERT_EQ(l.lut_row_scale.empty(), !t.channel_scale);
    const std::vector<float> decoded = lut_weight_decoded_here(l);
    for (int64_t m : {5, 17}) {
      SCOPED_TRACE(::testing::Message() << "M " << m);
      const std::vector<float> x = gaussian_values(static_cast<size_t>(m * t.k), 43);
      const auto want = kernels::testing::matmul_double(x, decoded, l.bias.data(), m, t.n, t.k);
      // Both sides multiply the same f32 weights: only f32 summation order differs.
      EXPECT_TRUE(kernels::testing::within(run(l, x, m), want.y, want.magnitude, 1e-5));
    }
  }
}

}  // namespace
}  // namespace modelpress::quant
