#include "merge/merge_methods.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <numeric>

#include "io/error.h"

namespace modelpress::merge {
namespace {

// splitmix64's finalizer: a counter-based generator, one independent draw per (key, index).
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double dot(std::span<const float> a, std::span<const float> b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

void check_sizes(size_t n, const std::vector<std::vector<float>>& vs, const char* what) {
  for (const auto& v : vs)
    if (v.size() != n) throw Error(std::string(what) + ": tensors of different sizes");
}

// The k-th largest |v| (1-based k <= v.size()): the top 16 bits of the magnitudes' patterns
// by histogram pick the bucket holding it, the low 16 bits within that bucket the value.
float kth_largest_magnitude(std::span<const float> v, size_t k) {
  const auto key = [](float x) { return std::bit_cast<uint32_t>(x) & 0x7fffffffu; };
  std::vector<uint64_t> hist(65536, 0);
  for (float x : v) ++hist[key(x) >> 16];
  uint32_t high = 65535;
  size_t above = 0;  // entries in buckets above `high`
  while (above + hist[high] < k) above += hist[high--];
  std::fill(hist.begin(), hist.end(), 0);
  for (float x : v)
    if ((key(x) >> 16) == high) ++hist[key(x) & 0xffffu];
  uint32_t low = 65535;
  while (above + hist[low] < k) above += hist[low--];
  return std::bit_cast<float>((high << 16) | low);
}

}  // namespace

void trim_by_magnitude(std::span<float> delta, double density) {
  const size_t n = delta.size();
  if (density >= 1 || n == 0) return;
  // At least one entry survives a positive density (mergekit: k = max(1, int(density n))).
  const size_t k = std::max<size_t>(1, static_cast<size_t>(std::floor(density * static_cast<double>(n))));
  if (k >= n) return;
  // The k-th largest magnitude by a two-pass radix select on the magnitudes' bit patterns
  // (monotone in the value for non-negative floats): no copy of the tensor, linear time.
  const float threshold = kth_largest_magnitude(delta, k);
  size_t above = 0;
  for (size_t i = 0; i < n; ++i) above += std::fabs(delta[i]) > threshold;
  size_t equal_left = k - above;
  for (size_t i = 0; i < n; ++i) {
    const float a = std::fabs(delta[i]);
    if (a > threshold) continue;
    if (a == threshold && equal_left > 0) {
      --equal_left;
      continue;
    }
    delta[i] = 0.0f;
  }
}

uint64_t dare_stream(const std::string& tensor, size_t model_index) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the name, then the model index mixed in
  for (unsigned char c : tensor) h = (h ^ c) * 0x100000001b3ull;
  return mix64(h ^ mix64(model_index + 1));
}

void dare_drop(std::span<float> delta, double density, bool rescale, uint64_t seed, uint64_t stream) {
  if (density >= 1) return;
  const uint64_t key = mix64(seed ^ mix64(stream));
  const float gain = rescale ? static_cast<float>(1.0 / density) : 1.0f;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < delta.size(); ++i) {
    // 53 random bits as a uniform double in [0, 1): kept when below the density.
    const double u = static_cast<double>(mix64(key + 0x9E3779B97F4A7C15ull * (i + 1)) >> 11) * 0x1.0p-53;
    delta[i] = u < density ? delta[i] * gain : 0.0f;
  }
}

