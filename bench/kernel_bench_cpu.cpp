// The CPU runner of `modelpress bench`: every kernel through its public entry point
// (run_linear; int8_gemm for the bare GEMM), timed with steady_clock, median of the runs.
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>

#include "bench/bench_common.h"
#include "bench/kernel_bench.h"
#include "kernels/backend.h"
#include "kernels/int8_gemm.h"
#include "kernels/packed_linear.h"

namespace modelpress::bench {

namespace {

namespace mk = modelpress::kernels;

double llc_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return static_cast<double>(l3 > 0 ? l3 : l2 > 0 ? l2 : 32L << 20);
}

constexpr double kBudget = 1024.0 * 1024 * 1024;  // inputs of one case, all copies

// Times f(set) over `rotation` input sets: warm-up, then runs until o.runs or o.max_seconds.
BenchRow time_case(const BenchOptions& o, const std::string& kernel, const BenchShape& s, int rotation,
                   const std::function<void(int)>& f) {
  for (int i = 0; i < o.warmup; ++i) f(i % rotation);
  const int runs = o.runs > 0 ? o.runs : 10;
  std::vector<double> us;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f(i % rotation);
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (i + 1 >= 5 && std::chrono::duration<double>(t1 - start).count() > o.max_seconds) break;
  }
  BenchRow r;
  r.kernel = kernel;
  r.shape = s;
  r.median_us = detail::median(us);
  r.runs = static_cast<int>(us.size());
  r.rotation = rotation;
  return r;
}

template <class T>
std::vector<std::vector<T>> copies(const std::vector<T>& v, int n) {
  return std::vector<std::vector<T>>(static_cast<size_t>(n), v);
}

