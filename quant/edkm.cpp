// DKM / eDKM rounds, 16-bit uniquification and the centroid search (edkm.h). The pass that
// turns a weight into a Lut PackedLayer is in edkm_pass.cpp.
#include "quant/edkm.h"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "io/error.h"
#include "io/float_convert.h"
#include "kernels/cpu_features.h"

namespace modelpress::quant {

namespace {

// e^x for x <= 0 in float, branch-free so the 8-lane loops below vectorize: 2^(x log2 e)
// split into an integer power (exponent bits) and 2^r, r in [-1/2, 1/2], by a degree-6
// Taylor polynomial of e^(r ln 2) (relative error < 2e-7, about float's rounding). Below
// -60 the result is 0: such an attention weight is below 2^-86 of the row's largest term
// (which is 1) and cannot change a float sum; stopping there also keeps every product out
// of the subnormal range, where each operation would cost a ~100-cycle microcode assist
// (measured: 20x slower rounds with small tau, where most centroids are far).
__attribute__((always_inline)) inline float exp_nonpositive(float x) {
  const float xc = x < -60.0f ? -60.0f : x;
  const float t = xc * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const float r = (t - n) * 0.693147180559945309f;  // in [-ln2/2, ln2/2]
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int>(n) + 127) << 23);
  return x < -60.0f ? 0.0f : p * scale;
}

constexpr int kLanes = 8;
constexpr int kMaxK = 256;

// One DKM round's sums over values [0, u): num[j] = sum m a_j v, den[j] = sum m a_j. Eight
// values at a time in float lanes; the lane sums go to double every 64 blocks (512 values)
// so a 65,536-value round loses no more than float's rounding of 512 terms.
template <int Dummy>
__attribute__((always_inline)) inline void dkm_sums_impl(const float* v, const float* m, int64_t u, const float* c, int k, float inv_tau, double* num,
                          double* den) {
  alignas(32) float e[kMaxK][kLanes];
  alignas(32) float an[kMaxK][kLanes], ad[kMaxK][kLanes];
  for (int j = 0; j < k; ++j)
    for (int l = 0; l < kLanes; ++l) an[j][l] = ad[j][l] = 0.0f;
  int blocks_since_flush = 0;
  for (int64_t i0 = 0; i0 < u; i0 += kLanes) {
    alignas(32) float x[kLanes], w[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const bool in = i0 + l < u;
      x[l] = in ? v[i0 + l] : v[u - 1];
      w[l] = in ? m[i0 + l] : 0.0f;  // padding lanes weigh nothing
    }
    alignas(32) float dmin[kLanes];
    for (int l = 0; l < kLanes; ++l) dmin[l] = std::numeric_limits<float>::infinity();
    for (int j = 0; j < k; ++j)
      for (int l = 0; l < kLanes; ++l) {
        const float d = (x[l] - c[j]) * (x[l] - c[j]);  // d_uj
        e[j][l] = d;
        dmin[l] = d < dmin[l] ? d : dmin[l];
      }
    // softmax_j(-d / tau), shifted by the row's largest term (min d) so it never overflows.
    alignas(32) float s[kLanes] = {};
    for (int j = 0; j < k; ++j)
      for (int l = 0; l < kLanes; ++l) {
        const float a = exp_nonpositive((dmin[l] - e[j][l]) * inv_tau);
        e[j][l] = a;
        s[l] += a;
      }
    alignas(32) float f[kLanes], fx[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      f[l] = w[l] / s[l];  // s >= 1: the nearest centroid contributes e^0
      fx[l] = f[l] * x[l];
    }
    for (int j = 0; j < k; ++j)
      for (int l = 0; l < kLanes; ++l) {
        an[j][l] += e[j][l] * fx[l];
        ad[j][l] += e[j][l] * f[l];
      }
    if (++blocks_since_flush == 64 || i0 + kLanes >= u) {
      blocks_since_flush = 0;
      for (int j = 0; j < k; ++j)
        for (int l = 0; l < kLanes; ++l) {
          num[j] += an[j][l];
          den[j] += ad[j][l];
          an[j][l] = ad[j][l] = 0.0f;
        }
    }
  }
}

// exp_nonpositive on 8 lanes (the same steps; vroundps rounds to nearest like the magic add).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 exp_nonpositive8(__m256 x) {
  const __m256 lim = _mm256_set1_ps(-60.0f);
  const __m256 t = _mm256_mul_ps(_mm256_max_ps(x, lim), _mm256_set1_ps(1.44269504088896341f));
  const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_mul_ps(_mm256_sub_ps(t, n), _mm256_set1_ps(0.693147180559945309f));
  __m256 p = _mm256_set1_ps(1.0f / 720.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256 scale =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  return _mm256_and_ps(_mm256_mul_ps(p, scale), _mm256_cmp_ps(x, lim, _CMP_GE_OQ));
}

