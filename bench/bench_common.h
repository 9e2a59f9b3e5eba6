// Internal to the bench library: input generation, rotation sizing and row statistics shared by
// the CPU and CUDA runners.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench/kernel_bench.h"

namespace modelpress::bench::detail {

// splitmix64: fast enough to fill hundreds of MiB of inputs (mt19937 is not), and the inputs
// must be random: zeros or constants can run faster than real data and hide wrong indexing.
class FastRng {
 public:
  explicit FastRng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 40) * 0x1.0p-24f; }
  // Sum of 4 uniforms, centred and scaled: close enough to normal for timing inputs.
  float normalish() {
    return (uniform(0, 1) + uniform(0, 1) + uniform(0, 1) + uniform(0, 1) - 2.0f) * 1.7320508f;
  }

 private:
  uint64_t s_;
};

// Activations (M, K): normal-ish, plus (llm-int8) a share of columns holding outliers of
// magnitude 6.5..20 in every row, as LLM.int8's systematic outlier features do.
inline std::vector<float> make_x(const BenchShape& s, double outlier_fraction, uint64_t seed, int64_t* outlier_cols) {
  FastRng rng(seed);
  std::vector<float> x(static_cast<size_t>(s.m * s.k));
  for (auto& v : x) v = rng.normalish();
  int64_t count = 0;
  if (outlier_fraction > 0) {
    count = std::max<int64_t>(1, static_cast<int64_t>(std::llround(outlier_fraction * static_cast<double>(s.k))));
    const int64_t stride = s.k / count;  // spread evenly: deterministic count, no duplicates
    for (int64_t c = 0; c < count; ++c) {
      const int64_t col = c * stride + static_cast<int64_t>(rng.next() % static_cast<uint64_t>(stride));
      for (int64_t r = 0; r < s.m; ++r) x[r * s.k + col] = (rng.next() & 1 ? 1.0f : -1.0f) * rng.uniform(6.5f, 20.0f);
    }
  }
  if (outlier_cols) *outlier_cols = count;
  return x;
}

inline std::vector<float> make_f32(int64_t count, float scale, uint64_t seed) {
  FastRng rng(seed);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& e : v) e = rng.normalish() * scale;
  return v;
}

inline std::vector<int8_t> make_i8(int64_t count, uint64_t seed) {
  FastRng rng(seed);
  std::vector<int8_t> v(static_cast<size_t>(count));
  for (auto& e : v) e = static_cast<int8_t>(static_cast<int>(rng.next() % 255) - 127);
  return v;
}

inline std::vector<uint8_t> make_u8(int64_t count, uint64_t seed, int mod = 256) {
  FastRng rng(seed);
  std::vector<uint8_t> v(static_cast<size_t>(count));
  for (auto& e : v) e = static_cast<uint8_t>(rng.next() % static_cast<uint64_t>(mod));
  return v;
}

inline std::vector<float> make_scales(int64_t count, uint64_t seed) {
  FastRng rng(seed);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& e : v) e = rng.uniform(0.001f, 0.02f);
  return v;
}

// How many copies of a set of `set_bytes` to rotate through so that the cache (`cache_bytes`)
// cannot hold the next run's inputs: at least twice the cache in all, within `budget` bytes.
inline int rotation_count(double set_bytes, double cache_bytes, double budget, bool* capped) {
  int r = static_cast<int>(std::ceil(2.0 * cache_bytes / std::max(1.0, set_bytes)));
  r = std::clamp(r, 1, 64);
  const int fit = static_cast<int>(std::max(1.0, std::floor(budget / std::max(1.0, set_bytes))));
  *capped = r > fit;
  return std::min(r, fit);
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Fills the derived columns of a row from its median and counts.
inline void finish_row(BenchRow& r) {
  const double s = r.median_us * 1e-6;
  r.ops = 2.0 * static_cast<double>(r.shape.m) * static_cast<double>(r.shape.n) * static_cast<double>(r.shape.k);
  r.gbps = s > 0 ? r.bytes / s * 1e-9 : 0;
  r.tops = s > 0 ? r.ops / s * 1e-12 : 0;
}

// Sets vs_dense for every row from the dense row of the same shape.
inline void ratios_to_dense(std::vector<BenchRow>& rows) {
  for (auto& r : rows)
    for (const auto& d : rows)
      if (d.kernel == "dense" && d.shape.m == r.shape.m && d.shape.n == r.shape.n && d.shape.k == r.shape.k &&
          r.median_us > 0)
        r.vs_dense = d.median_us / r.median_us;
}

inline bool wants(const BenchOptions& o, const std::string& kernel) {
  return o.kernels.empty() || std::find(o.kernels.begin(), o.kernels.end(), kernel) != o.kernels.end();
}

}  // namespace modelpress::bench::detail
