// PackedLayer itself (kernel view, sizes, dequantization, the f16 outlier columns) and the
// dispatch from formats to their checkpoint conventions (encodings.h).
#include "quant/packed_layer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/float_convert.h"
#include "kernels/lut_linear.h"
#include "quant/encodings.h"
#include "quant/rtn.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {

using kernels::LinearFormat;

const char* method_name(LinearFormat format) {
  switch (format) {
    case LinearFormat::DenseF32: return "dense";
    case LinearFormat::LlmInt8: return "llm-int8";
    case LinearFormat::W8A8: return "w8a8";
    case LinearFormat::W4A16: return "w4a16";
    case LinearFormat::Lut: return "cluster";
  }
  return "dense";
}

kernels::PackedLinear PackedLayer::view() const {
  kernels::PackedLinear p;
  p.format = format;
  p.n = n;
  p.k = k;
  p.threshold = threshold;
  switch (format) {
    case LinearFormat::DenseF32: p.dense = dense.data(); break;
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8:
      p.int8 = {q8.data(), scale8.data(), n, k};
      if (!fp16_cols.empty())
        p.fp16_columns = {fp16_cols.data(), fp16_w.data(), static_cast<int64_t>(fp16_cols.size())};
      break;
    case LinearFormat::W4A16:
      p.w4 = {packed4.data(), scales4.data(), zeros4.empty() ? nullptr : zeros4.data(), n, k, group};
      break;
    case LinearFormat::Lut:
      p.lut = {lut_indices.data(), lut.data(), lut_row_scale.empty() ? nullptr : lut_row_scale.data(), n, k, group,
               lut_bits};
      break;
  }
  p.bias = bias.empty() ? nullptr : bias.data();
  return p;
}

uint64_t PackedLayer::weight_bytes() const {
  const auto N = static_cast<uint64_t>(n), K = static_cast<uint64_t>(k);
  const uint64_t scale_size = dtype_size(scale_dtype);
  switch (format) {
    case LinearFormat::DenseF32: return 4 * N * K;
    case LinearFormat::LlmInt8:
      // weight, SCB (f32), weight_format (one byte); paper-mode f16 columns with their
      // indices count too, as memory the layer needs, though bitsandbytes cannot store them.
      return N * K + 4 * N + 1 + fp16_w.size() * 2 + fp16_cols.size() * 4;
    case LinearFormat::W8A8: return N * K + N * scale_size;
    case LinearFormat::W4A16: {
      const uint64_t groups = group > 0 ? K / static_cast<uint64_t>(group) : 0;
      uint64_t bytes = 4 * N * static_cast<uint64_t>(packed_int32_words(k, 4)) + N * groups * scale_size + 2 * 8;
      if (!zeros4.empty()) bytes += 4 * static_cast<uint64_t>(packed_int32_words(n, 4)) * groups;
      return bytes;
    }
    case LinearFormat::Lut: {
      // Indices, tables (and their int8 scales), row scales, the shape tensor.
      const uint64_t table_entry = lut_dtype == DType::I8 ? 1 : dtype_size(lut_dtype);
      return N * static_cast<uint64_t>(kernels::lut_row_bytes(k, lut_bits)) + lut.size() * table_entry +
             lut_q_scale.size() * 4 + lut_row_scale.size() * scale_size + 2 * 8;
    }
  }
  return 0;
}