// dkm_sums_impl with explicit vectors: GCC leaves the scalar template's exp unvectorized.
__attribute__((target("avx2,fma"))) void dkm_sums_avx2(const float* v, const float* m, int64_t u, const float* c,
                                                       int k, float inv_tau, double* num, double* den) {
  __m256 e[kMaxK], an[kMaxK], ad[kMaxK];
  for (int j = 0; j < k; ++j) an[j] = ad[j] = _mm256_setzero_ps();
  const __m256 it = _mm256_set1_ps(inv_tau);
  int blocks_since_flush = 0;
  for (int64_t i0 = 0; i0 < u; i0 += kLanes) {
    alignas(32) float xb[kLanes], wb[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const bool in = i0 + l < u;
      xb[l] = in ? v[i0 + l] : v[u - 1];
      wb[l] = in ? m[i0 + l] : 0.0f;  // padding lanes weigh nothing
    }
    const __m256 x = _mm256_load_ps(xb), w = _mm256_load_ps(wb);
    __m256 dmin = _mm256_set1_ps(std::numeric_limits<float>::infinity());
    for (int j = 0; j < k; ++j) {
      const __m256 diff = _mm256_sub_ps(x, _mm256_set1_ps(c[j]));
      e[j] = _mm256_mul_ps(diff, diff);  // d_uj
      dmin = _mm256_min_ps(dmin, e[j]);
    }
    __m256 s = _mm256_setzero_ps();
    // A centroid whose exponent is below -60 in every lane contributes exactly 0 (see
    // exp_nonpositive): skipping it gives the same sums and saves the exp. With a small tau
    // most centroids are that far from 8 neighbouring sorted values, and per-group tables
    // (many small tables) spend most of their time here.
    bool live[kMaxK];
    for (int j = 0; j < k; ++j) {
      const __m256 t = _mm256_mul_ps(_mm256_sub_ps(dmin, e[j]), it);
      live[j] = _mm256_movemask_ps(_mm256_cmp_ps(t, _mm256_set1_ps(-60.0f), _CMP_GE_OQ)) != 0;
      if (!live[j]) continue;
      e[j] = exp_nonpositive8(t);
      s = _mm256_add_ps(s, e[j]);
    }
    const __m256 f = _mm256_div_ps(w, s), fx = _mm256_mul_ps(f, x);  // s >= 1
    for (int j = 0; j < k; ++j) {
      if (!live[j]) continue;
      an[j] = _mm256_fmadd_ps(e[j], fx, an[j]);
      ad[j] = _mm256_fmadd_ps(e[j], f, ad[j]);
    }
    if (++blocks_since_flush == 64 || i0 + kLanes >= u) {
      blocks_since_flush = 0;
      for (int j = 0; j < k; ++j) {
        alignas(32) float a[kLanes], b[kLanes];
        _mm256_store_ps(a, an[j]);
        _mm256_store_ps(b, ad[j]);
        for (int l = 0; l < kLanes; ++l) num[j] += a[l], den[j] += b[l];
        an[j] = ad[j] = _mm256_setzero_ps();
      }
    }
  }
}
void dkm_sums_baseline(const float* v, const float* m, int64_t u, const float* c, int k, float inv_tau, double* num,
                       double* den) {
  dkm_sums_impl<0>(v, m, u, c, k, inv_tau, num, den);
}

// Weighted mean and standard deviation of a table's values: the scale DKM's temperature and
// both stopping rules are relative to, so a layer scaled by any factor clusters the same way.
struct Spread {
  double mean = 0, sd = 0;
};
Spread spread(const WeightedValues& v) {
  double w = 0, s = 0;
  for (size_t i = 0; i < v.size(); ++i) w += v.weight[i], s += v.weight[i] * v.value[i];
  if (!(w > 0)) return {};
  const double mean = s / w;
  double q = 0;
  for (size_t i = 0; i < v.size(); ++i) q += v.weight[i] * (v.value[i] - mean) * (v.value[i] - mean);
  return {mean, std::sqrt(q / w)};
}

}  // namespace

