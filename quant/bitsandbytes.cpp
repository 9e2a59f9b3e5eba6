// bitsandbytes' LLM.int8 checkpoint convention, as transformers saves and loads it
// (Linear8bitLt._save_to_state_dict; transformers' Bnb8bitDeserialize):
//   <p>.weight         int8 (N, K)   CB, row-major
//   <p>.SCB            f32 (N)       row absmax: w ~= CB * SCB / 127
//   <p>.weight_format  u8 scalar 0   "row" layout (the only one bitsandbytes >= 0.45 has)
// config.json quantization_config: BitsAndBytesConfig.to_dict() of load_in_8bit.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/checkpoint.h"
#include "io/error.h"
#include "quant/encodings.h"

namespace modelpress::quant {

float scb_from_scale(float scale) {
  // The pass divides the absmax a by 127 (scale = fl(a / 127)); a loader divides SCB by 127.
  // Any SCB with fl(SCB / 127) == scale reproduces the layer exactly, but bitsandbytes' own
  // SCB is a itself, so find a among the few floats near 127 * scale that qualify. About one
  // a in 100 shares its quotient with a neighbour; then the one with the shortest mantissa
  // wins, which is a whenever the weight was F16 or BF16 (a has at most 11 significant
  // bits, and of two neighbouring floats at most one ends in 13 zero bits). For F32
  // weights the tie stays ambiguous and SCB may be a's neighbour: one ulp, and the same
  // scale.
  if (!(scale > 0.0f) || !std::isfinite(scale)) return scale * 127.0f;  // 0 stays 0 (all-zero row)
  const double target = static_cast<double>(scale) * 127.0;
  float best = static_cast<float>(target);
  int best_zeros = -1;
  double best_dist = std::numeric_limits<double>::infinity();
  float s = static_cast<float>(target);
  for (int i = 0; i < 4; ++i) s = std::nextafter(s, 0.0f);
  for (int i = 0; i < 9; ++i, s = std::nextafter(s, std::numeric_limits<float>::infinity())) {
    if (s / 127.0f != scale) continue;
    uint32_t bits;
    std::memcpy(&bits, &s, 4);
    const int zeros = std::countr_zero(bits | 0x00800000u);  // trailing zeros of the mantissa
    const double d = std::abs(static_cast<double>(s) - target);
    if (zeros > best_zeros || (zeros == best_zeros && d < best_dist)) best = s, best_zeros = zeros, best_dist = d;
  }
  return best;
}

void encode_bitsandbytes(PackedLayer&& layer, NamedTensors& out) {
  const int64_t n = layer.n, k = layer.k;
  if (static_cast<int64_t>(layer.q8.size()) != n * k || static_cast<int64_t>(layer.scale8.size()) != n)
    throw Error(layer.name + ": LLM.int8 layer buffers do not match its shape [" + std::to_string(n) + ", " +
                std::to_string(k) + "]");
  std::vector<float> scb(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) scb[static_cast<size_t>(r)] = scb_from_scale(layer.scale8[static_cast<size_t>(r)]);
  out.emplace_back(layer.name + ".weight", owning_tensor(std::move(layer.q8), DType::I8, {n, k}));
  out.emplace_back(layer.name + ".SCB", owning_tensor(std::move(scb), DType::F32, {n}));
  out.emplace_back(layer.name + ".weight_format", owning_tensor(std::vector<uint8_t>{0}, DType::U8, {}));
}

nlohmann::json bitsandbytes_config(const PackedLayer* example, const std::vector<std::string>& skipped) {
  // Every key BitsAndBytesConfig.to_dict() writes (transformers 5.x), so that the saved
  // config reads back as the same object; the 4-bit keys keep their defaults.
  nlohmann::json c;
  c["quant_method"] = "bitsandbytes";
  c["_load_in_8bit"] = true;
  c["_load_in_4bit"] = false;
  c["llm_int8_threshold"] = example ? example->threshold : 6.0f;
  // Full module names: transformers matches them as a prefix up to a module boundary or
  // as a suffix, so "lm_head" and "model.layers.0.mlp.down_proj" each name one module.
  c["llm_int8_skip_modules"] = skipped;
  c["llm_int8_enable_fp32_cpu_offload"] = false;
  c["llm_int8_has_fp16_weight"] = false;
  c["bnb_4bit_quant_type"] = "fp4";
  c["bnb_4bit_use_double_quant"] = false;
  c["bnb_4bit_compute_dtype"] = "float32";
  c["bnb_4bit_quant_storage"] = "uint8";
  c["load_in_4bit"] = false;
  c["load_in_8bit"] = true;
  return c;
}

PackedLayer load_bitsandbytes(const Checkpoint& ck, const std::string& name) {
  const CheckpointTensor& w = require_tensor(ck, name + ".weight", "the int8 weight of a bitsandbytes layer");
  const CheckpointTensor& scb = require_tensor(ck, name + ".SCB", "the row absmax of a bitsandbytes layer");
  if (w.dtype != DType::I8 || w.shape.size() != 2)
    throw Error(ck.folder() + ": " + w.name + " is " + std::string(dtype_name(w.dtype)) + " " + shape_to_string(w.shape) +
                ", a bitsandbytes int8 weight is I8 (out, in)");
  const int64_t n = w.shape[0], k = w.shape[1];
  if (scb.shape != Shape{n} || !dtype_is_float(scb.dtype))
    throw Error(ck.folder() + ": " + scb.name + " is " + std::string(dtype_name(scb.dtype)) + " " +
                shape_to_string(scb.shape) + ", expected a float vector of " + std::to_string(n));
  if (const CheckpointTensor* f = ck.find(name + ".weight_format")) {
    const std::vector<float> v = read_f32(ck, *f);
    if (v.size() != 1 || v[0] != 0.0f)
      throw Error(ck.folder() + ": " + f->name + " is not 0 (\"row\"); only the row-major int8 layout is supported");
  }
  PackedLayer layer;
  layer.name = name;
  layer.format = kernels::LinearFormat::LlmInt8;
  layer.n = n;
  layer.k = k;
  const auto& cfg = ck.config();
  if (cfg.is_object() && cfg.contains("quantization_config")) {
    const auto& qc = cfg["quantization_config"];
    if (qc.is_object() && qc.contains("llm_int8_threshold") && qc["llm_int8_threshold"].is_number())
      layer.threshold = qc["llm_int8_threshold"].get<float>();
  }
  const Tensor q = ck.read(w);
  layer.q8.resize(static_cast<size_t>(n * k));
  if (n * k > 0) std::memcpy(layer.q8.data(), q.data(), static_cast<size_t>(n * k));
  layer.scale8 = read_f32(ck, scb);
  for (float& s : layer.scale8) {
    if (!std::isfinite(s) || s < 0)
      throw Error(ck.folder() + ": " + scb.name + " holds " + std::to_string(s) + "; SCB must be finite and >= 0");
    s /= 127.0f;
  }
  read_bias_into(ck, name, layer);
  return layer;
}

}  // namespace modelpress::quant
