// Every CUDA kernel against its CPU reference on fresh random data of odd shapes, outputs
// poisoned before each run. Built with MODELPRESS_CUDA; every test skips without a usable GPU.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/activation_quant.h"
#include "kernels/cuda/activation_quant.h"
#include "kernels/cuda/blaslt.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/llm_int8.h"
#include "kernels/cuda/w4_mma_layout.h"
#include "kernels/cuda/w4a16.h"
#include "kernels/int8_gemm.h"
#include "kernels/llm_int8.h"
#include "kernels/packed_linear.h"
#include "kernels/w4a16.h"
#include "tests/cuda/cuda_test_util.h"

namespace modelpress::kernels::cuda {
namespace {

using kernels::testing::Rng;
using kernels::testing::str;
using testing::CudaTest;
using testing::poisoned;
using testing::to_device;
using testing::to_host;

// Activations with everything the quantizer must get right: outlier columns (some rows only),
// an all-zero row, a NaN, negative zeros.
std::vector<float> tricky_x(Rng& rng, int64_t m, int64_t k, float threshold) {
  std::vector<float> x = rng.normals(m * k);
  if (threshold > 0)
    for (int c = 0; c < 3 && k > 4; ++c) {
      const int64_t col = rng.integer(0, static_cast<int>(k) - 1);
      for (int64_t r = 0; r < m; r += 2) x[r * k + col] = (r % 4 ? -1.0f : 1.0f) * rng.uniform(threshold, 3 * threshold);
    }
  if (m > 2) std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);  // row 1: all zero
  // Row 3 (no outliers: those are in even rows): absmax below 127 / FLT_MAX, where 127 / absmax
  // overflows f32 and the CPU rounds in double (zero in f16, which is fine too).
  if (m > 3)
    for (int64_t j = 3 * k; j < 4 * k; ++j) x[j] *= 1e-38f;
  if (m * k > 7) x[7] = std::numeric_limits<float>::quiet_NaN();
  if (m * k > 3) x[3] = -0.0f;
  return x;
}

class CudaActivationQuant : public CudaTest, public ::testing::WithParamInterface<int> {};

// q, row scales and the outlier column list equal the CPU reference bit for bit, for f32 and
// f16 input (x rounded to f16 first, so both see the same values).
TEST_P(CudaActivationQuant, MatchesReferenceBitForBit) {
  const DType xt = GetParam() == 0 ? DType::F32 : DType::F16;
  struct Case {
    int64_t m, k;
    float threshold;
  } cases[] = {{1, 1, 6.0f}, {5, 77, 6.0f}, {33, 1000, 6.0f}, {17, 4099, 0.0f}, {3, 2050, 2.5f}};
  for (const auto& c : cases) {
    Rng rng;
    SCOPED_TRACE(str(rng.trace(), " M=", c.m, " K=", c.k, " threshold=", c.threshold, " ", dtype_name(xt)));
    std::vector<float> x = tricky_x(rng, c.m, c.k, c.threshold);
    testing::Rounded16 x16;
    if (xt == DType::F16) {
      for (auto& v : x)
        if (std::isnan(v)) v = 0.5f;  // the host f16 helper takes finite values only
      x16 = testing::round16(x, false);
      x = x16.values;
    }
    // CPU reference.
    std::vector<int8_t> q_ref(c.m * c.k);
    std::vector<float> rs_ref(c.m);
    std::vector<int32_t> cols_ref(c.k);
    std::vector<uint8_t> flags_ref(c.k);
    const int64_t count_ref =
        quantize_activations_ref(x.data(), c.m, c.k, c.threshold, q_ref.data(), rs_ref.data(), cols_ref.data(), flags_ref.data());

    Context& cx = ctx();
    const int64_t ldq = round_up(c.k, 16);
    DeviceBuffer dx = xt == DType::F32 ? to_device(x) : to_device(x16.bits);
    DeviceBuffer q = poisoned(static_cast<size_t>(c.m * ldq), 0x80);  // -128: never a quantized value
    DeviceBuffer rs = poisoned(sizeof(float) * c.m);
    DeviceBuffer flags = poisoned(static_cast<size_t>(c.k), 0);
    DeviceBuffer cols = poisoned(sizeof(int32_t) * c.k);
    DeviceBuffer count = poisoned(sizeof(int32_t));
    quantize_rows(cx, xt, dx.data(), c.m, c.k, c.threshold, q.as<int8_t>(), ldq, rs.as<float>(), flags.as<uint8_t>());
    int64_t n_out = 0;
    std::vector<int32_t> cols_got;
    if (c.threshold > 0) {
      compact_outlier_columns(cx, flags.as<uint8_t>(), c.k, cols.as<int32_t>(), count.as<int32_t>());
      n_out = to_host<int32_t>(cx, count, 1)[0];
      ASSERT_EQ(n_out, count_ref);
      cols_got = to_host<int32_t>(cx, cols, static_cast<size_t>(n_out));
    }
    ASSERT_EQ(count_ref, n_out);
    for (int64_t j = 0; j < n_out; ++j) ASSERT_EQ(cols_got[j], cols_ref[j]) << "outlier column " << j;
    const std::vector<int8_t> q_got = to_host<int8_t>(cx, q, static_cast<size_t>(c.m * ldq));
    const std::vector<float> rs_got = to_host<float>(cx, rs, static_cast<size_t>(c.m));
    // Outlier columns are zeroed in every row later, by the outlier product
    // (kernels/cuda/llm_int8.cu; CudaLlmInt8 checks the result); every other byte must match.
    std::vector<bool> outlier_col(c.k, false);
    for (int64_t j = 0; j < n_out; ++j) outlier_col[cols_ref[j]] = true;
    for (int64_t r = 0; r < c.m; ++r) {
      ASSERT_EQ(std::bit_cast<uint32_t>(rs_got[r]), std::bit_cast<uint32_t>(rs_ref[r])) << "row scale " << r;
      for (int64_t j = 0; j < ldq; ++j) {
        if (j < c.k && outlier_col[j]) continue;
        ASSERT_EQ(q_got[r * ldq + j], j < c.k ? q_ref[r * c.k + j] : 0) << "q row " << r << " column " << j;
      }
    }
  }
}
INSTANTIATE_TEST_SUITE_P(InputType, CudaActivationQuant, ::testing::Values(0, 1),
                         [](const auto& info) { return info.param == 0 ? "f32" : "f16"; });

using CudaInt8Gemm = CudaTest;

// cuBLASLt int8 (CUBLAS_COMPUTE_32I) is exact: equal to the reference, including -128.
TEST_F(CudaInt8Gemm, ExactAgainstReference) {
  struct Case {
    int64_t m, n, k;
  } cases[] = {{1, 4, 4}, {7, 20, 36}, {65, 132, 260}, {3, 16, 4096}, {129, 8, 12}};
  for (const auto& c : cases) {
    Rng rng;
    SCOPED_TRACE(str(rng.trace(), " M=", c.m, " N=", c.n, " K=", c.k));
    const auto a = rng.int8s(c.m * c.k, -128, 127), b = rng.int8s(c.n * c.k, -128, 127);
    std::vector<int32_t> want(c.m * c.n);
    int8_gemm_ref(a.data(), b.data(), want.data(), c.m, c.n, c.k);
    DeviceBuffer da = to_device(a), db = to_device(b);
    DeviceBuffer dc = poisoned(sizeof(int32_t) * c.m * c.n, 0x7F);  // 2139062143: beyond any |C| here
    gemm_int8(ctx(), da.as<int8_t>(), c.k, db.as<int8_t>(), c.k, dc.as<int32_t>(), c.n, c.m, c.n, c.k);
    EXPECT_EQ(to_host<int32_t>(ctx(), dc, want.size()), want);
  }
}

TEST_F(CudaInt8Gemm, RefusesShapesImmaCannotTake) {
  DeviceBuffer a(64), b(64), c(256);
  EXPECT_THROW(gemm_int8(ctx(), a.as<int8_t>(), 6, b.as<int8_t>(), 6, c.as<int32_t>(), 4, 1, 4, 6), CudaError);
}

// Uploads an int8 weight padded to (n_pad, k_pad) with zeros, as the backend does.
struct PaddedInt8 {
  DeviceBuffer q, scale;
  DeviceInt8Weight view;
};
PaddedInt8 upload_int8(const std::vector<int8_t>& q, const std::vector<float>& scale, int64_t n, int64_t k) {
  PaddedInt8 p;
  p.view.n = n;
  p.view.k = k;
  const int64_t np = p.view.n_pad(), kp = p.view.k_pad();
  std::vector<int8_t> padded(np * kp, 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) padded[r * kp + c] = q[r * k + c];
  p.q = to_device(padded);
  p.scale = to_device(scale);
  p.view.q = p.q.as<int8_t>();
  p.view.scale = p.scale.as<float>();
  return p;
}

// The GEMM plus its fused epilogue, from already-quantized activations: f32 output equals the
// CPU's f32 formula bit for bit; 16-bit outputs are that value rounded once.
TEST_F(CudaInt8Gemm, DequantizationEpilogue) {
  for (DType yt : {DType::F32, DType::F16, DType::BF16}) {
    for (const auto& s : std::initializer_list<kernels::testing::Shape>{{1, 37, 83}, {9, 130, 250}, {31, 7, 1030}}) {
      Rng rng;
      SCOPED_TRACE(str(rng.trace(), " ", kernels::testing::shape_name(s), " ", dtype_name(yt)));
      const int64_t kp = round_up(s.k, 16), np = round_up(s.n, 16);
      const auto xq = rng.int8s(s.m * s.k, -127, 127), wq = rng.int8s(s.n * s.k, -127, 127);
      std::vector<float> rs(s.m), ws(s.n), bias = rng.normals(s.n);
      for (auto& v : rs) v = rng.uniform(0.001f, 0.1f);
      for (auto& v : ws) v = rng.uniform(0.001f, 0.1f);
      std::vector<int32_t> c(s.m * s.n);
      int8_gemm_ref(xq.data(), wq.data(), c.data(), s.m, s.n, s.k);
      std::vector<int8_t> xq_pad(s.m * kp, 0);
      for (int64_t r = 0; r < s.m; ++r)
        for (int64_t j = 0; j < s.k; ++j) xq_pad[r * kp + j] = xq[r * s.k + j];
      PaddedInt8 w = upload_int8(wq, ws, s.n, s.k);
      DeviceBuffer dx = to_device(xq_pad), drs = to_device(rs), db = to_device(bias);
      DeviceBuffer dc = poisoned(sizeof(int32_t) * s.m * np, 0x7F);
      DeviceBuffer dy = poisoned(static_cast<size_t>(dtype_bytes(yt) * s.m * s.n));
      int8_gemm_dequant(ctx(), w.view, dx.as<int8_t>(), drs.as<float>(), db.as<float>(), s.m, dc.as<int32_t>(), yt, dy.data());
      std::vector<float> got;
      if (yt == DType::F32) got = to_host<float>(ctx(), dy, s.m * s.n);
      else got = testing::from16(to_host<uint16_t>(ctx(), dy, s.m * s.n), yt == DType::BF16);
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t j = 0; j < s.n; ++j) {
          const float want = static_cast<float>(c[i * s.n + j]) * rs[i] * ws[j] + bias[j];
          const float g = got[i * s.n + j];
          if (yt == DType::F32) {
            ASSERT_EQ(std::bit_cast<uint32_t>(g), std::bit_cast<uint32_t>(want)) << "y[" << i << "][" << j << "]";
          } else {
            const double ulp = yt == DType::BF16 ? 0x1.0p-8 : 0x1.0p-11;  // half an ulp, relative
            ASSERT_LE(std::fabs(g - want), ulp * std::fabs(want) + 1e-7) << "y[" << i << "][" << j << "] = " << g;
          }
        }
    }
  }
}