int dkm_iterate(const WeightedValues& values, std::vector<float>& c, const DkmParams& p) {
  const int k = static_cast<int>(c.size());
  const auto u = static_cast<int64_t>(values.size());
  if (u == 0 || k == 0) return 0;
  if (k > kMaxK) throw Error("dkm: at most 256 centroids (8 bits), got " + std::to_string(k));
  // 1 / tau is taken in float: below ~1e-30 it would overflow to inf and 0 * inf = NaN.
  if (!(p.tau >= 1e-30) || !std::isfinite(p.tau)) throw Error("dkm: tau must be a finite number >= 1e-30");
  // Scale-free: the rounds run on standardized values z = (v - mean) / sd, so tau is in units
  // of the table's variance and epsilon of its standard deviation (an absolute temperature
  // collapses small-scale layers: at std 0.002, coremltools' 1e-4 made every centroid one value).
  const Spread sp = spread(values);
  if (!(sp.sd > 0)) return 0;  // one value (or no weight): nothing to move
  std::vector<float> z(static_cast<size_t>(u)), m(values.weight.begin(), values.weight.end());
  for (int64_t i = 0; i < u; ++i)
    z[static_cast<size_t>(i)] = static_cast<float>((values.value[static_cast<size_t>(i)] - sp.mean) / sp.sd);
  for (float& cj : c) cj = static_cast<float>((cj - sp.mean) / sp.sd);
  const double tol = p.epsilon;
  const auto inv_tau = static_cast<float>(1.0 / p.tau);
  const bool avx2 = kernels::cpu_features().avx2_fma;
  // Threads only where a round is worth a thread start (~8k values x 16 centroids and up),
  // and only when called from the main thread: per-group tables already run in parallel.
  const int threads = p.threads > 1 && u * k >= (int64_t{1} << 17) ? p.threads : 1;
  std::vector<double> num(static_cast<size_t>(k)), den(static_cast<size_t>(k));
  int it = 0;
  while (it < p.max_iters) {
    ++it;
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    const auto sums = avx2 ? dkm_sums_avx2 : dkm_sums_baseline;
    if (threads > 1) {
      // Large tables split their values across cores (rows of the attention map are
      // independent); each part sums into its own buffers, added in a fixed order.
      std::vector<std::vector<double>> part_num(static_cast<size_t>(threads), std::vector<double>(static_cast<size_t>(k)));
      std::vector<std::vector<double>> part_den = part_num;
      std::vector<std::thread> pool;
      const int64_t chunk = (u + threads - 1) / threads / kLanes * kLanes + kLanes;
      for (int t = 0; t < threads; ++t) {
        const int64_t b = std::min(u, t * chunk), e = std::min(u, b + chunk);
        if (b < e)
          pool.emplace_back([&, t, b, e] {
            sums(z.data() + b, m.data() + b, e - b, c.data(), k, inv_tau, part_num[static_cast<size_t>(t)].data(),
                 part_den[static_cast<size_t>(t)].data());
          });
      }
      for (auto& th : pool) th.join();
      for (int t = 0; t < threads; ++t)
        for (int j = 0; j < k; ++j) {
          num[static_cast<size_t>(j)] += part_num[static_cast<size_t>(t)][static_cast<size_t>(j)];
          den[static_cast<size_t>(j)] += part_den[static_cast<size_t>(t)][static_cast<size_t>(j)];
        }
    } else {
      sums(z.data(), m.data(), u, c.data(), k, inv_tau, num.data(), den.data());
    }
    double moved = 0;
    for (int j = 0; j < k; ++j) {
      if (!(den[static_cast<size_t>(j)] > 0)) continue;  // no attention at all: keep it
      const auto next = static_cast<float>(num[static_cast<size_t>(j)] / den[static_cast<size_t>(j)]);
      moved = std::max(moved, static_cast<double>(std::abs(next - c[static_cast<size_t>(j)])));
      c[static_cast<size_t>(j)] = next;
    }
    std::sort(c.begin(), c.end());
    if (moved <= tol) break;
  }
  for (float& cj : c) cj = static_cast<float>(cj * sp.sd + sp.mean);
  std::sort(c.begin(), c.end());
  return it;
}

