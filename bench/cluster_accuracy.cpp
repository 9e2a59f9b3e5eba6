// Clustering accuracy on a real checkpoint (docs/CLUSTERING.md, "Accuracy"): for every
// linear layer, DKM over unique values (eDKM), plain k-means (Lloyd) and group-wise RTN
// at matched bits per weight (tables, scales and row scales counted), each measured as
//   weight error: ||W - W_q||^2 / ||W||^2 over all layers, and
//   output error: validate's relative error ||y - y_ref|| / ||y_ref|| on the synthetic
//                 activations validate uses (same rows, same per-layer seed), through the
//                 layer's kernel (LUT, W4A16) or, for 3-bit RTN which has no packed
//                 format, the dequantized weight in f32;
// averaged over layers. Prints a Markdown table.
//
// Usage: cluster_accuracy CHECKPOINT [--rows N]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/synthetic_activations.h"
#include "io/tensor_category.h"
#include "kernels/packed_linear.h"
#include "quant/edkm.h"
#include "eval/metrics.h"
#include "quant/packed_layer.h"
#include "quant/rtn.h"

namespace mq = modelpress::quant;
namespace mk = modelpress::kernels;
using modelpress::Checkpoint;
using modelpress::DType;
using modelpress::Tensor;

namespace {

struct Method {
  std::string name;
  // Returns the packed layer (run through its kernel) for a weight.
  std::function<mq::PackedLayer(const std::string&, const Tensor&)> pack;
  double bytes = 0, elements = 0, werr_num = 0, werr_den = 0, out_err = 0, sqnr = 0, seconds = 0;
  int layers = 0;
};

mq::PackedLayer rtn_dense(const std::string& name, const Tensor& w, int bits, int64_t group, double* bytes) {
  mq::RtnOptions o;
  o.bits = bits;
  o.symmetric = true;
  o.granularity = mq::Granularity::Group;
  o.group_size = group;
  o.grid = mq::SymmetricGrid::Full;  // compressed-tensors' W4A16 grid
  o.scale_dtype = DType::F16;
  const std::vector<float> f = w.to_f32();
  const mq::RtnWeight q = mq::quantize_rtn(f, w.shape()[0], w.shape()[1], o);
  mq::PackedLayer l;
  l.name = name;
  l.format = mk::LinearFormat::DenseF32;
  l.n = w.shape()[0];
  l.k = w.shape()[1];
  l.dense = mq::dequantize_rtn(q);
  *bytes = static_cast<double>(l.n * l.k) * bits / 8.0 + 2.0 * static_cast<double>(q.scales.size());
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cluster_accuracy CHECKPOINT [--rows N]\n");
    return 2;
  }
  int64_t rows = 64;
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) rows = std::atoll(argv[++i]);
  const Checkpoint ck = Checkpoint::open(argv[1]);

  std::vector<Method> methods;
  for (int bits : {3, 4}) {
    auto lut = [bits](mq::ClusterAlgorithm alg, int64_t group, bool scale) {
      mq::ClusterOptions o;
      o.bits = bits;
      o.algorithm = alg;
      o.group_size = group;
      o.channel_scale = scale;
      return [o](const std::string& n, const Tensor& w) { return mq::cluster_weight(n, w, nullptr, o); };
    };
    const std::string b = std::to_string(bits) + "-bit ";
    // ~b bits: one table per tensor.
    methods.push_back({b + "eDKM, per tensor", lut(mq::ClusterAlgorithm::Dkm, 0, false)});
    methods.push_back({b + "k-means, per tensor", lut(mq::ClusterAlgorithm::KMeans, 0, false)});
    // ~b + 16/K: a f16 scale per row, for both.
    methods.push_back({b + "eDKM, per tensor + row scale", lut(mq::ClusterAlgorithm::Dkm, 0, true)});
    methods.push_back({b + "k-means, per tensor + row scale", lut(mq::ClusterAlgorithm::KMeans, 0, true)});
    methods.push_back({b + "RTN, per row (f16 scale)", {}});
    // ~b + 1/8: f16 scales per 128 inputs, against tables per few rows.
    const int64_t g = bits == 3 ? 2 : 4;
    methods.push_back({b + "eDKM, table per " + std::to_string(g) + " rows", lut(mq::ClusterAlgorithm::Dkm, g, false)});
    methods.push_back({b + "k-means, table per " + std::to_string(g) + " rows", lut(mq::ClusterAlgorithm::KMeans, g, false)});
    methods.push_back({b + "RTN, group 128 (f16 scales)", {}});
  }

  for (const auto& t : ck.tensors()) {
    if (!modelpress::is_linear(t.category) || t.shape.size() != 2 || !t.name.ends_with(".weight")) continue;
    const std::string name = t.name.substr(0, t.name.size() - 7);
    const Tensor w = ck.read(t);
    const std::vector<float> wf = w.to_f32();
    const int64_t n = t.shape[0], k = t.shape[1];
    const modelpress::SyntheticActivations a = modelpress::synthetic_activations(rows, k, modelpress::layer_seed(name, 0));
    std::vector<float> ref(static_cast<size_t>(a.rows * n)), y(ref.size());
    const mq::PackedLayer dense = mq::dense_layer(name, w, nullptr);
    mk::run_linear(dense.view(), a.values.data(), a.rows, ref.data(), mk::Backend::Cpu, nullptr);
    double wnorm = 0;
    for (float v : wf) wnorm += static_cast<double>(v) * v;
    for (Method& m : methods) {
      const auto t0 = std::chrono::steady_clock::now();
      mq::PackedLayer l;
      double bytes = 0;
      if (m.pack) {
        l = m.pack(name, w);
        bytes = static_cast<double>(l.weight_bytes()) - 16;  // the shape tensor is bookkeeping, not the weight
      } else {
        const int bits = m.name[0] - '0';
        const int64_t group = m.name.find("per row") != std::string::npos ? k : 128;
        if (k % group != 0) continue;
        l = rtn_dense(name, w, bits, group, &bytes);
      }
      m.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const std::vector<float> d = mq::dequantize_layer(l);
      for (size_t i = 0; i < d.size(); ++i) m.werr_num += std::pow(static_cast<double>(d[i]) - wf[i], 2);
      m.werr_den += wnorm;
      std::vector<std::byte> ws(mk::linear_workspace_bytes(l.view(), a.rows));
      mk::run_linear(l.view(), a.values.data(), a.rows, y.data(), mk::Backend::Cpu, ws.empty() ? nullptr : ws.data());
      const modelpress::OutputError e = modelpress::eval::compare_outputs(y, ref);
      m.out_err += e.relative_error;
      m.sqnr += e.sqnr_db;
      m.bytes += bytes;
      m.elements += static_cast<double>(n * k);
      ++m.layers;
    }
  }
  std::printf("| method | bits/weight | weight rel. MSE | output rel. error (mean over layers) | output SQNR dB | pass time s |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Method& m : methods)
    std::printf("| %s | %.3f | %.3e | %.4f | %.2f | %.2f |\n", m.name.c_str(), 8 * m.bytes / m.elements,
                m.werr_num / m.werr_den, m.out_err / m.layers, m.sqnr / m.layers, m.seconds);
  std::printf("(%d linear layers, %lld synthetic activation rows per layer, seed 0 as validate uses)\n",
              methods.front().layers, static_cast<long long>(rows));
  return 0;
}
