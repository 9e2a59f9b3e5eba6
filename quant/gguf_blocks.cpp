#include "quant/gguf_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/error.h"
#include "io/float_convert.h"
#include "io/gguf_dequant.h"
#include "quant/rtn.h"

namespace modelpress::quant {
namespace {

constexpr int kBlock = 32;

float f16_round(float v) { return f16_to_f32(f32_to_f16(v)); }
void put_f16(std::byte* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
void put_nibbles(const int* u, std::byte* qs) {
  for (int j = 0; j < kBlock / 2; ++j) qs[j] = static_cast<std::byte>(u[j] | (u[j + kBlock / 2] << 4));
}

// Squared error of a block decoded as d * (u - offset) + m.
double block_error(const float* x, const int* u, float d, float m, int offset) {
  double e = 0.0;
  for (int j = 0; j < kBlock; ++j) {
    const double y = static_cast<double>(d) * (u[j] - offset) + m;
    e += (x[j] - y) * (x[j] - y);
  }
  return e;
}

// ---- Q8_0 ----
void q8_0_reference(const float* x, std::byte* out) {
  float amax = 0.0f;
  for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(out, d);
  for (int j = 0; j < kBlock; ++j) out[2 + j] = static_cast<std::byte>(static_cast<int8_t>(std::round(x[j] * id)));
}

double q8_0_error(const float* x, const std::byte* b) {
  uint16_t h;
  std::memcpy(&h, b, 2);
  const double d = f16_to_f32(h);
  double e = 0.0;
  for (int j = 0; j < kBlock; ++j) {
    const double y = d * static_cast<int8_t>(b[2 + j]);
    e += (x[j] - y) * (x[j] - y);
  }
  return e;
}

void q8_0_searched(const float* x, std::byte* out) {
  q8_0_reference(x, out);
  RtnOptions o;
  o.bits = 8;
  o.grid = SymmetricGrid::Restricted;  // int8 codes -127..127, as the reference's
  o.scale_dtype = DType::F16;
  const auto [lo, hi] = std::minmax_element(x, x + kBlock);
  const GroupParams p = search_params(x, kBlock, *lo, *hi, o);
  std::byte candidate[34];
  put_f16(candidate, p.scale);
  int8_t q[kBlock];
  quantize_values(x, kBlock, p, int_grid(8, true, o.grid), q);
  for (int j = 0; j < kBlock; ++j) candidate[2 + j] = static_cast<std::byte>(q[j]);
  if (q8_0_error(x, candidate) < q8_0_error(x, out)) std::memcpy(out, candidate, sizeof candidate);
}

// ---- Q4_0 ----
void q4_0_reference_codes(const float* x, float& d, int* u) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kBlock; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kBlock; ++j) u[j] = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
}

void q4_0(const float* x, bool search, std::byte* out) {
  float d;
  int u[kBlock];
  q4_0_reference_codes(x, d, u);
  if (search) {
    double best = block_error(x, u, f16_round(d), 0.0f, 8);
    // Both signs: x ~ s * q with q in [-8, 7] (the -8 code at x's negative end), or
    // -x ~ s * q, i.e. x ~ -s * q (the -8 code at x's positive end).
    RtnOptions o;
    o.bits = 4;
    o.grid = SymmetricGrid::Full;
    o.scale_dtype = DType::F16;
    const IntGrid grid = int_grid(4, true, o.grid);
    float v[kBlock];
    for (int sign : {1, -1}) {
      for (int j = 0; j < kBlock; ++j) v[j] = static_cast<float>(sign) * x[j];
      const auto [lo, hi] = std::minmax_element(v, v + kBlock);
      const GroupParams p = search_params(v, kBlock, *lo, *hi, o);
      int8_t q[kBlock];
      quantize_values(v, kBlock, p, grid, q);
      int cu[kBlock];
      for (int j = 0; j < kBlock; ++j) cu[j] = q[j] + 8;
      const float cd = static_cast<float>(sign) * p.scale;
      const double e = block_error(x, cu, cd, 0.0f, 8);
      if (e < best) {
        best = e;
        d = cd;
        std::copy(cu, cu + kBlock, u);
      }
    }
  }
  put_f16(out, d);
  put_nibbles(u, out + 2);
}

// ---- Q4_1 ----
void q4_1_reference_codes(const float* x, float& d, float& m, int* u) {
  float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
  for (int j = 0; j < kBlock; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  d = (max - min) / 15.0f;
  m = min;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kBlock; ++j) u[j] = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
}

// The nearest codes for stored (d, m), and their error.
double q4_1_nearest(const float* x, float d, float m, int* u) {
  for (int j = 0; j < kBlock; ++j)
    u[j] = d > 0.0f ? std::clamp(static_cast<int>(std::nearbyint((x[j] - m) / d)), 0, 15) : 0;
  return block_error(x, u, d, m, 0);
}

void q4_1(const float* x, bool search, std::byte* out) {
  float d, m;
  int u[kBlock];
  q4_1_reference_codes(x, d, m, u);
  if (search) {
    double best = block_error(x, u, f16_round(d), f16_round(m), 0);
    const auto [lo_it, hi_it] = std::minmax_element(x, x + kBlock);
    const double lo0 = *lo_it, hi0 = *hi_it;
    // The range [min, max] shrunk by 0, 8 or 16% at either end; each candidate's codes
    // refitted as x ~ d u + m (two-parameter least squares), both rounded to f16.
    for (double cut_lo : {0.0, 0.08, 0.16})
      for (double cut_hi : {0.0, 0.08, 0.16}) {
        const double lo = lo0 + (hi0 - lo0) * cut_lo, hi = hi0 - (hi0 - lo0) * cut_hi;
        if (!(hi > lo)) continue;
        const double step = (hi - lo) / 15.0;
        double su = 0, suu = 0, sx = 0, sxu = 0;
        for (int j = 0; j < kBlock; ++j) {
          const double c = std::clamp(std::nearbyint((x[j] - lo) / step), 0.0, 15.0);
          su += c;
          suu += c * c;
          sx += x[j];
          sxu += x[j] * c;
        }
        const double det = kBlock * suu - su * su;
        if (!(det > 0.0)) continue;
        const double fd = (kBlock * sxu - su * sx) / det, fm = (sx - fd * su) / kBlock;
        const float cd = f16_round(static_cast<float>(fd)), cm = f16_round(static_cast<float>(fm));
        if (!(cd > 0.0f) || !std::isfinite(cd) || !std::isfinite(cm)) continue;
        int cu[kBlock];
        const double e = q4_1_nearest(x, cd, cm, cu);
        if (e < best) {
          best = e;
          d = cd;
          m = cm;
          std::copy(cu, cu + kBlock, u);
        }
      }
  }
  put_f16(out, d);
  put_f16(out + 2, m);
  put_nibbles(u, out + 4);
}

}  // namespace

