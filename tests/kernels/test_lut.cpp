// LUT (palettized) linear: the AVX2 path against the reference on fresh random data of odd
// shapes for every index width 1..8 (GEMV and GEMM sides of M = 8), with and without row
// scales and per-group tables; run_linear's checks and dispatch for the format.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/lut_linear.h"
#include "kernels/packed_linear.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels {
namespace {

using testing::Rng;

struct LutCase {
  std::vector<uint8_t> idx;
  std::vector<float> lut, scale;
  LutWeight w;
};

LutCase make_lut(Rng& rng, int64_t n, int64_t k, int bits, int64_t group_rows, bool row_scale) {
  LutCase c;
  const int64_t rb = lut_row_bytes(k, bits), entries = int64_t{1} << bits;
  c.idx.assign(static_cast<size_t>(n * rb), 0);
  for (int64_t r = 0; r < n; ++r)  // random indices packed LSB first, bits past K zero
    for (int64_t t = 0; t < k; ++t) {
      const unsigned v = static_cast<unsigned>(rng.integer(0, static_cast<int>(entries) - 1)) << ((t * bits) % 8);
      uint8_t* row = c.idx.data() + r * rb;
      row[t * bits / 8] = static_cast<uint8_t>(row[t * bits / 8] | (v & 0xff));
      if ((t * bits) % 8 + bits > 8) row[t * bits / 8 + 1] = static_cast<uint8_t>(row[t * bits / 8 + 1] | (v >> 8));
    }
  c.lut = rng.normals((n / group_rows) * entries, 0.05f);
  if (row_scale)
    for (int64_t r = 0; r < n; ++r) c.scale.push_back(rng.uniform(0.5f, 2.0f));
  c.w = {c.idx.data(), c.lut.data(), row_scale ? c.scale.data() : nullptr, n, k, group_rows, bits};
  return c;
}

// |y - ref| <= 1e-5 * sum_k |w x| + 1e-6: float sums of K products against a double one.
void expect_matches_ref(const LutWeight& w, const std::vector<float>& x, int64_t m, const std::vector<float>& y,
                        const std::vector<float>& bias) {
  std::vector<float> ref(y.size());
  lut_linear_ref(w, bias.empty() ? nullptr : bias.data(), x.data(), m, ref.data());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < w.n; ++j) {
      double mag = 0;
      for (int64_t t = 0; t < w.k; ++t)
        mag += std::abs(w.lut[(j / w.group_rows) * (int64_t{1} << w.bits) + lut_index(w, j, t)] * x[i * w.k + t]);
      const float got = y[i * w.n + j], want = ref[i * w.n + j];
      ASSERT_NEAR(got, want, 1e-5 * mag * (w.row_scale ? 2 : 1) + 1e-6) << "row " << i << " col " << j;
    }
}

// y = x W^T + b computed here, independent of the kernels' code (lut_index included): each
// index read bit by bit from its row's LSB-first stream, looked up in its row group's table,
// times the row scale, summed in double. What run_linear must give on every ISA (at baseline
// it takes lut_linear_ref, which then cannot be its own reference).
testing::Expected lut_product_here(const LutWeight& w, const float* bias, const std::vector<float>& x, int64_t m) {
  const int64_t row_bytes = (w.k * w.bits + 7) / 8;
  std::vector<float> dense(static_cast<size_t>(w.n * w.k));
  for (int64_t r = 0; r < w.n; ++r)
    for (int64_t t = 0; t < w.k; ++t) {
      int idx = 0;
      for (int b = 0; b < w.bits; ++b) {
        const int64_t bit = t * w.bits + b;
        idx |= ((w.indices[r * row_bytes + bit / 8] >> (bit % 8)) & 1) << b;
      }
      const float v = w.lut[(r / w.group_rows) * (int64_t{1} << w.bits) + idx];
      dense[static_cast<size_t>(r * w.k + t)] = w.row_scale ? v * w.row_scale[r] : v;
    }
  return testing::matmul_double(x, dense, bias, m, w.n, w.k);
}

TEST(Lut, IndexUnpackingMatchesThePackedStream) {
  // 3-bit indices 0..7 then 7..0: bytes by hand, LSB first.
  const uint8_t row[6] = {0x88, 0xC6, 0xFA, 0x77, 0x39, 0x05};  // 0 1 2 3 4 5 6 7 | 7 6 5 4 3 2 1 0
  const float lut[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  const LutWeight w{row, lut, nullptr, 1, 16, 1, 3};
  for (int t = 0; t < 8; ++t) EXPECT_EQ(lut_index(w, 0, t), t);
  for (int t = 0; t < 8; ++t) EXPECT_EQ(lut_index(w, 0, 8 + t), 7 - t);
}

TEST(Lut, FastPathMatchesReferenceOnOddShapes) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  struct Shape {
    int64_t n, k, group;
  };
  for (int bits = 1; bits <= 8; ++bits)
    for (const Shape s : {Shape{13, 37, 13}, Shape{33, 8, 11}, Shape{7, 1001, 1}, Shape{40, 130, 20}, Shape{1, 3, 1}})
      for (int64_t m : {1, 3, 5, 8, 13})
        for (bool scaled : {false, true}) {
          SCOPED_TRACE("bits " + std::to_string(bits) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                       " m " + std::to_string(m) + (scaled ? " scaled" : ""));
          const LutCase c = make_lut(rng, s.n, s.k, bits, s.group, scaled);
          const std::vector<float> x = rng.normals(m * s.k);
          const std::vector<float> bias = scaled ? rng.normals(s.n) : std::vector<float>{};
          std::vector<float> y(static_cast<size_t>(m * s.n), NAN);
          lut_linear_avx2(c.w, bias.empty() ? nullptr : bias.data(), x.data(), m, y.data());
          expect_matches_ref(c.w, x, m, y, bias);
        }
}