// A layer as the tests build it: int8 weight, scales, bias, and fp16 columns for part of the
// outlier columns (the paper's mode; the rest use the int8 column, bitsandbytes' mode).
struct Int8Layer {
  std::vector<int8_t> q;
  std::vector<float> scale, bias;
  std::vector<int32_t> fp16_cols;
  std::vector<uint16_t> fp16_w;
  PackedLinear view;
};
Int8Layer random_int8_layer(Rng& rng, int64_t n, int64_t k, float threshold, const std::vector<int32_t>& fp16_cols) {
  Int8Layer l;
  l.q = rng.int8s(n * k, -127, 127);
  l.scale.resize(n);
  for (auto& s : l.scale) s = rng.uniform(0.0005f, 0.01f);
  l.bias = rng.normals(n, 0.1f);
  l.fp16_cols = fp16_cols;
  for (size_t c = 0; c < fp16_cols.size(); ++c)
    for (int64_t j = 0; j < n; ++j) l.fp16_w.push_back(kernels::testing::f32_to_f16_bits(rng.normal(0.5f)));
  l.view.format = threshold > 0 ? LinearFormat::LlmInt8 : LinearFormat::W8A8;
  l.view.n = n;
  l.view.k = k;
  l.view.int8 = {l.q.data(), l.scale.data(), n, k};
  l.view.threshold = threshold;
  l.view.fp16_columns = {l.fp16_cols.data(), l.fp16_w.data(), static_cast<int64_t>(l.fp16_cols.size())};
  l.view.bias = l.bias.data();
  return l;
}

