#include "quant/quantize_checkpoint.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "quant/layer_selection.h"

namespace modelpress::quant {
namespace {

using kernels::LinearFormat;

PackedLayer run_pass(const QuantizeOptions& options, const std::string& name, const Tensor& weight) {
  switch (options.method) {
    case LinearFormat::LlmInt8: return quantize_llm_int8(name, weight, nullptr, options.llm_int8);
    case LinearFormat::W8A8: return quantize_w8a8(name, weight, nullptr);
    case LinearFormat::W4A16: return quantize_w4a16(name, weight, nullptr, options.w4a16);
    case LinearFormat::Lut: {
      if (!options.importance) return cluster_weight(name, weight, nullptr, options.cluster);
      const std::vector<float> importance = options.importance(name, weight.shape()[1]);
      return cluster_weight(name, weight, nullptr, options.cluster, &importance);
    }
    case LinearFormat::DenseF32: break;
  }
  throw Error("quantize: method must be llm-int8, w8a8 or w4a16");
}

// The example layer quantization_config reads its parameters from: everything but buffers.
PackedLayer parameters_of(const PackedLayer& layer) {
  PackedLayer p;
  p.name = layer.name;
  p.format = layer.format;
  p.n = layer.n;
  p.k = layer.k;
  p.group = layer.group;
  p.threshold = layer.threshold;
  p.scale_dtype = layer.scale_dtype;
  p.zeros4 = layer.zeros4.empty() ? std::vector<uint8_t>{} : std::vector<uint8_t>{8};  // symmetric or not
  p.searched_scales = layer.searched_scales;
  p.lut_bits = layer.lut_bits;
  p.lut_dtype = layer.lut_dtype;
  p.original_dtype = layer.original_dtype;
  p.lut_row_scale = layer.lut_row_scale.empty() ? std::vector<float>{} : std::vector<float>{1.0f};  // scaled or not
  return p;
}

// Appends tensors to the CheckpointWriter on a thread of its own, in order, so that writing
// one layer (a copy into the page cache: about a third of a run's time, measured with perf)
// overlaps quantizing the next. At most one layer's outputs wait (64 MB, or one larger
// tensor alone), so peak memory stays a layer or two, whatever the model's size.
class BackgroundWriter {
 public:
  explicit BackgroundWriter(CheckpointWriter& writer) : writer_(writer), thread_([this] { run(); }) {}
  ~BackgroundWriter() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      queue_.clear();  // after an error upstream: nothing more is written
    }
    changed_.notify_all();
    thread_.join();
  }
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  void append(std::string name, Tensor tensor) {
    const uint64_t bytes = tensor.nbytes();
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return error_ || pending_ == 0 || pending_ + bytes <= kMaxPending; });
    if (error_) std::rethrow_exception(error_);
    pending_ += bytes;
    queue_.emplace_back(std::move(name), std::move(tensor));
    changed_.notify_all();
  }

  // Waits until everything appended is written; rethrows the writer's error, if any.
  void drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return error_ || pending_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static constexpr uint64_t kMaxPending = 64'000'000;

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      auto [name, tensor] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      std::exception_ptr error;
      try {
        writer_.append(name, tensor);
      } catch (...) {
        error = std::current_exception();
      }
      const uint64_t bytes = tensor.nbytes();
      tensor = Tensor();  // release the codes (or the mapped pages) before taking the lock
      lock.lock();
      pending_ -= bytes;
      if (error && !error_) error_ = error;
      changed_.notify_all();
      if (error_) return;
    }
  }

  CheckpointWriter& writer_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<std::string, Tensor>> queue_;
  uint64_t pending_ = 0;  // bytes appended and not yet written
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace

namespace {

// False only when config.json lists architectures, none is a class with an output head
// (transformers names those ...ForCausalLM, ...LMHeadModel, ...ForConditionalGeneration), and
// it does not declare tied word embeddings: then there is no lm_head module to list as
// ignored (all-MiniLM-L6-v2's BertModel, say). Without architectures (GGUF input), true.
bool may_have_output_head(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("architectures") || !config["architectures"].is_array()) return true;
  if (config.value("tie_word_embeddings", false)) return true;
  for (const auto& a : config["architectures"]) {
    if (!a.is_string()) continue;
    const std::string name = a.get<std::string>();
    for (const char* suffix : {"ForCausalLM", "LMHeadModel", "ForConditionalGeneration"})
      if (name.size() >= std::strlen(suffix) && name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        return true;
  }
  return false;
}

}  // namespace

