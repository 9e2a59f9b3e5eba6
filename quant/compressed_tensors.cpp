// compressed-tensors (vLLM's checkpoint format), checked against compressed-tensors 0.20.0
// (compressors/naive_quantized, compressors/pack_quantized, quantization/lifecycle):
//
//   int-quantized (W8A8)    <p>.weight        int8 (N, K)
//                           <p>.weight_scale  (N, 1) in the weight's dtype
//   pack-quantized (W4A16)  <p>.weight_packed int32 (N, ceil(K * 4 / 32))  (pack_to_int32)
//                           <p>.weight_scale  (N, K / G) in the weight's dtype
//                           <p>.weight_shape  int64 [N, K]  (torch.tensor(weight.shape))
//                           <p>.weight_zero_point  int32 (ceil(N * 4 / 32), K / G), asymmetric
//                                             only: int8 zero points packed along dim 0
// Codes are signed (q in [-8, 7] at 4 bits) and dequantize as (q - zero_point) * scale; the
// packing stores q + 8. The kernels' W4Weight stores the same u = q + 8 nibbles, so for
// asymmetric layers zeros4 = zero_point + 8.
#include <cmath>
#include <cstring>
#include <regex>

#include "io/checkpoint.h"
#include "io/error.h"
#include "quant/encodings.h"
#include "quant/rtn.h"

