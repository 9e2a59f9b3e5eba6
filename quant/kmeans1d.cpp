#include "quant/kmeans1d.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

namespace modelpress::quant {

WeightedValues unique_values(const float* x, int64_t count, const float* importance) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] < x[b]; });
  WeightedValues v;
  for (int64_t i : order) {
    const double w = importance ? importance[i] : 1.0;
    // +0 and -0 compare equal and are one value.
    if (!v.value.empty() && v.value.back() == x[i]) v.weight.back() += w;
    else v.value.push_back(x[i]), v.weight.push_back(w);
  }
  return v;
}

namespace {

// Pads a list of fewer than k distinct centroids by repeating the last: the repeats are
// never nearer than the original (ties go to the lower index), so no entry is empty.
std::vector<float> exact_centroids(const WeightedValues& v, int k) {
  std::vector<float> c(v.value.begin(), v.value.end());
  if (c.empty()) c.push_back(0.0f);
  while (static_cast<int>(c.size()) < k) c.push_back(c.back());
  return c;
}

}  // namespace

std::vector<float> kmeans_plus_plus(const WeightedValues& v, int k, uint64_t seed) {
  const size_t u = v.size();
  if (u <= static_cast<size_t>(k)) return exact_centroids(v, k);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  // Samples index i with probability p[i] / sum(p).
  auto sample = [&](const std::vector<double>& p) {
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    double r = uniform(rng) * total;
    for (size_t i = 0; i < p.size(); ++i) {
      r -= p[i];
      if (r < 0) return i;
    }
    return p.size() - 1;
  };
  std::vector<float> c;
  c.push_back(v.value[sample(v.weight)]);
  std::vector<double> d2(u), p(u);
  for (size_t i = 0; i < u; ++i) {
    const double d = v.value[i] - c[0];
    d2[i] = d * d;
  }
  while (static_cast<int>(c.size()) < k) {
    for (size_t i = 0; i < u; ++i) p[i] = v.weight[i] * d2[i];
    // All remaining mass at distance 0 cannot happen with u > k distinct values and fewer
    // than k centroids chosen, so the sample is always a new value.
    const float next = v.value[sample(p)];
    c.push_back(next);
    for (size_t i = 0; i < u; ++i) {
      const double d = v.value[i] - next;
      d2[i] = std::min(d2[i], d * d);
    }
  }
  std::sort(c.begin(), c.end());
  return c;
}

namespace {

// Prefix sums for the cost of one contiguous cluster [a, b] (inclusive) of sorted values:
// sum w x^2 - (sum w x)^2 / sum w. Values are centred first so the subtraction does not
// cancel catastrophically for weights far from zero.
struct Prefix {
  std::vector<double> w, wx, wxx;
  explicit Prefix(const WeightedValues& v) : w(v.size() + 1), wx(v.size() + 1), wxx(v.size() + 1) {
    double mean = 0, total = 0;
    for (size_t i = 0; i < v.size(); ++i) mean += v.weight[i] * v.value[i], total += v.weight[i];
    mean = total > 0 ? mean / total : 0;
    for (size_t i = 0; i < v.size(); ++i) {
      const double x = v.value[i] - mean;
      w[i + 1] = w[i] + v.weight[i];
      wx[i + 1] = wx[i] + v.weight[i] * x;
      wxx[i + 1] = wxx[i] + v.weight[i] * x * x;
    }
  }
  double cost(size_t a, size_t b) const {  // [a, b]
    const double sw = w[b + 1] - w[a], sx = wx[b + 1] - wx[a], sxx = wxx[b + 1] - wxx[a];
    return sw > 0 ? std::max(0.0, sxx - sx * sx / sw) : 0.0;
  }
  double mean(size_t a, size_t b, double centre) const {
    const double sw = w[b + 1] - w[a];
    return (wx[b + 1] - wx[a]) / sw + centre;
  }
};

}  // namespace

