#include "quant/rtn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "io/error.h"
#include "io/float_convert.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {
namespace {

void check_bits(int bits, int lo, int hi, const char* what) {
  if (bits < lo || bits > hi)
    throw Error(std::string(what) + ": " + std::to_string(bits) + " bits is outside " + std::to_string(lo) + ".." +
                std::to_string(hi));
}

}  // namespace

IntGrid int_grid(int bits, bool symmetric, SymmetricGrid grid) {
  check_bits(bits, 2, 8, "quantization grid");
  const int half = 1 << (bits - 1);
  if (symmetric && grid == SymmetricGrid::Restricted) return {-(half - 1), half - 1};
  return {-half, half - 1};
}

float scale_epsilon(DType dtype) {
  switch (dtype) {
    case DType::F32: return std::numeric_limits<float>::epsilon();
    case DType::F16: return 0x1p-10f;
    case DType::BF16: return 0x1p-7f;
    default: throw Error("scale dtype " + std::string(dtype_name(dtype)) + " is not F32, F16 or BF16");
  }
}

float round_scale_up(float s, DType dtype) {
  switch (dtype) {
    case DType::F32: return s;
    case DType::F16: {
      uint16_t h = f32_to_f16(s);
      if (f16_to_f32(h) < s) ++h;  // positive halves order like their bits
      const float r = f16_to_f32(h);
      if (!std::isfinite(r)) throw Error("scale " + std::to_string(s) + " does not fit in F16");
      return r;
    }
    case DType::BF16: {
      uint16_t h = f32_to_bf16(s);
      if (bf16_to_f32(h) < s) ++h;
      const float r = bf16_to_f32(h);
      if (!std::isfinite(r)) throw Error("scale " + std::to_string(s) + " does not fit in BF16");
      return r;
    }
    default: throw Error("scale dtype " + std::string(dtype_name(dtype)) + " is not F32, F16 or BF16");
  }
}

GroupParams choose_params(float min_value, float max_value, const RtnOptions& options) {
  const IntGrid grid = int_grid(options.bits, options.symmetric, options.grid);
  // 0 must be exactly representable (padding, pruned weights, and what kernels assume), so
  // the range always includes it, as compressed-tensors' calculate_qparams does.
  const float lo = std::min(min_value, 0.0f), hi = std::max(max_value, 0.0f);
  GroupParams p{0.0f, 0};
  if (options.symmetric) {
    const float absmax = std::max(-lo, hi);
    const float levels = options.grid == SymmetricGrid::Restricted ? static_cast<float>(grid.hi)
                                                                   : static_cast<float>(grid.hi - grid.lo) / 2.0f;
    p.scale = absmax / levels;
  } else {
    // In double: hi - lo overflows f32 for weights near +-FLT_MAX; the quotient does not.
    p.scale = static_cast<float>((static_cast<double>(hi) - lo) / (grid.hi - grid.lo));
  }
  // An all-zero group: any positive scale gives q = 0; epsilon is what compressed-tensors
  // writes, and it keeps every later division finite.
  p.scale = p.scale > 0.0f ? round_scale_up(p.scale, options.scale_dtype) : scale_epsilon(options.scale_dtype);
  if (!options.symmetric) {
    // With the stored (rounded-up) scale, so that the codes reproduce [lo, hi] to half a step.
    const float z = round_half_even(static_cast<float>(grid.lo) - lo / p.scale);
    p.zero = std::clamp(static_cast<int>(z), grid.lo, grid.hi);
  }
  return p;
}

void quantize_values(const float* w, int64_t count, GroupParams params, IntGrid grid, int8_t* q) {
  const float lo = static_cast<float>(grid.lo - params.zero), hi = static_cast<float>(grid.hi - params.zero);
  const float zero = static_cast<float>(params.zero);
  for (int64_t i = 0; i < count; ++i) {
    // Division, not multiplication by a reciprocal: w / scale is correctly rounded, so a
    // tie in exact arithmetic stays a tie and goes to even, as torch.round(w / scale) does.
    const float r = std::clamp(round_half_even(w[i] / params.scale), lo, hi);
    q[i] = static_cast<int8_t>(static_cast<int>(r + zero));
  }
}

