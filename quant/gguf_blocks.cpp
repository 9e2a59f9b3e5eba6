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

// Squared error of a block decoded as d * (u - offset) + m, each element weighted by its
// importance h[j] (nullptr: 1).
double block_error(const float* x, const float* h, const int* u, float d, float m, int offset) {
  double e = 0.0;
  for (int j = 0; j < kBlock; ++j) {
    const double y = static_cast<double>(d) * (u[j] - offset) + m;
    e += (h ? h[j] : 1.0) * (x[j] - y) * (x[j] - y);
  }
  return e;
}

// The symmetric search of quant/rtn.h's search_params, with importance weights: the block's
// absmax mapped to levels * (1 + t / 75) codes (t = -10..10), each candidate's codes q
// refitted to the weighted least-squares scale sum(h x q) / sum(h q q), the best refit rounded
// to f16 and its nearest codes in [lo, hi] kept when their weighted error beats *best_error.
// sign -1 searches -x (a negative scale for x: the lo code at x's positive end).
void weighted_symmetric_search(const float* x, const float* h, int lo, int hi, float levels, int sign,
                               double* best_error, float* best_d, int* best_q) {
  float amax = 0.0f;
  for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  if (amax == 0.0f) return;
  double best_score = 0.0, best_scale = 0.0;
  for (int t = -10; t <= 10; ++t) {
    const float inv = levels * (1.0f + static_cast<float>(t) / 75.0f) / amax;
    double xq = 0.0, qq = 0.0;
    for (int j = 0; j < kBlock; ++j) {
      const float v = static_cast<float>(sign) * x[j];
      const double q = std::clamp(round_half_even(v * inv), static_cast<float>(lo), static_cast<float>(hi));
      const double w = h ? h[j] : 1.0;
      xq += w * v * q;
      qq += w * q * q;
    }
    if (!(qq > 0.0) || !(xq > 0.0)) continue;
    if (xq * xq / qq > best_score) {
      best_score = xq * xq / qq;
      best_scale = xq / qq;
    }
  }
  const float s = f16_round(static_cast<float>(best_scale));
  if (!(s > 0.0f) || !std::isfinite(s)) return;
  int q[kBlock];
  for (int j = 0; j < kBlock; ++j)
    q[j] = static_cast<int>(std::clamp(round_half_even(static_cast<float>(sign) * x[j] / s), static_cast<float>(lo),
                                       static_cast<float>(hi)));
  const float d = static_cast<float>(sign) * s;
  const double e = block_error(x, h, q, d, 0.0f, 0);
  if (e < *best_error) {
    *best_error = e;
    *best_d = d;
    std::copy(q, q + kBlock, best_q);
  }
}

// ---- Q8_0 ----
void q8_0_reference(const float* x, std::byte* out) {
  float amax = 0.0f;
  for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(out, d);
  for (int j = 0; j < kBlock; ++j) out[2 + j] = static_cast<std::byte>(static_cast<int8_t>(std::round(x[j] * id)));
}

void q8_0_searched(const float* x, const float* h, std::byte* out) {
  q8_0_reference(x, out);
  uint16_t stored;
  std::memcpy(&stored, out, 2);
  float d = f16_to_f32(stored);
  int q[kBlock];
  for (int j = 0; j < kBlock; ++j) q[j] = static_cast<int8_t>(out[2 + j]);
  double best = block_error(x, h, q, d, 0.0f, 0);
  weighted_symmetric_search(x, h, -127, 127, 127.0f, 1, &best, &d, q);
  put_f16(out, d);
  for (int j = 0; j < kBlock; ++j) out[2 + j] = static_cast<std::byte>(static_cast<int8_t>(q[j]));
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

void q4_0(const float* x, const float* h, bool search, std::byte* out) {
  float d;
  int u[kBlock];
  q4_0_reference_codes(x, d, u);
  if (search) {
    d = f16_round(d);
    int q[kBlock];
    for (int j = 0; j < kBlock; ++j) q[j] = u[j] - 8;
    double best = block_error(x, h, q, d, 0.0f, 0);
    // Both signs: the -8 code at x's negative end (d > 0) or at its positive end (d < 0).
    for (int sign : {1, -1}) weighted_symmetric_search(x, h, -8, 7, 7.5f, sign, &best, &d, q);
    for (int j = 0; j < kBlock; ++j) u[j] = q[j] + 8;
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

// The nearest codes for stored (d, m), and their (weighted) error.
double q4_1_nearest(const float* x, const float* h, float d, float m, int* u) {
  for (int j = 0; j < kBlock; ++j)
    u[j] = d > 0.0f ? std::clamp(static_cast<int>(std::nearbyint((x[j] - m) / d)), 0, 15) : 0;
  return block_error(x, h, u, d, m, 0);
}

void q4_1(const float* x, const float* h, bool search, std::byte* out) {
  float d, m;
  int u[kBlock];
  q4_1_reference_codes(x, d, m, u);
  if (search) {
    double best = block_error(x, h, u, f16_round(d), f16_round(m), 0);
    const auto [lo_it, hi_it] = std::minmax_element(x, x + kBlock);
    const double lo0 = *lo_it, hi0 = *hi_it;
    // The range [min, max] shrunk by 0, 8 or 16% at either end; each candidate's codes
    // refitted as x ~ d u + m (two-parameter least squares), both rounded to f16.
    for (double cut_lo : {0.0, 0.08, 0.16})
      for (double cut_hi : {0.0, 0.08, 0.16}) {
        const double lo = lo0 + (hi0 - lo0) * cut_lo, hi = hi0 - (hi0 - lo0) * cut_hi;
        if (!(hi > lo)) continue;
        const double step = (hi - lo) / 15.0;
        // Weighted two-parameter least squares (weights h, or 1).
        double sw = 0, su = 0, suu = 0, sx = 0, sxu = 0;
        for (int j = 0; j < kBlock; ++j) {
          const double c = std::clamp(std::nearbyint((x[j] - lo) / step), 0.0, 15.0), w = h ? h[j] : 1.0;
          sw += w;
          su += w * c;
          suu += w * c * c;
          sx += w * x[j];
          sxu += w * x[j] * c;
        }
        const double det = sw * suu - su * su;
        if (!(det > 0.0)) continue;
        const double fd = (sw * sxu - su * sx) / det, fm = (sx - fd * su) / sw;
        const float cd = f16_round(static_cast<float>(fd)), cm = f16_round(static_cast<float>(fm));
        if (!(cd > 0.0f) || !std::isfinite(cd) || !std::isfinite(cm)) continue;
        int cu[kBlock];
        const double e = q4_1_nearest(x, h, cd, cm, cu);
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

void quantize_gguf_blocks(uint32_t type, const float* x, int64_t n, bool search, std::byte* out,
                          const float* importance) {
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
    const float* hb = importance ? importance + b * kBlock : nullptr;
    if (type == ggml_type::Q8_0) search ? q8_0_searched(xb, hb, ob) : q8_0_reference(xb, ob);
    else if (type == ggml_type::Q4_0) q4_0(xb, hb, search, ob);
    else q4_1(xb, hb, search, ob);
  }
}

}  // namespace modelpress::quant
