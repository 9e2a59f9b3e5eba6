// LLM.int8() weights (Dettmers et al. 2022), quantized exactly as bitsandbytes quantizes a
// weight (int8_vectorwise_quant, backends/default/ops.py):
//   absmax[n] = max_k |w[n][k]|,  q[n][k] = round_half_even(w[n][k] * ((1 / absmax[n]) * 127))
// (in f32, with torch's evaluation order of `127.0 / row_stats`),
// so a checkpoint written here holds the int8 codes bitsandbytes itself would compute.
// SCB = absmax (not 127 / absmax); the layer keeps scale8 = absmax / 127. The outlier
// decomposition happens at run time on activations (threshold), not here.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/error.h"
#include "kernels/cpu_features.h"
#include "quant/packed_layer.h"
#include "quant/rtn.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {
namespace {

// Row readers: element i of a row straight from the tensor's bytes (possibly unaligned,
// hence memcpy, which compiles to plain loads). Reading BF16 and F32 in place saves a pass
// through a float buffer on the hot path; other dtypes are converted into one first.
// magnitude(i) is |element i| as bits, ordered like the values it encodes, so the row
// absmax is an integer max (vectorizable; a float max reduction is not, without
// -ffast-math) and `magnitude >= kInfOrNan` finds NaN and Inf in the same pass.
struct Bf16Reader {
  using Bits = int16_t;
  static constexpr Bits kInfOrNan = 0x7f80;
  const std::byte* p;
  Bits magnitude(int64_t i) const {
    uint16_t b;
    std::memcpy(&b, p + 2 * i, 2);
    return static_cast<Bits>(b & 0x7fff);
  }
  float value(int64_t i) const {
    uint16_t b;
    std::memcpy(&b, p + 2 * i, 2);
    return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
  }
  static float from_magnitude(Bits m) { return std::bit_cast<float>(static_cast<uint32_t>(m) << 16); }
};

struct F32Reader {
  using Bits = int32_t;
  static constexpr Bits kInfOrNan = 0x7f800000;
  const std::byte* p;
  Bits magnitude(int64_t i) const {
    uint32_t b;
    std::memcpy(&b, p + 4 * i, 4);
    return static_cast<Bits>(b & 0x7fffffffu);
  }
  float value(int64_t i) const {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  static float from_magnitude(Bits m) { return std::bit_cast<float>(static_cast<uint32_t>(m)); }
};

// One row: codes into q, returns absmax, or a negative value for a non-finite row.
// always_inline: each caller below compiles it for its own instruction set.
template <class Reader>
[[gnu::always_inline]] inline float quantize_row_int8(const Reader& row, int64_t k, int8_t* q) {
  typename Reader::Bits m = 0;
  for (int64_t i = 0; i < k; ++i) {
    const auto v = row.magnitude(i);
    m = v > m ? v : m;
  }
  if (m >= Reader::kInfOrNan) return -1.0f;
  const float absmax = Reader::from_magnitude(m);
  if (absmax == 0.0f) {
    // bitsandbytes would compute 0 * (127 / 0) = NaN here; an all-zero row is all-zero codes.
    std::memset(q, 0, static_cast<size_t>(k));
    return 0.0f;
  }
  // torch evaluates bitsandbytes' `127.0 / row_stats` as reciprocal(row_stats) * 127: two
  // roundings, not one. Doing the same keeps the codes bit-identical to bitsandbytes'
  // (a single correctly rounded 127 / absmax flips about one tie in 10^4 weights).
  const float inv = (1.0f / absmax) * 127.0f;
  if (inv <= std::numeric_limits<float>::max()) {
    // The hot loop: widen, multiply, round (two adds), clamp, narrow; SSE2 vectorizes it.
    for (int64_t i = 0; i < k; ++i) {
      const float r = std::clamp(round_half_even(row.value(i) * inv), -127.0f, 127.0f);
      q[i] = static_cast<int8_t>(static_cast<int>(r));
    }
  } else {
    // absmax below 127 / FLT_MAX (subnormal rows): 1 / absmax overflows f32.
    for (int64_t i = 0; i < k; ++i) {
      const double r = std::nearbyint(static_cast<double>(row.value(i)) * 127.0 / static_cast<double>(absmax));
      q[i] = static_cast<int8_t>(std::clamp(r, -127.0, 127.0));
    }
  }
  return absmax;
}

// BF16, the dtype of nearly every checkpoint, also gets an AVX2 build of the row loop
// (twice the lanes; it is compute-bound once the row is in cache), picked at run time so the
// binary still runs on any x86-64. AVX2 only, no FMA: a fused w * inv + 1.5 * 2^23 would
// round once instead of twice and change ties.
#if defined(__x86_64__)
[[gnu::target("avx2")]] float quantize_bf16_row_avx2(const std::byte* p, int64_t k, int8_t* q) {
  return quantize_row_int8(Bf16Reader{p}, k, q);
}
#endif
float quantize_bf16_row(const std::byte* p, int64_t k, int8_t* q) { return quantize_row_int8(Bf16Reader{p}, k, q); }

using Bf16RowFn = float (*)(const std::byte*, int64_t, int8_t*);
Bf16RowFn pick_bf16_row() {
#if defined(__x86_64__)
  if (kernels::cpu_features().avx2_fma) return quantize_bf16_row_avx2;
#endif
  return quantize_bf16_row;
}

}  // namespace

PackedLayer quantize_llm_int8(const std::string& name, const Tensor& weight, const Tensor* bias,
                              const LlmInt8Options& options) {
  const std::string tensor = name + ".weight";
  check_weight(tensor, weight);
  if (!(options.threshold >= 0.0f) || !std::isfinite(options.threshold))
    throw Error(tensor + ": LLM.int8 threshold " + std::to_string(options.threshold) + " must be finite and >= 0");
  PackedLayer layer;
  layer.name = name;
  layer.format = kernels::LinearFormat::LlmInt8;
  layer.n = weight.shape()[0];
  layer.k = weight.shape()[1];
  layer.threshold = options.threshold;
  const int64_t n = layer.n, k = layer.k;
  layer.q8.resize(static_cast<size_t>(n * k));
  layer.scale8.resize(static_cast<size_t>(n));
  std::vector<uint8_t> bad(static_cast<size_t>(n), 0);  // one byte per row: no sharing between threads
  const DType dt = weight.dtype();
  const std::byte* data = weight.data();
  static const Bf16RowFn bf16_row = pick_bf16_row();
  for_each_row(n, k, [&](int64_t r, float* scratch) {
    int8_t* q = layer.q8.data() + r * k;
    float absmax;
    if (dt == DType::BF16) {
      absmax = bf16_row(data + r * k * 2, k, q);
    } else if (dt == DType::F32) {
      absmax = quantize_row_int8(F32Reader{data + r * k * 4}, k, q);
    } else {
      load_row(weight, r, scratch);
      absmax = quantize_row_int8(F32Reader{reinterpret_cast<const std::byte*>(scratch)}, k, q);
    }
    if (absmax < 0.0f) bad[static_cast<size_t>(r)] = 1;
    else layer.scale8[static_cast<size_t>(r)] = absmax / 127.0f;
  });
  if (const auto it = std::find(bad.begin(), bad.end(), 1); it != bad.end())
    fail_nonfinite(tensor, weight, it - bad.begin());
  layer.bias = read_bias(name + ".bias", bias, n);
  return layer;
}

}  // namespace modelpress::quant