// Per output: sum_k |x w| over the dequantized weight (with fp16 columns) + |bias|: the scale
// of rounding errors.
std::vector<double> magnitude(const Int8Layer& l, const std::vector<float>& x, int64_t m) {
  const int64_t n = l.view.n, k = l.view.k;
  std::vector<double> mag(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double a = std::fabs(l.bias[j]);
      for (int64_t t = 0; t < k; ++t) {
        double w = l.q[j * k + t] * static_cast<double>(l.scale[j]);
        for (size_t c = 0; c < l.fp16_cols.size(); ++c)
          if (l.fp16_cols[c] == t) w = f16_bits_to_f32(l.fp16_w[c * n + j]);
        a += std::fabs(w * x[i * k + t]);
      }
      mag[i * n + j] = std::isfinite(a) ? a : 0.0;
    }
  return mag;
}

using CudaLlmInt8 = CudaTest;

// The whole layer (quantize, outlier product, int8 GEMM, epilogue) against the CPU reference.
// W8A8 differs from it only in the order of two f32 roundings; the outlier product runs in f32
// as on the CPU (only its summation order differs).
TEST_F(CudaLlmInt8, LayerMatchesReference) {
  struct Case {
    int64_t m, n, k;
    float threshold;
    int outlier_cols = 3;
  } cases[] = {{1, 37, 83, 6.0f},   {9, 130, 250, 6.0f}, {64, 33, 1030, 6.0f},   {5, 77, 96, 0.0f},
               {2, 5, 3, 6.0f},
               // Many outlier columns: the outlier product takes them 32 at a time.
               {70, 65, 160, 6.0f, 40}, {7, 90, 700, 6.0f, 300}};
  for (const auto& c : cases) {
    for (DType io : {DType::F32, DType::F16}) {
      Rng rng;
      SCOPED_TRACE(str(rng.trace(), " M=", c.m, " N=", c.n, " K=", c.k, " threshold=", c.threshold, " ", dtype_name(io)));
      std::vector<float> x = rng.normals(c.m * c.k);
      // Outliers in a few columns (every third row), one of them listed as an fp16 column.
      std::vector<int32_t> fp16_cols;
      for (int j = 0; j < c.outlier_cols; ++j) {
        const int32_t col = static_cast<int32_t>((j * 37 + 5) % c.k);  // distinct: 37 is prime to every K here
        for (int64_t r = 0; r < c.m; r += 3) x[r * c.k + col] = rng.uniform(6.5f, 20.0f) * (r % 2 ? -1.0f : 1.0f);
        if (j == 1 && (fp16_cols.empty() || fp16_cols.back() < col)) fp16_cols.push_back(col);
      }
      testing::Rounded16 x16;
      if (io == DType::F16) {
        x16 = testing::round16(x, false);
        x = x16.values;
      }
      Int8Layer l = random_int8_layer(rng, c.n, c.k, c.threshold, fp16_cols);
      std::vector<float> want(c.m * c.n);
      std::vector<unsigned char> ws(llm_int8_workspace_bytes(c.m, c.n, c.k));
      llm_int8_linear_ref(l.view, x.data(), c.m, want.data(), ws.data());

      PaddedInt8 w = upload_int8(l.q, l.scale, c.n, c.k);
      DeviceBuffer dcols = to_device(l.fp16_cols), dfw = to_device(l.fp16_w), dbias = to_device(l.bias);
      w.view.fp16_cols = l.fp16_cols.empty() ? nullptr : dcols.as<int32_t>();
      w.view.fp16_w = l.fp16_w.empty() ? nullptr : dfw.as<uint16_t>();
      w.view.fp16_count = static_cast<int64_t>(l.fp16_cols.size());
      DeviceBuffer dx = io == DType::F32 ? to_device(x) : to_device(x16.bits);
      DeviceBuffer scratch(llm_int8_scratch_bytes(c.m, c.n, c.k));
      testing::poison(scratch);
      DeviceBuffer dy = poisoned(static_cast<size_t>(dtype_bytes(io) * c.m * c.n));
      llm_int8_linear(ctx(), w.view, dbias.as<float>(), io, dx.data(), c.m, c.threshold, io, dy.data(),
                      scratch.data());
      std::vector<float> got = io == DType::F32 ? to_host<float>(ctx(), dy, c.m * c.n)
                                                : testing::from16(to_host<uint16_t>(ctx(), dy, c.m * c.n), false);
      if (c.threshold > 0)
        EXPECT_EQ(llm_int8_outlier_count(ctx(), scratch.data(), c.m, c.n, c.k), std::min<int64_t>(c.outlier_cols, c.k));
      const std::vector<double> want_d(want.begin(), want.end());
      // f32 out: the int8 part is exact, the epilogue within an ulp, the outlier product f32
      // sums in another order. f16 out: one more rounding of y.
      EXPECT_TRUE(testing::close(got, want_d, magnitude(l, x, c.m), io == DType::F16 ? 0x1.0p-10 : 1e-6, 1e-5, 1e-5));
    }
  }
}

