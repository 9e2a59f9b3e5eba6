// Bit-exact tests of the f32 <-> narrow float conversions in io/float_convert.h.
//
// Expected bit patterns are literal constants derived by hand from the format layouts:
//   F16      s eeeee mmmmmmmmmm          bias 15,  value = 2^(e-15) * 1.m, e=0: 2^-14 * 0.m
//   BF16     s eeeeeeee mmmmmmm          bias 127, the top 16 bits of an f32
//   F8_E4M3  s eeee mmm                  bias 7,   no inf, S.1111.111 NaN, max 1.75*2^8 = 448
//   F8_E5M2  s eeeee mm                  bias 15,  IEEE-like (inf 0x7c, NaN 0x7d..0x7f)
// so e.g. F16 1.0 = exponent 15 -> 0 01111 0000000000 = 0x3c00. Each table row says how its
// constant was derived. Inputs are written as hex float literals (0x1.002p0f = 1 + 2/16^3 =
// 1 + 2^-11) or std::ldexp so the intended value is exact and visible.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/float_convert.h"

namespace modelpress {
namespace {

float from_bits(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t to_bits(float f) { return std::bit_cast<uint32_t>(f); }
float up(float f) { return std::nextafter(f, std::numeric_limits<float>::infinity()); }
float down(float f) { return std::nextafter(f, -std::numeric_limits<float>::infinity()); }
float p2(int e) { return std::ldexp(1.0f, e); }

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = from_bits(0x7fc00000u);
const float kNegNaN = from_bits(0xffc00000u);

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

struct Case {
  float in;
  uint32_t bits;
  const char* why;
};

// Runs `encode` over the table (bit-exact), and checks that the decode of every expected
// finite pattern is a value whose re-encoding is the same pattern.
template <typename Enc>
void check_encode(const std::vector<Case>& cases, Enc encode) {
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.why) + " (input f32 bits " + hex(to_bits(c.in)) + ")");
    EXPECT_EQ(hex(encode(c.in)), hex(c.bits));
  }
}

struct DecodeCase {
  uint32_t bits;
  float out;
  const char* why;
};

template <typename Dec>
void check_decode(const std::vector<DecodeCase>& cases, Dec decode) {
  for (const DecodeCase& c : cases) {
    SCOPED_TRACE(std::string(c.why) + " (pattern " + hex(c.bits) + ")");
    EXPECT_EQ(hex(to_bits(decode(c.bits))), hex(to_bits(c.out)));  // bit-exact, so -0 != 0
  }
}

// ---------------------------------------------------------------------------------------------
// F16
// ---------------------------------------------------------------------------------------------

TEST(FloatConvertF16, EncodeKnownValues) {
  check_encode(
      {
          {0.0f, 0x0000, "+0"},
          {-0.0f, 0x8000, "-0: sign bit only"},
          {1.0f, 0x3c00, "1 = 2^0: exponent 15 = 01111 -> 0 01111 0..0"},
          {-2.0f, 0xc000, "-2 = -2^1: exponent 16 = 10000, sign -> 1 10000 0..0"},
          {65504.0f, 0x7bff, "max finite (2-2^-10)*2^15: exponent 30, mantissa all ones"},
          {-65504.0f, 0xfbff, "-max finite"},
          {p2(-14), 0x0400, "min normal 2^-14: exponent 1, mantissa 0"},
          {p2(-24), 0x0001, "smallest subnormal 2^-24: mantissa 1"},
          {std::ldexp(1023.0f, -24), 0x03ff, "largest subnormal 1023*2^-24: mantissa all ones"},
          {-p2(-24), 0x8001, "-smallest subnormal"},
          {0.5f, 0x3800, "0.5: exponent 14 = 01110"},
          {0.1f, 0x2e66, "0.1 = 1.6*2^-4: exponent 11, mantissa .6*1024 = 614.4 -> 614 = 0x266"},
          {3.140625f, 0x4248, "3.140625 = 1.5703125*2^1: exp 16, mant .5703125*1024 = 584 = 0x248"},
          // Ties to even around 1: ulp is 2^-10, so 1 + 2^-11 is halfway.
          {0x1.002p0f, 0x3c00, "1 + 2^-11: halfway 0x3c00/0x3c01 -> even 0x3c00 (down)"},
          {0x1.006p0f, 0x3c02, "1 + 3*2^-11: halfway 0x3c01/0x3c02 -> even 0x3c02 (up)"},
          {up(0x1.002p0f), 0x3c01, "just above the tie 1 + 2^-11 -> up"},
          {down(0x1.002p0f), 0x3c00, "just below the tie 1 + 2^-11 -> down"},
          {up(0x1.006p0f), 0x3c02, "just above the tie 1 + 3*2^-11 -> up"},
          {down(0x1.006p0f), 0x3c01, "just below the tie 1 + 3*2^-11 -> down"},
          {-0x1.006p0f, 0xbc02, "negative tie rounds the magnitude to even"},
          // Carry into the next binade: 0x3fff = 2 - 2^-10; halfway to 2 is 2 - 2^-11.
          {0x1.ffep0f, 0x4000, "2 - 2^-11: halfway 0x3fff/0x4000, 0x3fff odd -> carries to 2.0"},
          {down(0x1.ffep0f), 0x3fff, "just below 2 - 2^-11 stays 0x3fff"},
          // Largest subnormal (2^-14 - 2^-24) to smallest normal (2^-14): tie at 2^-14 - 2^-25.
          {std::ldexp(2047.0f, -25), 0x0400, "halfway 0x03ff/0x0400 -> even 0x0400 (normal)"},
          {down(std::ldexp(2047.0f, -25)), 0x03ff, "just below that tie stays subnormal 0x03ff"},
          {std::ldexp(2045.0f, -25), 0x03fe, "halfway 0x03fd/0x03fe -> even 0x03fe"},
          // Overflow: next value after 65504 would be 65536 = 2^16 (inf); tie at 65520.
          {65520.0f, 0x7c00, "65520: halfway max/2^16, max odd -> rounds to inf"},
          {down(65520.0f), 0x7bff, "just below 65520 -> max finite"},
          {-65520.0f, 0xfc00, "-65520 -> -inf"},
          {1e10f, 0x7c00, "far above max -> inf"},
          {std::numeric_limits<float>::max(), 0x7c00, "FLT_MAX -> inf"},
          // Underflow: smallest subnormal 2^-24, halfway to 0 is 2^-25.
          {p2(-25), 0x0000, "2^-25: halfway 0/0x0001 -> even 0"},
          {up(p2(-25)), 0x0001, "just above 2^-25 -> smallest subnormal"},
          {-p2(-25), 0x8000, "-2^-25 -> -0"},
          {-up(p2(-25)), 0x8001, "just below -2^-25 -> -smallest subnormal"},
          {std::ldexp(3.0f, -25), 0x0002, "3*2^-25: halfway 0x0001/0x0002 -> even 0x0002"},
          {p2(-26), 0x0000, "2^-26 -> 0"},
          {std::numeric_limits<float>::denorm_min(), 0x0000, "f32 smallest subnormal -> 0"},
          {kInf, 0x7c00, "+inf: exponent all ones, mantissa 0"},
          {-kInf, 0xfc00, "-inf"},
          {kNaN, 0x7e00, "quiet NaN: exponent all ones, quiet bit 0x200"},
          {kNegNaN, 0xfe00, "-NaN keeps the sign"},
      },
      f32_to_f16);
}

