// Helpers for the quant tests: deterministic weights and tiny checkpoints written from
// named tensors.
#pragma once
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/checkpoint_writer.h"
#include "io/tensor.h"

namespace modelpress::testing {

// N(0, stddev) values, the same for the same seed everywhere.
inline std::vector<float> gaussian_values(size_t n, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(n);
  // Box-Muller on raw 53-bit uniforms: std::normal_distribution differs between libraries.
  for (size_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1p-53, u2 = static_cast<double>(rng() >> 11) * 0x1p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    v[i] = static_cast<float>(r * std::cos(2 * std::numbers::pi * u2)) * stddev;
    if (i + 1 < n) v[i + 1] = static_cast<float>(r * std::sin(2 * std::numbers::pi * u2)) * stddev;
  }
  return v;
}

inline Tensor f32_tensor(const std::vector<float>& values, Shape shape, DType dtype = DType::F32) {
  return Tensor::from_f32(values, dtype, std::move(shape));
}

// Writes `tensors` in order (and config.json when given) as a checkpoint folder at `dir`.
inline void write_checkpoint(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                             const nlohmann::json& config = nullptr) {
  CheckpointWriter writer(dir, nullptr);
  for (const auto& [name, t] : tensors) writer.append(name, t);
  if (!config.is_null()) writer.set_config(config);
  writer.finish();
}

}  // namespace modelpress::testing
