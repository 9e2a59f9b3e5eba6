// eDKM / k-means clustering (quant/edkm.h, quant/kmeans1d.h): uniquified DKM against the
// computation over every weight, the attention-map memory both ways, the exact 1-D optimum
// against brute force, DKM's hard limit (tau -> 0 is Lloyd), the pass's tables, indices
// and bad input, the sensitivity weighting, and the checkpoint round trip through the CLI
// (cluster, inspect, validate, decompress).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <span>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/float_convert.h"
#include "io/safetensors_writer.h"
#include "io/synthetic_checkpoint.h"
#include "io/tensor_category.h"
#include "kernels/lut_linear.h"
#include "quant/edkm.h"
#include "quant/packed_layer.h"
#include "tests/cli_runner.h"
#include "tests/quant/quant_test_util.h"
#include "tests/test_util.h"

namespace modelpress::quant {
namespace {

using testing::f32_tensor;
using testing::gaussian_values;

std::vector<float> f16_rounded(std::vector<float> v) {
  for (float& x : v) x = f16_to_f32(f32_to_f16(x));
  return v;
}

TEST(Edkm, UniquifiedRoundsEqualTheRoundsOverEveryWeight) {
  // f16 weights: 20,000 of them hold far fewer distinct values (the premise of eDKM).
  const std::vector<float> w = f16_rounded(gaussian_values(20000, 11, 0.5f));
  const WeightedValues u = unique_values_16bit(w.data(), 100, 200, false, nullptr);
  ASSERT_LT(u.size(), w.size() / 2);
  double total = 0;
  for (double m : u.weight) total += m;
  EXPECT_EQ(total, 20000.0);
  for (int bits : {2, 3, 4}) {
    std::vector<float> a = kmeans_plus_plus(u, 1 << bits, 5), b = a;
    DkmParams p;
    p.tau = 0.04;       // soft (relative to the variance): every centroid attends to many values
    p.epsilon = 0;      // the same number of rounds both ways
    p.max_iters = 6;
    EXPECT_EQ(dkm_iterate(u, a, p), 6);
    EXPECT_EQ(dkm_iterate_dense_reference(w.data(), static_cast<int64_t>(w.size()), b, p), 6);
    for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], 2e-5) << "bits " << bits << " centroid " << j;
  }
}

TEST(Edkm, F16KeyRouteEqualsTheGenericUniquification) {
  // The pass's route (vectorized keys, counting bins) against unique_values_16bit, on both
  // sides of the sort/histogram switch, with and without importance; -0 and +0 merge.
  for (int64_t rows : {3, 200}) {
    const int64_t k = 101;
    std::vector<float> w = gaussian_values(static_cast<size_t>(rows * k), 8, 0.03f);
    w[0] = 0.0f;
    w[1] = -0.0f;
    std::vector<float> imp(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) imp[static_cast<size_t>(c)] = 0.5f + static_cast<float>(c % 7);
    std::vector<uint16_t> keys(w.size());
    f16_sort_keys(w.data(), static_cast<int64_t>(w.size()), keys.data());
    for (const float* h : {static_cast<const float*>(nullptr), static_cast<const float*>(imp.data())}) {
      const WeightedValues a = unique_values_16bit(w.data(), rows, k, false, h);
      const WeightedValues b = unique_from_keys(keys.data(), rows, k, false, h);
      ASSERT_EQ(a.value, b.value);
      ASSERT_EQ(a.weight.size(), b.weight.size());
      for (size_t i = 0; i < a.weight.size(); ++i) EXPECT_NEAR(a.weight[i], b.weight[i], 1e-9 * a.weight[i]);
      EXPECT_EQ(std::count(a.value.begin(), a.value.end(), 0.0f), 1);
    }
  }
}