TEST(FloatConvertF16, DecodeKnownValues) {
  check_decode({{0x0000, 0.0f, "+0"},
                {0x8000, -0.0f, "-0"},
                {0x3c00, 1.0f, "1"},
                {0xc000, -2.0f, "-2"},
                {0x7bff, 65504.0f, "max"},
                {0x0400, p2(-14), "min normal"},
                {0x0001, p2(-24), "smallest subnormal"},
                {0x03ff, std::ldexp(1023.0f, -24), "largest subnormal"},
                {0x8001, -p2(-24), "-smallest subnormal"},
                {0x7c00, kInf, "+inf"},
                {0xfc00, -kInf, "-inf"}},
               [](uint32_t b) { return f16_to_f32(static_cast<uint16_t>(b)); });
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));  // signalling NaN pattern is NaN too
  EXPECT_TRUE(std::signbit(f16_to_f32(0xfe00)));
}

// ---------------------------------------------------------------------------------------------
// BF16: inputs given as f32 bit patterns; the answer is the top 16 bits, rounded.
// ---------------------------------------------------------------------------------------------

TEST(FloatConvertBF16, EncodeKnownValues) {
  check_encode(
      {
          {0.0f, 0x0000, "+0"},
          {-0.0f, 0x8000, "-0"},
          {1.0f, 0x3f80, "1: f32 0x3f800000, top half"},
          {-2.0f, 0xc000, "-2: f32 0xc0000000"},
          {from_bits(0x7f7f0000), 0x7f7f, "max finite (2-2^-7)*2^127"},
          {from_bits(0x00800000), 0x0080, "min normal 2^-126"},
          {from_bits(0x00010000), 0x0001, "smallest subnormal 2^-133"},
          {from_bits(0x007f0000), 0x007f, "largest subnormal 127*2^-133"},
          {from_bits(0x80010000), 0x8001, "-smallest subnormal"},
          // Ties: the 16 dropped bits are exactly 0x8000.
          {from_bits(0x3f808000), 0x3f80, "1 + 2^-8: halfway 0x3f80/0x3f81 -> even 0x3f80"},
          {from_bits(0x3f818000), 0x3f82, "1 + 3*2^-8: halfway 0x3f81/0x3f82 -> even 0x3f82"},
          {from_bits(0x3f808001), 0x3f81, "just above a tie -> up"},
          {from_bits(0x3f807fff), 0x3f80, "just below a tie -> down"},
          {from_bits(0x3f818001), 0x3f82, "just above the odd tie -> up"},
          {from_bits(0x3f817fff), 0x3f81, "just below the odd tie -> down"},
          {from_bits(0xbf818000), 0xbf82, "negative tie"},
          {from_bits(0x3fff8000), 0x4000, "halfway 0x3fff/0x4000 carries into exponent 128 (2.0)"},
          {from_bits(0x007f8000), 0x0080, "halfway largest subnormal/min normal -> min normal"},
          {from_bits(0x007f7fff), 0x007f, "just below that tie stays subnormal"},
          {from_bits(0x7f7f8000), 0x7f80, "halfway max/2^128 -> inf"},
          {from_bits(0x7f7f7fff), 0x7f7f, "just below that -> max finite"},
          {std::numeric_limits<float>::max(), 0x7f80, "FLT_MAX 0x7f7fffff -> inf"},
          {from_bits(0xff7f8000), 0xff80, "-overflow -> -inf"},
          {from_bits(0x00008000), 0x0000, "2^-134: halfway 0/0x0001 -> 0"},
          {from_bits(0x00008001), 0x0001, "just above 2^-134 -> smallest subnormal"},
          {from_bits(0x80008000), 0x8000, "-2^-134 -> -0"},
          {from_bits(0x00018000), 0x0002, "3*2^-134: halfway 1/2 -> 2"},
          {from_bits(0x00000001), 0x0000, "f32 denorm_min -> 0"},
          {kInf, 0x7f80, "+inf"},
          {-kInf, 0xff80, "-inf"},
          {kNaN, 0x7fc0, "quiet NaN"},
          {kNegNaN, 0xffc0, "-NaN"},
          // A NaN whose payload is only in the low 16 bits must not truncate to inf.
          {from_bits(0x7f800001), 0x7fc0, "NaN with low payload -> quiet NaN, not inf"},
          {from_bits(0xff800001), 0xffc0, "-NaN with low payload"},
      },
      f32_to_bf16);
}