std::vector<float> dequantize_layer(const PackedLayer& layer) {
  const int64_t n = layer.n, k = layer.k;
  std::vector<float> w(static_cast<size_t>(n * k));
  switch (layer.format) {
    case LinearFormat::DenseF32: return layer.dense;
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8:
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c)
          w[static_cast<size_t>(r * k + c)] =
              static_cast<float>(layer.q8[static_cast<size_t>(r * k + c)]) * layer.scale8[static_cast<size_t>(r)];
      return w;
    case LinearFormat::W4A16: {
      const int64_t groups = k / layer.group;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) {
          const uint8_t byte = layer.packed4[static_cast<size_t>(r * (k / 2) + c / 2)];
          const int u = c % 2 == 0 ? (byte & 0xF) : (byte >> 4);
          const size_t g = static_cast<size_t>(r * groups + c / layer.group);
          const int zero = layer.zeros4.empty() ? 8 : layer.zeros4[g];
          w[static_cast<size_t>(r * k + c)] = static_cast<float>(u - zero) * layer.scales4[g];
        }
      return w;
    }
    case LinearFormat::Lut: {
      const kernels::PackedLinear v = layer.view();
      const int64_t entries = int64_t{1} << layer.lut_bits;
      for (int64_t r = 0; r < n; ++r) {
        const float* table = layer.lut.data() + (r / layer.group) * entries;
        const float s = layer.lut_row_scale.empty() ? 1.0f : layer.lut_row_scale[static_cast<size_t>(r)];
        for (int64_t c = 0; c < k; ++c) w[static_cast<size_t>(r * k + c)] = table[kernels::lut_index(v.lut, r, c)] * s;
      }
      return w;
    }
  }
  return w;
}

PackedLayer dense_layer(const std::string& name, const Tensor& weight, const Tensor* bias) {
  const std::string tensor = name + ".weight";
  check_weight(tensor, weight);
  PackedLayer layer;
  layer.name = name;
  layer.format = LinearFormat::DenseF32;
  layer.n = weight.shape()[0];
  layer.k = weight.shape()[1];
  layer.dense = weight.to_f32();
  if (const int64_t i = first_nonfinite(layer.dense.data(), layer.n * layer.k); i >= 0)
    fail_nonfinite(tensor, weight, i / layer.k);
  layer.bias = read_bias(name + ".bias", bias, layer.n);
  return layer;
}

void keep_fp16_columns(PackedLayer& layer, const Tensor& original_weight, const std::vector<int32_t>& cols) {
  const std::string tensor = layer.name + ".weight";
  if (layer.format != LinearFormat::LlmInt8)
    throw Error(tensor + ": f16 outlier columns belong to LLM.int8 layers, this one is " + method_name(layer.format));
  check_weight(tensor, original_weight);
  if (original_weight.shape() != Shape{layer.n, layer.k})
    throw Error(tensor + ": original weight has shape " + shape_to_string(original_weight.shape()) +
                ", the layer is " + shape_to_string({layer.n, layer.k}));
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols[i] < 0 || cols[i] >= layer.k)
      throw Error(tensor + ": outlier column " + std::to_string(cols[i]) + " is outside [0, " + std::to_string(layer.k) + ")");
    if (i > 0 && cols[i] <= cols[i - 1])
      throw Error(tensor + ": outlier columns must be ascending and distinct (" + std::to_string(cols[i - 1]) + " then " +
                  std::to_string(cols[i]) + ")");
  }
  const int64_t n = layer.n, k = layer.k;
  const auto count = static_cast<int64_t>(cols.size());
  std::vector<uint16_t> w(static_cast<size_t>(count * n));
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    load_row(original_weight, r, row.data());
    for (int64_t c = 0; c < count; ++c) {
      const float v = row[static_cast<size_t>(cols[static_cast<size_t>(c)])];
      const uint16_t h = f32_to_f16(v);
      if (!std::isfinite(f16_to_f32(h)))
        throw Error(tensor + ": value " + std::to_string(v) + " at " + index_text(r, cols[static_cast<size_t>(c)]) +
                    " does not fit in f16");
      w[static_cast<size_t>(c * n + r)] = h;  // (count, N): one column of W after another
    }
  }
  layer.fp16_cols = cols;
  layer.fp16_w = std::move(w);
}