namespace {

// The scale dtype's value nearest to s (> 0, finite); the rounded-up one where the nearest
// would be 0. A searched scale need not bound anything, so nearest is the better choice.
float round_scale_nearest(float s, DType dtype) {
  float r = s;
  if (dtype == DType::F16) r = f16_to_f32(f32_to_f16(s));
  else if (dtype == DType::BF16) r = bf16_to_f32(f32_to_bf16(s));
  return r > 0.0f && std::isfinite(r) ? r : round_scale_up(s, dtype);
}

// Sums over a group for the codes u = clamp(round(x * inv) + zero, grid): sum x*u, u*u, u
// and x, for the closed-form refits. Eight lanes, as group_range in w4a16.cpp, so the loop
// vectorizes without reassociating a single sum; the products are summed in double.
struct CodeSums {
  double xu = 0, uu = 0, u = 0, x = 0;
};
CodeSums code_sums(const float* x, int64_t count, float inv, float zero, IntGrid grid) {
  const float lo = static_cast<float>(grid.lo), hi = static_cast<float>(grid.hi);
  double xu[8] = {}, uu[8] = {}, su[8] = {}, sx[8] = {};
  int64_t i = 0;
  auto step = [&](int lane, float v) {
    const float u = std::clamp(round_half_even(v * inv) + zero, lo, hi);
    xu[lane] += static_cast<double>(v) * u;
    uu[lane] += static_cast<double>(u) * u;
    su[lane] += u;
    sx[lane] += v;
  };
  for (; i + 8 <= count; i += 8)
    for (int j = 0; j < 8; ++j) step(j, x[i + j]);
  for (; i < count; ++i) step(0, x[i]);
  CodeSums c;
  for (int j = 0; j < 8; ++j) {
    c.xu += xu[j];
    c.uu += uu[j];
    c.u += su[j];
    c.x += sx[j];
  }
  return c;
}

}  // namespace

double group_error(const float* x, int64_t count, GroupParams params, IntGrid grid) {
  const float lo = static_cast<float>(grid.lo - params.zero), hi = static_cast<float>(grid.hi - params.zero);
  double e[8] = {};
  int64_t i = 0;
  auto step = [&](int lane, float v) {
    // As quantize_values: division, then the code relative to the zero point.
    const float r = std::clamp(round_half_even(v / params.scale), lo, hi);
    const double d = static_cast<double>(v) - static_cast<double>(r) * params.scale;
    e[lane] += d * d;
  };
  for (; i + 8 <= count; i += 8)
    for (int j = 0; j < 8; ++j) step(j, x[i + j]);
  for (; i < count; ++i) step(0, x[i]);
  double total = 0;
  for (double v : e) total += v;
  return total;
}