std::vector<float> task_arithmetic_merge(std::vector<float> base, std::vector<std::vector<float>>& deltas,
                                         std::span<const double> weights, std::span<const double> densities,
                                         const TaskArithmeticOptions& o, const std::string& tensor) {
  const size_t n = base.size(), m = deltas.size();
  check_sizes(n, deltas, "task arithmetic");
  if (weights.size() != m || (o.sparsify != Sparsify::None && densities.size() != m))
    throw Error("task arithmetic: one weight and one density per model");
  // Each model's task vector is sparsified on its own: one thread per model (inner loops
  // then run on one thread; nothing depends on which thread ran it).
#pragma omp parallel for schedule(dynamic, 1) if (o.sparsify == Sparsify::Magnitude && m > 1)
  for (size_t i = 0; i < m; ++i) {
    if (o.sparsify == Sparsify::Magnitude) {
      double before = 0, after = 0;
      if (o.rescale)
        for (float v : deltas[i]) before += std::fabs(v);
      trim_by_magnitude(deltas[i], densities[i]);
      if (o.rescale)
        for (float v : deltas[i]) after += std::fabs(v);
      // mergekit's `rescale` for magnitude trimming: the survivors scaled to the untrimmed L1 norm.
      if (o.rescale && before >= 1e-7 && after >= 1e-7)
        for (float& v : deltas[i]) v = static_cast<float>(v * (before / after));
    }
    if (o.sparsify == Sparsify::Random) dare_drop(deltas[i], densities[i], o.rescale, o.seed, dare_stream(tensor, i));
  }
  std::vector<float>& out = base;  // each entry is read before it is written: merged in place
  if (!o.consensus) {
    // The plain weighted sum: model by model over a block of entries (contiguous, so the
    // compiler vectorizes it), the same additions in the same order as entry by entry.
    double wsum = 0;
    for (size_t i = 0; i < m; ++i) wsum += weights[i];
    const double divisor = std::fabs(wsum) < 1e-8 ? 1.0 : wsum;
    const double scale = o.normalize ? divisor : 1.0;
    constexpr size_t kBlock = 4096;
    const auto blocks = static_cast<std::ptrdiff_t>((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t blk = 0; blk < blocks; ++blk) {
      const size_t at = static_cast<size_t>(blk) * kBlock, len = std::min(kBlock, n - at);
      double acc[kBlock] = {};
      for (size_t i = 0; i < m; ++i) {
        const float* d = deltas[i].data() + at;
        const double w = weights[i];
        for (size_t e = 0; e < len; ++e) acc[e] += w * d[e];
      }
      for (size_t e = 0; e < len; ++e) out[at + e] = static_cast<float>(base[at + e] + o.lambda * (acc[e] / scale));
    }
    return std::move(out);
  }
  // TIES' sign election: each entry on its own (a sum over models only), so threads change
  // nothing in the result.
#pragma omp parallel for schedule(static)
  for (size_t e = 0; e < n; ++e) {
    double total = 0;
    for (size_t i = 0; i < m; ++i) total += weights[i] * deltas[i][e];
    const int elected = total >= 0 ? 1 : -1;
    double mixed = 0, divisor = 0;
    for (size_t i = 0; i < m; ++i) {
      const double wd = weights[i] * deltas[i][e];
      const int sign = wd > 0 ? 1 : (wd < 0 ? -1 : 0);
      if (sign != elected) continue;
      mixed += wd;
      divisor += weights[i];
    }
    if (divisor == 0) divisor = 1;
    const double merged = o.normalize ? mixed / divisor : mixed;
    out[e] = static_cast<float>(base[e] + o.lambda * merged);
  }
  return std::move(out);
}

std::vector<float> linear_merge(const std::vector<std::vector<float>>& tensors, std::span<const double> weights,
                                bool normalize) {
  if (tensors.empty() || weights.size() != tensors.size()) throw Error("linear: one weight per model");
  const size_t n = tensors[0].size();
  check_sizes(n, tensors, "linear");
  double wsum = 0;
  for (double w : weights) wsum += w;
  if (normalize && std::fabs(wsum) < 1e-8)
    throw Error("linear: the weights sum to zero; a normalized weighted mean is undefined");
  std::vector<float> out(n);
#pragma omp parallel for schedule(static)
  for (size_t e = 0; e < n; ++e) {
    double s = 0;
    for (size_t i = 0; i < tensors.size(); ++i) s += weights[i] * tensors[i][e];
    out[e] = static_cast<float>(normalize ? s / wsum : s);
  }
  return out;
}

std::vector<float> slerp_merge(double t, std::span<const float> v0, std::span<const float> v1) {
  if (v0.size() != v1.size()) throw Error("slerp: tensors of different sizes");
  const size_t n = v0.size();
  const double n0 = std::sqrt(dot(v0, v0)), n1 = std::sqrt(dot(v1, v1));
  // Directions; a vector under 1e-8 in norm stays as it is (mergekit's normalize()).
  const double d0 = n0 > 1e-8 ? n0 : 1.0, d1 = n1 > 1e-8 ? n1 : 1.0;
  const double cosine = dot(v0, v1) / (d0 * d1);
  double c0, c1;
  if (std::fabs(cosine) > 0.9995) {
    c0 = 1 - t;
    c1 = t;
  } else {
    const double theta = std::acos(cosine), sin_theta = std::sin(theta);
    c0 = std::sin(theta - t * theta) / sin_theta;
    c1 = std::sin(t * theta) / sin_theta;
  }
  std::vector<float> out(n);
#pragma omp parallel for schedule(static)
  for (size_t e = 0; e < n; ++e) out[e] = static_cast<float>(c0 * v0[e] + c1 * v1[e]);
  return out;
}

std::vector<float> model_stock_merge(std::span<const float> base, const std::vector<std::vector<float>>& models,
                                     bool filter_wise, int64_t rows) {
  const size_t n = base.size(), m = models.size();
  if (m < 2) throw Error("model_stock: needs at least two fine-tuned models besides the base");
  check_sizes(n, models, "model_stock");
  const size_t groups = filter_wise && rows > 0 ? static_cast<size_t>(rows) : 1;
  if (n % groups != 0) throw Error("model_stock: the tensor's size is not a multiple of its rows");
  const size_t len = n / groups;
  std::vector<float> out(n);
  std::vector<std::vector<double>> offset(m, std::vector<double>(len));
  for (size_t g = 0; g < groups; ++g) {
    const size_t at = g * len;
    for (size_t i = 0; i < m; ++i)
      for (size_t e = 0; e < len; ++e) offset[i][e] = static_cast<double>(models[i][at + e]) - base[at + e];
    double cos_sum = 0;
    size_t pairs = 0;
    for (size_t i = 0; i < m; ++i)
      for (size_t j = i + 1; j < m; ++j) {
        double ij = 0, ii = 0, jj = 0;
        for (size_t e = 0; e < len; ++e) {
          ij += offset[i][e] * offset[j][e];
          ii += offset[i][e] * offset[i][e];
          jj += offset[j][e] * offset[j][e];
        }
        const double norms = std::max(std::sqrt(ii) * std::sqrt(jj), 1e-6);
        cos_sum += std::clamp(ij / norms, -1.0, 1.0);
        ++pairs;
      }
    const double cosine = cos_sum / static_cast<double>(pairs), count = static_cast<double>(m);
    const double t = count * cosine / (1 + (count - 1) * cosine);
    for (size_t e = 0; e < len; ++e) {
      double mean = 0;
      for (size_t i = 0; i < m; ++i) mean += models[i][at + e];
      mean /= count;
      out[at + e] = static_cast<float>(t * mean + (1 - t) * base[at + e]);
    }
  }
  return out;
}

}  // namespace modelpress::merge
