#include "cli/calibration_importance.h"

#include <memory>

#include "io/calibration.h"

namespace modelpress::cli {

Importance calibration_importance(const std::string& path, std::function<std::string(const std::string&)> module_name) {
  auto calib = std::make_shared<CalibrationFile>(CalibrationFile::open(path));
  return [calib, module_name](const std::string& pass_module, int64_t k) {
    const std::string module = module_name ? module_name(pass_module) : pass_module;
    if (const auto stats = calib->read_stats(module, k)) {
      std::vector<float> d(static_cast<size_t>(k));
      for (int64_t j = 0; j < k; ++j) d[static_cast<size_t>(j)] = stats->gram[static_cast<size_t>(j * k + j)];
      return d;
    }
    const CalibrationRows rows = calib->read(module, k);
    std::vector<double> h(static_cast<size_t>(k), 0.0);
    for (int64_t r = 0; r < rows.rows; ++r)
      for (int64_t j = 0; j < k; ++j) {
        const double x = rows.values[static_cast<size_t>(r * k + j)];
        h[static_cast<size_t>(j)] += x * x;
      }
    return std::vector<float>(h.begin(), h.end());
  };
}

}  // namespace modelpress::cli