int dkm_iterate_dense_reference(const float* w, int64_t count, std::vector<float>& c, const DkmParams& p) {
  const size_t k = c.size();
  // Relative to the weights' variance, as dkm_iterate (which standardizes instead).
  double mean = 0, var = 0;
  for (int64_t i = 0; i < count; ++i) mean += w[i];
  mean /= static_cast<double>(std::max<int64_t>(count, 1));
  for (int64_t i = 0; i < count; ++i) var += (w[i] - mean) * (w[i] - mean);
  var /= static_cast<double>(std::max<int64_t>(count, 1));
  if (!(var > 0)) return 0;
  const double tol = p.epsilon * std::sqrt(var), tau = p.tau * var;
  std::vector<double> a(k), num(k), den(k);
  int it = 0;
  while (it < p.max_iters) {
    ++it;
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    for (int64_t i = 0; i < count; ++i) {
      double dmin = std::numeric_limits<double>::infinity();
      for (size_t j = 0; j < k; ++j) {
        const double d = (static_cast<double>(w[i]) - c[j]) * (static_cast<double>(w[i]) - c[j]);
        a[j] = d;
        dmin = std::min(dmin, d);
      }
      double s = 0;
      for (size_t j = 0; j < k; ++j) s += (a[j] = std::exp(-(a[j] - dmin) / tau));
      for (size_t j = 0; j < k; ++j) {
        num[j] += a[j] / s * w[i];
        den[j] += a[j] / s;
      }
    }
    double moved = 0;
    for (size_t j = 0; j < k; ++j) {
      if (!(den[j] > 0)) continue;
      const auto next = static_cast<float>(num[j] / den[j]);
      moved = std::max(moved, static_cast<double>(std::abs(next - c[j])));
      c[j] = next;
    }
    std::sort(c.begin(), c.end());
    if (moved <= tol) break;
  }
  return it;
}

namespace {

__attribute__((target("avx2,fma,f16c"))) void f16_keys_avx2(const float* x, int64_t count, uint16_t* keys) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // Sortable: negatives flipped whole (h ^ 0xffff), positives get the top bit (h ^ 0x8000).
    const __m128i flip = _mm_or_si128(_mm_srai_epi16(h, 15), _mm_set1_epi16(static_cast<short>(0x8000)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(keys + i), _mm_xor_si128(h, flip));
  }
  for (; i < count; ++i) {
    const uint16_t h = f32_to_f16(x[i]);
    keys[i] = (h & 0x8000) ? static_cast<uint16_t>(~h) : static_cast<uint16_t>(h | 0x8000);
  }
}

}  // namespace

void f16_sort_keys(const float* x, int64_t count, uint16_t* keys) {
  if (kernels::cpu_features().avx2_fma) return f16_keys_avx2(x, count, keys);
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t h = f32_to_f16(x[i]);
    keys[i] = (h & 0x8000) ? static_cast<uint16_t>(~h) : static_cast<uint16_t>(h | 0x8000);
  }
}

void bf16_sort_keys(const float* x, int64_t count, uint16_t* keys) {
  for (int64_t i = 0; i < count; ++i) {
    // x holds a bf16 value: its top 16 bits are the bf16 pattern, exactly.
    const auto h = static_cast<uint16_t>(std::bit_cast<uint32_t>(x[i]) >> 16);
    keys[i] = (h & 0x8000) ? static_cast<uint16_t>(~h) : static_cast<uint16_t>(h | 0x8000);
  }
}

WeightedValues unique_from_keys(const uint16_t* keys, int64_t rows, int64_t k, bool bf16, const float* importance) {
  WeightedValues out;
  auto emit = [&](uint32_t key, double weight) {
    const uint16_t h = (key & 0x8000) ? static_cast<uint16_t>(key & 0x7fff) : static_cast<uint16_t>(~key);
    const float v = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    if (!out.value.empty() && out.value.back() == v) out.weight.back() += weight;  // -0 and +0
    else out.value.push_back(v), out.weight.push_back(weight);
  };
  const int64_t count = rows * k;
  if (count < 16384) {  // a sort is cheaper than clearing and scanning 65,536 bins
    std::vector<std::pair<uint16_t, float>> keyed(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) keyed[static_cast<size_t>(i)] = {keys[i], importance ? importance[i % k] : 1.0f};
    std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [key, w] : keyed)
      if (w > 0) emit(key, w);
    return out;
  }
  if (!importance) {
    // Counts in 32 bits: half the cache footprint of double bins for the random increments.
    // Large tables count on two threads into two histograms (a single pass over 10M+ keys
    // was a tenth of a whole-checkpoint run, serial).
    std::vector<uint32_t> hist(65536, 0);
    if (count >= (int64_t{1} << 20)) {
      std::vector<uint32_t> other(65536, 0);
      const int64_t half = count / 2;
      std::thread t([&] {
        for (int64_t i = half; i < count; ++i) ++other[keys[i]];
      });
      for (int64_t i = 0; i < half; ++i) ++hist[keys[i]];
      t.join();
      for (size_t i = 0; i < hist.size(); ++i) hist[i] += other[i];
    } else {
      for (int64_t i = 0; i < count; ++i) ++hist[keys[i]];
    }
    for (uint32_t key = 0; key < 65536; ++key)
      if (hist[key]) emit(key, hist[key]);
    return out;
  }
  std::vector<double> hist(65536, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c) hist[keys[r * k + c]] += importance[c];
  for (uint32_t key = 0; key < 65536; ++key)
    if (hist[key] > 0) emit(key, hist[key]);
  return out;
}

