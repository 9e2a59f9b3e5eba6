// The validation behind `modelpress validate`: runs every packed layer of a compressed
// checkpoint through its kernel on real or synthetic activations and compares it with the
// original weight run densely on the same backend, layer by layer. Measures what a user
// needs to trust the compression: output error (quant/metrics.h), bytes, and kernel
// latency against the dense f32 baseline. For LLM.int8 it also shows what the outlier
// decomposition buys: the same layer without it (threshold 0) and, where the pass offers
// it, with the paper's 16-bit outlier weight columns.
//
// Activations: the rows recorded for the layer in a calibration file (io/calibration.h),
// or io/synthetic_activations.h with a per-layer seed. Peak memory is one layer: its
// original weight, its packed form, the activations and the outputs.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "io/validation_report.h"
#include "kernels/packed_linear.h"

namespace modelpress::eval {

struct ValidateOptions {
  std::string original;     // checkpoint path with the unquantized weights
  std::string compressed;   // checkpoint path with packed layers (bitsandbytes, compressed-tensors)
  std::string calibration;  // calibration file; empty: synthetic activations
  kernels::Backend backend = kernels::Backend::Cpu;
  // With `backend` Cuda: fall back to the CPU when the CUDA kernels cannot run the layers
  // (decided on the first layer, so every layer is timed on one backend) instead of
  // failing: --backend auto.
  bool fall_back_to_cpu = false;
  std::string backend_note;  // carried into the report (e.g. why auto chose cpu)
  int64_t rows = 64;         // activation rows per layer (at most; fewer if the file has fewer)
  uint64_t seed = 0;         // synthetic activations
  // When set, a safetensors file that receives, per layer, the activations and both
  // outputs as f32: `<layer>.x` [rows, K], `<layer>.y` (the packed kernel) and
  // `<layer>.y_reference` (x W^T with the original weight) [rows, N]. Other tools compare
  // their own layer outputs against it (tests/interop); written only if validation succeeds.
  std::string dump_outputs;
  // Latency: each kernel runs `warmup_runs` times untimed, then up to `timed_runs` times;
  // a slow layer stops after `min_timed_runs` once `time_budget_s` is spent on it.
  int warmup_runs = 2;
  int timed_runs = 31;
  int min_timed_runs = 5;
  double time_budget_s = 0.3;
  // Called before each layer (index, count, name): progress display.
  std::function<void(size_t, size_t, const std::string&)> on_layer;
};

// Throws Error naming the checkpoint, file and layer for: a compressed checkpoint without
// packed layers, a layer whose original weight is missing or has another shape, a
// calibration file that lacks a layer or has the wrong width, and a layer the backend
// cannot run.
ValidationReport validate_checkpoints(const ValidateOptions& options);

}  // namespace modelpress::eval
