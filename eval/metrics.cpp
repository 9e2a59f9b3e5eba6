#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "io/error.h"

namespace modelpress::eval {
namespace {

// Running sums of one comparison; add() takes one element pair.
struct Sums {
  double ref2 = 0, y2 = 0, dot = 0, diff2 = 0, max_abs = 0;
  bool finite = true;

  void add(float y, float r) {
    if (!std::isfinite(y)) finite = false;
    const double yd = y, rd = r, d = yd - rd;
    ref2 += rd * rd;
    y2 += yd * yd;
    dot += yd * rd;
    diff2 += d * d;
    max_abs = std::max(max_abs, std::abs(d));
  }

  OutputError finish() const {
    constexpr double inf = std::numeric_limits<double>::infinity();
    OutputError e;
    if (!finite) {
      const double nan = std::numeric_limits<double>::quiet_NaN();
      return {nan, nan, nan, nan};
    }
    e.max_abs_error = max_abs;
    if (diff2 == 0) {
      e.relative_error = 0;
      e.sqnr_db = inf;
    } else if (ref2 == 0) {
      e.relative_error = inf;
      e.sqnr_db = -inf;
    } else {
      e.relative_error = std::sqrt(diff2 / ref2);
      e.sqnr_db = 10.0 * std::log10(ref2 / diff2);
    }
    // y == y_ref counts as exact agreement, not as whatever the rounding of dot / norms gives.
    if (diff2 == 0) e.cosine = 1;
    else if (y2 == 0 || ref2 == 0) e.cosine = 0;
    else e.cosine = std::clamp(dot / (std::sqrt(y2) * std::sqrt(ref2)), -1.0, 1.0);
    return e;
  }
};

}  // namespace

OutputError compare_outputs(std::span<const float> y, std::span<const float> y_ref) {
  if (y.size() != y_ref.size())
    throw Error("compare_outputs: " + std::to_string(y.size()) + " outputs against " + std::to_string(y_ref.size()) +
                " reference values");
  Sums s;
  for (size_t i = 0; i < y.size(); ++i) s.add(y[i], y_ref[i]);
  return s.finish();
}

OutputError compare_rows(const float* y, const float* y_ref, int64_t cols, std::span<const int64_t> rows) {
  Sums s;
  for (const int64_t r : rows)
    for (int64_t c = 0; c < cols; ++c) s.add(y[r * cols + c], y_ref[r * cols + c]);
  return s.finish();
}

}  // namespace modelpress::eval
