// Accuracy metrics of a layer output y against its reference y_ref (both f32, any shape,
// compared element by element). Sums run in double so that the metric, not the
// accumulation, is what a test sees even for large outputs.
//
// Conventions at the edges (docs/VALIDATE.md):
//   y == y_ref                  relative_error 0, sqnr_db +inf, cosine 1, max_abs_error 0
//   y_ref == 0, y != 0          relative_error +inf, sqnr_db -inf
//   y == 0 or y_ref == 0 only   cosine 0 (no direction to agree with)
//   any NaN or inf in y         every metric NaN: a broken kernel must not look accurate
#pragma once
#include <cstdint>
#include <span>

#include "io/validation_report.h"

namespace modelpress::eval {

OutputError compare_outputs(std::span<const float> y, std::span<const float> y_ref);

// The same over some rows of row-major (rows, cols) outputs: the per-step errors.
OutputError compare_rows(const float* y, const float* y_ref, int64_t cols, std::span<const int64_t> rows);

}  // namespace modelpress::eval
