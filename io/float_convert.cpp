#include "io/float_convert.h"

#include <bit>
#include <cmath>
#include <limits>
#include <cstring>
#include <string>

#include "io/error.h"

namespace modelpress {
namespace {

// A narrow binary float: `E` exponent bits, `M` mantissa bits, IEEE bias. `finite_nan`
// marks the E4M3FN flavour (no infinities; all-ones exponent and mantissa is NaN).
template <int E, int M, bool finite_nan>
struct Mini {
  static constexpr int bias = (1 << (E - 1)) - 1;
  static constexpr int emin = 1 - bias;  // exponent of the smallest normal
  static constexpr uint32_t exp_all = ((1u << E) - 1) << M;
  static constexpr uint32_t man_all = (1u << M) - 1;
  static constexpr uint32_t sign_bit = 1u << (E + M);
  static constexpr uint32_t nan_fn = exp_all | man_all;

  static uint32_t encode(float f) {
    const uint32_t bits = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (bits >> 31) ? sign_bit : 0;
    const uint32_t exp = (bits >> 23) & 0xff;
    const uint32_t man = bits & 0x7fffff;
    if (exp == 0xff) {
      if (finite_nan) return sign | nan_fn;                 // inf and NaN both become NaN
      if (man == 0) return sign | exp_all;                  // inf
      return sign | exp_all | (1u << (M - 1)) | (man >> (23 - M));  // quiet NaN
    }
    if (exp == 0 && man == 0) return sign;
    // The value is sig * 2^(e - 23) with sig < 2^24.
    const int e = exp == 0 ? -126 : static_cast<int>(exp) - 127;
    const uint64_t sig = exp == 0 ? man : (man | 0x800000u);
    // Keep M fraction bits relative to the exponent max(e, emin); below emin the result
    // is subnormal and loses the extra bits too.
    const int shift = (23 - M) + (e < emin ? emin - e : 0);
    uint64_t q = 0;
    if (shift < 40) {
      q = sig >> shift;
      const uint64_t rem = sig & ((uint64_t{1} << shift) - 1);
      const uint64_t half = uint64_t{1} << (shift - 1);
      if (rem > half || (rem == half && (q & 1))) ++q;  // ties to even
    }
    // For normals q holds the implicit bit, which lands in the exponent field; a rounding
    // carry moves to the next binade (or from subnormal to normal) by itself.
    const uint32_t encoded =
        (static_cast<uint32_t>((e < emin ? emin : e) + bias - 1) << M) + static_cast<uint32_t>(q);
    if (finite_nan) {
      if (encoded >= nan_fn) return sign | nan_fn;
    } else if (encoded >= exp_all) {
      return sign | exp_all;
    }
    return sign | encoded;
  }

  static float decode(uint32_t v) {
    const uint32_t sign = (v & sign_bit) ? 0x80000000u : 0;
    uint32_t exp = (v & exp_all) >> M;
    uint32_t man = v & man_all;
    if (finite_nan) {
      if ((v & ~sign_bit) == nan_fn) return std::bit_cast<float>(sign | 0x7fc00000u);
    } else if (exp == (exp_all >> M)) {
      return std::bit_cast<float>(sign | 0x7f800000u | (man << (23 - M)));
    }
    if (exp == 0) {
      if (man == 0) return std::bit_cast<float>(sign);
      int e = emin;  // subnormal: normalize into an f32 normal, exactly
      while (!(man & (1u << M))) {
        man <<= 1;
        --e;
      }
      return std::bit_cast<float>(sign | static_cast<uint32_t>(e + 127) << 23 |
                                  (man & man_all) << (23 - M));
    }
    return std::bit_cast<float>(sign | static_cast<uint32_t>(static_cast<int>(exp) - bias + 127) << 23 |
                                man << (23 - M));
  }
};

using F16 = Mini<5, 10, false>;
using BF16 = Mini<8, 7, false>;
using E5M2 = Mini<5, 2, false>;
using E4M3 = Mini<4, 3, true>;

template <typename T>
T load(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void widen(const void* src, float* dst, size_t n) {
  const auto* s = static_cast<const std::byte*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<T>(s + i * sizeof(T)));
}

// f64 -> f32 rounds to nearest; values beyond f32's range become inf explicitly (the plain
// conversion is undefined behaviour for them).
void f64_to_f32(const void* src, float* dst, size_t n) {
  const auto* s = static_cast<const std::byte*>(src);
  for (size_t i = 0; i < n; ++i) {
    const double v = load<double>(s + 8 * i);
    const double limit = static_cast<double>(std::numeric_limits<float>::max());
    if (v > limit || v < -limit) {
      // Round to nearest: just above FLT_MAX still rounds down to it.
      const float rounded = static_cast<float>(v > 0 ? limit : -limit);
      const double half_ulp = std::ldexp(1.0, 127 - 24);
      dst[i] = std::abs(v) < limit + half_ulp ? rounded : (v > 0 ? std::numeric_limits<float>::infinity()
                                                                 : -std::numeric_limits<float>::infinity());
    } else {
      dst[i] = static_cast<float>(v);  // NaN and in-range values
    }
  }
}

template <typename Fmt, typename Bits>
void narrow_to_f32(const void* src, float* dst, size_t n) {
  const auto* s = static_cast<const std::byte*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = Fmt::decode(load<Bits>(s + i * sizeof(Bits)));
}

template <typename Fmt, typename Bits>
void f32_to_narrow(const float* src, void* dst, size_t n) {
  auto* d = static_cast<std::byte*>(dst);
  for (size_t i = 0; i < n; ++i) {
    const Bits b = static_cast<Bits>(Fmt::encode(src[i]));
    std::memcpy(d + i * sizeof(Bits), &b, sizeof(Bits));
  }
}

}  // namespace

uint16_t f32_to_f16(float x) { return static_cast<uint16_t>(F16::encode(x)); }
float f16_to_f32(uint16_t h) { return F16::decode(h); }
uint16_t f32_to_bf16(float x) { return static_cast<uint16_t>(BF16::encode(x)); }
float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }
uint8_t f32_to_f8_e4m3(float x) { return static_cast<uint8_t>(E4M3::encode(x)); }
float f8_e4m3_to_f32(uint8_t v) { return E4M3::decode(v); }
uint8_t f32_to_f8_e5m2(float x) { return static_cast<uint8_t>(E5M2::encode(x)); }
float f8_e5m2_to_f32(uint8_t v) { return E5M2::decode(v); }