GroupParams search_params(const float* x, int64_t count, float min_value, float max_value, const RtnOptions& options) {
  const GroupParams plain = choose_params(min_value, max_value, options);
  const IntGrid grid = int_grid(options.bits, options.symmetric, options.grid);
  const float lo = std::min(min_value, 0.0f), hi = std::max(max_value, 0.0f);
  if (count == 0 || !(hi > lo)) return plain;  // an all-zero group: nothing to search
  GroupParams best = plain;
  double best_error = group_error(x, count, plain, grid);
  // A candidate's refitted scale (and real-valued zero point), made storable: the scale
  // rounded in the scale dtype, the zero rounded into the grid (so 0 stays exact).
  auto consider = [&](double scale, double zero) {
    if (!(scale > 0.0) || !std::isfinite(scale)) return;
    GroupParams p{round_scale_nearest(static_cast<float>(scale), options.scale_dtype), 0};
    if (!options.symmetric)
      p.zero = std::clamp(static_cast<int>(round_half_even(static_cast<float>(zero))), grid.lo, grid.hi);
    const double e = group_error(x, count, p, grid);
    if (e < best_error) {
      best_error = e;
      best = p;
    }
  };
  if (options.symmetric) {
    // Clipping ratios: the group's absmax mapped to levels * (1 + t / 75) codes, t from -10 to
    // 10 (at 4 bits, 7.5 +- 1 code in tenths; the same ratios, 0.87-1.13, at every width).
    // Above the range rule's the top code clips and every other value gets a finer step;
    // below it the outermost code is left to the absmax alone. For each candidate's codes
    // the least-squares scale is sum(x u) / sum(u u), with error sum(x x) - sum(x u)^2 /
    // sum(u u): the candidate maximizing sum(x u)^2 / sum(u u) is the best refit.
    const float absmax = std::max(-lo, hi);
    const float levels = options.grid == SymmetricGrid::Restricted ? static_cast<float>(grid.hi)
                                                                   : static_cast<float>(grid.hi - grid.lo) / 2.0f;
    double best_score = 0.0, best_scale = 0.0;
    for (int t = -10; t <= 10; ++t) {
      const float mapped = levels * (1.0f + static_cast<float>(t) / 75.0f);
      const CodeSums c = code_sums(x, count, mapped / absmax, 0.0f, grid);
      if (!(c.uu > 0.0) || !(c.xu > 0.0)) continue;
      const double score = c.xu * c.xu / c.uu;
      if (score > best_score) {
        best_score = score;
        best_scale = c.xu / c.uu;
      }
    }
    consider(best_scale, 0.0);
    return best;
  }
  // Asymmetric: the range [lo, hi] shrunk at either end by 0, 8 or 16% (clipping the tails),
  // each candidate's codes u refitted as x ~ s u + m in closed form (two-parameter least
  // squares), and its zero point -m / s rounded into the grid.
  const double n = static_cast<double>(count);
  for (float cut_lo : {0.0f, 0.08f, 0.16f})
    for (float cut_hi : {0.0f, 0.08f, 0.16f}) {
      const GroupParams p = choose_params(lo * (1.0f - cut_lo), hi * (1.0f - cut_hi), options);
      const CodeSums c = code_sums(x, count, 1.0f / p.scale, static_cast<float>(p.zero), grid);
      const double det = n * c.uu - c.u * c.u;
      if (!(det > 0.0)) continue;  // every value on one code: the range rule's answer is exact enough
      const double s = (n * c.xu - c.u * c.x) / det, m = (c.x - s * c.u) / n;
      consider(s, -m / s);
    }
  return best;
}

