#include "io/gguf_dequant.h"

#include <cstring>

#include "io/error.h"
#include "io/float_convert.h"

namespace modelpress {
namespace {

struct TypeRow {
  uint32_t id;
  const char* name;
  GgmlTypeTraits traits;
};

// One row per ggml type; sizes from ggml's type_traits (block struct sizes in ggml-common.h).
// Types we cannot dequantize are still listed so that tensor sizes and offsets validate.
constexpr TypeRow kTypes[] = {
    {ggml_type::F32, "F32", {1, 4, true}},
    {ggml_type::F16, "F16", {1, 2, true}},
    {ggml_type::Q4_0, "Q4_0", {32, 18, true}},   // f16 d, 16 bytes of nibbles
    {ggml_type::Q4_1, "Q4_1", {32, 20, true}},   // f16 d, f16 m, 16 bytes
    {ggml_type::Q5_0, "Q5_0", {32, 22, true}},   // f16 d, u32 high bits, 16 bytes
    {ggml_type::Q5_1, "Q5_1", {32, 24, true}},   // f16 d, f16 m, u32 high bits, 16 bytes
    {ggml_type::Q8_0, "Q8_0", {32, 34, true}},   // f16 d, 32 int8
    {ggml_type::Q8_1, "Q8_1", {32, 36, false}},  // f16 d, f16 s, 32 int8 (a dot-product helper)
    {ggml_type::Q2_K, "Q2_K", {256, 84, true}},   // 16 scale/min bytes, 64 bytes of 2-bit codes, f16 d, dmin
    {ggml_type::Q3_K, "Q3_K", {256, 110, true}},  // 32 high-bit bytes, 64 bytes of 2-bit codes, 12 scale bytes, f16 d
    {ggml_type::Q4_K, "Q4_K", {256, 144, true}},  // f16 d, f16 dmin, 12 scale bytes, 128 bytes
    {ggml_type::Q5_K, "Q5_K", {256, 176, true}},  // f16 d, dmin, 12 scale bytes, 32 high-bit bytes, 128 bytes
    {ggml_type::Q6_K, "Q6_K", {256, 210, true}},  // ql[128], qh[64], int8 scales[16], f16 d
    {ggml_type::Q8_K, "Q8_K", {256, 292, false}},  // f32 d, 256 int8, 16 int16 sums
    {ggml_type::IQ2_XXS, "IQ2_XXS", {256, 66, false}},
    {ggml_type::IQ2_XS, "IQ2_XS", {256, 74, false}},
    {ggml_type::IQ3_XXS, "IQ3_XXS", {256, 98, false}},
    {ggml_type::IQ1_S, "IQ1_S", {256, 50, false}},
    {ggml_type::IQ4_NL, "IQ4_NL", {32, 18, true}},   // f16 d, 16 bytes of 4-bit indices
    {ggml_type::IQ3_S, "IQ3_S", {256, 110, false}},
    {ggml_type::IQ2_S, "IQ2_S", {256, 82, false}},
    {ggml_type::IQ4_XS, "IQ4_XS", {256, 136, true}},  // f16 d, u16 scale high bits, 4 scale bytes, 128 bytes
    {ggml_type::I8, "I8", {1, 1, true}},
    {ggml_type::I16, "I16", {1, 2, true}},
    {ggml_type::I32, "I32", {1, 4, true}},
    {ggml_type::I64, "I64", {1, 8, true}},
    {ggml_type::F64, "F64", {1, 8, true}},
    {ggml_type::IQ1_M, "IQ1_M", {256, 56, false}},
    {ggml_type::BF16, "BF16", {1, 2, true}},
    {ggml_type::TQ1_0, "TQ1_0", {256, 54, false}},
    {ggml_type::TQ2_0, "TQ2_0", {256, 66, false}},
    {ggml_type::MXFP4, "MXFP4", {32, 17, false}},  // e8m0 scale, 16 bytes of nibbles
    {ggml_type::NVFP4, "NVFP4", {64, 36, false}},  // 4 ue4m3 scales, 32 bytes of nibbles
    {ggml_type::Q1_0, "Q1_0", {128, 18, false}},   // f16 d, 16 bytes of sign bits
    {ggml_type::Q2_0, "Q2_0", {64, 18, false}},    // f16 d, 16 bytes of 2-bit codes
};

const TypeRow* find_type(uint32_t type) {
  for (const auto& row : kTypes)
    if (row.id == type) return &row;
  return nullptr;
}

uint8_t u8(const std::byte* p) { return static_cast<uint8_t>(*p); }
float f16(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);  // little-endian hosts only, like the rest of io/
  return f16_to_f32(h);
}

// Q4_0: x = d * (q - 8); element j is the low nibble of qs[j], element j + 16 the high one.
void dequant_q4_0(const std::byte* b, float* y) {
  const float d = f16(b);
  const std::byte* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((u8(qs + j) & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((u8(qs + j) >> 4) - 8) * d;
  }
}

// Q4_1: x = d * q + m, nibbles ordered as in Q4_0.
void dequant_q4_1(const std::byte* b, float* y) {
  const float d = f16(b), m = f16(b + 2);
  const std::byte* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(u8(qs + j) & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(u8(qs + j) >> 4) * d + m;
  }
}

// Q5_0 / Q5_1: as Q4_0 / Q4_1 with a fifth bit per element, bit i of the little-endian u32
// qh belonging to element i. Q5_0 is centred (q - 16), Q5_1 has a min.
void dequant_q5(const std::byte* b, float* y, bool has_min) {
  const float d = f16(b);
  const float m = has_min ? f16(b + 2) : 0.0f;
  const std::byte* p = b + (has_min ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const std::byte* qs = p + 4;
  for (int j = 0; j < 16; ++j) {
    const int lo = (u8(qs + j) & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (u8(qs + j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    // Q5_0 adds no min at all (rather than 0.0f), so a zero keeps its sign as in ggml.
    y[j] = has_min ? static_cast<float>(lo) * d + m : static_cast<float>(lo - 16) * d;
    y[j + 16] = has_min ? static_cast<float>(hi) * d + m : static_cast<float>(hi - 16) * d;
  }
}

// Q8_0: x = d * q.
void dequant_q8_0(const std::byte* b, float* y) {
  const float d = f16(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(u8(b + 2 + j))) * d;
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block, packed into 12
// bytes: sub-blocks 0-3 keep theirs in the low 6 bits of bytes j (scale) and j+4 (min);
// sub-blocks 4-7 keep the low 4 bits in byte j+4 (scale low nibble, min high nibble) and the
// top 2 bits in the spare top bits of bytes j-4 (scale) and j (min).
void scale_min_k4(int j, const std::byte* s, float& scale, float& min) {
  int sc, m;
  if (j < 4) {
    sc = u8(s + j) & 63;
    m = u8(s + j + 4) & 63;
  } else {
    sc = (u8(s + j + 4) & 0x0F) | ((u8(s + j - 4) >> 6) << 4);
    m = (u8(s + j + 4) >> 4) | ((u8(s + j) >> 6) << 4);
  }
  scale = static_cast<float>(sc);
  min = static_cast<float>(m);
}

// Q4_K: 8 sub-blocks of 32; x = (d * scale) * q - (dmin * min). Each 32 quant bytes hold two
// sub-blocks: the low nibbles the first, the high nibbles the second.
void dequant_q4_k(const std::byte* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qs = b + 16;
  for (int pair = 0; pair < 4; ++pair) {
    float sc0, m0, sc1, m1;
    scale_min_k4(2 * pair, scales, sc0, m0);
    scale_min_k4(2 * pair + 1, scales, sc1, m1);
    const float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
    const std::byte* q = qs + 32 * pair;
    float* out = y + 64 * pair;
    for (int l = 0; l < 32; ++l) {
      out[l] = d0 * static_cast<float>(u8(q + l) & 0x0F) - min0;
      out[l + 32] = d1 * static_cast<float>(u8(q + l) >> 4) - min1;
    }
  }
}

// Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * scale * (q - 32), q = 4 low bits from ql
// and 2 high bits from qh. Each 128-element half uses 64 ql bytes and 32 qh bytes: element
// l + 32k (l < 32, k < 4) takes the low (k < 2) or high (k >= 2) nibble of ql[l + 32 * (k % 2)]
// and bits 2k..2k+1 of qh[l].
void dequant_q6_k(const std::byte* b, float* y) {
  const std::byte* ql = b;
  const std::byte* qh = b + 128;
  const std::byte* sc = b + 192;
  const float d = f16(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      for (int k = 0; k < 4; ++k) {
        const int lowbyte = u8(ql + l + 32 * (k % 2));
        const int low = k < 2 ? (lowbyte & 0x0F) : (lowbyte >> 4);
        const int high = (u8(qh + l) >> (2 * k)) & 3;
        const int q = (low | (high << 4)) - 32;
        const int e = 32 * k + l;  // element within this half; its scale is e / 16
        const float scale = static_cast<float>(static_cast<int8_t>(u8(sc + e / 16)));
        y[e] = d * scale * static_cast<float>(q);
      }
    }
    ql += 64;
    qh += 32;
    sc += 8;
    y += 128;
  }
}

// Q2_K: 16 sub-blocks of 16; byte i of the 16 scale bytes holds sub-block i's 4-bit scale
// (low nibble) and min (high nibble); x = (d * scale) * q - (dmin * min). The 64 code bytes
// are two halves of 32: element 128h + 32s + l (s < 4, l < 32) is bits 2s..2s+1 of byte
// 32h + l.
void dequant_q2_k(const std::byte* b, float* y) {
  const std::byte* scales = b;
  const std::byte* qs = b + 16;
  const float d = f16(b + 80), dmin = f16(b + 82);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    const int q = (u8(qs + 32 * h + l) >> (2 * s)) & 3;
    const int sc = u8(scales + e / 16);
    y[e] = d * static_cast<float>(sc & 0x0F) * static_cast<float>(q) - dmin * static_cast<float>(sc >> 4);
  }
}

// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales; x = (d * (scale - 32)) * q, q = a
// 2-bit code (laid out as Q2_K's) minus 4 unless the element's bit in the 32-byte high mask
// is set (element 32b + l: bit b of byte l). Scale i: its low 4 bits are the low (i < 8) or
// high (i >= 8) nibble of byte i % 8, its top 2 bits bits 2(i / 4)..+1 of byte 8 + i % 4.
void dequant_q3_k(const std::byte* b, float* y) {
  const std::byte* hmask = b;
  const std::byte* qs = b + 32;
  const std::byte* scales = b + 96;
  const float d = f16(b + 108);
  float dl[16];
  for (int i = 0; i < 16; ++i) {
    const int low = (u8(scales + i % 8) >> (i < 8 ? 0 : 4)) & 0x0F;
    const int high = (u8(scales + 8 + i % 4) >> (2 * (i / 4))) & 3;
    dl[i] = d * static_cast<float>((low | (high << 4)) - 32);
  }
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    const int low = (u8(qs + 32 * h + l) >> (2 * s)) & 3;
    const bool high = (u8(hmask + l) >> (e / 32)) & 1;
    y[e] = dl[e / 16] * static_cast<float>(high ? low : low - 4);
  }
}

// Q5_K: Q4_K's sub-blocks, scales and mins with a fifth bit per element: element 32b + l
// takes bit b of high-bit byte l.
void dequant_q5_k(const std::byte* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qh = b + 16;
  const std::byte* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    float sc, m;
    scale_min_k4(j, scales, sc, m);
    const float dj = d * sc, mj = dmin * m;
    for (int l = 0; l < 32; ++l) {
      const int e = 32 * j + l;
      const int low = (u8(qs + 32 * (j / 2) + l) >> (4 * (j % 2))) & 0x0F;
      const int high = (u8(qh + l) >> j) & 1;
      y[e] = dj * static_cast<float>(low | (high << 4)) - mj;
    }
  }
}

// IQ4_NL / IQ4_XS: 4-bit indices into a fixed non-uniform table (ggml's kvalues_iq4nl).
constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// 32 indices in 16 bytes, Q4_0's order: element l the low nibble of byte l, l + 16 the high.
void iq4_block32(const std::byte* qs, float dl, float* y) {
  for (int l = 0; l < 16; ++l) {
    y[l] = dl * static_cast<float>(kIq4Values[u8(qs + l) & 0x0F]);
    y[l + 16] = dl * static_cast<float>(kIq4Values[u8(qs + l) >> 4]);
  }
}

void dequant_iq4_nl(const std::byte* b, float* y) { iq4_block32(b + 2, f16(b), y); }

// IQ4_XS: 8 sub-blocks of 32 with signed 6-bit scales: low 4 bits in nibble j of the 4
// scale bytes (low nibble first), top 2 bits at bits 2j..2j+1 of the little-endian u16.
void dequant_iq4_xs(const std::byte* b, float* y) {
  const float d = f16(b);
  uint16_t scales_h;
  std::memcpy(&scales_h, b + 2, 2);
  const std::byte* scales_l = b + 4;
  const std::byte* qs = b + 8;
  for (int j = 0; j < 8; ++j) {
    const int low = (u8(scales_l + j / 2) >> (4 * (j % 2))) & 0x0F;
    const int high = (scales_h >> (2 * j)) & 3;
    iq4_block32(qs + 16 * j, d * static_cast<float>((low | (high << 4)) - 32), y + 32 * j);
  }
}

template <typename F>
void per_block(const std::byte* src, float* dst, int64_t n, const GgmlTypeTraits& t, F&& f) {
  for (int64_t i = 0; i < n / t.block_elems; ++i) f(src + i * t.block_bytes, dst + i * t.block_elems);
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  const TypeRow* row = find_type(type);
  return row ? row->name : "type " + std::to_string(type);
}

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type) {
  const TypeRow* row = find_type(type);
  if (!row) return std::nullopt;
  return row->traits;
}

void ggml_dequantize(uint32_t type, const std::byte* src, float* dst, int64_t n) {
  const TypeRow* row = find_type(type);
  if (!row) throw Error("cannot dequantize unknown ggml type id " + std::to_string(type));
  const GgmlTypeTraits& t = row->traits;
  if (!t.dequantizable) throw Error("dequantizing ggml type " + std::string(row->name) + " is not supported");
  if (n < 0 || n % t.block_elems != 0)
    throw Error("cannot dequantize " + std::to_string(n) + " elements of " + row->name +
                ": not a multiple of its block size " + std::to_string(t.block_elems));
  if (n == 0) return;  // also keeps null pointers of empty tensors away from memcpy
  const auto count = static_cast<size_t>(n);
  switch (type) {
    case ggml_type::F32: return convert_to_f32(DType::F32, src, dst, count);
    case ggml_type::F16: return convert_to_f32(DType::F16, src, dst, count);
    case ggml_type::BF16: return convert_to_f32(DType::BF16, src, dst, count);
    case ggml_type::F64: return convert_to_f32(DType::F64, src, dst, count);
    case ggml_type::I8: return convert_to_f32(DType::I8, src, dst, count);
    case ggml_type::I16: return convert_to_f32(DType::I16, src, dst, count);
    case ggml_type::I32: return convert_to_f32(DType::I32, src, dst, count);
    case ggml_type::I64: return convert_to_f32(DType::I64, src, dst, count);
    case ggml_type::Q4_0: return per_block(src, dst, n, t, dequant_q4_0);
    case ggml_type::Q4_1: return per_block(src, dst, n, t, dequant_q4_1);
    case ggml_type::Q5_0: return per_block(src, dst, n, t, [](const std::byte* b, float* y) { dequant_q5(b, y, false); });
    case ggml_type::Q5_1: return per_block(src, dst, n, t, [](const std::byte* b, float* y) { dequant_q5(b, y, true); });
    case ggml_type::Q8_0: return per_block(src, dst, n, t, dequant_q8_0);
    case ggml_type::Q2_K: return per_block(src, dst, n, t, dequant_q2_k);
    case ggml_type::Q3_K: return per_block(src, dst, n, t, dequant_q3_k);
    case ggml_type::Q4_K: return per_block(src, dst, n, t, dequant_q4_k);
    case ggml_type::Q5_K: return per_block(src, dst, n, t, dequant_q5_k);
    case ggml_type::Q6_K: return per_block(src, dst, n, t, dequant_q6_k);
    case ggml_type::IQ4_NL: return per_block(src, dst, n, t, dequant_iq4_nl);
    case ggml_type::IQ4_XS: return per_block(src, dst, n, t, dequant_iq4_xs);
    default: throw Error("dequantizing ggml type " + std::string(row->name) + " is not supported");
  }
}

}  // namespace modelpress