// M >= 16 (kLutGemmRows): looked-up row blocks through the dense f32 GEMM, for every width,
// odd shapes, and a weight large enough to take several 8 MiB blocks (y written in pieces).
TEST(Lut, DequantGemmMatchesReference) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  struct Shape {
    int64_t n, k, group, m;
  };
  for (int bits = 1; bits <= 8; ++bits)
    for (const Shape s : {Shape{13, 37, 13, 16}, Shape{40, 130, 20, 33}, Shape{7, 1001, 1, 17}})
      for (bool scaled : {false, true}) {
        SCOPED_TRACE("bits " + std::to_string(bits) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                     " m " + std::to_string(s.m) + (scaled ? " scaled" : ""));
        const LutCase c = make_lut(rng, s.n, s.k, bits, s.group, scaled);
        const std::vector<float> x = rng.normals(s.m * s.k);
        const std::vector<float> bias = scaled ? rng.normals(s.n) : std::vector<float>{};
        std::vector<float> y(static_cast<size_t>(s.m * s.n), NAN);
        lut_linear(c.w, bias.empty() ? nullptr : bias.data(), x.data(), s.m, y.data());
        expect_matches_ref(c.w, x, s.m, y, bias);
      }
  // 600 x 4000 f32 is 9.6 MB: two row blocks.
  const LutCase c = make_lut(rng, 600, 4000, 3, 600, true);
  const std::vector<float> x = rng.normals(16 * 4000), bias = rng.normals(600);
  std::vector<float> y(16 * 600, NAN);
  lut_linear(c.w, bias.data(), x.data(), 16, y.data());
  expect_matches_ref(c.w, x, 16, y, bias);
}

// The AVX-512 GEMV (1..4 bits, M < 8; other widths and M forward to the AVX2 path, also
// checked here): K on both sides of its 128-weight blocks and not a multiple of 8, rows
// whose last block is partial (the masked load at the end of the index buffer).
TEST(Lut, Avx512PathMatchesReferenceOnOddShapes) {
  if (!cpu_features().avx512) GTEST_SKIP() << "no AVX-512 F/BW/VL/DQ on this CPU (or capped by MODELPRESS_KERNEL_ISA)";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  struct Shape {
    int64_t n, k, group;
  };
  for (int bits = 1; bits <= 8; ++bits)
    for (const Shape s : {Shape{13, 37, 13}, Shape{33, 8, 11}, Shape{7, 1001, 1}, Shape{40, 130, 20}, Shape{1, 3, 1},
                          Shape{9, 128, 3}, Shape{5, 129, 5}, Shape{17, 1000, 17}, Shape{64, 256, 64}, Shape{3, 2047, 1}})
      for (int64_t m : {1, 2, 3, 4, 5, 7, 8})
        for (bool scaled : {false, true}) {
          SCOPED_TRACE("bits " + std::to_string(bits) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                       " m " + std::to_string(m) + (scaled ? " scaled" : ""));
          const LutCase c = make_lut(rng, s.n, s.k, bits, s.group, scaled);
          const std::vector<float> x = rng.normals(m * s.k);
          const std::vector<float> bias = scaled ? rng.normals(s.n) : std::vector<float>{};
          std::vector<float> y(static_cast<size_t>(m * s.n), NAN);
          EXPECT_EQ(lut_avx512_supported(c.w, m), bits <= 4 && m < 8);
          lut_linear_avx512(c.w, bias.empty() ? nullptr : bias.data(), x.data(), m, y.data());
          expect_matches_ref(c.w, x, m, y, bias);
        }
}