// The numbers docs/CLUSTERING.md quotes, on a fixed input (gaussian_values, not
// std::normal_distribution, which differs between standard libraries), asserted: the distinct f16 values the
// pass's route finds (also counted here, by value, from the weights themselves) and the
// attention map's bytes over every weight and over the unique values.
TEST(Edkm, AttentionMapMemoryFor4096x4096F16) {
  const int64_t n = 4096, k = 4096;
  const std::vector<float> w = gaussian_values(static_cast<size_t>(n * k), 3, 0.02f);
  std::vector<uint16_t> keys(w.size());
  f16_sort_keys(w.data(), n * k, keys.data());
  const WeightedValues u = unique_from_keys(keys.data(), n, k, false, nullptr);
  std::vector<bool> seen(65536, false);
  for (float x : w) {
    const uint16_t h = f32_to_f16(x);
    seen[h == 0x8000 ? 0 : h] = true;  // -0 is +0
  }
  const auto distinct = static_cast<size_t>(std::count(seen.begin(), seen.end(), true));
  EXPECT_EQ(distinct, 23460u);
  EXPECT_EQ(u.size(), distinct);
  double total = 0;
  for (double m : u.weight) total += m;
  EXPECT_EQ(total, static_cast<double>(n * k));
  // 4 bits: 16 centroids, f32 attention entries.
  const uint64_t dense = dkm_attention_bytes(static_cast<uint64_t>(n * k), 16, 4);
  const uint64_t unique = dkm_attention_bytes(u.size(), 16, 4);
  EXPECT_EQ(dense, uint64_t{1} << 30);           // 1024 MiB
  EXPECT_EQ(unique, uint64_t{23460} * 16 * 4);   // 1.43 MiB
  EXPECT_EQ(dense / unique, 715u);
}

TEST(Kmeans1d, OptimalMatchesBruteForce) {
  // Random weighted values, every fourth trial on a coarse grid (equal costs: ties between
  // splits, where the divide-and-conquer's two lower bounds must not skip the best one).
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> x(12);
    std::vector<float> imp(12);
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = std::uniform_real_distribution<float>(-1, 1)(rng);
      if (trial % 4 == 0) x[i] = std::round(x[i] * 8) / 8;
      imp[i] = trial % 8 == 0 ? 1.0f : std::uniform_real_distribution<float>(0.1f, 3)(rng);
    }
    const WeightedValues v = unique_values(x.data(), 12, imp.data());
    for (int k : {2, 3, 4, 5}) {
      if (v.size() <= static_cast<size_t>(k)) continue;
      const std::vector<float> c = kmeans_optimal_1d(v, k);
      ASSERT_EQ(c.size(), static_cast<size_t>(k));
      EXPECT_NEAR(clustering_cost(v, c), kmeans_optimal_1d_brute_cost(v, k), 1e-5) << "k " << k;
      // k-means++ then Lloyd never beats the optimum.
      std::vector<float> l = kmeans_plus_plus(v, k, static_cast<uint64_t>(trial));
      kmeans_lloyd(v, l, 100, 0);
      EXPECT_GE(clustering_cost(v, l), clustering_cost(v, c) - 1e-6);
    }
  }
}

TEST(Edkm, ZeroTemperatureIsLloyd) {
  // softmax(-d / tau) -> the one-hot nearest centroid as tau -> 0: DKM's update becomes the
  // k-means update.
  const std::vector<float> w = gaussian_values(5000, 21);
  const WeightedValues v = unique_values(w.data(), 5000);
  std::vector<float> a = kmeans_plus_plus(v, 8, 1), b = a;
  DkmParams p;
  p.tau = 1e-9;
  p.epsilon = 0;
  p.max_iters = 10;
  dkm_iterate(v, a, p);
  for (int i = 0; i < 10; ++i) kmeans_lloyd(v, b, 1, -1);
  for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], 1e-5);
}

TEST(Edkm, TwoSeparatedClustersAtOneBit) {
  std::vector<float> w;
  for (int i = 0; i < 64; ++i) w.push_back(i % 2 ? 1.0f : -1.0f);
  for (ClusterAlgorithm alg : {ClusterAlgorithm::Dkm, ClusterAlgorithm::KMeans}) {
    ClusterOptions o;
    o.bits = 1;
    o.algorithm = alg;
    const PackedLayer l = cluster_weight("m", f32_tensor(w, {8, 8}), nullptr, o);
    EXPECT_EQ(l.format, kernels::LinearFormat::Lut);
    EXPECT_EQ(l.lut, (std::vector<float>{-1.0f, 1.0f}));
    EXPECT_EQ(dequantize_layer(l), w);
  }
}

// Every index is a nearest stored centroid of the (scaled) weight it replaces.
void expect_nearest(const PackedLayer& l, const std::vector<float>& w) {
  const kernels::PackedLinear v = l.view();
  const int64_t entries = int64_t{1} << l.lut_bits;
  for (int64_t r = 0; r < l.n; ++r) {
    const float s = l.lut_row_scale.empty() ? 1.0f : l.lut_row_scale[static_cast<size_t>(r)];
    const float* table = l.lut.data() + (r / l.group) * entries;
    for (int64_t c = 0; c < l.k; ++c) {
      const float x = w[static_cast<size_t>(r * l.k + c)] / s;
      const float got = std::abs(x - table[kernels::lut_index(v.lut, r, c)]);
      for (int64_t j = 0; j < entries; ++j) ASSERT_LE(got, std::abs(x - table[j]) * (1 + 1e-6f) + 1e-7f);
    }
  }
}