// ---- Encodings -----------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> encode_layer(PackedLayer&& layer) {
  NamedTensors out;
  switch (layer.format) {
    case LinearFormat::DenseF32:
      out.emplace_back(layer.name + ".weight",
                       owning_tensor(std::move(layer.dense), DType::F32, {layer.n, layer.k}));
      break;
    case LinearFormat::LlmInt8: encode_bitsandbytes(std::move(layer), out); break;
    case LinearFormat::W8A8:
    case LinearFormat::W4A16: encode_compressed_tensors(std::move(layer), out); break;
    case LinearFormat::Lut: encode_lut(std::move(layer), out); break;
  }
  // A bias given to the pass goes beside its weight as f32 (what the layer holds). The
  // checkpoint driver passes none and copies the original bias tensor unchanged instead.
  if (!layer.bias.empty()) {
    const int64_t n = layer.n;
    out.emplace_back(layer.name + ".bias", owning_tensor(std::move(layer.bias), DType::F32, {n}));
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> encode_layer(const PackedLayer& layer) {
  PackedLayer copy = layer;
  return encode_layer(std::move(copy));
}

nlohmann::json quantization_config(LinearFormat format, const PackedLayer* example,
                                   const std::vector<std::string>& skipped) {
  switch (format) {
    case LinearFormat::DenseF32: return nullptr;  // nothing is quantized
    case LinearFormat::LlmInt8: return bitsandbytes_config(example, skipped);
    case LinearFormat::W8A8:
    case LinearFormat::W4A16: return compressed_tensors_config(format, example, skipped);
    case LinearFormat::Lut: return lut_config(example, skipped, "dkm");
  }
  return nullptr;
}

// ---- Decoding ------------------------------------------------------------------------

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string quant_method(const Checkpoint& ck) {
  const auto& cfg = ck.config();
  if (cfg.is_object() && cfg.contains("quantization_config") && cfg["quantization_config"].is_object())
    return cfg["quantization_config"].value("quant_method", std::string());
  return {};
}

}  // namespace

const CheckpointTensor& require_tensor(const Checkpoint& ck, const std::string& name, const std::string& why) {
  const CheckpointTensor* t = ck.find(name);
  if (!t) throw Error(ck.folder() + ": tensor " + name + " is missing (" + why + ")");
  return *t;
}

std::vector<float> read_f32(const Checkpoint& ck, const CheckpointTensor& t) { return ck.read(t).to_f32(); }

void read_bias_into(const Checkpoint& ck, const std::string& name, PackedLayer& layer) {
  if (const CheckpointTensor* b = ck.find(name + ".bias")) {
    const Tensor bias = ck.read(*b);
    layer.bias = read_bias(b->name, &bias, layer.n);
  }
}

std::vector<std::string> packed_layer_names(const Checkpoint& ck) {
  // A layer is named where its weight lies, so the list follows file order.
  std::vector<std::string> names;
  for (const auto& t : ck.tensors()) {
    if (ends_with(t.name, ".weight_packed")) {
      names.push_back(t.name.substr(0, t.name.size() - 14));
    } else if (ends_with(t.name, ".weight_lut_indices")) {
      names.push_back(t.name.substr(0, t.name.size() - 19));
    } else if (ends_with(t.name, ".weight") && t.dtype == DType::I8) {
      const std::string prefix = t.name.substr(0, t.name.size() - 7);
      if (ck.find(prefix + ".SCB") || ck.find(prefix + ".weight_scale")) names.push_back(prefix);
    }
  }
  return names;
}

PackedLayer load_packed_layer(const Checkpoint& ck, const std::string& name) {
  const std::string method = quant_method(ck);
  if (method == "bitsandbytes" || (method.empty() && ck.find(name + ".SCB"))) return load_bitsandbytes(ck, name);
  if (method == kLutQuantMethod || (method.empty() && ck.find(name + ".weight_lut_indices"))) return load_lut(ck, name);
  if (method == "compressed-tensors" || (method.empty() && ck.find(name + ".weight_scale")))
    return load_compressed_tensors(ck, name);
  if (!method.empty())
    throw Error(ck.folder() + ": quantization method '" + method + "' is not one modelpress reads "
                "(bitsandbytes int8, compressed-tensors, modelpress-palettization)");
  throw Error(ck.folder() + ": " + name + " is not a packed layer (no " + name + ".SCB, .weight_scale or .weight_packed)");
}

}  // namespace modelpress::quant