std::vector<float> kmeans_optimal_1d(const WeightedValues& v, int k, int threads) {
  const size_t u = v.size();
  if (u <= static_cast<size_t>(k)) return exact_centroids(v, k);
  const Prefix pre(v);
  double centre = 0, total = 0;
  for (size_t i = 0; i < u; ++i) centre += v.weight[i] * v.value[i], total += v.weight[i];
  centre /= total;
  constexpr double inf = std::numeric_limits<double>::infinity();
  // prev[i]: best cost of values [0, i] in j clusters; split[j][i]: first index of the last
  // cluster in that solution.
  std::vector<double> prev(u), cur(u);
  std::vector<std::vector<uint32_t>> split(static_cast<size_t>(k), std::vector<uint32_t>(u, 0));
  for (size_t i = 0; i < u; ++i) prev[i] = pre.cost(0, i);
  // Threads only for tables large enough to pay a thread start per round (the default start of
  // every per-tensor table: ~10-30k unique values).
  const int workers = u >= 4096 ? std::max(1, threads) : 1;
  for (int j = 1; j < k; ++j) {
    // cur[i] = min over a in [j, i] of prev[a - 1] + cost(a, i); the best a is monotone in
    // i (the cost is a Monge array), so a divide-and-conquer search finds all of them.
    std::vector<uint32_t>& sp = split[static_cast<size_t>(j)];
    const std::vector<uint32_t>& below = split[static_cast<size_t>(j - 1)];
    // An explicit stack of (lo, hi, alo, ahi) instead of recursion through std::function:
    // per-group clustering runs this thousands of times per layer.
    struct Range {
      int64_t lo, hi, alo, ahi;
    };
    // Solves one range's midpoint; pushes the two halves, which are independent of each
    // other (disjoint outputs, both reading only prev).
    auto step = [&](const Range& r, std::vector<Range>& out) {
      if (r.lo > r.hi) return;
      const int64_t mid = (r.lo + r.hi) / 2;
      double best = inf;
      // The last cluster of j + 1 clusters starts no earlier than that of j clusters (the
      // split is monotone in the number of clusters too): a second lower bound, from the
      // round before, that narrows the scan without changing the result.
      const int64_t hi = std::min(mid, r.ahi);
      const int64_t lo = std::min(hi, std::max<int64_t>({r.alo, j, static_cast<int64_t>(below[static_cast<size_t>(mid)])}));
      int64_t best_a = lo;
      for (int64_t a = lo; a <= hi; ++a) {
        const double c = prev[static_cast<size_t>(a - 1)] + pre.cost(static_cast<size_t>(a), static_cast<size_t>(mid));
        if (c < best) best = c, best_a = a;
      }
      cur[static_cast<size_t>(mid)] = best;
      sp[static_cast<size_t>(mid)] = static_cast<uint32_t>(best_a);
      out.push_back({r.lo, mid - 1, r.alo, best_a});
      out.push_back({mid + 1, r.hi, best_a, r.ahi});
    };
    auto drain = [&](std::vector<Range> stack) {
      while (!stack.empty()) {
        const Range r = stack.back();
        stack.pop_back();
        step(r, stack);
      }
    };
    std::vector<Range> ranges{{j, static_cast<int64_t>(u) - 1, j, static_cast<int64_t>(u) - 1}};
    if (workers > 1) {
      // Split the top of the recursion into a few ranges per worker (their sizes differ), then
      // run them at once.
      while (static_cast<int>(ranges.size()) < 4 * workers) {
        std::vector<Range> next;
        for (const Range& r : ranges) step(r, next);
        if (next.empty()) break;
        ranges = std::move(next);
      }
      std::vector<std::thread> pool;
      for (int t = 1; t < workers; ++t)
        pool.emplace_back([&, t] {
          for (size_t i = static_cast<size_t>(t); i < ranges.size(); i += static_cast<size_t>(workers)) drain({ranges[i]});
        });
      for (size_t i = 0; i < ranges.size(); i += static_cast<size_t>(workers)) drain({ranges[i]});
      for (auto& th : pool) th.join();
    } else {
      drain(std::move(ranges));
    }
    for (int64_t i = 0; i < j; ++i) cur[static_cast<size_t>(i)] = inf;
    std::swap(prev, cur);
  }
  std::vector<float> c(static_cast<size_t>(k));
  size_t end = u - 1;
  for (int j = k - 1; j >= 0; --j) {
    const size_t a = j > 0 ? split[static_cast<size_t>(j)][end] : 0;
    c[static_cast<size_t>(j)] = static_cast<float>(pre.mean(a, end, centre));
    if (j > 0) end = a - 1;
  }
  return c;
}

double kmeans_optimal_1d_brute_cost(const WeightedValues& v, int k) {
  const size_t u = v.size();
  if (u <= static_cast<size_t>(k)) return 0.0;
  const Prefix pre(v);
  // Every choice of k - 1 cut points among the u - 1 gaps.
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> cuts;
  std::function<void(size_t, double)> rec = [&](size_t start, double acc) {
    if (static_cast<int>(cuts.size()) == k - 1) {
      best = std::min(best, acc + pre.cost(start, u - 1));
      return;
    }
    for (size_t end = start; end + (static_cast<size_t>(k) - 1 - cuts.size()) < u; ++end) {
      cuts.push_back(end);
      rec(end + 1, acc + pre.cost(start, end));
      cuts.pop_back();
    }
  };
  rec(0, 0.0);
  return best;
}

int nearest_centroid(const std::vector<float>& c, float x) {
  // The nearest value is the last centroid below x or the first at or above it; equal
  // centroids (DKM can merge two) resolve to the first of them, ties to the lower value.
  const auto it = std::lower_bound(c.begin(), c.end(), x);
  float v;
  if (it == c.begin()) v = c.front();
  else if (it == c.end()) v = c.back();
  else v = (x - *(it - 1) <= *it - x) ? *(it - 1) : *it;
  return static_cast<int>(std::lower_bound(c.begin(), c.end(), v) - c.begin());
}

double clustering_cost(const WeightedValues& v, const std::vector<float>& c) {
  double cost = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double d = v.value[i] - c[static_cast<size_t>(nearest_centroid(c, v.value[i]))];
    cost += v.weight[i] * d * d;
  }
  return cost;
}

int kmeans_lloyd(const WeightedValues& v, std::vector<float>& c, int max_iters, double epsilon) {
  const size_t k = c.size();
  std::vector<double> sw(k), swx(k);
  int it = 0;
  while (it < max_iters) {
    ++it;
    std::fill(sw.begin(), sw.end(), 0.0);
    std::fill(swx.begin(), swx.end(), 0.0);
    for (size_t i = 0; i < v.size(); ++i) {
      const auto j = static_cast<size_t>(nearest_centroid(c, v.value[i]));
      sw[j] += v.weight[i];
      swx[j] += v.weight[i] * v.value[i];
    }
    double moved = 0;
    for (size_t t = 0; t < k; ++t) {
      if (!(sw[t] > 0)) continue;  // empty: keep it
      const auto next = static_cast<float>(swx[t] / sw[t]);
      moved = std::max(moved, static_cast<double>(std::abs(next - c[t])));
      c[t] = next;
    }
    std::sort(c.begin(), c.end());
    if (moved <= epsilon) break;
  }
  return it;
}

}  // namespace modelpress::quant