TEST(Edkm, PassTablesIndicesAndOptions) {
  const std::vector<float> w = gaussian_values(9 * 37, 2, 0.05f);
  struct Case {
    int bits;
    int64_t group;
    bool scale;
    DType lut;
  };
  for (const Case c : {Case{3, 0, false, DType::F16}, Case{4, 3, false, DType::F32}, Case{2, 9, true, DType::F16},
                       Case{5, 1, true, DType::I8}, Case{8, 0, false, DType::F32}}) {
    ClusterOptions o;
    o.bits = c.bits;
    o.group_size = c.group;
    o.channel_scale = c.scale;
    o.lut_dtype = c.lut;
    const PackedLayer l = cluster_weight("m", f32_tensor(w, {9, 37}), nullptr, o);
    ASSERT_EQ(l.lut.size(), static_cast<size_t>((9 / (c.group ? c.group : 9)) << c.bits));
    ASSERT_EQ(l.lut_indices.size(), static_cast<size_t>(9 * kernels::lut_row_bytes(37, c.bits)));
    for (float e : l.lut) {
      ASSERT_TRUE(std::isfinite(e));
      if (c.lut == DType::F16) {
        EXPECT_EQ(e, f16_to_f32(f32_to_f16(e)));
      }
    }
    if (c.lut == DType::I8) {
      for (size_t i = 0; i < l.lut.size(); ++i) EXPECT_EQ(l.lut[i], l.lut_q[i] * l.lut_q_scale[i >> c.bits]);
    }
    expect_nearest(l, w);
    // More bits never fit worse here; 8 bits on 333 values is nearly exact.
    double mse = 0;
    const std::vector<float> d = dequantize_layer(l);
    for (size_t i = 0; i < w.size(); ++i) mse += (d[i] - w[i]) * (d[i] - w[i]);
    mse /= static_cast<double>(w.size());
    EXPECT_LT(mse, 0.05 * 0.05 * (c.bits >= 5 ? 0.01 : 0.2)) << "bits " << c.bits;
  }
}

TEST(Edkm, FewerDistinctValuesThanCentroidsIsExact) {
  std::vector<float> w;
  for (int i = 0; i < 60; ++i) w.push_back(static_cast<float>(i % 3) - 1.0f);  // {-1, 0, 1}
  for (ClusterAlgorithm alg : {ClusterAlgorithm::Dkm, ClusterAlgorithm::KMeans})
    for (ClusterInit init : {ClusterInit::Auto, ClusterInit::KMeansPlusPlus, ClusterInit::Optimal1D}) {
      ClusterOptions o;
      o.bits = 4;
      o.algorithm = alg;
      o.init = init;
      o.group_size = 2;  // tables of 2 rows x 10: still 3 values for 16 centroids
      const PackedLayer l = cluster_weight("m", f32_tensor(w, {6, 10}), nullptr, o);
      for (float e : l.lut) EXPECT_TRUE(std::isfinite(e));
      EXPECT_EQ(dequantize_layer(l), w);
    }
}