// W4A16 against the CPU reference on x rounded to the 16-bit type: the GEMV path (M <= 16,
// K and group multiples of 32), the simple path (other groups), the tile path (M > 16); symmetric
// and asymmetric; f16, bf16 and f16 -> f32.
struct W4Case {
  int64_t m, n, k, group;
  bool symmetric;
  const char* path;
};
// gtest prints parameters; without this it dumps the struct's bytes, padding included.
void PrintTo(const W4Case& c, std::ostream* os) {
  *os << "M=" << c.m << " N=" << c.n << " K=" << c.k << " group " << c.group << (c.symmetric ? " sym " : " asym ") << c.path;
}
class CudaW4A16 : public CudaTest, public ::testing::WithParamInterface<W4Case> {};

TEST_P(CudaW4A16, MatchesReference) {
  const W4Case c = GetParam();
  for (int types = 0; types < 3; ++types) {
    const DType xt = types == 1 ? DType::BF16 : DType::F16;
    const DType yt = types == 2 ? DType::F32 : xt;
    Rng rng;
    SCOPED_TRACE(str(rng.trace(), " M=", c.m, " N=", c.n, " K=", c.k, " group ", c.group, c.symmetric ? " sym " : " asym ",
                     dtype_name(xt), "->", dtype_name(yt)));
    std::vector<uint8_t> packed(c.n * c.k / 2), zeros;
    for (auto& b : packed) b = static_cast<uint8_t>(rng.integer(0, 255));
    std::vector<float> scales(c.n * (c.k / c.group)), bias = rng.normals(c.n, 0.3f);
    for (auto& s : scales) s = rng.uniform(0.001f, 0.05f);
    if (!c.symmetric) {
      zeros.resize(scales.size());
      for (auto& z : zeros) z = static_cast<uint8_t>(rng.integer(0, 15));
    }
    const W4Weight w{packed.data(), scales.data(), c.symmetric ? nullptr : zeros.data(), c.n, c.k, c.group};
    const testing::Rounded16 x = testing::round16(rng.normals(c.m * c.k), xt == DType::BF16);
    std::vector<float> want(c.m * c.n);
    w4a16_linear_ref(w, bias.data(), x.values.data(), c.m, want.data());
    // The error scale: sum |w x| + |b| per output.
    std::vector<double> mag(c.m * c.n);
    const int64_t groups = c.k / c.group;
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double a = std::fabs(bias[j]);
        for (int64_t t = 0; t < c.k; ++t) {
          const uint8_t byte = packed[j * (c.k / 2) + t / 2];
          const int u = t % 2 ? byte >> 4 : byte & 15;
          const int64_t g = j * groups + t / c.group;
          a += std::fabs((u - (c.symmetric ? 8 : zeros[g])) * scales[g] * x.values[i * c.k + t]);
        }
        mag[i * c.n + j] = a;
      }

    DeviceBuffer dp = to_device(packed), ds = to_device(scales), dz = to_device(zeros), db = to_device(bias);
    DeviceBuffer dx = to_device(x.bits);
    DeviceBuffer dy = poisoned(static_cast<size_t>(dtype_bytes(yt) * c.m * c.n));
    DeviceW4Weight dw{dp.as<uint8_t>(), ds.as<float>(), c.symmetric ? nullptr : dz.as<uint8_t>(), c.n, c.k, c.group};
    // The tensor-core path needs the weight in its layout too (made on the device).
    DeviceBuffer dmma(std::string(c.path) == "mma" ? w4_mma_bytes(c.n, c.k) : 1);
    if (std::string(c.path) == "mma") {
      testing::poison(dmma);
      w4a16_repack_mma(ctx(), dw, dmma.as<uint8_t>());
      dw.mma = dmma.as<uint8_t>();
    }
    const std::string path = w4a16_linear(ctx(), dw, db.as<float>(), xt, dx.data(), c.m, yt, dy.data());
    EXPECT_EQ(path, c.path);
    const std::vector<float> got = yt == DType::F32 ? to_host<float>(ctx(), dy, c.m * c.n)
                                                    : testing::from16(to_host<uint16_t>(ctx(), dy, c.m * c.n),
                                                                      yt == DType::BF16);
    const std::vector<double> want_d(want.begin(), want.end());
    // Output rounding (half an ulp of the output type) + f32 accumulation; the tile path also
    // rounds each dequantized weight to the 16-bit type.
    const bool bf = xt == DType::BF16;
    // The tile path rounds twice (the GEMM's 16-bit output, then the bias add).
    const bool tiles = std::string(c.path) == "tiles";
    const double out_rel = (yt == DType::F32 ? 0.0 : bf ? 0x1.0p-8 : 0x1.0p-11) * (tiles ? 2 : 1);
    const double mag_rel = (tiles ? (bf ? 0x1.0p-8 : 0x1.0p-11) : 0.0) + 2e-5;
    EXPECT_TRUE(testing::close(got, want_d, mag, out_rel, mag_rel, 1e-6));
  }
}
INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaW4A16,
    ::testing::Values(W4Case{1, 77, 352, 32, true, "gemv"}, W4Case{3, 77, 352, 32, false, "gemv"},
                      W4Case{5, 130, 256, 128, true, "gemv"}, W4Case{9, 33, 512, 64, false, "gemv"},
                      W4Case{16, 19, 1024, 128, true, "gemv"}, W4Case{2, 41, 90, 6, false, "simple"},
                      W4Case{7, 13, 100, 50, true, "simple"}, W4Case{19, 300, 256, 128, false, "tiles"},
                      W4Case{40, 129, 96, 32, true, "tiles"}, W4Case{1, 77, 384, 64, true, "mma"},
                      W4Case{3, 130, 256, 128, false, "mma"}, W4Case{8, 40, 512, 128, true, "mma"},
                      W4Case{9, 33, 192, 64, false, "mma"}, W4Case{16, 19, 1024, 128, true, "mma"},
                      W4Case{13, 200, 128, 128, false, "mma"}),
    [](const auto& info) {
      const W4Case& c = info.param;
      return str("M", c.m, "_N", c.n, "_K", c.k, "_g", c.group, c.symmetric ? "_sym_" : "_asym_", c.path);
    });