TEST(FloatConvertBF16, BulkEqualsScalar) {
  // convert_from_f32's BF16 path is bit arithmetic of its own: every 65521st f32 bit pattern
  // (all signs, exponents, NaN payloads) and each pattern's neighbourhood of the rounding
  // boundary (low 16 bits 0x7fff, 0x8000, 0x8001) against f32_to_bf16.
  std::vector<float> in;
  for (uint64_t b = 0; b <= 0xffffffffull; b += 65521) {
    in.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
    for (uint32_t low : {0x7fffu, 0x8000u, 0x8001u, 0xffffu, 0x0001u})
      in.push_back(std::bit_cast<float>((static_cast<uint32_t>(b) & 0xffff0000u) | low));
  }
  std::vector<uint16_t> bulk(in.size());
  convert_from_f32(DType::BF16, in.data(), bulk.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i)
    ASSERT_EQ(bulk[i], f32_to_bf16(in[i])) << std::hex << std::bit_cast<uint32_t>(in[i]);
}

TEST(FloatConvertBF16, DecodeKnownValues) {
  check_decode({{0x0000, 0.0f, "+0"},
                {0x8000, -0.0f, "-0"},
                {0x3f80, 1.0f, "1"},
                {0xc000, -2.0f, "-2"},
                {0x7f7f, from_bits(0x7f7f0000), "max"},
                {0x0080, p2(-126), "min normal"},
                {0x0001, p2(-133), "smallest subnormal"},
                {0x007f, std::ldexp(127.0f, -133), "largest subnormal"},
                {0x7f80, kInf, "+inf"},
                {0xff80, -kInf, "-inf"}},
               [](uint32_t b) { return bf16_to_f32(static_cast<uint16_t>(b)); });
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7f81)));
  EXPECT_TRUE(std::signbit(bf16_to_f32(0xffc0)));
}

// ---------------------------------------------------------------------------------------------
// F8_E4M3 (E4M3FN)
// ---------------------------------------------------------------------------------------------

