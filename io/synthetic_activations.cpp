#include "io/synthetic_activations.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "io/error.h"

namespace modelpress {
namespace {

// splitmix64 (Steele, Lea, Flood 2014): one multiply-xorshift round per draw, fine for
// test data and identical on every platform.
class Stream {
 public:
  explicit Stream(uint64_t seed) : s_(seed) {}
  uint64_t bits() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double open01() { return (static_cast<double>(bits() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  // One standard normal per call (Box-Muller, the sine half dropped for simplicity).
  double normal() { return std::sqrt(-2.0 * std::log(open01())) * std::cos(2.0 * std::numbers::pi * open01()); }
  double student_t5() {
    double chi2 = 0;
    for (int i = 0; i < 5; ++i) {
      const double z = normal();
      chi2 += z * z;
    }
    return normal() / std::sqrt(chi2 / 5.0);
  }

 private:
  uint64_t s_;
};

}  // namespace

uint64_t layer_seed(const std::string& layer, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);  // FNV-1a over the name
  for (const unsigned char c : layer) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

SyntheticActivations synthetic_activations(int64_t rows, int64_t cols, uint64_t seed) {
  if (rows < 1 || cols < 1)
    throw Error("synthetic activations: rows and columns must be positive (got " + std::to_string(rows) + " x " +
                std::to_string(cols) + ")");
  Stream rng(seed);
  SyntheticActivations a;
  a.rows = rows;
  a.cols = cols;

  // Outlier columns: distinct, drawn by a partial Fisher-Yates shuffle.
  const int64_t n_out = std::max<int64_t>(1, std::llround(0.005 * static_cast<double>(cols)));
  std::vector<int32_t> perm(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) perm[c] = static_cast<int32_t>(c);
  for (int64_t i = 0; i < n_out; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.bits() % static_cast<uint64_t>(cols - i));
    std::swap(perm[i], perm[j]);
  }
  a.outlier_channels.assign(perm.begin(), perm.begin() + n_out);
  std::sort(a.outlier_channels.begin(), a.outlier_channels.end());
  std::vector<float> gain(static_cast<size_t>(cols), 1.0f);
  for (const int32_t c : a.outlier_channels) gain[c] = static_cast<float>(20.0 + 40.0 * rng.open01());

  a.values.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const double row_scale = 0.35 * std::exp(0.25 * rng.normal());
    float* x = a.values.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) x[c] = static_cast<float>(row_scale * rng.student_t5()) * gain[c];
  }
  return a;
}

}  // namespace modelpress