using CudaDense = CudaTest;

// The cuBLASLt 16-bit baseline on inputs exactly representable in the 16-bit type: only f32
// accumulation error, plus one output rounding for 16-bit y.
TEST_F(CudaDense, Gemm16bitAgainstDouble) {
  for (DType ab : {DType::F16, DType::BF16})
    for (bool f32_out : {true, false})
      for (const auto& s : std::initializer_list<kernels::testing::Shape>{{1, 37, 83}, {17, 130, 250}, {64, 33, 1030}}) {
        Rng rng;
        const DType yt = f32_out ? DType::F32 : ab;
        SCOPED_TRACE(str(rng.trace(), " ", kernels::testing::shape_name(s), " ", dtype_name(ab), "->", dtype_name(yt)));
        const bool bf = ab == DType::BF16;
        const auto x = testing::round16(rng.normals(s.m * s.k), bf), w = testing::round16(rng.normals(s.n * s.k, 0.1f), bf);
        const auto e = kernels::testing::matmul_double(x.values, w.values, nullptr, s.m, s.n, s.k);
        DeviceBuffer dx = to_device(x.bits), dw = to_device(w.bits);
        DeviceBuffer dy = poisoned(static_cast<size_t>(dtype_bytes(yt) * s.m * s.n));
        gemm_16bit(ctx(), ab, yt, dx.data(), s.k, dw.data(), s.k, dy.data(), s.n, s.m, s.n, s.k);
        const std::vector<float> got = f32_out ? to_host<float>(ctx(), dy, s.m * s.n)
                                               : testing::from16(to_host<uint16_t>(ctx(), dy, s.m * s.n), bf);
        const double out_rel = f32_out ? 0.0 : bf ? 0x1.0p-8 : 0x1.0p-11;
        EXPECT_TRUE(testing::close(got, e.y, e.magnitude, out_rel, 1e-5, 1e-6));
      }
}

}  // namespace
}  // namespace modelpress::kernels::cuda