bool gguf_quantizable_type(uint32_t type) {
  return type == ggml_type::Q8_0 || type == ggml_type::Q4_0 || type == ggml_type::Q4_1 || type == ggml_type::F16 ||
         type == ggml_type::F32;
}

void quantize_gguf_blocks(uint32_t type, const float* x, int64_t n, bool search, std::byte* out) {
  if (type == ggml_type::F32) {
    std::memcpy(out, x, static_cast<size_t>(n) * 4);
    return;
  }
  if (type == ggml_type::F16) {
    for (int64_t i = 0; i < n; ++i) put_f16(out + 2 * i, x[i]);
    return;
  }
  if (!gguf_quantizable_type(type)) throw Error("modelpress does not write GGUF type " + ggml_type_name(type));
  if (n % kBlock != 0) throw Error("GGUF " + ggml_type_name(type) + ": " + std::to_string(n) + " values is not a whole number of blocks of 32");
  const uint32_t block_bytes = ggml_type_traits(type)->block_bytes;
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    std::byte* ob = out + b * block_bytes;
    if (type == ggml_type::Q8_0) search ? q8_0_searched(xb, ob) : q8_0_reference(xb, ob);
    else if (type == ggml_type::Q4_0) q4_0(xb, search, ob);
    else q4_1(xb, search, ob);
  }
}

}  // namespace modelpress::quant