namespace modelpress::quant {
namespace {

using kernels::LinearFormat;

Tensor scale_tensor(const std::vector<float>& scales, DType dtype, Shape shape) {
  // Exact: the passes rounded every scale to a value of `dtype` already.
  return Tensor::from_f32(scales, dtype, std::move(shape));
}

// `observer` names how the scales were chosen, in llm-compressor's terms: "minmax" (the range
// rule) or "mse" (its observer that searches shrink factors for the least error, what the
// scale search does). Readers do not use it; it tells a user how the checkpoint was made.
nlohmann::json weight_args(int bits, bool symmetric, const char* strategy, const nlohmann::json& group_size,
                           const char* observer = "minmax") {
  // QuantizationArgs.model_dump() keys (extra keys are forbidden by its pydantic model).
  return {{"num_bits", bits},          {"type", "int"},   {"symmetric", symmetric}, {"group_size", group_size},
          {"strategy", strategy},      {"dynamic", false}, {"observer", observer}};
}

}  // namespace

void encode_compressed_tensors(PackedLayer&& layer, NamedTensors& out) {
  const int64_t n = layer.n, k = layer.k;
  if (layer.format == LinearFormat::W8A8) {
    if (static_cast<int64_t>(layer.q8.size()) != n * k || static_cast<int64_t>(layer.scale8.size()) != n)
      throw Error(layer.name + ": W8A8 layer buffers do not match its shape");
    out.emplace_back(layer.name + ".weight", owning_tensor(std::move(layer.q8), DType::I8, {n, k}));
    out.emplace_back(layer.name + ".weight_scale", scale_tensor(layer.scale8, layer.scale_dtype, {n, 1}));
    return;
  }
  // W4A16
  if (layer.group <= 0 || k % layer.group != 0 || k % 2 != 0 ||
      static_cast<int64_t>(layer.packed4.size()) != n * (k / 2) ||
      static_cast<int64_t>(layer.scales4.size()) != n * (k / layer.group))
    throw Error(layer.name + ": W4A16 layer buffers do not match its shape and group size");
  const int64_t groups = k / layer.group;
  const int64_t words = packed_int32_words(k, 4);
  // Nibbles low-first in bytes and 4-bit fields low-first in little-endian int32 words are
  // the same bytes, so each row is a copy; rows whose K is not a multiple of 8 end in a
  // partly filled word whose unused nibbles stay 0 (pack_to_int32 pads with zeros too).
  std::vector<int32_t> packed(static_cast<size_t>(n * words), 0);
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(reinterpret_cast<std::byte*>(packed.data() + r * words), layer.packed4.data() + r * (k / 2),
                static_cast<size_t>(k / 2));
  out.emplace_back(layer.name + ".weight_packed", owning_tensor(std::move(packed), DType::I32, {n, words}));
  out.emplace_back(layer.name + ".weight_scale", scale_tensor(layer.scales4, layer.scale_dtype, {n, groups}));
  out.emplace_back(layer.name + ".weight_shape", owning_tensor(std::vector<int64_t>{n, k}, DType::I64, {2}));
  if (!layer.zeros4.empty()) {
    std::vector<int8_t> zp(layer.zeros4.size());
    for (size_t i = 0; i < zp.size(); ++i) zp[i] = static_cast<int8_t>(layer.zeros4[i] - 8);
    out.emplace_back(layer.name + ".weight_zero_point",
                     owning_tensor(pack_int32_dim0(zp, n, groups, 4), DType::I32, {packed_int32_words(n, 4), groups}));
  }
}

nlohmann::json compressed_tensors_config(LinearFormat format, const PackedLayer* example,
                                         const std::vector<std::string>& skipped) {
  nlohmann::json scheme;
  scheme["targets"] = {"Linear"};
  std::string storage;
  if (format == LinearFormat::W8A8) {
    storage = "int-quantized";
    scheme["weights"] = weight_args(8, true, "channel", nullptr);
    // Dynamic per-token int8 activations: what the W8A8 kernels (and vLLM's) compute.
    scheme["input_activations"] = {{"num_bits", 8},         {"type", "int"},     {"symmetric", true},
                                   {"group_size", nullptr}, {"strategy", "token"}, {"dynamic", true}};
  } else {
    storage = "pack-quantized";
    const int64_t group = example ? example->group : 128;
    const bool symmetric = example ? example->zeros4.empty() : true;
    scheme["weights"] = weight_args(4, symmetric, "group", group, example && example->searched_scales ? "mse" : "minmax");
    scheme["input_activations"] = nullptr;
  }
  scheme["output_activations"] = nullptr;
  scheme["format"] = nullptr;  // the top-level format applies
  nlohmann::json c;
  c["config_groups"] = {{"group_0", scheme}};
  c["format"] = storage;
  c["global_compression_ratio"] = nullptr;
  // Module names compressed-tensors matches exactly (or "re:" patterns, which we do not use).
  c["ignore"] = skipped;
  c["kv_cache_scheme"] = nullptr;
  c["quant_method"] = "compressed-tensors";
  c["quantization_status"] = "compressed";
  c["sparsity_config"] = nlohmann::json::object();
  c["transform_config"] = nlohmann::json::object();
  c["version"] = kCompressedTensorsVersion;
  return c;
}

namespace {

// The config group whose targets match module `name`, with compressed-tensors' priority
// (match_targets; the highest-priority scheme wins): an exact module name first, then a
// "re:" regex matched from the start of the name, then the class name "Linear" (which
// every layer modelpress reads is). Within one rank, the first group in key order. A
// generic "Linear" group must not shadow a later group aimed at specific layers.
nlohmann::json find_scheme(const Checkpoint& ck, const std::string& name) {
  const auto& cfg = ck.config();
  if (!cfg.is_object() || !cfg.contains("quantization_config") || !cfg["quantization_config"].is_object())
    throw Error(ck.folder() + ": config.json has no quantization_config; a compressed-tensors layer needs it");
  const auto& qc = cfg["quantization_config"];
  if (!qc.contains("config_groups") || !qc["config_groups"].is_object())
    throw Error(ck.folder() + ": quantization_config has no config_groups");
  const auto matches = [&](const std::string& t, int rank) {
    if (rank == 0) return t == name;
    if (rank == 2) return t == "Linear";
    if (t.rfind("re:", 0) != 0) return false;
    try {
      return std::regex_search(name, std::regex(t.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::regex_error& e) {
      throw Error(ck.folder() + ": quantization_config target '" + t +
                  "' is not a regular expression modelpress can read (ECMAScript): " + e.what());
    }
  };
  for (int rank = 0; rank < 3; ++rank)
    for (const auto& [group_name, scheme] : qc["config_groups"].items()) {
      if (!scheme.is_object() || !scheme.contains("targets") || !scheme["targets"].is_array()) continue;
      for (const auto& target : scheme["targets"])
        if (target.is_string() && matches(target.get<std::string>(), rank)) return scheme;
    }
  throw Error(ck.folder() + ": no config group of quantization_config targets " + name);
}

void check_shape(const Checkpoint& ck, const CheckpointTensor& t, const Shape& expected) {
  if (t.shape != expected)
    throw Error(ck.folder() + ": " + t.name + " has shape " + shape_to_string(t.shape) + ", expected " +
                shape_to_string(expected));
}

// Scales of `t` broadcast to (rows, groups): per-tensor scales ((1) or (1, 1)) repeat.
std::vector<float> read_scales(const Checkpoint& ck, const CheckpointTensor& t, int64_t rows, int64_t groups) {
  if (!dtype_is_float(t.dtype))
    throw Error(ck.folder() + ": " + t.name + " is " + std::string(dtype_name(t.dtype)) + ", scales must be float");
  std::vector<float> s = read_f32(ck, t);
  if (s.size() == 1 && rows * groups != 1) s.assign(static_cast<size_t>(rows * groups), s[0]);
  else check_shape(ck, t, t.shape.size() == 2 ? Shape{rows, groups} : Shape{rows * groups});
  for (float v : s)
    if (!std::isfinite(v) || v < 0)
      throw Error(ck.folder() + ": " + t.name + " holds " + std::to_string(v) + "; scales must be finite and >= 0");
  return s;
}

DType stored_scale_dtype(DType d) { return d == DType::F16 || d == DType::BF16 ? d : DType::F32; }

// One field of a layer's weight QuantizationArgs: `fallback` when absent or null (pydantic's
// default), an Error naming the layer when it has another JSON type. (const json::operator[]
// on a missing key is undefined behaviour, and json::value() throws a bare type_error on null.)
template <class T>
T weight_arg(const Checkpoint& ck, const std::string& name, const nlohmann::json& args, const char* key, T fallback) {
  const auto it = args.find(key);
  if (it == args.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(ck.folder() + ": quantization_config of " + name + ": weights." + key + " is " + it->dump() +
                ", which is not a valid value");
  }
}

// compressed-tensors' QuantizationArgs.validate_model_after: a missing strategy is inferred
// from group_size (none: tensor, > 0: group, -1: channel).
std::string weight_strategy(const Checkpoint& ck, const std::string& name, const nlohmann::json& args) {
  const std::string strategy = weight_arg(ck, name, args, "strategy", std::string());
  if (!strategy.empty()) return strategy;
  const int64_t group_size = weight_arg(ck, name, args, "group_size", int64_t{0});
  if (group_size > 0) return "group";
  if (group_size == -1) return "channel";
  return "tensor";
}

}  // namespace

PackedLayer load_compressed_tensors(const Checkpoint& ck, const std::string& name) {
  const nlohmann::json scheme = find_scheme(ck, name);
  const nlohmann::json args = scheme.value("weights", nlohmann::json());
  if (!args.is_object()) throw Error(ck.folder() + ": the config group of " + name + " has no weights arguments");
  const int bits = weight_arg(ck, name, args, "num_bits", 8);
  const bool symmetric = weight_arg(ck, name, args, "symmetric", true);
  const std::string strategy = weight_strategy(ck, name, args);
  if (weight_arg(ck, name, args, "type", std::string("int")) != "int")
    throw Error(ck.folder() + ": " + name + " is quantized to floats; modelpress reads integer compressed-tensors layers");
  if (ck.find(name + ".weight_g_idx"))
    throw Error(ck.folder() + ": " + name + " uses activation reordering (weight_g_idx), which modelpress does not read");

  PackedLayer layer;
  layer.name = name;
  const CheckpointTensor& scale_t = require_tensor(ck, name + ".weight_scale", "the scales of a compressed-tensors layer");
  layer.scale_dtype = stored_scale_dtype(scale_t.dtype);

  if (const CheckpointTensor* packed_t = ck.find(name + ".weight_packed")) {
    if (bits != 4)
      throw Error(ck.folder() + ": " + name + " is packed at " + std::to_string(bits) +
                  " bits; modelpress's packed layers are 4-bit (W4A16)");
    const CheckpointTensor& shape_t = require_tensor(ck, name + ".weight_shape", "the shape of a packed weight");
    const std::vector<float> dims = read_f32(ck, shape_t);
    if (dims.size() != 2 || dims[0] < 1 || dims[1] < 1)
      throw Error(ck.folder() + ": " + shape_t.name + " is not a 2-D shape");
    layer.format = LinearFormat::W4A16;
    layer.n = static_cast<int64_t>(dims[0]);
    layer.k = static_cast<int64_t>(dims[1]);
    const int64_t n = layer.n, k = layer.k;
    if (packed_t->dtype != DType::I32) throw Error(ck.folder() + ": " + packed_t->name + " is not I32");
    check_shape(ck, *packed_t, {n, packed_int32_words(k, 4)});
    if (strategy == "group") layer.group = weight_arg(ck, name, args, "group_size", int64_t{0});
    else if (strategy == "channel" || strategy == "tensor") layer.group = k;
    else throw Error(ck.folder() + ": " + name + " uses strategy '" + strategy + "', which modelpress does not read");
    if (layer.group <= 0 || k % layer.group != 0 || layer.group % 2 != 0)
      throw Error(ck.folder() + ": " + name + ": group size " + std::to_string(layer.group) +
                  " must be even and divide K = " + std::to_string(k));
    const int64_t groups = k / layer.group;
    layer.scales4 = read_scales(ck, scale_t, n, groups);
    const Tensor packed = ck.read(*packed_t);
    std::vector<int32_t> words(static_cast<size_t>(packed.numel()));
    if (!words.empty()) std::memcpy(words.data(), packed.data(), words.size() * 4);
    layer.packed4 = pack_nibbles(unpack_int32(words, n, k, 4), n, k);
    if (!symmetric) {
      const CheckpointTensor& zp_t = require_tensor(ck, name + ".weight_zero_point", "asymmetric quantization");
      std::vector<int8_t> zp;
      const Tensor z = ck.read(zp_t);
      if (zp_t.dtype == DType::I32) {  // packed along dim 0 (compressed-tensors >= 0.9)
        check_shape(ck, zp_t, {packed_int32_words(n, 4), groups});
        std::vector<int32_t> zw(static_cast<size_t>(z.numel()));
        std::memcpy(zw.data(), z.data(), zw.size() * 4);
        zp = unpack_int32_dim0(zw, n, groups, 4);
      } else if (zp_t.dtype == DType::I8) {  // unpacked, as older releases wrote it
        check_shape(ck, zp_t, {n, groups});
        zp.resize(static_cast<size_t>(n * groups));
        std::memcpy(zp.data(), z.data(), zp.size());
      } else {
        throw Error(ck.folder() + ": " + zp_t.name + " is " + std::string(dtype_name(zp_t.dtype)) + ", expected I32 or I8");
      }
      layer.zeros4.resize(zp.size());
      for (size_t i = 0; i < zp.size(); ++i) {
        if (zp[i] < -8 || zp[i] > 7)
          throw Error(ck.folder() + ": " + zp_t.name + " holds zero point " + std::to_string(zp[i]) + " outside [-8, 7]");
        layer.zeros4[i] = static_cast<uint8_t>(zp[i] + 8);
      }
    }
  } else {
    const CheckpointTensor& w = require_tensor(ck, name + ".weight", "the int8 weight of an int-quantized layer");
    if (w.dtype != DType::I8 || w.shape.size() != 2 || bits != 8)
      throw Error(ck.folder() + ": " + w.name + " is " + std::string(dtype_name(w.dtype)) + " " + shape_to_string(w.shape) +
                  " at " + std::to_string(bits) + " bits; modelpress reads int-quantized layers as 8-bit (out, in)");
    if (strategy != "channel" && strategy != "tensor")
      throw Error(ck.folder() + ": " + name + " uses strategy '" + strategy + "'; an int8 layer needs channel or tensor scales");
    if (const CheckpointTensor* zp_t = ck.find(name + ".weight_zero_point")) {
      for (float z : read_f32(ck, *zp_t))
        if (z != 0.0f)
          throw Error(ck.folder() + ": " + zp_t->name + " is nonzero; modelpress's W8A8 layers are symmetric");
    }
    layer.format = LinearFormat::W8A8;
    layer.n = w.shape[0];
    layer.k = w.shape[1];
    layer.scale8 = read_scales(ck, scale_t, layer.n, 1);
    const Tensor q = ck.read(w);
    layer.q8.resize(static_cast<size_t>(q.numel()));
    if (!layer.q8.empty()) std::memcpy(layer.q8.data(), q.data(), layer.q8.size());
  }
  read_bias_into(ck, name, layer);
  return layer;
}

}  // namespace modelpress::quant
