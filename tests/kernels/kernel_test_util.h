// Helpers for the kernel tests: fresh random data with a reproducible seed, f32 -> f16 for
// test weights, small quantizers that build packed weights, and tolerance checks.
#pragma once
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace modelpress::kernels::testing {

// Fresh data every run (odd values find odd bugs); the seed is printed with any failure
// (SCOPED_TRACE(rng.trace())) and MODELPRESS_TEST_SEED=<n> replays it.
class Rng {
 public:
  Rng() {
    const char* env = std::getenv("MODELPRESS_TEST_SEED");
    seed_ = env ? std::strtoull(env, nullptr, 10) : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    gen_.seed(seed_);
  }
  std::string trace() const {
    std::string s = "MODELPRESS_TEST_SEED=";
    s += std::to_string(seed_);
    return s;
  }
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen_); }
  float normal(float sd = 1.0f) { return std::normal_distribution<float>(0.0f, sd)(gen_); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  std::vector<float> normals(int64_t count, float sd = 1.0f) {
    std::vector<float> v(static_cast<size_t>(count));
    for (auto& e : v) e = normal(sd);
    return v;
  }
  std::vector<int8_t> int8s(int64_t count, int lo, int hi) {
    std::vector<int8_t> v(static_cast<size_t>(count));
    for (auto& e : v) e = static_cast<int8_t>(integer(lo, hi));
    return v;
  }

 private:
  uint64_t seed_;
  std::mt19937_64 gen_;
};

// f32 -> f16 bits, round to nearest even; normal range only (test weights are small).
inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int exp = static_cast<int>((b >> 23) & 0xFF) - 127 + 15;
  if (exp <= 0) return static_cast<uint16_t>(sign);  // flush tiny values to zero
  uint32_t mant = b & 0x7FFFFFu;
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(h);
}

// y_exp (M, N) = x (M, K) . w (N, K)^T + bias in double, and the scale of its rounding
// error: sum_k |x w| + |bias|, per output.
struct Expected {
  std::vector<double> y, magnitude;
};
inline Expected matmul_double(const std::vector<float>& x, const std::vector<float>& w, const float* bias, int64_t m,
                              int64_t n, int64_t k) {
  Expected e;
  e.y.resize(static_cast<size_t>(m * n));
  e.magnitude.resize(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias ? bias[j] : 0.0, a = bias ? std::fabs(bias[j]) : 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const double p = static_cast<double>(x[i * k + t]) * w[j * k + t];
        s += p;
        a += std::fabs(p);
      }
      e.y[i * n + j] = s;
      e.magnitude[i * n + j] = a;
    }
  return e;
}

// Every |got - want| <= rel * magnitude + abs; reports the worst element.
inline ::testing::AssertionResult within(const std::vector<float>& got, const std::vector<double>& want,
                                         const std::vector<double>& magnitude, double rel, double abs = 1e-6) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  size_t worst = 0;
  double worst_ratio = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double bound = rel * magnitude[i] + abs;
    if (!(err <= bound)) {  // NaN fails too
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << ", error " << err << " > bound " << bound;
    }
    const double ratio = err / bound;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  return ::testing::AssertionSuccess() << "worst element " << worst << " at " << worst_ratio << " of its bound";
}

// Concatenates anything streamable. (GCC 12 raises a false -Wrestrict on chains of
// "literal" + std::to_string(...).)
template <class... T>
std::string str(const T&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

struct Shape {
  int64_t m, n, k;
};
inline std::string shape_name(const Shape& s) {
  return str("M", s.m, "_N", s.n, "_K", s.k);
}

}  // namespace modelpress::kernels::testing