RtnWeight quantize_rtn(std::span<const float> w, int64_t n, int64_t k, const RtnOptions& options) {
  if (n < 0 || k < 0 || static_cast<int64_t>(w.size()) != n * k)
    throw Error("quantize_rtn: " + std::to_string(w.size()) + " values for shape [" + std::to_string(n) + ", " +
                std::to_string(k) + "]");
  const IntGrid grid = int_grid(options.bits, options.symmetric, options.grid);
  scale_epsilon(options.scale_dtype);  // validates the dtype up front
  RtnWeight out;
  out.n = n;
  out.k = k;
  out.bits = options.bits;
  out.granularity = options.granularity;
  out.group = k;
  if (options.granularity == Granularity::Group) {
    if (options.group_size <= 0 || k % options.group_size != 0)
      throw Error("group size " + std::to_string(options.group_size) + " does not divide the " + std::to_string(k) +
                  " input columns");
    out.group = options.group_size;
  }
  if (const int64_t bad = first_nonfinite(w.data(), n * k); bad >= 0)
    throw Error("quantize_rtn: " + describe_nonfinite(w[static_cast<size_t>(bad)]) + " at " +
                index_text(bad / std::max<int64_t>(k, 1), bad % std::max<int64_t>(k, 1)));
  out.q.resize(static_cast<size_t>(n * k));

  if (options.granularity == Granularity::Tensor) {
    float lo = 0.0f, hi = 0.0f;
    for (float v : w) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const GroupParams p = options.scale_search ? search_params(w.data(), n * k, lo, hi, options)
                                               : choose_params(lo, hi, options);
    out.scales = {p.scale};
    if (!options.symmetric) out.zeros = {static_cast<int8_t>(p.zero)};
    quantize_values(w.data(), n * k, p, grid, out.q.data());
    return out;
  }
  const int64_t groups = k == 0 ? 0 : k / out.group;
  out.scales.resize(static_cast<size_t>(n * groups));
  if (!options.symmetric) out.zeros.resize(out.scales.size());
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w.data() + r * k + g * out.group;
      float lo = 0.0f, hi = 0.0f;
      for (int64_t i = 0; i < out.group; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
      }
      const GroupParams p = options.scale_search ? search_params(x, out.group, lo, hi, options)
                                                 : choose_params(lo, hi, options);
      out.scales[static_cast<size_t>(r * groups + g)] = p.scale;
      if (!options.symmetric) out.zeros[static_cast<size_t>(r * groups + g)] = static_cast<int8_t>(p.zero);
      quantize_values(x, out.group, p, grid, out.q.data() + r * k + g * out.group);
    }
  }
  return out;
}

std::vector<float> dequantize_rtn(const RtnWeight& q) {
  std::vector<float> w(static_cast<size_t>(q.n * q.k));
  for (int64_t r = 0; r < q.n; ++r)
    for (int64_t c = 0; c < q.k; ++c) {
      const int64_t p = q.param_index(r, c);
      const int zero = q.zeros.empty() ? 0 : q.zeros[static_cast<size_t>(p)];
      w[static_cast<size_t>(r * q.k + c)] =
          static_cast<float>(q.q[static_cast<size_t>(r * q.k + c)] - zero) * q.scales[static_cast<size_t>(p)];
    }
  return w;
}

// ---- Packing -------------------------------------------------------------------------

std::vector<uint8_t> pack_nibbles(std::span<const int8_t> q, int64_t rows, int64_t cols) {
  if (static_cast<int64_t>(q.size()) != rows * cols) throw Error("pack_nibbles: size does not match the shape");
  const int64_t row_bytes = (cols + 1) / 2;
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = q.data() + r * cols;
    uint8_t* dst = out.data() + r * row_bytes;
    for (int64_t c = 0; c < cols; ++c) {
      const auto u = static_cast<uint8_t>((src[c] + 8) & 0xF);
      dst[c / 2] |= static_cast<uint8_t>(c % 2 == 0 ? u : u << 4);
    }
  }
  return out;
}

std::vector<int8_t> unpack_nibbles(std::span<const uint8_t> packed, int64_t rows, int64_t cols) {
  const int64_t row_bytes = (cols + 1) / 2;
  if (static_cast<int64_t>(packed.size()) != rows * row_bytes) throw Error("unpack_nibbles: size does not match the shape");
  std::vector<int8_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t byte = packed[static_cast<size_t>(r * row_bytes + c / 2)];
      const int u = c % 2 == 0 ? (byte & 0xF) : (byte >> 4);
      out[static_cast<size_t>(r * cols + c)] = static_cast<int8_t>(u - 8);
    }
  return out;
}

namespace {

// Element i of a stream -> bits [i*b, i*b+b) of little-endian 32-bit words. `get(i)` gives
// the signed code; `words` points at the stream's first word, `stride` words apart.
template <class Get>
void pack_stream(Get get, int64_t count, int bits, int32_t* words, int64_t stride) {
  const uint32_t offset = 1u << (bits - 1), mask = (1u << bits) - 1;
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t u = (static_cast<uint32_t>(get(i) + static_cast<int>(offset))) & mask;
    const int64_t bit = i * bits;
    const int64_t w = bit / 32;
    const int shift = static_cast<int>(bit % 32);
    auto* word = reinterpret_cast<uint32_t*>(words + w * stride);
    *word |= u << shift;
    if (shift + bits > 32) {  // straddles into the next word (b not a power of two)
      auto* next = reinterpret_cast<uint32_t*>(words + (w + 1) * stride);
      *next |= u >> (32 - shift);
    }
  }
}