TEST(FloatConvertE4M3, EncodeKnownValues) {
  check_encode(
      {
          {0.0f, 0x00, "+0"},
          {-0.0f, 0x80, "-0"},
          {1.0f, 0x38, "1: exponent 7 = 0111 -> 0 0111 000"},
          {-2.0f, 0xc0, "-2: exponent 8 = 1000, sign -> 1 1000 000"},
          {448.0f, 0x7e, "max 1.75*2^8: exponent 15 = 1111, mantissa 110"},
          {-448.0f, 0xfe, "-max"},
          {256.0f, 0x78, "2^8: exponent 1111 is an ordinary binade here, not inf"},
          {p2(-6), 0x08, "min normal 2^-6: exponent 1"},
          {p2(-9), 0x01, "smallest subnormal 2^-9 = 2^-6 * 1/8"},
          {std::ldexp(7.0f, -9), 0x07, "largest subnormal 7*2^-9"},
          {-p2(-9), 0x81, "-smallest subnormal"},
          // Ties around 1: ulp 2^-3, halfway points 1 + 2^-4 and 1 + 3*2^-4.
          {0x1.1p0f, 0x38, "1.0625: halfway 0x38/0x39 -> even 0x38"},
          {0x1.3p0f, 0x3a, "1.1875: halfway 0x39/0x3a -> even 0x3a"},
          {up(0x1.1p0f), 0x39, "just above 1.0625 -> up"},
          {down(0x1.1p0f), 0x38, "just below 1.0625 -> down"},
          {up(0x1.3p0f), 0x3a, "just above 1.1875 -> up"},
          {down(0x1.3p0f), 0x39, "just below 1.1875 -> down"},
          {-0x1.3p0f, 0xba, "negative tie"},
          {0x1.fp0f, 0x40, "1.9375: halfway 1.875 (0x3f)/2 (0x40), 0x3f odd -> carries to 2"},
          {down(0x1.fp0f), 0x3f, "just below 1.9375 -> 1.875"},
          {std::ldexp(15.0f, -10), 0x08, "7.5*2^-9: halfway largest subnormal/min normal -> 0x08"},
          {down(std::ldexp(15.0f, -10)), 0x07, "just below -> largest subnormal"},
          {std::ldexp(13.0f, -10), 0x06, "6.5*2^-9: halfway 0x06/0x07 -> even 0x06"},
          // Past 448: the next step would be 480 = S.1111.111, the NaN pattern. 464 is the tie.
          {464.0f, 0x7e, "464: halfway 448/480, 448's mantissa 110 even -> 448"},
          {up(464.0f), 0x7f, "just above 464 rounds to 480, which is NaN in E4M3FN"},
          {-up(464.0f), 0xff, "negative overflow -> NaN with sign"},
          {480.0f, 0x7f, "480 -> NaN"},
          {1e6f, 0x7f, "far overflow -> NaN"},
          {std::numeric_limits<float>::max(), 0x7f, "FLT_MAX -> NaN"},
          {p2(-10), 0x00, "2^-10: halfway 0/smallest subnormal -> 0"},
          {up(p2(-10)), 0x01, "just above 2^-10 -> smallest subnormal"},
          {-p2(-10), 0x80, "-2^-10 -> -0"},
          {std::ldexp(3.0f, -10), 0x02, "3*2^-10: halfway 0x01/0x02 -> even 0x02"},
          {p2(-11), 0x00, "2^-11 -> 0"},
          {kInf, 0x7f, "+inf has no encoding -> NaN"},
          {-kInf, 0xff, "-inf -> -NaN"},
          {kNaN, 0x7f, "NaN -> 0x7f"},
          {kNegNaN, 0xff, "-NaN -> 0xff"},
      },
      f32_to_f8_e4m3);
}

TEST(FloatConvertE4M3, DecodeKnownValues) {
  check_decode({{0x00, 0.0f, "+0"},
                {0x80, -0.0f, "-0"},
                {0x38, 1.0f, "1"},
                {0xc0, -2.0f, "-2"},
                {0x7e, 448.0f, "max"},
                {0xfe, -448.0f, "-max"},
                {0x78, 256.0f, "exponent 1111 mantissa 000 is 256"},
                {0x7d, 416.0f, "1.625*2^8"},
                {0x08, p2(-6), "min normal"},
                {0x01, p2(-9), "smallest subnormal"},
                {0x07, std::ldexp(7.0f, -9), "largest subnormal"}},
               [](uint32_t b) { return f8_e4m3_to_f32(static_cast<uint8_t>(b)); });
  EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0x7f)));
  EXPECT_FALSE(std::signbit(f8_e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0xff)));
  EXPECT_TRUE(std::signbit(f8_e4m3_to_f32(0xff)));
  for (int v = 0; v < 256; ++v) EXPECT_FALSE(std::isinf(f8_e4m3_to_f32(static_cast<uint8_t>(v)))) << v;
}

// ---------------------------------------------------------------------------------------------
// F8_E5M2
// ---------------------------------------------------------------------------------------------

