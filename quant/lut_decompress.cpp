#include "quant/lut_decompress.h"

#include <map>
#include <optional>
#include <set>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "quant/packed_layer.h"

namespace modelpress::quant {

namespace {

// The packed layer a tensor belongs to ("" for none): <p>.weight* and <p>.SCB are the
// layer's own tensors in every convention modelpress reads; <p>.bias stays a tensor of its own.
std::string owner_of(const std::string& tensor, const std::set<std::string>& layers) {
  const size_t dot = tensor.rfind('.');
  if (dot == std::string::npos) return {};
  const std::string prefix = tensor.substr(0, dot), suffix = tensor.substr(dot + 1);
  if (!layers.count(prefix)) return {};
  return suffix.rfind("weight", 0) == 0 || suffix == "SCB" ? prefix : std::string();
}

// The model's dtype as transformers records it in config.json: `dtype` (transformers 5) or
// `torch_dtype` (earlier). bitsandbytes checkpoints keep no dtype of their own (SCB is f32
// whatever the model was), so this is where their original dtype is recorded.
std::optional<DType> config_dtype(const nlohmann::json& config) {
  if (!config.is_object()) return std::nullopt;
  for (const char* key : {"dtype", "torch_dtype"}) {
    const auto it = config.find(key);
    if (it == config.end() || !it->is_string()) continue;
    const std::string name = it->get<std::string>();
    if (name == "float16") return DType::F16;
    if (name == "bfloat16") return DType::BF16;
    if (name == "float32") return DType::F32;
  }
  return std::nullopt;
}

DType dense_dtype(const PackedLayer& layer, const DecompressOptions& o, std::optional<DType> recorded) {
  if (o.dtype) return *o.dtype;
  if (layer.format == kernels::LinearFormat::Lut) return layer.original_dtype;
  if (layer.format != kernels::LinearFormat::LlmInt8 && (layer.scale_dtype == DType::F16 || layer.scale_dtype == DType::BF16))
    return layer.scale_dtype;
  if (layer.format == kernels::LinearFormat::LlmInt8 && recorded) return *recorded;
  return DType::F32;
}

}  // namespace

DecompressReport decompress_checkpoint(const Checkpoint& in, const std::string& out_dir, const DecompressOptions& o,
                                       const std::function<void(size_t, size_t, const std::string&)>& progress) {
  const std::string source = in.folder().empty() ? std::string("input") : in.folder();
  const std::vector<std::string> names = packed_layer_names(in);
  if (names.empty())
    throw Error(source + ": no packed layers (palettized, bitsandbytes int8 or compressed-tensors) to decompress");
  if (o.dtype && *o.dtype != DType::F32 && *o.dtype != DType::F16 && *o.dtype != DType::BF16)
    throw Error("decompress: --dtype must be f32, f16 or bf16");
  const std::set<std::string> layers(names.begin(), names.end());
  // Decode every layer before creating the output, so a malformed one fails with nothing written.
  for (const auto& name : names) (void)load_packed_layer(in, name);

  CheckpointWriterOptions wo;
  wo.max_shard_bytes = o.max_shard_bytes;
  wo.overwrite = o.overwrite;
  wo.expected_tensors = in.tensors().size();
  CheckpointWriter writer(out_dir, &in, wo);
  DecompressReport report;
  report.tensors_in = in.tensors().size();
  std::set<std::string> done;
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const CheckpointTensor& t = in.tensors()[i];
    if (progress) progress(i, in.tensors().size(), t.name);
    report.bytes_in += t.nbytes;
    const std::string owner = owner_of(t.name, layers);
    if (owner.empty()) {
      const Tensor tensor = in.read(t);
      writer.append(t.name, tensor);
      report.bytes_out += tensor.nbytes();
      ++report.tensors_out;
      continue;
    }
    if (!done.insert(owner).second) continue;  // the layer's other tensors
    const PackedLayer layer = load_packed_layer(in, owner);
    const std::vector<float> w = dequantize_layer(layer);
    const Tensor dense = Tensor::from_f32(w, dense_dtype(layer, o, config_dtype(in.config())), {layer.n, layer.k});
    writer.append(owner + ".weight", dense);
    report.bytes_out += dense.nbytes();
    ++report.tensors_out;
    ++report.layers;
  }
  nlohmann::json config = in.config().is_object() ? in.config() : nlohmann::json::object();
  config.erase("quantization_config");
  writer.set_config(std::move(config));
  writer.finish();
  return report;
}

}  // namespace modelpress::quant
