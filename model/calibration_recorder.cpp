#include "model/calibration_recorder.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Core>

#include "io/error.h"
#include "io/safetensors_writer.h"

namespace modelpress::model {

CalibrationRecorder::CalibrationRecorder(std::vector<Layer> layers, int64_t rows_per_layer, int64_t expected_tokens)
    : rows_per_layer_(std::max<int64_t>(1, std::min(rows_per_layer, expected_tokens))),
      expected_tokens_(std::max<int64_t>(1, expected_tokens)) {
  for (auto& l : layers) {
    State s;
    s.layer = l;
    const auto k = static_cast<size_t>(l.k);
    s.absmax.assign(k, 0.0f);
    s.min.assign(k, std::numeric_limits<float>::infinity());
    s.max.assign(k, -std::numeric_limits<float>::infinity());
    s.gram.assign(k * k, 0.0);
    s.rows.reserve(static_cast<size_t>(rows_per_layer_) * k);
    order_.push_back(l.name);
    layers_.emplace(l.name, std::move(s));
  }
}

uint64_t CalibrationRecorder::bytes_for(const std::vector<Layer>& layers, int64_t rows_per_layer) {
  uint64_t b = 0;
  for (const auto& l : layers) {
    const auto k = static_cast<uint64_t>(l.k);
    b += k * k * (8 + 4) + static_cast<uint64_t>(rows_per_layer) * k * 4 + 3 * k * 4;  // gram f64 + shared f32 product
  }
  return b;
}

LinearObserver CalibrationRecorder::observer() {
  return [this](const std::string& name, const float* x, int64_t m, int64_t k) { observe(name, x, m, k); };
}

void CalibrationRecorder::add_gram(State& s, const float* x, int64_t m) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int64_t k = s.layer.k;
  if (x != last_x_ || m != last_m_ || k != last_k_) {
    Eigen::Map<const RowMat> xm(x, m, k);
    last_gram_.resize(static_cast<size_t>(k * k));
    Eigen::Map<RowMat> g(last_gram_.data(), k, k);
    g.noalias() = xm.transpose() * xm;
    last_x_ = x, last_m_ = m, last_k_ = k;
  }
  for (int64_t i = 0; i < k; ++i)  // the lower triangle: write() mirrors it
    for (int64_t j = 0; j <= i; ++j) s.gram[i * k + j] += last_gram_[i * k + j];
}

void CalibrationRecorder::observe(const std::string& name, const float* x, int64_t m, int64_t k) {
  auto it = layers_.find(name);
  if (it == layers_.end()) return;
  State& s = it->second;
  if (k != s.layer.k)
    throw Error("calibrate: layer " + name + " received rows of width " + std::to_string(k) + ", expected " +
                std::to_string(s.layer.k));
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    for (int64_t c = 0; c < k; ++c) {
      s.absmax[c] = std::max(s.absmax[c], std::fabs(row[c]));
      s.min[c] = std::min(s.min[c], row[c]);
      s.max[c] = std::max(s.max[c], row[c]);
    }
  }
  while (s.next_row < rows_per_layer_) {
    const int64_t target = s.next_row * expected_tokens_ / rows_per_layer_;
    if (target >= s.seen + m) break;
    const float* row = x + (target - s.seen) * k;
    s.rows.insert(s.rows.end(), row, row + k);
    ++s.next_row;
  }
  add_gram(s, x, m);
  s.seen += m;
}

void CalibrationRecorder::write(SafetensorsWriter& w) const {
  auto f32 = [&](const std::string& name, const std::vector<float>& v, const Shape& shape) {
    w.append(name, DType::F32, shape, std::as_bytes(std::span<const float>(v)));
  };
  for (const std::string& name : order_) {
    const State& s = layers_.at(name);
    const int64_t k = s.layer.k;
    if (s.seen == 0) throw Error("calibrate: layer " + name + " saw no tokens (the forward never ran it)");
    for (int64_t c = 0; c < k; ++c)
      if (!std::isfinite(s.min[c]) || !std::isfinite(s.max[c]))
        throw Error("calibrate: layer " + name + " received non-finite activations (input column " + std::to_string(c) +
                    ")");
    f32(name, s.rows, {s.next_row, k});
    f32(name + ".absmax", s.absmax, {k});
    f32(name + ".min", s.min, {k});
    f32(name + ".max", s.max, {k});
    // The f64 sums as f32, the lower triangle (the only one accumulated) mirrored, so the
    // stored matrix is exactly symmetric.
    std::vector<float> g(static_cast<size_t>(k * k));
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j <= i; ++j) g[i * k + j] = g[j * k + i] = static_cast<float>(s.gram[i * k + j]);
    f32(name + ".gram", g, {k, k});
    const int64_t tokens = s.seen;
    w.append(name + ".tokens", DType::I64, {1}, std::as_bytes(std::span<const int64_t>(&tokens, 1)));
  }
}

}  // namespace modelpress::model