void convert_to_f32(DType type, const void* src, float* dst, size_t n) {
  if (n == 0) return;  // src/dst may be null then (empty tensors); memcpy must not see null
  switch (type) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::F64: f64_to_f32(src, dst, n); return;
    case DType::F16: narrow_to_f32<F16, uint16_t>(src, dst, n); return;
    case DType::BF16: {
      const auto* s = static_cast<const std::byte*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load<uint16_t>(s + 2 * i));
      return;
    }
    case DType::F8_E4M3: narrow_to_f32<E4M3, uint8_t>(src, dst, n); return;
    case DType::F8_E5M2: narrow_to_f32<E5M2, uint8_t>(src, dst, n); return;
    case DType::I64: widen<int64_t>(src, dst, n); return;
    case DType::I32: widen<int32_t>(src, dst, n); return;
    case DType::I16: widen<int16_t>(src, dst, n); return;
    case DType::I8: widen<int8_t>(src, dst, n); return;
    case DType::U64: widen<uint64_t>(src, dst, n); return;
    case DType::U32: widen<uint32_t>(src, dst, n); return;
    case DType::U16: widen<uint16_t>(src, dst, n); return;
    case DType::U8: widen<uint8_t>(src, dst, n); return;
    case DType::BOOL: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = s[i] ? 1.0f : 0.0f;
      return;
    }
  }
}

void convert_from_f32(DType type, const float* src, void* dst, size_t n) {
  switch (type) {
    case DType::F32: if (n) std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::F64: {
      auto* d = static_cast<std::byte*>(dst);
      for (size_t i = 0; i < n; ++i) {
        const double v = src[i];
        std::memcpy(d + 8 * i, &v, 8);
      }
      return;
    }
    case DType::F16: f32_to_narrow<F16, uint16_t>(src, dst, n); return;
    case DType::BF16: {
      // The hot path of every BF16 output (merges write billions of elements): the rounding
      // of BF16::encode in bit arithmetic the compiler vectorizes. BF16 keeps f32's exponent,
      // so adding 0x7fff plus the kept lowest bit and truncating is round-to-nearest-even for
      // normals and subnormals alike, and rounds past the largest finite value to inf; NaN
      // keeps its sign and top payload bits with the quiet bit set, as encode() does.
      // FloatConvertBF16.BulkEqualsScalar checks it against encode().
      auto* d = static_cast<std::byte*>(dst);
      for (size_t i = 0; i < n; ++i) {
        const uint32_t b = std::bit_cast<uint32_t>(src[i]);
        const uint16_t h = (b & 0x7fffffffu) > 0x7f800000u ? static_cast<uint16_t>((b >> 16) | 0x40u)
                                                           : static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    }
    case DType::F8_E4M3: f32_to_narrow<E4M3, uint8_t>(src, dst, n); return;
    case DType::F8_E5M2: f32_to_narrow<E5M2, uint8_t>(src, dst, n); return;
    default:
      throw Error("cannot convert f32 to " + std::string(dtype_name(type)) +
                  ": only float dtypes are produced from f32");
  }
}

}  // namespace modelpress
