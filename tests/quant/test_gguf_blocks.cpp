// GGUF block quantizers (quant/gguf_blocks.h): the reference encodings against ggml's rules
// written out here, decoded by io/'s dequantizer; the search never worse than the reference,
// block by block, and clearly better over many blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "io/error.h"
#include "io/float_convert.h"
#include "io/gguf_dequant.h"
#include "quant/gguf_blocks.h"
#include "tests/quant/quant_test_util.h"

namespace modelpress::quant {
namespace {

using testing::gaussian_values;

std::vector<std::byte> encode(uint32_t type, const std::vector<float>& x, bool search) {
  const auto traits = ggml_type_traits(type);
  std::vector<std::byte> out(x.size() / traits->block_elems * traits->block_bytes);
  quantize_gguf_blocks(type, x.data(), static_cast<int64_t>(x.size()), search, out.data());
  return out;
}

std::vector<float> decode(uint32_t type, const std::vector<std::byte>& b, size_t n) {
  std::vector<float> y(n);
  ggml_dequantize(type, b.data(), y.data(), static_cast<int64_t>(n));
  return y;
}

double squared_error(const std::vector<float>& x, const std::vector<float>& y, size_t from, size_t count) {
  double e = 0.0;
  for (size_t i = from; i < from + count; ++i) e += (x[i] - static_cast<double>(y[i])) * (x[i] - static_cast<double>(y[i]));
  return e;
}

uint16_t f16_bits(const std::vector<std::byte>& b, size_t at) {
  uint16_t h;
  std::memcpy(&h, b.data() + at, 2);
  return h;
}

TEST(GgufBlocks, ReferenceQ4_0KnownAnswer) {
  // Largest magnitude -4 (element 3): d = -4 / -8 = 0.5, u = trunc(x / 0.5 + 8.5) capped at 15.
  std::vector<float> x(32, 0.0f);
  x[0] = 1.0f;
  x[1] = -1.0f;
  x[3] = -4.0f;
  x[16] = 3.7f;   // 7.4 + 8.5 = 15.9 -> 15
  x[17] = 0.26f;  // 0.52 + 8.5 -> 9
  const auto b = encode(ggml_type::Q4_0, x, false);
  ASSERT_EQ(b.size(), 18u);
  EXPECT_EQ(f16_to_f32(f16_bits(b, 0)), 0.5f);
  const auto u = [&](int j) { return j < 16 ? static_cast<int>(b[2 + j]) & 0x0F : static_cast<int>(b[2 + j - 16]) >> 4; };
  EXPECT_EQ(u(0), 10);
  EXPECT_EQ(u(1), 6);
  EXPECT_EQ(u(2), 8);
  EXPECT_EQ(u(3), 0);
  EXPECT_EQ(u(16), 15);
  EXPECT_EQ(u(17), 9);
}

TEST(GgufBlocks, ReferenceQ8_0AndQ4_1RoundTrip) {
  const std::vector<float> x = gaussian_values(32 * 7, 5, 0.03f);
  // Q8_0: d = absmax / 127 per block; codes roundf(x / d): every value within half a step.
  const auto q8 = decode(ggml_type::Q8_0, encode(ggml_type::Q8_0, x, false), x.size());
  // Q4_1: d = (max - min) / 15, m = min (both rounded to f16 when stored).
  const auto q41 = decode(ggml_type::Q4_1, encode(ggml_type::Q4_1, x, false), x.size());
  for (size_t b = 0; b < 7; ++b) {
    float amax = 0.0f, lo = 1e9f, hi = -1e9f;
    for (size_t j = 0; j < 32; ++j) {
      amax = std::max(amax, std::fabs(x[b * 32 + j]));
      lo = std::min(lo, x[b * 32 + j]);
      hi = std::max(hi, x[b * 32 + j]);
    }
    for (size_t j = 0; j < 32; ++j) {
      // Half a step, plus the stored f16 d's rounding (relative 2^-11) times |q| <= 127.
      EXPECT_LE(std::fabs(q8[b * 32 + j] - x[b * 32 + j]), amax / 127.0f * (0.5f + 127.0f / 2048.0f + 1e-3f));
      EXPECT_LE(std::fabs(q41[b * 32 + j] - x[b * 32 + j]), (hi - lo) / 15.0f * 0.52f + 1e-3f * amax);
    }
  }
}

TEST(GgufBlocks, SearchIsNeverWorseThanTheReferenceAndBetterOverall) {
  // Gaussian blocks, some with an outlier: where clipping pays most.
  std::vector<float> x = gaussian_values(32 * 300, 9, 0.02f);
  for (size_t b = 0; b < 300; b += 3) x[b * 32 + b % 32] = (b % 2 ? 1.0f : -1.0f) * 0.15f;
  for (uint32_t type : {ggml_type::Q8_0, ggml_type::Q4_0, ggml_type::Q4_1}) {
    SCOPED_TRACE(ggml_type_name(type));
    const auto ref = decode(type, encode(type, x, false), x.size());
    const auto searched_bytes = encode(type, x, true);
    const auto searched = decode(type, searched_bytes, x.size());
    double ref_total = 0.0, searched_total = 0.0;
    for (size_t b = 0; b < 300; ++b) {
      const double r = squared_error(x, ref, b * 32, 32), s = squared_error(x, searched, b * 32, 32);
      ASSERT_LE(s, r * (1.0 + 1e-12)) << "block " << b;
      ref_total += r;
      searched_total += s;
    }
    // Measured on this data: Q8_0 0.84, Q4_0 0.93, Q4_1 0.88 of the reference's squared error
    // (SmolLM2's weights: Q8_0 0.49, Q4_0 0.79; docs/FORMATS.md).
    EXPECT_LT(searched_total, (type == ggml_type::Q4_0 ? 0.95 : 0.92) * ref_total) << searched_total << " vs " << ref_total;
    if (type == ggml_type::Q4_0) {
      // The searched Q4_0 uses the scale's sign: some blocks store d > 0 (the -8 code at
      // their positive end), which the reference's d = max / -8 gives only to negative maxima.
      int positive = 0, negative = 0;
      for (size_t b = 0; b < 300; ++b) (f16_to_f32(f16_bits(searched_bytes, b * 18)) > 0 ? positive : negative)++;
      EXPECT_GT(positive, 30);
      EXPECT_GT(negative, 30);
    }
  }
}

TEST(GgufBlocks, ImportanceWeighsTheSearch) {
  // Every fourth column 100x as important: the weighted search must lower the weighted error
  // below both the reference's and the unweighted search's, block by block never above the
  // reference's.
  const std::vector<float> x = gaussian_values(32 * 200, 13, 0.02f);
  std::vector<float> h(x.size());
  for (size_t i = 0; i < h.size(); ++i) h[i] = i % 4 == 0 ? 100.0f : 1.0f;
  auto weighted = [&](const std::vector<float>& y, size_t from, size_t count) {
    double e = 0.0;
    for (size_t i = from; i < from + count; ++i) e += h[i] * (x[i] - static_cast<double>(y[i])) * (x[i] - static_cast<double>(y[i]));
    return e;
  };
  for (uint32_t type : {ggml_type::Q8_0, ggml_type::Q4_0, ggml_type::Q4_1}) {
    SCOPED_TRACE(ggml_type_name(type));
    const auto traits = ggml_type_traits(type);
    std::vector<std::byte> out(x.size() / 32 * traits->block_bytes);
    quantize_gguf_blocks(type, x.data(), static_cast<int64_t>(x.size()), true, out.data(), h.data());
    const auto with_h = decode(type, out, x.size());
    const auto plain = decode(type, encode(type, x, true), x.size());
    const auto ref = decode(type, encode(type, x, false), x.size());
    for (size_t b = 0; b < 200; ++b) ASSERT_LE(weighted(with_h, b * 32, 32), weighted(ref, b * 32, 32) * (1 + 1e-12)) << b;
    EXPECT_LT(weighted(with_h, 0, x.size()), 0.97 * weighted(plain, 0, x.size()));
  }
}

TEST(GgufBlocks, CopiesAndBadInput) {
  const std::vector<float> x = gaussian_values(32, 2);
  const auto f32 = encode(ggml_type::F32, x, true);
  EXPECT_EQ(std::memcmp(f32.data(), x.data(), 128), 0);
  const auto f16 = encode(ggml_type::F16, x, true);
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(f16_to_f32(f16_bits(f16, 2 * i)), f16_to_f32(f32_to_f16(x[i])));
  std::vector<std::byte> out(64);
  EXPECT_THROW(quantize_gguf_blocks(ggml_type::Q4_0, x.data(), 31, true, out.data()), Error);
  EXPECT_THROW(quantize_gguf_blocks(ggml_type::Q4_K, x.data(), 32, true, out.data()), Error);
}

}  // namespace
}  // namespace modelpress::quant