TEST(FloatConvertE5M2, EncodeKnownValues) {
  check_encode(
      {
          {0.0f, 0x00, "+0"},
          {-0.0f, 0x80, "-0"},
          {1.0f, 0x3c, "1: exponent 15 = 01111 -> 0 01111 00"},
          {-2.0f, 0xc0, "-2: exponent 16 = 10000, sign"},
          {57344.0f, 0x7b, "max 1.75*2^15: exponent 30, mantissa 11"},
          {-57344.0f, 0xfb, "-max"},
          {p2(-14), 0x04, "min normal 2^-14"},
          {p2(-16), 0x01, "smallest subnormal 2^-16 = 2^-14 * 1/4"},
          {std::ldexp(3.0f, -16), 0x03, "largest subnormal 3*2^-16"},
          {-p2(-16), 0x81, "-smallest subnormal"},
          // Ties around 1: ulp 2^-2.
          {0x1.2p0f, 0x3c, "1.125: halfway 0x3c/0x3d -> even 0x3c"},
          {0x1.6p0f, 0x3e, "1.375: halfway 0x3d/0x3e -> even 0x3e"},
          {up(0x1.2p0f), 0x3d, "just above 1.125 -> up"},
          {down(0x1.2p0f), 0x3c, "just below 1.125 -> down"},
          {up(0x1.6p0f), 0x3e, "just above 1.375 -> up"},
          {down(0x1.6p0f), 0x3d, "just below 1.375 -> down"},
          {-0x1.6p0f, 0xbe, "negative tie"},
          {0x1.ep0f, 0x40, "1.875: halfway 1.75 (0x3f)/2 -> carries to 2 (0x40)"},
          {down(0x1.ep0f), 0x3f, "just below 1.875 -> 1.75"},
          {std::ldexp(7.0f, -17), 0x04, "3.5*2^-16: halfway largest subnormal/min normal -> 0x04"},
          {down(std::ldexp(7.0f, -17)), 0x03, "just below -> largest subnormal"},
          {61440.0f, 0x7c, "61440: halfway max/2^16, max odd -> inf"},
          {down(61440.0f), 0x7b, "just below 61440 -> max"},
          {-61440.0f, 0xfc, "-61440 -> -inf"},
          {1e10f, 0x7c, "far overflow -> inf"},
          {p2(-17), 0x00, "2^-17: halfway 0/smallest subnormal -> 0"},
          {up(p2(-17)), 0x01, "just above 2^-17 -> smallest subnormal"},
          {-p2(-17), 0x80, "-2^-17 -> -0"},
          {std::ldexp(3.0f, -17), 0x02, "3*2^-17: halfway 0x01/0x02 -> even 0x02"},
          {kInf, 0x7c, "+inf"},
          {-kInf, 0xfc, "-inf"},
          {kNaN, 0x7e, "quiet NaN: exponent all ones, quiet bit 0x02"},
          {kNegNaN, 0xfe, "-NaN"},
          {from_bits(0x7f800001), 0x7e, "signalling NaN with low payload -> quiet NaN"},
      },
      f32_to_f8_e5m2);
}