QuantizeReport quantize_checkpoint(const Checkpoint& in, const std::string& out_dir, const QuantizeOptions& options,
                                   const QuantizeProgress& progress) {
  const std::string source = in.folder().empty() ? std::string("input") : in.folder();
  if (options.method == LinearFormat::DenseF32) throw Error("quantize: method must be llm-int8, w8a8 or w4a16");
  refuse_quantized_input(in, source);
  const std::vector<SkipRule> skips = compile_skips(options.skip);

  QuantizeReport report;
  report.method = method_name(options.method);
  report.tensors_in = in.tensors().size();
  // Before anything is written: is there a layer to quantize at all?
  size_t linear = 0, to_quantize = 0;
  for (const auto& t : in.tensors()) {
    linear += is_linear(t.category) ? 1 : 0;
    if (is_layer_weight(t) && skip_reason(t, t.name.substr(0, t.name.size() - 7), options, skips).empty()) ++to_quantize;
  }
  if (to_quantize == 0)
    throw Error(source + ": no linear layer left to quantize (" + std::to_string(linear) +
                " linear weights, all skipped or not 2-D); nothing written");
  if (!options.allow_requantize) refuse_block_quantized_layers(in, options, skips);

  CheckpointWriterOptions wo;
  wo.max_shard_bytes = options.max_shard_bytes;
  wo.overwrite = options.overwrite;
  wo.expected_tensors = in.tensors().size() + 3 * linear;  // a quantized layer adds scales etc.
  CheckpointWriter writer(out_dir, &in, wo);
  auto background = std::make_unique<BackgroundWriter>(writer);

  std::vector<std::string> skipped_modules;
  std::optional<PackedLayer> example;
  const size_t total = in.tensors().size();
  for (size_t i = 0; i < total; ++i) {
    const CheckpointTensor& t = in.tensors()[i];
    if (progress) progress(i, total, t.name);
    report.bytes_before += t.nbytes;
    if (!is_layer_weight(t)) {
      // Norms, embeddings, biases, buffers, 3-D expert stacks: unchanged, in place.
      Tensor tensor = in.read(t);
      report.bytes_after += tensor.nbytes();
      background->append(t.name, std::move(tensor));
      ++report.tensors_out;
      continue;
    }
    const std::string prefix = t.name.substr(0, t.name.size() - 7);
    LayerReport lr;
    lr.name = prefix;
    lr.shape = t.shape;
    lr.dtype = t.dtype;
    lr.bytes_before = t.nbytes;
    lr.reason = skip_reason(t, prefix, options, skips);

    Tensor weight = in.read(t);
    if (!lr.reason.empty()) {
      lr.format = "skipped";
      lr.bytes_after = weight.nbytes();
      lr.bits_per_weight = 8.0 * static_cast<double>(lr.bytes_after) / static_cast<double>(shape_numel(t.shape));
      report.bytes_after += weight.nbytes();
      background->append(t.name, std::move(weight));
      ++report.tensors_out;
      ++report.skipped;
      skipped_modules.push_back(prefix);
      report.layers.push_back(std::move(lr));
      continue;
    }
    PackedLayer packed = run_pass(options, prefix, weight);
    lr.note = packed.note;
    if (!example) example = parameters_of(packed);
    weight = Tensor();  // the input's pages go back now, not when the next layer starts
    for (auto& [name, tensor] : encode_layer(std::move(packed))) {
      lr.bytes_after += tensor.nbytes();
      background->append(std::move(name), std::move(tensor));
      ++report.tensors_out;
    }
    lr.format = report.method;
    lr.bits_per_weight = 8.0 * static_cast<double>(lr.bytes_after) / static_cast<double>(shape_numel(t.shape));
    report.bytes_after += lr.bytes_after;
    report.linear_bytes_before += lr.bytes_before;
    report.linear_bytes_after += lr.bytes_after;
    ++report.quantized;
    report.layers.push_back(std::move(lr));
  }
  background->drain();
  background.reset();

  // A tied output head has no tensor of its own but is still a Linear module that loaders
  // would convert: name it whenever the head is meant to stay unquantized, unless the config
  // says the model has no such head (an encoder such as BertModel).
  if (options.skip_lm_head && may_have_output_head(in.config()) &&
      std::find(skipped_modules.begin(), skipped_modules.end(), "lm_head") == skipped_modules.end()) {
    const bool head_quantized = std::any_of(report.layers.begin(), report.layers.end(), [](const LayerReport& l) {
      return l.name == "lm_head" && l.format != "skipped";
    });
    if (!head_quantized) skipped_modules.push_back("lm_head");
  }
  report.quantization_config = quantization_config(options.method, &*example, skipped_modules);
  if (options.method == LinearFormat::Lut)
    report.quantization_config["algorithm"] = options.cluster.algorithm == ClusterAlgorithm::KMeans ? "kmeans" : "dkm";
  nlohmann::json config = in.config().is_object() ? in.config() : nlohmann::json::object();
  config["quantization_config"] = report.quantization_config;
  writer.set_config(std::move(config));
  writer.finish();
  return report;
}

nlohmann::ordered_json report_json(const QuantizeReport& report) {
  nlohmann::ordered_json j;
  j["method"] = report.method;
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const auto& l : report.layers) {
    nlohmann::ordered_json e;
    e["name"] = l.name;
    e["shape"] = l.shape;
    e["dtype"] = dtype_name(l.dtype);
    e["format"] = l.format;
    if (!l.reason.empty()) e["reason"] = l.reason;
    if (!l.note.empty()) e["note"] = l.note;
    e["bytes_before"] = l.bytes_before;
    e["bytes_after"] = l.bytes_after;
    e["bits_per_weight"] = l.bits_per_weight;
    layers.push_back(std::move(e));
  }
  j["layers"] = std::move(layers);
  j["totals"] = {{"tensors_in", report.tensors_in},
                 {"tensors_out", report.tensors_out},
                 {"quantized", report.quantized},
                 {"skipped", report.skipped},
                 {"bytes_before", report.bytes_before},
                 {"bytes_after", report.bytes_after},
                 {"linear_bytes_before", report.linear_bytes_before},
                 {"linear_bytes_after", report.linear_bytes_after}};
  j["quantization_config"] = report.quantization_config;
  return j;
}

}  // namespace modelpress::quant
