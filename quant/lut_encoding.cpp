// The palettized (LUT) checkpoint convention, written by `modelpress cluster` and read by
// validate, inspect and decompress (docs/CLUSTERING.md, docs/FORMATS.md):
//
//   <p>.weight_lut_indices  u8 (N, ceil(K * b / 8))  per-row LSB-first bit streams of b-bit
//                                                    indices (Core ML's packing, row by row)
//   <p>.weight_lut          f16 / f32 / i8 (T, 2^b)  one table per group of N / T rows
//   <p>.weight_lut_scale    f32 (T)                  i8 tables only: entry = code * scale
//   <p>.weight_row_scale    f16 / f32 (N)            optional per-row scale (channel scaling)
//   <p>.weight_shape        i64 [N, K]               the original shape, as compressed-tensors
//   w[n][k] = lut[n / (N / T)][idx[n][k]] * (row_scale ? row_scale[n] : 1)
// config.json quantization_config: quant_method "modelpress-palettization" with bits,
// group_size, lut_dtype, channel_scale, algorithm, original_dtype and ignore (modules kept).
#include <cmath>
#include <cstring>

#include "io/checkpoint.h"
#include "io/error.h"
#include "quant/encodings.h"

namespace modelpress::quant {

void encode_lut(PackedLayer&& layer, NamedTensors& out) {
  const int64_t n = layer.n, k = layer.k, entries = int64_t{1} << layer.lut_bits;
  const int64_t rb = kernels::lut_row_bytes(k, layer.lut_bits);
  if (layer.group <= 0 || n % layer.group != 0 || static_cast<int64_t>(layer.lut_indices.size()) != n * rb ||
      static_cast<int64_t>(layer.lut.size()) != (n / layer.group) * entries)
    throw Error(layer.name + ": LUT layer buffers do not match its shape, bits and group size");
  const int64_t tables = n / layer.group;
  out.emplace_back(layer.name + ".weight_lut_indices", owning_tensor(std::move(layer.lut_indices), DType::U8, {n, rb}));
  if (layer.lut_dtype == DType::I8) {
    out.emplace_back(layer.name + ".weight_lut", owning_tensor(std::move(layer.lut_q), DType::I8, {tables, entries}));
    out.emplace_back(layer.name + ".weight_lut_scale", owning_tensor(std::move(layer.lut_q_scale), DType::F32, {tables}));
  } else {
    // Exact: the pass rounded the table to this dtype already.
    out.emplace_back(layer.name + ".weight_lut", Tensor::from_f32(layer.lut, layer.lut_dtype, {tables, entries}));
  }
  if (!layer.lut_row_scale.empty())
    out.emplace_back(layer.name + ".weight_row_scale", Tensor::from_f32(layer.lut_row_scale, layer.scale_dtype, {n}));
  out.emplace_back(layer.name + ".weight_shape", owning_tensor(std::vector<int64_t>{n, k}, DType::I64, {2}));
}

nlohmann::json lut_config(const PackedLayer* example, const std::vector<std::string>& skipped,
                          const std::string& algorithm) {
  nlohmann::json j;
  j["quant_method"] = kLutQuantMethod;
  j["version"] = "1";
  if (example) {
    j["bits"] = example->lut_bits;
    j["group_size"] = example->group == example->n ? 0 : example->group;
    j["lut_dtype"] = std::string(dtype_name(example->lut_dtype));
    j["channel_scale"] = !example->lut_row_scale.empty();
    j["original_dtype"] = std::string(dtype_name(example->original_dtype));
  }
  j["algorithm"] = algorithm;
  j["ignore"] = skipped;
  return j;
}

namespace {

[[noreturn]] void bad(const Checkpoint& ck, const std::string& tensor, const std::string& why) {
  throw Error(ck.folder() + ": tensor " + tensor + " " + why);
}

}  // namespace

PackedLayer load_lut(const Checkpoint& ck, const std::string& name) {
  const CheckpointTensor& ti = require_tensor(ck, name + ".weight_lut_indices", "palettized layer indices");
  const CheckpointTensor& tl = require_tensor(ck, name + ".weight_lut", "palettized layer table");
  const CheckpointTensor& ts = require_tensor(ck, name + ".weight_shape", "palettized layer shape");
  if (ti.dtype != DType::U8 || ti.shape.size() != 2) bad(ck, ti.name, "must be a 2-D U8 tensor");
  if (tl.shape.size() != 2 || (tl.dtype != DType::F16 && tl.dtype != DType::F32 && tl.dtype != DType::I8))
    bad(ck, tl.name, "must be a 2-D F16, F32 or I8 tensor (tables, 2^bits)");
  if ((ts.dtype != DType::I64 && ts.dtype != DType::I32) || ts.shape != Shape{2}) bad(ck, ts.name, "must hold 2 integers [N, K]");
  const Tensor shape_t = ck.read(ts);
  int64_t n = 0, k = 0;
  if (ts.dtype == DType::I64) {
    std::memcpy(&n, shape_t.data(), 8);
    std::memcpy(&k, shape_t.data() + 8, 8);
  } else {
    int32_t v[2];
    std::memcpy(v, shape_t.data(), 8);
    n = v[0], k = v[1];
  }
  const int64_t tables = tl.shape[0], entries = tl.shape[1];
  int bits = 0;
  while (bits <= 8 && (int64_t{1} << bits) != entries) ++bits;
  if (bits < 1 || bits > 8) bad(ck, tl.name, "has " + std::to_string(entries) + " entries per table; expected 2^bits, bits 1..8");
  if (n <= 0 || k <= 0) bad(ck, ts.name, "holds a non-positive shape");
  if (tables <= 0 || n % tables != 0)
    bad(ck, tl.name, "has " + std::to_string(tables) + " tables, which does not divide N = " + std::to_string(n));
  const int64_t rb = kernels::lut_row_bytes(k, bits);
  if (ti.shape != Shape{n, rb})
    bad(ck, ti.name, "has shape " + shape_to_string(ti.shape) + ", expected " + shape_to_string({n, rb}) + " for " +
                         std::to_string(bits) + "-bit indices of a " + shape_to_string({n, k}) + " weight");
  PackedLayer layer;
  layer.name = name;
  layer.format = kernels::LinearFormat::Lut;
  layer.n = n;
  layer.k = k;
  layer.group = n / tables;
  layer.lut_bits = bits;
  layer.lut_dtype = tl.dtype;
  const Tensor idx = ck.read(ti);
  layer.lut_indices.assign(reinterpret_cast<const uint8_t*>(idx.data()), reinterpret_cast<const uint8_t*>(idx.data()) + n * rb);
  if (tl.dtype == DType::I8) {
    const CheckpointTensor& tq = require_tensor(ck, name + ".weight_lut_scale", "scales of an int8 table");
    if (tq.shape != Shape{tables}) bad(ck, tq.name, "must have one scale per table (" + std::to_string(tables) + ")");
    const Tensor codes = ck.read(tl);
    layer.lut_q.assign(reinterpret_cast<const int8_t*>(codes.data()), reinterpret_cast<const int8_t*>(codes.data()) + tables * entries);
    layer.lut_q_scale = read_f32(ck, tq);
    layer.lut.resize(layer.lut_q.size());
    for (size_t i = 0; i < layer.lut.size(); ++i)
      layer.lut[i] = static_cast<float>(layer.lut_q[i]) * layer.lut_q_scale[i / static_cast<size_t>(entries)];
  } else {
    layer.lut = read_f32(ck, tl);
  }
  for (size_t i = 0; i < layer.lut.size(); ++i)
    if (!std::isfinite(layer.lut[i])) bad(ck, tl.name, "holds a non-finite entry at " + std::to_string(i));
  if (const CheckpointTensor* tr = ck.find(name + ".weight_row_scale")) {
    if (tr->shape != Shape{n}) bad(ck, tr->name, "must have one scale per row (" + std::to_string(n) + ")");
    layer.lut_row_scale = read_f32(ck, *tr);
    layer.scale_dtype = tr->dtype;
    for (float s : layer.lut_row_scale)
      if (!std::isfinite(s)) bad(ck, tr->name, "holds a non-finite scale");
  }
  const auto& cfg = ck.config();
  if (cfg.is_object() && cfg.contains("quantization_config") && cfg["quantization_config"].is_object()) {
    const std::string od = cfg["quantization_config"].value("original_dtype", std::string("F32"));
    layer.original_dtype = od == "F16" ? DType::F16 : od == "BF16" ? DType::BF16 : DType::F32;
  }
  read_bias_into(ck, name, layer);
  return layer;
}

}  // namespace modelpress::quant