TEST(FloatConvertE5M2, DecodeKnownValues) {
  check_decode({{0x00, 0.0f, "+0"},
                {0x80, -0.0f, "-0"},
                {0x3c, 1.0f, "1"},
                {0xc0, -2.0f, "-2"},
                {0x7b, 57344.0f, "max"},
                {0x04, p2(-14), "min normal"},
                {0x01, p2(-16), "smallest subnormal"},
                {0x03, std::ldexp(3.0f, -16), "largest subnormal"},
                {0x7c, kInf, "+inf"},
                {0xfc, -kInf, "-inf"}},
               [](uint32_t b) { return f8_e5m2_to_f32(static_cast<uint8_t>(b)); });
  for (uint8_t v : {0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff}) {
    EXPECT_TRUE(std::isnan(f8_e5m2_to_f32(v))) << int(v);
    EXPECT_EQ(std::signbit(f8_e5m2_to_f32(v)), (v & 0x80) != 0) << int(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive checks over every narrow bit pattern.
// ---------------------------------------------------------------------------------------------

// Independent decoder: sign, exponent and mantissa fields combined with ldexp.
// `fn` marks the E4M3FN flavour (no inf; all-ones exponent and mantissa is NaN).
double reference_decode(uint32_t v, int E, int M, bool fn) {
  const bool neg = (v >> (E + M)) & 1;
  const int exp = static_cast<int>((v >> M) & ((1u << E) - 1));
  const int man = static_cast<int>(v & ((1u << M) - 1));
  const int bias = (1 << (E - 1)) - 1;
  double mag;
  if (fn && exp == (1 << E) - 1 && man == (1 << M) - 1)
    mag = std::numeric_limits<double>::quiet_NaN();
  else if (!fn && exp == (1 << E) - 1)
    mag = man == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  else if (exp == 0)
    mag = std::ldexp(static_cast<double>(man), 1 - bias - M);
  else
    mag = std::ldexp(static_cast<double>((1 << M) + man), exp - bias - M);
  return neg ? -mag : mag;
}

void expect_same_value(float got, double want, uint32_t pattern) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << "pattern " << hex(pattern);
  } else {
    // Exact: every narrow value is representable in f32; compare bits so -0 is checked.
    EXPECT_EQ(hex(to_bits(got)), hex(to_bits(static_cast<float>(want)))) << "pattern " << hex(pattern);
  }
  EXPECT_EQ(std::signbit(got), std::signbit(want)) << "pattern " << hex(pattern);
}

TEST(FloatConvertExhaustive, F16DecodeMatchesLdexpFormula) {
  for (uint32_t h = 0; h <= 0xffff; ++h) expect_same_value(f16_to_f32(static_cast<uint16_t>(h)), reference_decode(h, 5, 10, false), h);
}

TEST(FloatConvertExhaustive, BF16DecodeMatchesLdexpFormula) {
  for (uint32_t h = 0; h <= 0xffff; ++h) expect_same_value(bf16_to_f32(static_cast<uint16_t>(h)), reference_decode(h, 8, 7, false), h);
}

TEST(FloatConvertExhaustive, F8DecodeMatchesLdexpFormula) {
  for (uint32_t v = 0; v <= 0xff; ++v) {
    expect_same_value(f8_e4m3_to_f32(static_cast<uint8_t>(v)), reference_decode(v, 4, 3, true), v);
    expect_same_value(f8_e5m2_to_f32(static_cast<uint8_t>(v)), reference_decode(v, 5, 2, false), v);
  }
}

// Every pattern -> f32 -> back is the same pattern; a NaN stays NaN with its sign.
template <typename Dec, typename Enc>
void expect_round_trips(uint32_t count, uint32_t sign_bit, Dec decode, Enc encode) {
  int failures = 0;
  for (uint32_t v = 0; v < count && failures < 20; ++v) {
    const float f = decode(v);
    const uint32_t back = encode(f);
    if (std::isnan(f)) {
      const bool ok = std::isnan(decode(back)) && (back & sign_bit) == (v & sign_bit);
      if (!ok) ++failures;
      EXPECT_TRUE(ok) << "NaN pattern " << hex(v) << " came back as " << hex(back);
    } else {
      if (back != v) ++failures;
      EXPECT_EQ(hex(back), hex(v)) << "via f32 " << f;
    }
  }
}

TEST(FloatConvertExhaustive, F16RoundTrip) {
  expect_round_trips(1u << 16, 0x8000, [](uint32_t v) { return f16_to_f32(static_cast<uint16_t>(v)); },
                     [](float f) -> uint32_t { return f32_to_f16(f); });
}

TEST(FloatConvertExhaustive, BF16RoundTrip) {
  expect_round_trips(1u << 16, 0x8000, [](uint32_t v) { return bf16_to_f32(static_cast<uint16_t>(v)); },
                     [](float f) -> uint32_t { return f32_to_bf16(f); });
}

TEST(FloatConvertExhaustive, E4M3RoundTrip) {
  expect_round_trips(256, 0x80, [](uint32_t v) { return f8_e4m3_to_f32(static_cast<uint8_t>(v)); },
                     [](float f) -> uint32_t { return f32_to_f8_e4m3(f); });
}

TEST(FloatConvertExhaustive, E5M2RoundTrip) {
  expect_round_trips(256, 0x80, [](uint32_t v) { return f8_e5m2_to_f32(static_cast<uint8_t>(v)); },
                     [](float f) -> uint32_t { return f32_to_f8_e5m2(f); });
}

// Between every two adjacent finite values a < b of a format (same sign), the midpoint m is
// an f32: m goes to whichever of a, b has an even pattern, m's neighbours go to the nearer.
// This checks every tie of every format, including the subnormal/normal boundary and binade
// carries, without relying on the encoder's own arithmetic.
template <typename Dec, typename Enc>
void expect_all_ties(uint32_t max_finite, uint32_t sign_bit, Dec decode, Enc encode) {
  int failures = 0;
  for (uint32_t s : {0u, sign_bit}) {
    for (uint32_t a = 0; a < max_finite && failures < 20; ++a) {
      const uint32_t pa = s | a, pb = s | (a + 1);
      const float fa = decode(pa), fb = decode(pb);
      const float m = static_cast<float>((static_cast<double>(fa) + fb) / 2);
      ASSERT_EQ(static_cast<double>(m), (static_cast<double>(fa) + fb) / 2) << "midpoint not exact";
      const uint32_t even = (pa & 1) ? pb : pa;
      const float toward_b = std::nextafter(m, fb), toward_a = std::nextafter(m, fa);
      const uint32_t got_m = encode(m), got_b = encode(toward_b), got_a = encode(toward_a);
      if (got_m != even || got_b != pb || got_a != pa) ++failures;
      EXPECT_EQ(hex(got_m), hex(even)) << "tie between " << hex(pa) << " and " << hex(pb);
      EXPECT_EQ(hex(got_b), hex(pb)) << "just past the tie toward " << hex(pb);
      EXPECT_EQ(hex(got_a), hex(pa)) << "just before the tie toward " << hex(pa);
    }
  }
}

TEST(FloatConvertExhaustive, F16AllTies) {
  expect_all_ties(0x7bff, 0x8000, [](uint32_t v) { return f16_to_f32(static_cast<uint16_t>(v)); },
                  [](float f) -> uint32_t { return f32_to_f16(f); });
}

TEST(FloatConvertExhaustive, BF16AllTies) {
  expect_all_ties(0x7f7f, 0x8000, [](uint32_t v) { return bf16_to_f32(static_cast<uint16_t>(v)); },
                  [](float f) -> uint32_t { return f32_to_bf16(f); });
}

TEST(FloatConvertExhaustive, E4M3AllTies) {
  expect_all_ties(0x7e, 0x80, [](uint32_t v) { return f8_e4m3_to_f32(static_cast<uint8_t>(v)); },
                  [](float f) -> uint32_t { return f32_to_f8_e4m3(f); });
}

TEST(FloatConvertExhaustive, E5M2AllTies) {
  expect_all_ties(0x7b, 0x80, [](uint32_t v) { return f8_e5m2_to_f32(static_cast<uint8_t>(v)); },
                  [](float f) -> uint32_t { return f32_to_f8_e5m2(f); });
}

// Independent rounding model on a spread of f32 inputs: scale |x| by the format's quantum at
// its exponent (exact, a power of two), round with nearbyint (ties to even in the default
// rounding mode), and compare the decoded result with that value.
struct Format {
  const char* name;
  int M;
  int emin;
  double max_finite;
  bool overflow_to_nan;
  uint32_t (*encode)(float);
  float (*decode)(uint32_t);
};

double reference_round(float x, const Format& fmt) {
  const double ax = std::fabs(static_cast<double>(x));
  int k = 0;
  std::frexp(ax, &k);  // ax = f * 2^k, f in [0.5, 1): unbiased exponent k - 1
  const int e = std::max(k - 1, fmt.emin);
  const double quantum = std::ldexp(1.0, e - fmt.M);
  const double r = std::nearbyint(ax / quantum) * quantum;
  if (r > fmt.max_finite)
    return fmt.overflow_to_nan ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  return r;
}

TEST(FloatConvertExhaustive, EncodeMatchesReferenceRoundingOnSampledInputs) {
  const Format formats[] = {
      {"F16", 10, -14, 65504.0, false, [](float f) -> uint32_t { return f32_to_f16(f); },
       [](uint32_t v) { return f16_to_f32(static_cast<uint16_t>(v)); }},
      {"BF16", 7, -126, static_cast<double>(from_bits(0x7f7f0000)), false,
       [](float f) -> uint32_t { return f32_to_bf16(f); }, [](uint32_t v) { return bf16_to_f32(static_cast<uint16_t>(v)); }},
      {"E4M3", 3, -6, 448.0, true, [](float f) -> uint32_t { return f32_to_f8_e4m3(f); },
       [](uint32_t v) { return f8_e4m3_to_f32(static_cast<uint8_t>(v)); }},
      {"E5M2", 2, -14, 57344.0, false, [](float f) -> uint32_t { return f32_to_f8_e5m2(f); },
       [](uint32_t v) { return f8_e5m2_to_f32(static_cast<uint8_t>(v)); }},
  };
  for (const Format& fmt : formats) {
    SCOPED_TRACE(fmt.name);
    int failures = 0;
    // Stride by a prime so every exponent and many mantissa bit mixes are hit, both signs.
    for (uint64_t b = 0; b <= 0xffffffffu && failures < 20; b += 4099) {
      const float x = from_bits(static_cast<uint32_t>(b));
      if (!std::isfinite(x)) continue;
      const double want = x < 0 || std::signbit(x) ? -reference_round(x, fmt) : reference_round(x, fmt);
      const float got = fmt.decode(fmt.encode(x));
      const bool ok = std::isnan(want) ? std::isnan(got) && std::signbit(got) == std::signbit(x)
                                       : to_bits(got) == to_bits(static_cast<float>(want));
      if (!ok) {
        ++failures;
        ADD_FAILURE() << "input " << hex(to_bits(x)) << " (" << x << "): got " << got << ", want " << want;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bulk conversion
// ---------------------------------------------------------------------------------------------

// Little-endian bytes of `values` placed at offset 1 in a buffer (deliberately misaligned).
template <typename T>
std::vector<std::byte> misaligned(const std::vector<T>& values) {
  std::vector<std::byte> buf(1 + values.size() * sizeof(T) + 8);
  std::memcpy(buf.data() + 1, values.data(), values.size() * sizeof(T));
  return buf;
}

template <typename T>
void expect_bulk_to_f32(DType type, const std::vector<T>& in, const std::vector<float>& want) {
  SCOPED_TRACE(std::string(dtype_name(type)));
  const auto buf = misaligned(in);
  std::vector<float> out(in.size() + 1, -12345.0f);
  convert_to_f32(type, buf.data() + 1, out.data(), in.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(hex(to_bits(out[i])), hex(to_bits(want[i]))) << "element " << i;
  EXPECT_EQ(out.back(), -12345.0f) << "wrote past the end";
}

TEST(FloatConvertBulk, ToF32FromUnalignedFloatBuffers) {
  const std::vector<float> f32 = {1.0f, -2.0f, 0.5f, -0.0f, 3.25f};
  expect_bulk_to_f32<float>(DType::F32, f32, f32);
  expect_bulk_to_f32<double>(DType::F64, {1.0, -2.5, 1e-300, 0.1}, {1.0f, -2.5f, 0.0f, 0.1f});
  // Beyond f32's range: round to nearest, so just past FLT_MAX stays FLT_MAX and the
  // halfway point (FLT_MAX + half an ulp, 2^128 - 2^103) and beyond become inf.
  const double flt_max = 3.4028234663852886e38, half_ulp = std::ldexp(1.0, 103);
  expect_bulk_to_f32<double>(DType::F64, {flt_max + half_ulp / 2, flt_max + half_ulp, -1e300, 1e39},
                             {3.4028234663852886e38f, kInf, -kInf, kInf});
  expect_bulk_to_f32<uint16_t>(DType::F16, {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000},
                               {1.0f, -2.0f, p2(-24), 65504.0f, -0.0f});
  expect_bulk_to_f32<uint16_t>(DType::BF16, {0x3f80, 0xc000, 0x0001, 0x7f80}, {1.0f, -2.0f, p2(-133), kInf});
  expect_bulk_to_f32<uint8_t>(DType::F8_E4M3, {0x38, 0xc0, 0x7e, 0x01}, {1.0f, -2.0f, 448.0f, p2(-9)});
  expect_bulk_to_f32<uint8_t>(DType::F8_E5M2, {0x3c, 0xc0, 0x7b, 0x7c}, {1.0f, -2.0f, 57344.0f, kInf});
}

TEST(FloatConvertBulk, ToF32FromIntegerDtypesConvertsByValue) {
  expect_bulk_to_f32<int8_t>(DType::I8, {-128, -1, 0, 127}, {-128.0f, -1.0f, 0.0f, 127.0f});
  expect_bulk_to_f32<uint8_t>(DType::U8, {0, 1, 255}, {0.0f, 1.0f, 255.0f});
  expect_bulk_to_f32<int16_t>(DType::I16, {-32768, 12345, 32767}, {-32768.0f, 12345.0f, 32767.0f});
  expect_bulk_to_f32<uint16_t>(DType::U16, {0, 65535}, {0.0f, 65535.0f});
  expect_bulk_to_f32<int32_t>(DType::I32, {-16777216, 7, 2147483647}, {-16777216.0f, 7.0f, 2147483648.0f});
  expect_bulk_to_f32<uint32_t>(DType::U32, {0, 4294967295u}, {0.0f, 4294967296.0f});
  expect_bulk_to_f32<int64_t>(DType::I64, {-(int64_t{1} << 40), 3}, {-p2(40), 3.0f});
  expect_bulk_to_f32<uint64_t>(DType::U64, {uint64_t{1} << 63, 5}, {p2(63), 5.0f});
  expect_bulk_to_f32<uint8_t>(DType::BOOL, {0, 1, 2, 255}, {0.0f, 1.0f, 1.0f, 1.0f});
}

TEST(FloatConvertBulk, FromF32ToUnalignedBuffersMatchesScalar) {
  const std::vector<float> in = {1.0f, -2.0f, 0x1.002p0f, 65520.0f, p2(-25), 464.0f, -0.0f, kInf, 0.1f};
  auto check = [&](DType type, auto scalar) {
    SCOPED_TRACE(std::string(dtype_name(type)));
    using Bits = decltype(scalar(0.0f));
    std::vector<std::byte> buf(1 + in.size() * sizeof(Bits) + 1, std::byte{0xa5});
    convert_from_f32(type, in.data(), buf.data() + 1, in.size());
    EXPECT_EQ(buf.front(), std::byte{0xa5});
    EXPECT_EQ(buf.back(), std::byte{0xa5}) << "wrote past the end";
    for (size_t i = 0; i < in.size(); ++i) {
      Bits got;
      std::memcpy(&got, buf.data() + 1 + i * sizeof(Bits), sizeof(Bits));
      EXPECT_EQ(hex(got), hex(scalar(in[i]))) << "element " << i;
    }
  };
  check(DType::F16, [](float f) { return f32_to_f16(f); });
  check(DType::BF16, [](float f) { return f32_to_bf16(f); });
  check(DType::F8_E4M3, [](float f) { return f32_to_f8_e4m3(f); });
  check(DType::F8_E5M2, [](float f) { return f32_to_f8_e5m2(f); });
  check(DType::F32, [](float f) { return to_bits(f); });
  // F64 widens exactly.
  std::vector<std::byte> buf(1 + in.size() * 8);
  convert_from_f32(DType::F64, in.data(), buf.data() + 1, in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    double d;
    std::memcpy(&d, buf.data() + 1 + i * 8, 8);
    EXPECT_EQ(std::bit_cast<uint64_t>(d), std::bit_cast<uint64_t>(static_cast<double>(in[i]))) << i;
  }
}

TEST(FloatConvertBulk, FromF32ToIntegerDtypesThrows) {
  const float in[2] = {1.0f, 2.0f};
  std::byte out[16];
  for (DType t : {DType::I64, DType::I32, DType::I16, DType::I8, DType::U64, DType::U32, DType::U16, DType::U8,
                  DType::BOOL}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    try {
      convert_from_f32(t, in, out, 2);
      ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(dtype_name(t))), std::string::npos) << e.what();
    }
  }
}

TEST(FloatConvertBulk, ZeroElementsTouchesNothing) {
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2, DType::I32,
                  DType::BOOL}) {
    float dst = 7.0f;
    const std::byte src[8] = {};
    convert_to_f32(t, src, &dst, 0);
    EXPECT_EQ(dst, 7.0f);
  }
  std::byte out[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  const float one = 1.0f;
  convert_from_f32(DType::F16, &one, out, 0);
  EXPECT_EQ(out[0], std::byte{1});
  // Empty tensors hand in null pointers; nothing may be dereferenced or passed to memcpy.
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2, DType::I64,
                  DType::U8, DType::BOOL})
    convert_to_f32(t, nullptr, nullptr, 0);
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2})
    convert_from_f32(t, nullptr, nullptr, 0);
}

}  // namespace
}  // namespace modelpress