BenchRow bench_one(const BenchOptions& o, const std::string& kernel, const BenchShape& s, std::string* skip) {
  const int64_t m = s.m, n = s.n, k = s.k;
  const uint64_t seed = o.seed;
  bool capped = false;
  const auto rot = [&](double set_bytes) { return detail::rotation_count(set_bytes, llc_bytes(), kBudget, &capped); };
  std::vector<float> y(static_cast<size_t>(m * n));
  BenchRow r;

  if (kernel == "dense") {
    const double set = 4.0 * (m * k + n * k);
    const int R = rot(set);
    const auto xs = copies(detail::make_x(s, 0, seed, nullptr), R);
    const auto ws = copies(detail::make_f32(n * k, 0.02f, seed + 1), R);
    std::vector<mk::PackedLinear> layers(R);
    for (int i = 0; i < R; ++i) {
      layers[i].format = mk::LinearFormat::DenseF32;
      layers[i].n = n;
      layers[i].k = k;
      layers[i].dense = ws[i].data();
    }
    r = time_case(o, kernel, s, R, [&](int i) {
      mk::run_linear(layers[i], xs[i].data(), m, y.data(), mk::Backend::Cpu, nullptr);
    });
    r.bytes = set + 4.0 * m * n;
    r.note = "Eigen f32";
  } else if (kernel == "int8-gemm") {
    const double set = 1.0 * (m * k + n * k) + 4.0 * (m + n);
    const int R = rot(set);
    const auto xq = copies(detail::make_i8(m * k, seed), R);
    const auto rs = copies(detail::make_scales(m, seed + 1), R);
    const auto wq = copies(detail::make_i8(n * k, seed + 2), R);
    const auto wsc = copies(detail::make_scales(n, seed + 3), R);
    std::vector<int32_t> c(static_cast<size_t>(m * n));
    r = time_case(o, kernel, s, R, [&](int i) {
      mk::int8_gemm(xq[i].data(), wq[i].data(), c.data(), m, n, k);
      // The dequantization epilogue, as kernels/llm_int8.cpp applies it.
      const float* rsi = rs[i].data();
      const float* wsi = wsc[i].data();
#pragma omp parallel for schedule(static) if (m * n >= (int64_t{1} << 16))
      for (int64_t a = 0; a < m; ++a)
        for (int64_t b = 0; b < n; ++b) y[a * n + b] = static_cast<float>(c[a * n + b]) * rsi[a] * wsi[b];
    });
    r.bytes = set + 4.0 * m * n;
    r.note = std::string("int32 -> f32 epilogue; ") + mk::int8_gemm_path_name(mk::int8_gemm_best_path());
  } else if (kernel == "w8a8" || kernel == "llm-int8") {
    const bool mixed = kernel == "llm-int8";
    const double set = 4.0 * m * k + 1.0 * n * k + 4.0 * n;
    const int R = rot(set);
    int64_t outliers = 0;
    const auto xs = copies(detail::make_x(s, mixed ? o.outlier_fraction : 0, seed, &outliers), R);
    const auto wq = copies(detail::make_i8(n * k, seed + 2), R);
    const auto wsc = copies(detail::make_scales(n, seed + 3), R);
    std::vector<mk::PackedLinear> layers(R);
    for (int i = 0; i < R; ++i) {
      layers[i].format = mixed ? mk::LinearFormat::LlmInt8 : mk::LinearFormat::W8A8;
      layers[i].n = n;
      layers[i].k = k;
      layers[i].int8 = {wq[i].data(), wsc[i].data(), n, k};
      layers[i].threshold = o.threshold;
    }
    std::string why;
    if (!mk::linear_supported(layers[0], mk::Backend::Cpu, &why)) {
      *skip = why;
      return r;
    }
    std::vector<unsigned char> ws(mk::linear_workspace_bytes(layers[0], m));
    r = time_case(o, kernel, s, R, [&](int i) {
      mk::run_linear(layers[i], xs[i].data(), m, y.data(), mk::Backend::Cpu, ws.data());
    });
    r.bytes = set + 4.0 * m * n;
    r.note = mixed ? std::to_string(outliers) + " outlier columns" : "";
  } else if (kernel == "w4a16" || kernel == "w4a16-asym") {
    const bool asym = kernel == "w4a16-asym";
    if (k % 2 || k % o.group) {
      *skip = "K = " + std::to_string(k) + " is not a multiple of the group " + std::to_string(o.group);
      return r;
    }
    const int64_t groups = k / o.group;
    const double set = 4.0 * m * k + 0.5 * n * k + 4.0 * n * groups + (asym ? 1.0 * n * groups : 0.0);
    const int R = rot(set);
    const auto xs = copies(detail::make_x(s, 0, seed, nullptr), R);
    const auto packed = copies(detail::make_u8(n * k / 2, seed + 2), R);
    const auto scales = copies(detail::make_scales(n * groups, seed + 3), R);
    const auto zeros = copies(detail::make_u8(asym ? n * groups : 0, seed + 4, 16), R);
    std::vector<mk::PackedLinear> layers(R);
    for (int i = 0; i < R; ++i) {
      layers[i].format = mk::LinearFormat::W4A16;
      layers[i].n = n;
      layers[i].k = k;
      layers[i].w4 = {packed[i].data(), scales[i].data(), asym ? zeros[i].data() : nullptr, n, k, o.group};
    }
    std::vector<unsigned char> ws(mk::linear_workspace_bytes(layers[0], m));
    r = time_case(o, kernel, s, R, [&](int i) {
      mk::run_linear(layers[i], xs[i].data(), m, y.data(), mk::Backend::Cpu, ws.data());
    });
    r.bytes = set + 4.0 * m * n;
    r.note = "group " + std::to_string(o.group);
  } else if (kernel == "lut3" || kernel == "lut4") {
    // Palettized weight, one f32 table per tensor: indices + table + f32 x.
    const int bits = kernel == "lut3" ? 3 : 4;
    const int64_t rb = mk::lut_row_bytes(k, bits);
    const double set = 4.0 * m * k + 1.0 * n * rb + 4.0 * (1 << bits);
    const int R = rot(set);
    const auto xs = copies(detail::make_x(s, 0, seed, nullptr), R);
    const auto idx = copies(detail::make_u8(n * rb, seed + 2), R);
    const auto lut = copies(detail::make_f32(int64_t{1} << bits, 0.02f, seed + 3), R);
    std::vector<mk::PackedLinear> layers(R);
    for (int i = 0; i < R; ++i) {
      layers[i].format = mk::LinearFormat::Lut;
      layers[i].n = n;
      layers[i].k = k;
      layers[i].lut = {idx[i].data(), lut[i].data(), nullptr, n, k, n, bits};
    }
    r = time_case(o, kernel, s, R, [&](int i) {
      mk::run_linear(layers[i], xs[i].data(), m, y.data(), mk::Backend::Cpu, nullptr);
    });
    r.bytes = set + 4.0 * m * n;
    r.note = std::to_string(bits) + "-bit, one table";
  }
  if (capped) r.note += (r.note.empty() ? "" : "; ") + std::string("rotation capped at 1 GiB");
  return r;
}

}  // namespace

BenchReport run_cpu_bench(const BenchOptions& o) {
  BenchReport rep;
  rep.backend = "cpu";
  for (const auto& b : mk::list_backends())
    if (b.name == "cpu") rep.device = b.detail;
  const auto shapes = o.shapes.empty() ? default_shapes("cpu") : o.shapes;
  for (const auto& s : shapes) {
    // The baseline first, always: every ratio is against a dense run of this process.
    for (const auto& kernel : bench_kernel_names()) {
      if (kernel != "dense" && !detail::wants(o, kernel)) continue;
      std::string skip;
      BenchRow r = bench_one(o, kernel, s, &skip);
      if (!skip.empty()) {
        rep.notes.push_back(kernel + " " + shape_string(s) + " skipped: " + skip);
        continue;
      }
      detail::finish_row(r);
      rep.rows.push_back(r);
    }
  }
  detail::ratios_to_dense(rep.rows);
  rep.notes.push_back("CPU: median wall time (steady_clock) after " + std::to_string(o.warmup) +
                      " warm-up runs; inputs rotated through `rot` copies (at least 2x the last-level cache of " +
                      std::to_string(static_cast<long long>(llc_bytes() / (1 << 20))) +
                      " MiB where 1 GiB allows); bytes = inputs once + output once (f32 x and y).");
  return rep;
}

}  // namespace modelpress::bench