TEST(Edkm, BadInputNamesTheTensor) {
  const std::vector<float> w = gaussian_values(6 * 8, 4);
  auto message = [&](const ClusterOptions& o, const std::vector<float>& values) {
    try {
      cluster_weight("layers.0.q", f32_tensor(values, {6, 8}), nullptr, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ClusterOptions o;
  for (int bits : {0, 9, -1}) {
    o.bits = bits;
    const std::string m = message(o, w);
    EXPECT_NE(m.find("layers.0.q.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("outside 1..8"), std::string::npos) << m;
  }
  o.bits = 3;
  o.group_size = 4;  // 6 rows
  std::string m = message(o, w);
  EXPECT_NE(m.find("layers.0.q.weight: group size 4 does not divide the 6 output rows"), std::string::npos) << m;
  o.group_size = 0;
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> v = w;
    v[5 * 8 + 3] = bad;
    m = message(o, v);
    EXPECT_NE(m.find("layers.0.q.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("[5, 3]"), std::string::npos) << m;
  }
  o.dkm.tau = 0;
  m = message(o, w);
  EXPECT_NE(m.find("tau"), std::string::npos) << m;
  o.dkm.tau = 1e-4;
  std::vector<float> imp(7, 1.0f);  // K is 8
  EXPECT_THROW(cluster_weight("m", f32_tensor(w, {6, 8}), nullptr, o, &imp), Error);
  imp.assign(8, 1.0f);
  imp[2] = -1;
  EXPECT_THROW(cluster_weight("m", f32_tensor(w, {6, 8}), nullptr, o, &imp), Error);
}

TEST(Edkm, SensitivityWeightingFitsTheImportantColumns) {
  // Column 0 matters 10^4 times more than the rest and holds its own spread of values: the
  // weighted variant spends centroids there, cutting the importance-weighted error.
  const int64_t n = 64, k = 16;
  std::vector<float> w = gaussian_values(n * k, 9, 0.1f);
  for (int64_t r = 0; r < n; ++r) w[static_cast<size_t>(r * k)] = 0.5f + 0.01f * static_cast<float>(r % 16);
  std::vector<float> imp(k, 1.0f);
  imp[0] = 1e4f;
  ClusterOptions o;
  o.bits = 2;
  o.lut_dtype = DType::F32;
  auto weighted_error = [&](const PackedLayer& l) {
    const std::vector<float> d = dequantize_layer(l);
    double e = 0;
    for (int64_t i = 0; i < n * k; ++i) e += imp[static_cast<size_t>(i % k)] * std::pow(d[static_cast<size_t>(i)] - w[static_cast<size_t>(i)], 2);
    return e;
  };
  const double plain = weighted_error(cluster_weight("m", f32_tensor(w, {n, k}), nullptr, o));
  const double sensitive = weighted_error(cluster_weight("m", f32_tensor(w, {n, k}), nullptr, o, &imp));
  EXPECT_LT(sensitive, 0.5 * plain) << "plain " << plain << " weighted " << sensitive;
}

// ---- Through the CLI: cluster, inspect, validate, decompress ----

TEST(ClusterCli, ClusterInspectValidateDecompress) {
  using testing::run;
  testing::TempDir dir;
  const std::string m = dir / "m", c = dir / "c", d = dir / "d";
  testing::write_tiny_checkpoint(m);
  auto r = run(dir, "cluster '" + m + "' -o '" + c + "' --bits 3 --group-size 8 --channel-scale");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("clustered 7 linear layers (3-bit, dkm, groups of 8 rows)"), std::string::npos) << r.out;
  const Checkpoint ck = Checkpoint::open(c);
  EXPECT_EQ(ck.config()["quantization_config"]["quant_method"], "modelpress-palettization");
  EXPECT_EQ(ck.config()["quantization_config"]["bits"], 3);
  const std::vector<std::string> names = packed_layer_names(ck);
  ASSERT_EQ(names.size(), 7u);
  const PackedLayer l = load_packed_layer(ck, names[0]);
  EXPECT_EQ(l.lut_bits, 3);
  EXPECT_EQ(l.group, 8);
  EXPECT_FALSE(l.lut_row_scale.empty());

  r = run(dir, "inspect --json '" + c + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto inspected = nlohmann::json::parse(r.out);
  EXPECT_EQ(inspected["quantization"]["method"], "modelpress-palettization");
  EXPECT_EQ(inspected["quantization"]["palettized_layers"], 7);

  r = run(dir, "validate --original '" + m + "' --compressed '" + c + "' --rows 8 --runs 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["method"], "cluster");

  r = run(dir, "decompress '" + c + "' -o '" + d + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const Checkpoint dense = Checkpoint::open(d);
  EXPECT_FALSE(dense.config().contains("quantization_config"));
  const CheckpointTensor* t = dense.find(names[0] + ".weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (Shape{l.n, l.k}));
  // In the original's dtype (decompress --dtype auto): the dequantized weight rounded once.
  EXPECT_EQ(t->dtype, l.original_dtype);
  EXPECT_EQ(dense.read(*t).to_f32(), Tensor::from_f32(dequantize_layer(l), t->dtype, t->shape).to_f32());
  for (const auto& ct : dense.tensors()) EXPECT_EQ(ct.name.find("weight_lut"), std::string::npos) << ct.name;

  // Clustering a clustered checkpoint is refused, and nothing is written.
  r = run(dir, "cluster '" + c + "' -o '" + (dir / "cc") + "' --bits 3");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("already quantized"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "cc"));
}

// One layer's calibration activations: 64 tokens of K features, every 4th recorded as a row
// (as `calibrate` samples them), all 64 in the statistics. Sampled and unsampled tokens are
// loud in different columns on purpose, so the rows' diag(X^T X) and the Gram's weigh
// different columns and a test can tell which one a command used.
struct LayerCalibration {
  int64_t k = 0;
  std::vector<float> all;   // (64, K): every token
  std::vector<float> rows;  // (16, K): tokens 0, 4, 8, ...
  // diag(X^T X) over every token and over the recorded rows, summed in double in token order
  // and rounded to f32 (as calibrate stores the Gram, and as cluster sums the rows).
  std::vector<float> gram_diagonal, rows_diagonal;
};
LayerCalibration layer_calibration(int64_t k, uint64_t seed) {
  constexpr int64_t kTokens = 64, kEvery = 4;
  LayerCalibration c;
  c.k = k;
  c.all = gaussian_values(static_cast<size_t>(kTokens * k), seed);
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const bool loud = t % kEvery == 0 ? j == 0 : j % 5 == 1;
      if (loud) c.all[static_cast<size_t>(t * k + j)] *= 30.0f;
    }
  for (int64_t t = 0; t < kTokens; t += kEvery)
    c.rows.insert(c.rows.end(), c.all.begin() + t * k, c.all.begin() + (t + 1) * k);
  auto diagonal = [k](const std::vector<float>& x) {
    std::vector<float> d(static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (size_t t = 0; t < x.size() / static_cast<size_t>(k); ++t) {
        const double v = x[t * static_cast<size_t>(k) + static_cast<size_t>(j)];
        s += v * v;
      }
      d[static_cast<size_t>(j)] = static_cast<float>(s);
    }
    return d;
  };
  c.gram_diagonal = diagonal(c.all);
  c.rows_diagonal = diagonal(c.rows);
  return c;
}

// Appends a layer's rows, and with `stats` the companions calibrate writes over every token
// (docs/CALIBRATION.md): .absmax, .min, .max, .gram = X^T X (K, K) and .tokens.
void append_calibration(SafetensorsWriter& w, const std::string& layer, const LayerCalibration& c, bool stats) {
  const int64_t k = c.k, tokens = static_cast<int64_t>(c.all.size()) / k;
  auto at = [&](int64_t t, int64_t j) { return c.all[static_cast<size_t>(t * k + j)]; };
  w.append(layer, Tensor::from_f32(c.rows, DType::F32, {static_cast<int64_t>(c.rows.size()) / k, k}));
  if (!stats) return;
  std::vector<float> absmax(static_cast<size_t>(k), 0.0f), lo = absmax, hi = absmax, gram(static_cast<size_t>(k * k));
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t t = 0; t < tokens; ++t) {
      absmax[static_cast<size_t>(i)] = std::max(absmax[static_cast<size_t>(i)], std::abs(at(t, i)));
      lo[static_cast<size_t>(i)] = std::min(lo[static_cast<size_t>(i)], at(t, i));
      hi[static_cast<size_t>(i)] = std::max(hi[static_cast<size_t>(i)], at(t, i));
    }
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t t = 0; t < tokens; ++t) s += static_cast<double>(at(t, i)) * at(t, j);
      gram[static_cast<size_t>(i * k + j)] = static_cast<float>(s);
    }
  }
  w.append(layer + ".absmax", Tensor::from_f32(absmax, DType::F32, {k}));
  w.append(layer + ".min", Tensor::from_f32(lo, DType::F32, {k}));
  w.append(layer + ".max", Tensor::from_f32(hi, DType::F32, {k}));
  w.append(layer + ".gram", Tensor::from_f32(gram, DType::F32, {k, k}));
  w.append(layer + ".tokens", DType::I64, {1}, std::as_bytes(std::span(&tokens, 1)));
}

TEST(ClusterCli, CalibrationWeighsTheClustering) {
  // `cluster --calib` weighs each weight by its input column's diag(X^T X): from the Gram
  // matrix when the file has statistics, else summed over the recorded rows. Each layer the
  // command wrote equals cluster_weight run here with the diagonal computed here (tables and
  // indices), and the diagonal it must not use (the rows' when there is a Gram; the Gram's
  // reversed) gives other tables, so reading the wrong entries of the Gram, or the rows
  // instead, fails. A file missing a layer is an error naming it, with nothing written.
  using testing::run;
  testing::TempDir dir;
  const std::string m = dir / "m";
  testing::write_tiny_checkpoint(m);
  const Checkpoint ck = Checkpoint::open(m);
  std::vector<std::string> layers;
  std::vector<LayerCalibration> calibration;
  for (const auto& t : ck.tensors()) {
    if (!is_linear(t.category) || t.shape.size() != 2 || !t.name.ends_with(".weight") ||
        t.category == TensorCategory::LmHead)
      continue;
    layers.push_back(t.name.substr(0, t.name.size() - 7));
    calibration.push_back(layer_calibration(t.shape[1], layers.size()));
  }
  ASSERT_EQ(layers.size(), 7u);
  const std::string with_stats = dir / "stats.safetensors", rows_only = dir / "rows.safetensors",
                    missing_one = dir / "short.safetensors";
  for (const std::string& path : {with_stats, rows_only, missing_one}) {
    SafetensorsWriter w(path, {{"format", "modelpress-calibration"}, {"version", "1"}});
    for (size_t i = 0; i < layers.size() - (path == missing_one ? 1 : 0); ++i)
      append_calibration(w, layers[i], calibration[i], path == with_stats);
    w.finish();
  }
  const std::string options = " --bits 2 --algorithm kmeans --lut-dtype f32";
  ClusterOptions o;  // the same options, in process
  o.bits = 2;
  o.algorithm = ClusterAlgorithm::KMeans;
  o.lut_dtype = DType::F32;
  auto cluster_here = [&](size_t i, const std::vector<float>& importance) {
    const Tensor weight = ck.read(*ck.find(layers[i] + ".weight"));
    return cluster_weight(layers[i], weight, nullptr, o, &importance);
  };
  auto same_clustering = [](const PackedLayer& a, const PackedLayer& b) {
    return a.lut == b.lut && a.lut_indices == b.lut_indices;
  };

  auto r = run(dir, "cluster '" + m + "' -o '" + (dir / "plain") + "'" + options);
  ASSERT_EQ(r.status, 0) << r.err;
  const Checkpoint plain = Checkpoint::open(dir / "plain");
  for (const bool stats : {true, false}) {
    SCOPED_TRACE(stats ? "with .gram statistics" : "rows only");
    const std::string out = dir / (stats ? "stats" : "rows"), file = stats ? with_stats : rows_only;
    r = run(dir, "cluster '" + m + "' -o '" + out + "'" + options + " --calib '" + file + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    const Checkpoint cal = Checkpoint::open(out);
    for (size_t i = 0; i < layers.size(); ++i) {
      SCOPED_TRACE(layers[i]);
      const std::vector<float>& right = stats ? calibration[i].gram_diagonal : calibration[i].rows_diagonal;
      std::vector<float> wrong = stats ? calibration[i].rows_diagonal : calibration[i].gram_diagonal;
      if (!stats) std::reverse(wrong.begin(), wrong.end());
      const PackedLayer written = load_packed_layer(cal, layers[i]);
      EXPECT_TRUE(same_clustering(written, cluster_here(i, right)));
      EXPECT_FALSE(same_clustering(written, cluster_here(i, wrong)));
      EXPECT_FALSE(same_clustering(written, load_packed_layer(plain, layers[i])));
    }
  }

  r = run(dir, "cluster '" + m + "' -o '" + (dir / "bad") + "' --bits 2 --calib '" + missing_one + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(layers.back()), std::string::npos) << r.err;
  EXPECT_EQ(testing::lines(r.err), 1u) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "bad"));
}

TEST(ClusterCli, BadInputIsOneLineAndLeavesNoOutput) {
  using testing::run;
  testing::TempDir dir;
  const std::string m = dir / "m";
  testing::write_tiny_checkpoint(m);
  // Usage errors: exit 2, one line with readable limits (no 300-digit doubles).
  for (const std::string args : {"--bits 9", "--bits 0", "--bits 3 --iters 0", "--bits 3 --epsilon -1",
                                 "--bits 3 --tau 0", "--bits 3 --group-size -1"}) {
    const auto r = run(dir, "cluster '" + m + "' -o '" + (dir / "o") + "' " + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    // One line, then CLI11's "Run with --help for more information."
    EXPECT_EQ(testing::lines(r.err), 2u) << r.err;
    EXPECT_LT(r.err.size(), 200u) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "o"));
  }
  EXPECT_NE(run(dir, "cluster '" + m + "' -o '" + (dir / "o") + "' --bits 9").err.find("1..8"), std::string::npos);
  EXPECT_NE(run(dir, "cluster '" + m + "' -o '" + (dir / "o") + "' --bits 3 --iters 0").err.find("1..100000"),
            std::string::npos);
  {
    const auto r = run(dir, "cluster '" + m + "' -o '" + (dir / "o") + "' --bits 3 --group-size 7");
    EXPECT_EQ(r.status, 1) << r.err;  // the layer's problem, not the command line's
    EXPECT_EQ(testing::lines(r.err), 1u) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "o"));
  }
  const auto r = run(dir, "cluster '" + m + "' -o '" + (dir / "o") + "' --bits 3 --group-size 7");
  EXPECT_NE(r.err.find("does not divide"), std::string::npos) << r.err;
  // decompress wants a compressed input.
  const auto d = run(dir, "decompress '" + m + "' -o '" + (dir / "d") + "'");
  EXPECT_EQ(d.status, 1);
  EXPECT_NE(d.err.find("no packed layers"), std::string::npos) << d.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "d"));
  const auto h = run(dir, "cluster --help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("--calib"), std::string::npos);
}

}  // namespace
}  // namespace modelpress::quant
namespace modelpress::quant {
namespace {

TEST(Edkm, F16TableOrRowScaleBeyondF16RangeIsANamedError) {
  // Centroids past 65504 used to be stored as +-Inf in an f16 table (a checkpoint no loader
  // accepts); an f16 row scale past it failed without naming the tensor.
  std::vector<float> w;
  for (int i = 0; i < 64; ++i) w.push_back(i % 2 ? 70000.0f + static_cast<float>(i) : -70000.0f - static_cast<float>(i));
  for (bool scale : {false, true}) {
    ClusterOptions o;
    o.bits = 2;
    o.channel_scale = scale;
    try {
      cluster_weight("layers.1.o", f32_tensor(w, {8, 8}), nullptr, o);
      ADD_FAILURE() << "no error, channel_scale " << scale;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("layers.1.o.weight"), std::string::npos) << m;
      EXPECT_NE(m.find("F16"), std::string::npos) << m;
    }
    o.lut_dtype = DType::F32;  // fits
    const PackedLayer l = cluster_weight("layers.1.o", f32_tensor(w, {8, 8}), nullptr, o);
    for (float e : l.lut) EXPECT_TRUE(std::isfinite(e));
  }
}

TEST(Edkm, TinyF32WeightsClusterAsWellAsScaledOnes) {
  // f32 weights below f16's normal range used to be keyed by f16 subnormals (or 0): at a
  // scale of 1e-8 every value collapsed into a few keys and the relative error was ~1.
  const std::vector<float> w0 = gaussian_values(64 * 64, 3, 1.0f);
  auto rel_mse = [&](float sc) {
    std::vector<float> w = w0;
    for (float& x : w) x *= sc;
    ClusterOptions o;  // the default temperature is relative to the weights' variance
    o.bits = 4;
    o.lut_dtype = DType::F32;
    const std::vector<float> d = dequantize_layer(cluster_weight("m", f32_tensor(w, {64, 64}), nullptr, o));
    double e = 0, t = 0;
    for (size_t i = 0; i < w.size(); ++i) e += std::pow(static_cast<double>(d[i]) - w[i], 2), t += std::pow(static_cast<double>(w[i]), 2);
    return e / t;
  };
  const double ref = rel_mse(1.0f);
  EXPECT_LT(ref, 0.02);
  for (float sc : {1e-6f, 1e-8f}) EXPECT_LT(rel_mse(sc), 1.5 * ref) << "scale " << sc;
}

// Heavy-tailed weights like a real layer's: mostly normal, 1% of them 6x wider.
std::vector<float> layer_like(size_t count, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> w(count);
  for (float& x : w) x = nd(gen) * (u(gen) < 0.01f ? 6.0f : 1.0f);
  return w;
}

double relative_error(const std::vector<float>& w, const std::vector<float>& d) {
  double e = 0, t = 0;
  for (size_t i = 0; i < w.size(); ++i)
    e += std::pow(static_cast<double>(d[i]) - w[i], 2), t += std::pow(static_cast<double>(w[i]), 2);
  return std::sqrt(e / t);
}

TEST(Edkm, DefaultClusteringIsScaleFree) {
  // The same layer scaled by 10^-3 .. 10^3 (weight std 0.001 .. 1000): with the temperature
  // relative to each table's variance the relative error is the same at every scale, and no
  // table loses centroids (an absolute temperature made a std-0.002 layer one value).
  const std::vector<float> w0 = layer_like(96 * 160, 17);
  for (int bits : {3, 4}) {
    double ref = -1;
    for (double sc : {1.0, 1e-3, 1e-2, 1e-1, 10.0, 100.0, 1000.0}) {
      std::vector<float> w = w0;
      for (float& x : w) x = static_cast<float>(x * sc);
      ClusterOptions o;
      o.bits = bits;
      o.lut_dtype = DType::F32;
      const PackedLayer l = cluster_weight("m", f32_tensor(w, {96, 160}), nullptr, o);
      EXPECT_TRUE(l.note.empty()) << l.note;
      std::vector<float> table = l.lut;
      std::sort(table.begin(), table.end());
      EXPECT_EQ(std::unique(table.begin(), table.end()) - table.begin(), 1 << bits) << "scale " << sc;
      const double e = relative_error(w, dequantize_layer(l));
      if (ref < 0) ref = e;
      EXPECT_NEAR(e, ref, 0.01 * ref) << "bits " << bits << " scale " << sc;
    }
  }
}

TEST(Edkm, DefaultLandsAtTheOneDimensionalOptimum) {
  // More than 1024 distinct values (where the start used to be k-means++): the default is
  // within 0.1% of the exact 1-D k-means cost.
  const std::vector<float> w = layer_like(64 * 300, 5);
  const WeightedValues v = unique_values(w.data(), static_cast<int64_t>(w.size()));
  ASSERT_GT(v.size(), 1024u);
  for (int bits : {2, 3, 4}) {
    ClusterOptions o;
    o.bits = bits;
    const double got = clustering_cost(v, cluster_values(v, o));
    const double best = clustering_cost(v, kmeans_optimal_1d(v, 1 << bits));
    EXPECT_LE(got, best * 1.001) << "bits " << bits;
  }
}

TEST(Edkm, CollapseGuardKeepsEveryCentroid) {
  // A temperature far too high pulls every centroid to the mean; the guard returns the
  // optimal start refined by Lloyd instead, says so, and the pass notes it on the layer.
  const std::vector<float> w = layer_like(48 * 64, 9);
  const WeightedValues v = unique_values(w.data(), static_cast<int64_t>(w.size()));
  ClusterOptions o;
  o.bits = 3;
  o.dkm.tau = 1e3;
  o.dkm.max_iters = 50;
  bool collapsed = false;
  std::vector<float> c = cluster_values(v, o, &collapsed);
  EXPECT_TRUE(collapsed);
  EXPECT_EQ(std::unique(c.begin(), c.end()) - c.begin(), 8);
  EXPECT_LE(clustering_cost(v, c), clustering_cost(v, kmeans_optimal_1d(v, 8)) * (1 + 1e-6));
  o.lut_dtype = DType::F32;
  const PackedLayer l = cluster_weight("m", f32_tensor(w, {48, 64}), nullptr, o);
  EXPECT_NE(l.note.find("merged centroids in 1 of 1 table"), std::string::npos) << l.note;
  // At the default temperature, no note.
  o.dkm.tau = kDefaultRelativeTau;
  EXPECT_TRUE(cluster_weight("m", f32_tensor(w, {48, 64}), nullptr, o).note.empty());
}

TEST(ClusterCli, IgnoreListNamesOnlyModulesTheModelHas) {
  // The same two encoder layers (no lm_head tensor) as a BertModel, where the ignore list
  // must not name an lm_head, and as a causal LM, whose output head (tied, with no tensor of
  // its own) is a module loaders would convert: listed.
  using testing::run;
  testing::TempDir dir;
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("encoder.layer.0.attention.self.query.weight", f32_tensor(gaussian_values(32 * 32, 1), {32, 32}));
  t.emplace_back("encoder.layer.0.output.dense.weight", f32_tensor(gaussian_values(32 * 64, 2), {32, 64}));
  for (const char* arch : {"BertModel", "LlamaForCausalLM"}) {
    const std::string m = dir / arch, o = dir / (std::string(arch) + "-out");
    testing::write_checkpoint(m, t, {{"architectures", {arch}}});
    const auto r = run(dir, "cluster '" + m + "' -o '" + o + "' --bits 3");
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string ignore = Checkpoint::open(o).config()["quantization_config"]["ignore"].dump();
    EXPECT_EQ(ignore.find("lm_head") != std::string::npos, std::string(arch) != "BertModel") << arch << ": " << ignore;
  }
}

}  // namespace
}  // namespace modelpress::quant
