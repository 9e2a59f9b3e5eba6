// Calibration files: the input activations of each linear layer, recorded from real data
// (tools/record_calibration.py), so that validation and data-driven passes see the
// activations the model meets instead of synthetic ones. Format (docs/CALIBRATION.md):
// a safetensors file with
//   <module prefix>        f16 / bf16 / f32 (tokens, in_features): the layer's input rows
//   <module prefix>.step   i32 / i64 (tokens), optional: the step each row belongs to
//                          (a diffusion timestep, a prompt index, ...)
//   __metadata__           {"format": "modelpress-calibration", "version": "1", "source": ...}
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors_reader.h"

namespace modelpress {

// Statistics over every token a layer saw (modelpress calibrate writes them beside the rows):
//   <layer>.absmax / .min / .max  f32 (in_features)   per input channel
//   <layer>.gram                  f32 (in_features, in_features)   X^T X, accumulated in f64
//   <layer>.tokens                i64 (1)             how many rows X has
struct CalibrationStats {
  int64_t tokens = 0;
  std::vector<float> absmax, min, max, gram;
};
inline constexpr std::string_view kCompanionSuffixes[] = {".step", ".absmax", ".min", ".max", ".gram", ".tokens"};

// Activation rows of one layer, converted to f32.
struct CalibrationRows {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;   // (rows, cols) row-major
  std::vector<int64_t> steps;  // (rows) when the file has <layer>.step, else empty
};

class CalibrationFile {
 public:
  static constexpr std::string_view kFormat = "modelpress-calibration";
  static constexpr std::string_view kVersion = "1";

  // Opens and validates the safetensors file and its __metadata__ format and version;
  // throws Error naming the file. Layers are checked when read.
  static CalibrationFile open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  std::string source() const;  // __metadata__ "source", or "" when absent
  // Every layer in the file (tensors other than the companions: .step and the statistics), in file order.
  std::vector<std::string> layers() const;
  bool has_layer(std::string_view layer) const;

  // The rows recorded for `layer`, whose weight is (N, in_features). Throws Error naming
  // the file and layer when the layer is missing, the tensor is not 2-D, its width is not
  // in_features, its dtype is not f16/bf16/f32, it has no rows or holds NaN/inf, or its
  // .step tensor is not i32/i64 with one entry per row. With max_rows > 0 and more rows
  // in the file, max_rows rows evenly spread over the file are returned (so every step of
  // a diffusion recording is represented), in file order.
  CalibrationRows read(const std::string& layer, int64_t in_features, int64_t max_rows = 0) const;
  // The layer's statistics, or nullopt when the file has none for it (files recorded by
  // tools/record_calibration.py). Throws Error naming the file and tensor for a partial set,
  // another dtype or shape, or a non-finite value.
  std::optional<CalibrationStats> read_stats(const std::string& layer, int64_t in_features) const;

 private:
  explicit CalibrationFile(SafetensorsFile file) : file_(std::move(file)) {}
  SafetensorsFile file_;
};

// The name of a layer's step tensor.
inline std::string calibration_step_name(const std::string& layer) { return layer + ".step"; }

}  // namespace modelpress