TEST(Lut, RunLinearChecksAndDispatches) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const LutCase c = make_lut(rng, 24, 71, 3, 8, true);
  const std::vector<float> bias = rng.normals(24);
  PackedLinear l;
  l.format = LinearFormat::Lut;
  l.n = 24;
  l.k = 71;
  l.lut = c.w;
  l.bias = bias.data();
  std::string why;
  ASSERT_TRUE(linear_supported(l, Backend::Cpu, &why)) << why;
  EXPECT_EQ(linear_workspace_bytes(l, 4), 0u);
  // M = 4: the GEMV paths; M = 17: looked-up blocks through the dense GEMM. Against the
  // product computed here, and the reference against it too.
  for (int64_t m : {4, 17}) {
    SCOPED_TRACE("m " + std::to_string(m));
    const std::vector<float> x = rng.normals(m * 71);
    const testing::Expected want = lut_product_here(c.w, bias.data(), x, m);
    std::vector<float> y(static_cast<size_t>(m * 24), NAN), ref(y.size(), NAN);
    run_linear(l, x.data(), m, y.data(), Backend::Cpu, nullptr);
    EXPECT_TRUE(testing::within(y, want.y, want.magnitude, 1e-5));
    lut_linear_ref(c.w, bias.data(), x.data(), m, ref.data());
    EXPECT_TRUE(testing::within(ref, want.y, want.magnitude, 1e-6));
  }
  const std::vector<float> x = rng.normals(4 * 71);
  std::vector<float> y(4 * 24);
  EXPECT_STREQ(format_name(LinearFormat::Lut), "lut");

  PackedLinear bad = l;
  bad.lut.bits = 9;
  EXPECT_FALSE(linear_supported(bad, Backend::Cpu, &why));
  EXPECT_NE(why.find("1..8"), std::string::npos) << why;
  bad = l;
  bad.lut.group_rows = 5;  // does not divide 24
  EXPECT_FALSE(linear_supported(bad, Backend::Cpu, &why));
  EXPECT_NE(why.find("does not divide"), std::string::npos) << why;
  bad = l;
  bad.lut.k = 70;
  EXPECT_FALSE(linear_supported(bad, Backend::Cpu, &why));
  EXPECT_THROW(run_linear(bad, x.data(), 4, y.data(), Backend::Cpu, nullptr), std::invalid_argument);
}

// The CUDA kernel (kernels/cuda/lut_gemv.cu) through run_linear against the CPU reference,
// every index width, odd shapes, M on both sides of its 8-row slices. Skips without a GPU
// (and in builds without CUDA, where the backend reports itself unsupported).
TEST(Lut, CudaMatchesReference) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  {
    const LutCase probe = make_lut(rng, 8, 8, 3, 8, false);
    PackedLinear l;
    l.format = LinearFormat::Lut;
    l.n = l.k = 8;
    l.lut = probe.w;
    std::string why;
    if (!linear_supported(l, Backend::Cuda, &why)) GTEST_SKIP() << why;
  }
  for (int bits = 1; bits <= 8; ++bits)
    for (const auto& [n, k, group] : {std::tuple<int64_t, int64_t, int64_t>{13, 37, 13}, {40, 1001, 8}, {64, 4096, 64}})
      for (int64_t m : {1, 3, 11}) {
        SCOPED_TRACE("bits " + std::to_string(bits) + " n " + std::to_string(n) + " k " + std::to_string(k) + " m " +
                     std::to_string(m));
        const LutCase c = make_lut(rng, n, k, bits, group, bits % 2 == 0);
        PackedLinear l;
        l.format = LinearFormat::Lut;
        l.n = n;
        l.k = k;
        l.lut = c.w;
        const std::vector<float> bias = rng.normals(n);
        l.bias = bias.data();
        const std::vector<float> x = rng.normals(m * k);
        std::vector<float> y(static_cast<size_t>(m * n), NAN);
        run_linear(l, x.data(), m, y.data(), Backend::Cuda, nullptr);
        expect_matches_ref(c.w, x, m, y, bias);
      }
}

}  // namespace
}  // namespace modelpress::kernels
namespace modelpress::kernels {
namespace {
// The index buffer ends right before a PROT_NONE page: any read past its last byte faults.
TEST(Lut, NoReadPastTheIndexBuffer) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (int bits = 1; bits <= 8; ++bits)
    for (const auto& [n, k] : {std::pair<int64_t, int64_t>{3, 37}, {5, 129}, {2, 8}, {1, 3}, {4, 1001}, {17, 256}})
      for (int64_t m : {1, 3, 8}) {
        SCOPED_TRACE("bits " + std::to_string(bits) + " n " + std::to_string(n) + " k " + std::to_string(k) + " m " +
                     std::to_string(m));
        const LutCase c = make_lut(rng, n, k, bits, n, true);
        const size_t bytes = c.idx.size(), span = (bytes + page - 1) / page * page;
        void* mem = mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(mem, MAP_FAILED);
        uint8_t* base = static_cast<uint8_t*>(mem);
        ASSERT_EQ(mprotect(base + span, page, PROT_NONE), 0);
        uint8_t* idx = base + span - bytes;
        std::memcpy(idx, c.idx.data(), bytes);
        LutWeight w = c.w;
        w.indices = idx;
        const std::vector<float> x = rng.normals(m * k);
        std::vector<float> y(static_cast<size_t>(m * n), NAN);
        lut_linear_avx2(w, nullptr, x.data(), m, y.data());
        expect_matches_ref(w, x, m, y, {});
        if (cpu_features().avx512) {
          std::fill(y.begin(), y.end(), NAN);
          lut_linear_avx512(w, nullptr, x.data(), m, y.data());
          expect_matches_ref(w, x, m, y, {});
        }
        munmap(mem, span + page);
      }
}
}  // namespace
}  // namespace modelpress::kernels