template <class Put>
void unpack_stream(Put put, int64_t count, int bits, const int32_t* words, int64_t stride) {
  const int offset = 1 << (bits - 1);
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bit = i * bits;
    const int64_t w = bit / 32;
    const int shift = static_cast<int>(bit % 32);
    uint32_t u = static_cast<uint32_t>(words[w * stride]) >> shift;
    if (shift + bits > 32) u |= static_cast<uint32_t>(words[(w + 1) * stride]) << (32 - shift);
    put(i, static_cast<int8_t>(static_cast<int>(u & mask) - offset));
  }
}

void check_pack_args(int bits, size_t size, int64_t rows, int64_t cols, const char* what) {
  check_bits(bits, 1, 8, what);
  if (rows < 0 || cols < 0 || static_cast<int64_t>(size) != rows * cols)
    throw Error(std::string(what) + ": size does not match the shape");
}

}  // namespace

std::vector<int32_t> pack_int32(std::span<const int8_t> q, int64_t rows, int64_t cols, int bits) {
  check_pack_args(bits, q.size(), rows, cols, "pack_int32");
  const int64_t words = packed_int32_words(cols, bits);
  std::vector<int32_t> out(static_cast<size_t>(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = q.data() + r * cols;
    pack_stream([&](int64_t i) { return static_cast<int>(src[i]); }, cols, bits, out.data() + r * words, 1);
  }
  return out;
}

std::vector<int8_t> unpack_int32(std::span<const int32_t> packed, int64_t rows, int64_t cols, int bits) {
  check_bits(bits, 1, 8, "unpack_int32");
  const int64_t words = packed_int32_words(cols, bits);
  if (static_cast<int64_t>(packed.size()) != rows * words)
    throw Error("unpack_int32: " + std::to_string(packed.size()) + " words for " + std::to_string(rows) + " rows of " +
                std::to_string(cols) + " " + std::to_string(bits) + "-bit values");
  std::vector<int8_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    int8_t* dst = out.data() + r * cols;
    unpack_stream([&](int64_t i, int8_t v) { dst[i] = v; }, cols, bits, packed.data() + r * words, 1);
  }
  return out;
}

std::vector<int32_t> pack_int32_dim0(std::span<const int8_t> q, int64_t rows, int64_t cols, int bits) {
  check_pack_args(bits, q.size(), rows, cols, "pack_int32_dim0");
  const int64_t words = packed_int32_words(rows, bits);
  std::vector<int32_t> out(static_cast<size_t>(words * cols), 0);
  for (int64_t c = 0; c < cols; ++c)
    pack_stream([&](int64_t i) { return static_cast<int>(q[static_cast<size_t>(i * cols + c)]); }, rows, bits,
                out.data() + c, cols);
  return out;
}

std::vector<int8_t> unpack_int32_dim0(std::span<const int32_t> packed, int64_t rows, int64_t cols, int bits) {
  check_bits(bits, 1, 8, "unpack_int32_dim0");
  const int64_t words = packed_int32_words(rows, bits);
  if (static_cast<int64_t>(packed.size()) != words * cols)
    throw Error("unpack_int32_dim0: size does not match the shape");
  std::vector<int8_t> out(static_cast<size_t>(rows * cols));
  for (int64_t c = 0; c < cols; ++c)
    unpack_stream([&](int64_t i, int8_t v) { out[static_cast<size_t>(i * cols + c)] = v; }, rows, bits,
                  packed.data() + c, cols);
  return out;
}

}  // namespace modelpress::quant
