#include "quant/gguf_quantize.h"

#include <algorithm>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "quant/gguf_blocks.h"
#include "quant/layer_selection.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {
namespace {

// llama.cpp's llama_ftype values for general.file_type ("mostly" the type).
uint32_t file_type_of(uint32_t type) {
  switch (type) {
    case ggml_type::Q4_0: return 2;
    case ggml_type::Q4_1: return 3;
    case ggml_type::Q8_0: return 7;
    default: return 0;
  }
}

}  // namespace

uint32_t gguf_method_type(const std::string& method) {
  if (method == "q8_0") return ggml_type::Q8_0;
  if (method == "q4_0") return ggml_type::Q4_0;
  if (method == "q4_1") return ggml_type::Q4_1;
  return 0;
}

QuantizeReport quantize_to_gguf(const std::string& input, const std::string& output, const QuantizeOptions& options,
                                const QuantizeProgress& progress) {
  const uint32_t type = options.gguf_type;
  if (!file_type_of(type)) throw Error("quantize: GGUF output takes --method q8_0, q4_0 or q4_1");
  const Checkpoint ck = Checkpoint::open(input);
  if (ck.format() != CheckpointFormat::Gguf)
    throw Error(input + ": GGUF output needs a GGUF input (modelpress writes GGUF from GGUF only for now; make an "
                        "F16 GGUF with llama.cpp's convert_hf_to_gguf.py first)");
  const std::string path = ck.files().front();
  const GgufFile& gguf = *ck.gguf();  // the checkpoint's own mapping, not a second one
  const std::vector<SkipRule> skips = compile_skips(options.skip);
  if (!options.allow_requantize) refuse_block_quantized_layers(ck, options, skips);

  QuantizeReport report;
  report.method = ggml_type_name(type);
  report.tensors_in = ck.tensors().size();
  // What happens to each tensor, decided before anything is written.
  std::vector<uint32_t> out_type(ck.tensors().size());
  std::vector<LayerReport> layer_of(ck.tensors().size());
  std::vector<bool> is_layer(ck.tensors().size(), false);
  size_t to_quantize = 0;
  for (size_t i = 0; i < ck.tensors().size(); ++i) {
    const CheckpointTensor& t = ck.tensors()[i];
    const GgufTensorInfo* info = gguf.find(t.name);
    if (!info) throw Error(path + ": tensor '" + t.name + "' is missing from the GGUF index");
    out_type[i] = info->type;
    if (!is_layer_weight(t)) continue;
    is_layer[i] = true;
    LayerReport& lr = layer_of[i];
    lr.name = t.name.substr(0, t.name.size() - 7);
    lr.shape = t.shape;
    lr.dtype = t.dtype;
    lr.bytes_before = t.nbytes;
    lr.reason = skip_reason(t, lr.name, options, skips);
    if (lr.reason.empty() && info->ne[0] % 32 != 0)
      lr.reason = "rows of " + std::to_string(info->ne[0]) + " are not whole blocks of 32";
    if (lr.reason.empty()) {
      out_type[i] = type;
      ++to_quantize;
    }
  }
  if (to_quantize == 0) throw Error(path + ": no linear layer left to quantize; nothing written");

  GgufWriter writer(output, options.overwrite);
  for (const auto& record : gguf.kv_records()) {
    // Ours: the file type, the quantization version, and the alignment (32, the default).
    if (record.key == "general.file_type" || record.key == "general.quantization_version" ||
        record.key == "general.alignment")
      continue;
    writer.add_record(record.key, record.bytes);
  }
  writer.add_u32("general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
  writer.add_u32("general.file_type", file_type_of(type));
  for (size_t i = 0; i < ck.tensors().size(); ++i) {
    const GgufTensorInfo& info = *gguf.find(ck.tensors()[i].name);
    writer.declare_tensor(info.name, info.ne, out_type[i]);
  }

  const size_t total = ck.tensors().size();
  for (size_t i = 0; i < total; ++i) {
    const CheckpointTensor& t = ck.tensors()[i];
    const GgufTensorInfo& info = *gguf.find(t.name);
    if (progress) progress(i, total, t.name);
    report.bytes_before += t.nbytes;
    if (out_type[i] == info.type) {  // copied as stored
      const auto bytes = gguf.raw(info);
      writer.write_tensor(bytes);
      report.bytes_after += bytes.size();
      ++report.tensors_out;
      if (is_layer[i]) {
        LayerReport& lr = layer_of[i];
        lr.format = "skipped";
        lr.bytes_after = bytes.size();
        lr.bits_per_weight = 8.0 * static_cast<double>(lr.bytes_after) / static_cast<double>(shape_numel(t.shape));
        ++report.skipped;
        report.layers.push_back(std::move(lr));
      }
      continue;
    }
    const Tensor weight = gguf.read_f32(info);
    const int64_t rows = t.shape[0], k = t.shape[1];
    // Calibration importance per input column (the same for every row), when given.
    std::vector<float> importance;
    if (options.importance) {
      importance = options.importance(t.name.substr(0, t.name.size() - 7), k);
      if (static_cast<int64_t>(importance.size()) != k)
        throw Error(t.name + ": the calibration importance has " + std::to_string(importance.size()) + " columns, the layer " +
                    std::to_string(k));
    }
    const uint64_t row_bytes = static_cast<uint64_t>(k / 32) * ggml_type_traits(out_type[i])->block_bytes;
    std::vector<std::byte> packed(static_cast<size_t>(row_bytes * static_cast<uint64_t>(rows)));
    std::vector<uint8_t> bad(static_cast<size_t>(rows), 0);
    for_each_row(rows, k, [&](int64_t r, float* row) {
      load_row(weight, r, row);
      if (first_nonfinite(row, k) >= 0) {
        bad[static_cast<size_t>(r)] = 1;
        return;
      }
      quantize_gguf_blocks(out_type[i], row, k, options.gguf_scale_search, packed.data() + r * row_bytes,
                           importance.empty() ? nullptr : importance.data());
    });
    if (const auto it = std::find(bad.begin(), bad.end(), 1); it != bad.end()) fail_nonfinite(t.name, weight, it - bad.begin());
    writer.write_tensor(packed);
    LayerReport& lr = layer_of[i];
    lr.format = report.method;
    lr.bytes_after = packed.size();
    lr.bits_per_weight = 8.0 * static_cast<double>(lr.bytes_after) / static_cast<double>(shape_numel(t.shape));
    report.bytes_after += packed.size();
    report.linear_bytes_before += lr.bytes_before;
    report.linear_bytes_after += lr.bytes_after;
    ++report.tensors_out;
    ++report.quantized;
    report.layers.push_back(std::move(lr));
  }
  writer.finish();
  report.quantization_config = {{"format", "gguf"},
                                {"type", report.method},
                                {"scale_search", options.gguf_scale_search},
                                {"importance", static_cast<bool>(options.importance)}};
  return report;
}

}  // namespace modelpress::quant
