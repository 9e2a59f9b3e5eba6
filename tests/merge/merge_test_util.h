// Helpers for the merge tests: random matrices, tiny checkpoints, reading a merged tensor.
#pragma once
#include <Eigen/Dense>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "tests/quant/quant_test_util.h"

namespace modelpress::testing {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline MatD to_mat(const std::vector<float>& v, int64_t rows, int64_t cols) {
  MatD m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) m.data()[i] = v[static_cast<size_t>(i)];
  return m;
}
inline std::vector<float> to_vec(const MatD& m) {
  std::vector<float> v(static_cast<size_t>(m.size()));
  for (int64_t i = 0; i < m.size(); ++i) v[static_cast<size_t>(i)] = static_cast<float>(m.data()[i]);
  return v;
}
inline std::vector<float> tensor_f32(const std::string& dir, const std::string& name) {
  const Checkpoint ck = Checkpoint::open(dir);
  const CheckpointTensor* t = ck.find(name);
  if (!t) throw std::runtime_error("no tensor " + name + " in " + dir);
  return ck.read(*t).to_f32();
}
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0 : 1e30;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

}  // namespace modelpress::testing