WeightedValues unique_values_16bit(const float* x, int64_t rows, int64_t k, bool bf16, const float* importance) {
  const int64_t count = rows * k;
  float absmax = 0;
  for (int64_t i = 0; i < count; ++i) absmax = std::max(absmax, std::abs(x[i]));
  if (!bf16 && (absmax >= 65504.0f || (absmax > 0.0f && absmax < 6.103515625e-05f))) {
    // Beyond f16's range the key would be Inf; below its smallest normal (2^-14) every key
    // is a subnormal or 0, steps far coarser than 2^-11 of the values: uniquify the exact
    // values instead.
    std::vector<float> imp;
    if (importance) {
      imp.resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) imp[static_cast<size_t>(i)] = importance[i % k];
    }
    return unique_values(x, count, importance ? imp.data() : nullptr);
  }
  // Sortable key: the 16-bit pattern with negatives' bits flipped, so that unsigned order is
  // value order (-0 and +0 land next to each other and merge below).
  auto key_of = [bf16](float v) -> uint16_t {
    const uint16_t h = bf16 ? f32_to_bf16(v) : f32_to_f16(v);
    return (h & 0x8000) ? static_cast<uint16_t>(~h) : static_cast<uint16_t>(h | 0x8000);
  };
  auto value_of = [bf16](uint16_t key) {
    const uint16_t h = (key & 0x8000) ? static_cast<uint16_t>(key & 0x7fff) : static_cast<uint16_t>(~key);
    return bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  };
  WeightedValues out;
  auto emit = [&](uint16_t key, double weight) {
    const float v = value_of(key);
    if (!out.value.empty() && out.value.back() == v) out.weight.back() += weight;
    else out.value.push_back(v), out.weight.push_back(weight);
  };
  if (count >= 16384) {
    std::vector<double> hist(65536, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < k; ++c) hist[key_of(x[r * k + c])] += importance ? importance[c] : 1.0;
    for (uint32_t key = 0; key < 65536; ++key)
      if (hist[key] > 0) emit(static_cast<uint16_t>(key), hist[key]);
    // A value whose importance is 0 everywhere has no weight and is not clustered; the
    // hard assignment still gives it its nearest centroid.
    return out;
  }
  std::vector<std::pair<uint16_t, float>> keyed(static_cast<size_t>(count));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c)
      keyed[static_cast<size_t>(r * k + c)] = {key_of(x[r * k + c]), importance ? importance[c] : 1.0f};
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, w] : keyed)
    if (w > 0) emit(key, w);
  return out;
}

std::vector<float> cluster_values(const WeightedValues& values, const ClusterOptions& o, bool* collapsed) {
  const int k = 1 << o.bits;
  if (collapsed) *collapsed = false;
  // The exact 1-D optimum is the default start at every table size: on the default model it
  // is what DKM and Lloyd cannot improve, for 0.2-0.35 s more on all-MiniLM-L6-v2 (docs/CLUSTERING.md).
  const bool opt1d = o.init != ClusterInit::KMeansPlusPlus;
  std::vector<float> c = opt1d ? kmeans_optimal_1d(values, k, o.dkm.threads) : kmeans_plus_plus(values, k, o.seed);
  if (values.size() <= static_cast<size_t>(k)) return c;  // exact already
  const double tol = o.dkm.epsilon * spread(values).sd;  // relative to the table's own spread
  if (o.algorithm == ClusterAlgorithm::KMeans) {
    kmeans_lloyd(values, c, o.kmeans_iters, tol);
    return c;
  }
  const std::vector<float> start = c;
  dkm_iterate(values, c, o.dkm);
  // Collapse guard: a temperature too high for the data pulls centroids together toward the
  // mean, until some are no value's nearest. With at least k distinct values every centroid
  // of the optimal start is some value's nearest, so fewer in use is a degenerate table: keep
  // the start, refined by Lloyd (which never merges), and tell the caller.
  std::vector<uint8_t> used(c.size(), 0);
  for (float v : values.value) used[static_cast<size_t>(nearest_centroid(c, v))] = 1;
  if (std::count(used.begin(), used.end(), 1) < static_cast<std::ptrdiff_t>(c.size())) {
    c = opt1d ? start : kmeans_optimal_1d(values, k, o.dkm.threads);
    kmeans_lloyd(values, c, o.kmeans_iters, tol);
    if (collapsed) *collapsed = true;
  }
  return c;
}

}  // namespace modelpress::quant
