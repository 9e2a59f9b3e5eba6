// How far the default clustering lands from the exact 1-D k-means optimum, on a real
// checkpoint (docs/CLUSTERING.md, "Against the 1-D optimum"), next to the old default (an
// absolute DKM temperature of 1e-4 from a k-means++ start, as coremltools' palettizer does)
// measured in the same run. Per linear layer, one table per tensor, on the 16-bit-keyed
// unique values the pass clusters: cost = sum_u m_u (u - nearest centroid)^2, and the time
// of cluster_values. Prints a Markdown table per width: the summed cost of each against the
// optimum's, the worst layer, and the named layer (default pooler.dense).
//
// Usage: cluster_optimum CHECKPOINT [LAYER] [RELATIVE_TAU]   (the temperature of the first row;
// default the library's default)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/tensor_category.h"
#include "quant/edkm.h"
#include "quant/kmeans1d.h"

namespace mq = modelpress::quant;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The weighted variance of the values (the old absolute temperature over it is its relative one).
double variance(const mq::WeightedValues& v) {
  double w = 0, s = 0, q = 0;
  for (size_t i = 0; i < v.size(); ++i) w += v.weight[i], s += v.weight[i] * v.value[i];
  const double mean = s / w;
  for (size_t i = 0; i < v.size(); ++i) q += v.weight[i] * (v.value[i] - mean) * (v.value[i] - mean);
  return q / w;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cluster_optimum CHECKPOINT [LAYER]\n");
    return 2;
  }
  const std::string watch = argc > 2 ? argv[2] : "pooler.dense";
  const double tau = argc > 3 ? std::atof(argv[3]) : mq::kDefaultRelativeTau;
  const modelpress::Checkpoint ck = modelpress::Checkpoint::open(argv[1]);
  std::vector<std::pair<std::string, mq::WeightedValues>> layers;
  for (const auto& t : ck.tensors()) {
    if (!modelpress::is_linear(t.category) || t.shape.size() != 2 || !t.name.ends_with(".weight")) continue;
    const std::vector<float> w = ck.read(t).to_f32();
    layers.emplace_back(t.name.substr(0, t.name.size() - 7),
                        mq::unique_values_16bit(w.data(), t.shape[0], t.shape[1], false, nullptr));
  }
  for (int bits : {3, 4}) {
    double opt = 0, now = 0, old = 0, worst_now = 0, worst_old = 0, t_now = 0, t_old = 0, t_opt = 0;
    std::string worst_now_name, worst_old_name, watch_line;
    for (const auto& [name, v] : layers) {
      auto t0 = std::chrono::steady_clock::now();
      const double c_opt = mq::clustering_cost(v, mq::kmeans_optimal_1d(v, 1 << bits));
      t_opt += seconds_since(t0);
      mq::ClusterOptions o;  // today's default
      o.bits = bits;
      o.dkm.tau = tau;
      t0 = std::chrono::steady_clock::now();
      const double c_now = mq::clustering_cost(v, mq::cluster_values(v, o));
      t_now += seconds_since(t0);
      mq::ClusterOptions p = o;  // the old default: k-means++ start, absolute tau 1e-4
      p.init = mq::ClusterInit::KMeansPlusPlus;
      p.dkm.tau = 1e-4 / variance(v);
      t0 = std::chrono::steady_clock::now();
      const double c_old = mq::clustering_cost(v, mq::cluster_values(v, p));
      t_old += seconds_since(t0);
      opt += c_opt, now += c_now, old += c_old;
      if (c_now / c_opt > worst_now) worst_now = c_now / c_opt, worst_now_name = name;
      if (c_old / c_opt > worst_old) worst_old = c_old / c_opt, worst_old_name = name;
      if (name == watch) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "%s: default %+.2f%%, old default %+.2f%% (weight std %.4f)", name.c_str(),
                      100 * (c_now / c_opt - 1), 100 * (c_old / c_opt - 1), std::sqrt(variance(v)));
        watch_line = buf;
      }
    }
    std::printf("%d-bit, %zu layers, one table per tensor: cost over the exact 1-D optimum's\n\n", bits, layers.size());
    std::printf("| start, temperature | summed cost vs optimum | worst layer | time s |\n|---|---:|---|---:|\n");
    std::printf("| optimal 1-D, DKM relative tau %.0e%s | %+.3f%% | %+.3f%% (%s) | %.2f |\n", tau,
                tau == mq::kDefaultRelativeTau ? " (default)" : "",
                100 * (now / opt - 1), 100 * (worst_now - 1), worst_now_name.c_str(), t_now);
    std::printf("| k-means++, DKM absolute tau 1e-4 (old default) | %+.3f%% | %+.3f%% (%s) | %.2f |\n",
                100 * (old / opt - 1), 100 * (worst_old - 1), worst_old_name.c_str(), t_old);
    std::printf("| (the optimum alone) | 0 | | %.2f |\n\n%s\n\n", t_opt, watch_line.c_str());
  }
  return 0;
}
