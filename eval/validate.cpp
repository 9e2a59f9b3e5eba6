#include "eval/validate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "io/calibration.h"
#include "io/checkpoint.h"
#include "io/error.h"
#include "io/safetensors_writer.h"
#include "io/synthetic_activations.h"
#include "eval/metrics.h"
#include "quant/packed_layer.h"

namespace modelpress::eval {
namespace {

using kernels::Backend;
using kernels::PackedLinear;
// The packed layers validate measures come from the passes' checkpoint decoders.
using namespace quant;

uint64_t checkpoint_bytes(const Checkpoint& ck) {
  uint64_t total = 0;
  for (const auto& t : ck.tensors()) total += t.nbytes;
  return total;
}

// Runs layers on one backend with one workspace, grown as needed (the caller owns kernel
// scratch memory: kernels/packed_linear.h).
class Runner {
 public:
  Runner(Backend backend, const std::string& compressed) : backend_(backend), compressed_(compressed) {}

  void check(const PackedLinear& layer, const std::string& name) const {
    std::string why;
    if (!kernels::linear_supported(layer, backend_, &why))
      fail_file(compressed_, "layer '" + name + "': the " + kernels::backend_name(backend_) + " backend cannot run " +
                                 kernels::format_name(layer.format) + " (" + why + ")");
  }

  std::vector<float> run(const PackedLinear& layer, const std::vector<float>& x, int64_t m) {
    std::vector<float> y(static_cast<size_t>(m * layer.n));
    run_into(layer, x, m, y);
    return y;
  }

  // Median wall time of one call. Wall time is what a caller of run_linear waits for, on
  // either backend (the CUDA path returns with the result in host memory).
  Latency time(const PackedLinear& layer, const std::vector<float>& x, int64_t m, const ValidateOptions& o) {
    std::vector<float> y(static_cast<size_t>(m * layer.n));
    for (int i = 0; i < o.warmup_runs; ++i) run_into(layer, x, m, y);
    std::vector<double> us;
    const auto start = std::chrono::steady_clock::now();
    while (static_cast<int>(us.size()) < std::max(1, o.timed_runs)) {
      const auto t0 = std::chrono::steady_clock::now();
      run_into(layer, x, m, y);
      const auto t1 = std::chrono::steady_clock::now();
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      const double spent = std::chrono::duration<double>(t1 - start).count();
      if (static_cast<int>(us.size()) >= o.min_timed_runs && spent > o.time_budget_s) break;
    }
    std::sort(us.begin(), us.end());
    const size_t n = us.size();
    return {n % 2 ? us[n / 2] : 0.5 * (us[n / 2 - 1] + us[n / 2]), static_cast<int>(n)};
  }

 private:
  void run_into(const PackedLinear& layer, const std::vector<float>& x, int64_t m, std::vector<float>& y) {
    const size_t need = kernels::linear_workspace_bytes(layer, m);
    if (workspace_.size() < need) workspace_.resize(need);
    kernels::run_linear(layer, x.data(), m, y.data(), backend_, workspace_.empty() ? nullptr : workspace_.data());
  }

  Backend backend_;
  std::string compressed_;
  std::vector<std::byte> workspace_;
};

struct Activations {
  int64_t rows = 0;
  std::vector<float> x;        // (rows, K)
  std::vector<int64_t> steps;  // (rows) or empty
};

Activations layer_activations(const std::optional<CalibrationFile>& calib, const std::string& name, int64_t k,
                              const ValidateOptions& o) {
  Activations a;
  if (calib) {
    CalibrationRows r = calib->read(name, k, o.rows);
    a.rows = r.rows;
    a.x = std::move(r.values);
    a.steps = std::move(r.steps);
  } else {
    SyntheticActivations s = synthetic_activations(o.rows, k, layer_seed(name, o.seed));
    a.rows = s.rows;
    a.x = std::move(s.values);
  }
  return a;
}

std::vector<StepError> step_errors(const Activations& a, const std::vector<float>& y, const std::vector<float>& ref,
                                   int64_t n) {
  std::map<int64_t, std::vector<int64_t>> rows_of;
  for (int64_t r = 0; r < static_cast<int64_t>(a.steps.size()); ++r) rows_of[a.steps[r]].push_back(r);
  std::vector<StepError> out;
  for (const auto& [step, rows] : rows_of)
    out.push_back({step, static_cast<int64_t>(rows.size()), compare_rows(y.data(), ref.data(), n, rows)});
  return out;
}

// Columns of x (rows, k) holding any |x| >= threshold: the columns LLM.int8 sends through
// the floating-point product on this input.
std::vector<int32_t> outlier_columns(const std::vector<float>& x, int64_t rows, int64_t k, float threshold) {
  std::vector<int32_t> cols;
  for (int64_t c = 0; c < k; ++c)
    for (int64_t r = 0; r < rows; ++r)
      if (std::abs(x[r * k + c]) >= threshold) {
        cols.push_back(static_cast<int32_t>(c));
        break;
      }
  return cols;
}

// --dump-outputs must not land on a file validation reads: the writer renames its result
// over the target, which would silently replace a calibration file or a checkpoint's
// weights with the dump. Refused before any work.
void refuse_dump_over_input(const std::string& dump, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dump, ec)) return;
  for (const auto& in : inputs)
    if (fs::equivalent(dump, in, ec))
      fail_file(dump, "--dump-outputs would overwrite " + in +
                          ", which this validation reads; write the outputs to another file");
}

}  // namespace

ValidationReport validate_checkpoints(const ValidateOptions& o) {
  if (o.rows < 1) throw Error("validate: --rows must be at least 1 (got " + std::to_string(o.rows) + ")");
  const Checkpoint original = Checkpoint::open(o.original);
  const Checkpoint compressed = Checkpoint::open(o.compressed);
  std::optional<CalibrationFile> calib;
  if (!o.calibration.empty()) calib = CalibrationFile::open(o.calibration);
  if (!o.dump_outputs.empty()) {
    std::vector<std::string> inputs = original.files();
    inputs.insert(inputs.end(), compressed.files().begin(), compressed.files().end());
    if (calib) inputs.push_back(o.calibration);
    refuse_dump_over_input(o.dump_outputs, inputs);
  }

  const std::vector<std::string> names = packed_layer_names(compressed);
  if (names.empty())
    fail_file(o.compressed, "no packed linear layers (bitsandbytes int8, compressed-tensors, palettized) to validate; "
                            "make one with `modelpress quantize` or `modelpress cluster`");

  ValidationReport report;
  report.original = o.original;
  report.compressed = o.compressed;
  report.backend_note = o.backend_note;
  report.activations = calib ? "calibration" : "synthetic";
  if (calib) {
    report.calibration_path = o.calibration;
    report.calibration_source = calib->source();
  }
  report.seed = o.seed;
  report.rows = o.rows;
  report.original_checkpoint_bytes = checkpoint_bytes(original);
  report.compressed_checkpoint_bytes = checkpoint_bytes(compressed);

  Backend backend = o.backend;
  if (backend == Backend::Cuda && o.fall_back_to_cpu) {
    const PackedLayer first = load_packed_layer(compressed, names.front());
    std::string why;
    if (!kernels::linear_supported(first.view(), Backend::Cuda, &why)) {
      backend = Backend::Cpu;
      report.backend_note = std::string("auto: the cuda backend cannot run ") + method_name(first.format) + " (" +
                            why + "), using cpu";
    }
  }
  report.backend = kernels::backend_name(backend);
  if (backend == Backend::Cuda)
    report.notes.push_back("cuda latencies include copying the weights and activations to the GPU and the output "
                           "back on every call (run_linear works on host memory); kernel-only timings: "
                           "modelpress bench --backend cuda");
  Runner runner(backend, o.compressed);
  std::optional<SafetensorsWriter> dump;
  if (!o.dump_outputs.empty())
    dump.emplace(o.dump_outputs, std::map<std::string, std::string>{{"format", "modelpress-validate-outputs"}},
                 3 * names.size());
  std::set<std::string> formats;
  std::vector<std::string> no_decomposition;  // LLM.int8 layers with threshold 0
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (o.on_layer) o.on_layer(i, names.size(), name);
    const PackedLayer packed = load_packed_layer(compressed, name);
    formats.insert(method_name(packed.format));

    // The original weight and bias under the same module prefix.
    const CheckpointTensor* w = original.find(name + ".weight");
    if (!w)
      fail_file(o.original, "layer '" + name + "': no tensor '" + name +
                                ".weight' in the original checkpoint (is it the model the compressed one was made from?)");
    if (w->shape != Shape{packed.n, packed.k})
      fail_file(o.original, "tensor '" + w->name + "': shape " + shape_to_string(w->shape) +
                                ", but the compressed layer is " + shape_to_string({packed.n, packed.k}));
    const Tensor weight = original.read(*w);
    std::optional<Tensor> bias;
    if (const CheckpointTensor* b = original.find(name + ".bias")) {
      if (b->shape != Shape{packed.n})
        fail_file(o.original, "tensor '" + b->name + "': shape " + shape_to_string(b->shape) + ", expected [" +
                                  std::to_string(packed.n) + "]");
      bias = original.read(*b);
    }
    const PackedLayer dense = dense_layer(name, weight, bias ? &*bias : nullptr);
    const PackedLinear packed_view = packed.view(), dense_view = dense.view();
    runner.check(packed_view, name);
    runner.check(dense_view, name);

    const Activations a = layer_activations(calib, name, packed.k, o);
    const std::vector<float> y = runner.run(packed_view, a.x, a.rows);
    const std::vector<float> ref = runner.run(dense_view, a.x, a.rows);
    if (dump) {
      const auto bytes = [](const std::vector<float>& v) { return std::as_bytes(std::span(v)); };
      dump->append(name + ".x", DType::F32, {a.rows, packed.k}, bytes(a.x));
      dump->append(name + ".y", DType::F32, {a.rows, packed.n}, bytes(y));
      dump->append(name + ".y_reference", DType::F32, {a.rows, packed.n}, bytes(ref));
    }

    LayerReport l;
    l.name = name;
    l.format = method_name(packed.format);
    l.n = packed.n;
    l.k = packed.k;
    l.rows = a.rows;
    l.original_bytes = w->nbytes;
    l.packed_bytes = packed.weight_bytes();
    l.bits_per_weight = packed.bits_per_weight();
    l.error = compare_outputs(y, ref);
    if (!a.steps.empty()) l.steps = step_errors(a, y, ref, packed.n);

    if (packed.format == kernels::LinearFormat::LlmInt8 && packed.threshold > 0) {
      OutlierAnalysis x;
      x.threshold = packed.threshold;
      x.columns = outlier_columns(a.x, a.rows, packed.k, packed.threshold);
      x.share = static_cast<double>(x.columns.size()) / static_cast<double>(packed.k);
      PackedLinear plain = packed_view;
      plain.threshold = 0;  // every column through int8: plain W8A8
      x.without_decomposition = compare_outputs(runner.run(plain, a.x, a.rows), ref);
      // The paper's variant: outlier columns multiply 16-bit original weights instead of
      // the dequantized int8 ones (what bitsandbytes and the checkpoint do).
      if (x.columns.empty()) {
        x.paper_mode = l.error;  // no outlier columns: the same product
        x.paper_mode_note = "no outlier columns on these activations: identical to the decomposed layer";
      } else {
        try {
          PackedLayer paper = packed;
          keep_fp16_columns(paper, weight, x.columns);
          x.paper_mode = compare_outputs(runner.run(paper.view(), a.x, a.rows), ref);
        } catch (const Error& e) {
          x.paper_mode_note = std::string("not measured: ") + e.what();
        }
      }
      l.outliers = std::move(x);
    } else if (packed.format == kernels::LinearFormat::LlmInt8) {
      no_decomposition.push_back(name);
    }

    l.packed_latency = runner.time(packed_view, a.x, a.rows, o);
    l.dense_latency = runner.time(dense_view, a.x, a.rows, o);
    report.layers.push_back(std::move(l));
  }
  report.method = formats.size() == 1 ? *formats.begin() : "mixed";

  // One note for all of them: a model quantized with --threshold 0 would otherwise get one
  // identical line per layer (hundreds in a real model).
  const auto first_three = [](const std::vector<std::string>& v) {
    std::string list;
    for (size_t i = 0; i < v.size() && i < 3; ++i) list += (i ? ", " : "") + v[i];
    if (v.size() > 3) list += ", ...";
    return list;
  };
  if (!no_decomposition.empty())
    report.notes.push_back(std::to_string(no_decomposition.size()) + " LLM.int8 layer(s) have threshold 0 (no outlier "
                           "decomposition), so there is no decomposition to compare: " + first_three(no_decomposition));

  // Linear layers of the original that the compressed checkpoint left unpacked (skip lists,
  // lm_head, ...): not validated, and the reader should know.
  std::set<std::string> packed_names(names.begin(), names.end());
  std::vector<std::string> unpacked;
  for (const auto& t : original.tensors())
    if (is_linear(t.category) && t.name.ends_with(".weight") &&
        !packed_names.count(t.name.substr(0, t.name.size() - 7)))
      unpacked.push_back(t.name);
  if (!unpacked.empty()) {
    const std::string list = first_three(unpacked);
    report.notes.push_back(std::to_string(unpacked.size()) + " linear weight(s) of the original are not packed in "
                           "the compressed checkpoint (kept by the pass) and were not validated: " + list);
  }
  if (dump) dump->finish();
  if (!calib)
    report.notes.push_back("activations are synthetic (heavy-tailed, ~0.5% outlier channels x20-60); pass --calib "
                           "with a file from tools/record_calibration.py to measure on real inputs");
  return report;
}

}  // namespace modelpress::eval
