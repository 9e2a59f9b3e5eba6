// CPU kernel benchmarks (docs/PERFORMANCE.md, "CPU kernels"). Ratios against a baseline
// measured in the same run; each time is the median of many runs after warm-up.
//
//   (a) int8 GEMM, M = N = K = 2048, against Eigen's f32 GEMM of the same shape, both on all
//       OpenMP threads: the AVX2 and (where the CPU has it) the AVX-512 Eigen build, the ratio
//       against the faster. Goal: >= 2x the operations per second.
//   (b) W4A16 GEMV (batch 1, group 128) on weights larger than the caches, against a
//       STREAM-style copy measured in the same run. Bytes = packed weight + scales + x + y.
//       Goal: >= 60% of the copy bandwidth. A read-only sweep is printed beside it, because
//       the GEMV only reads and a copy also writes.
//   (c) LUT GEMV (batch 1, 3 and 4 bits, 16384 x 16384) against the same copy. Goal: >= 60%.
//
// Usage: bench_kernels [--runs N] [--quick] [--lut-only] [--gemm-only]
//   (--quick: small shapes, a smoke test; --gemm-only: (a) alone)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/dense_f32.h"
#include "kernels/lut_linear.h"
#include "kernels/int8_gemm.h"
#include "kernels/packed_linear.h"
#include "kernels/w4a16.h"

namespace mk = modelpress::kernels;

namespace {

template <class F>
double median_seconds(int warmup, int runs, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Keeps results alive so the compiler cannot drop the work.
volatile float g_sink;

void bench_int8_gemm(int64_t s, int runs) {
  const int64_t m = s, n = s, k = s;
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> q(-127, 127);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<int8_t> a(m * k), b(n * k);
  for (auto& v : a) v = static_cast<int8_t>(q(rng));
  for (auto& v : b) v = static_cast<int8_t>(q(rng));
  std::vector<int32_t> c(m * n);
  std::vector<float> x(m * k), w(n * k), y(m * n);
  for (auto& v : x) v = g(rng);
  for (auto& v : w) v = g(rng);

  // Alternate the kernels so machine noise (other users of the cores) hits all alike. Both
  // Eigen builds the CPU can run are timed; the ratio is against the faster one.
  const bool has512 = mk::detail::dense_f32_avx512_available(), has2 = mk::cpu_features().avx2_fma;
  std::vector<double> ti, tf2, tf512;
  auto f32_avx2 = [&] { mk::detail::dense_f32_eigen_avx2(w.data(), n, k, nullptr, x.data(), m, y.data()); };
  auto f32_avx512 = [&] { mk::detail::dense_f32_eigen_avx512(w.data(), n, k, nullptr, x.data(), m, y.data()); };
  auto f32_best = [&] { mk::dense_f32_linear(w.data(), n, k, nullptr, x.data(), m, y.data()); };
  mk::int8_gemm(a.data(), b.data(), c.data(), m, n, k);
  if (has2) f32_avx2();
  if (has512) f32_avx512();
  if (!has2) f32_best();
  for (int r = 0; r < runs; ++r) {
    ti.push_back(median_seconds(0, 1, [&] { mk::int8_gemm(a.data(), b.data(), c.data(), m, n, k); }));
    if (has2) tf2.push_back(median_seconds(0, 1, f32_avx2));
    else tf2.push_back(median_seconds(0, 1, f32_best));  // sse2 build
    if (has512) tf512.push_back(median_seconds(0, 1, f32_avx512));
  }
  auto median = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  const double t_i8 = median(ti), t_f2 = median(tf2), t_f512 = median(tf512);
  const double t_f32 = has512 ? std::min(t_f2, t_f512) : t_f2;
  const double ops = 2.0 * static_cast<double>(m) * n * k;
  g_sink = static_cast<float>(c[0]) + y[0];
  // Spot-check the timed int8 result (the tests check every element on other shapes).
  for (int64_t e = 0; e < 64; ++e) {
    const int64_t i = (e * 977) % m, j = (e * 1601 + 13) % n;
    int32_t want = 0;
    for (int64_t t = 0; t < k; ++t) want += int32_t{a[i * k + t]} * b[j * k + t];
    if (c[i * n + j] != want) {
      std::printf("int8 GEMM WRONG at (%ld, %ld): %d != %d\n", static_cast<long>(i), static_cast<long>(j),
                  c[i * n + j], want);
      std::exit(1);
    }
  }
  std::printf("(a) GEMM %ldx%ldx%ld, %d threads, median of %d\n", static_cast<long>(m), static_cast<long>(n),
              static_cast<long>(k), omp_get_max_threads(), runs);
  std::printf("  int8 GEMM (%s)      %8.2f ms  %7.1f GOP/s\n", mk::int8_gemm_path_name(mk::int8_gemm_best_path()),
              t_i8 * 1e3, ops / t_i8 * 1e-9);
  std::printf("  Eigen f32 GEMM (%s) %8.2f ms  %7.1f GFLOP/s\n", has2 ? "avx2+fma" : "sse2", t_f2 * 1e3,
              ops / t_f2 * 1e-9);
  if (has512)
    std::printf("  Eigen f32 GEMM (avx512+fma) %8.2f ms  %7.1f GFLOP/s\n", t_f512 * 1e3, ops / t_f512 * 1e-9);
  std::printf("  ratio int8 / fastest f32: %.2fx (goal >= 2x)\n", t_f32 / t_i8);
}

// Bandwidth baselines and the GEMV, measured in alternation: one run of each per round, the
// median of each over the rounds, so the other users of the cores slow all three alike.
struct Bandwidth {
  std::vector<float> src, dst;   // STREAM "copy": dst[i] = src[i]
  std::vector<uint64_t> words;   // read-only sweep
  uint64_t total = 0;
  explicit Bandwidth(int64_t floats) : src(floats, 1.0f), dst(floats, 0.0f), words(floats / 2, 1) {}
  // Bytes counted as STREAM does: read + write (not the write-allocate read of dst).
  double copy_bytes() const { return 2.0 * static_cast<double>(src.size()) * sizeof(float); }
  double read_bytes() const { return static_cast<double>(words.size()) * sizeof(uint64_t); }
  void copy() {
    float* d = dst.data();
    const float* s = src.data();
    const auto count = static_cast<int64_t>(src.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) d[i] = s[i];
  }
  // An integer sum: associative, so the compiler vectorizes it (a float sum is one serial
  // chain and would measure the adder, not memory).
  void read() {
    const uint64_t* s = words.data();
    const auto count = static_cast<int64_t>(words.size());
    uint64_t sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (int64_t i = 0; i < count; ++i) sum += s[i];
    total += sum;
  }
};

void bench_w4a16_gemv(Bandwidth& bw, int64_t n, int64_t k, int64_t group, int rounds) {
  std::mt19937 rng(2);
  std::vector<uint8_t> packed(n * k / 2);
  for (auto& v : packed) v = static_cast<uint8_t>(rng());
  std::vector<float> scales(n * (k / group)), x(k), y(n);
  std::uniform_real_distribution<float> u(0.001f, 0.02f);
  for (auto& v : scales) v = u(rng);
  for (auto& v : x) v = u(rng) - 0.01f;
  mk::PackedLinear layer;
  layer.format = mk::LinearFormat::W4A16;
  layer.n = n;
  layer.k = k;
  layer.w4 = {packed.data(), scales.data(), nullptr, n, k, group};
  std::vector<unsigned char> ws(mk::linear_workspace_bytes(layer, 1));
  auto gemv = [&] { mk::run_linear(layer, x.data(), 1, y.data(), mk::Backend::Cpu, ws.data()); };
  std::vector<double> tc, tr, tg;
  for (int i = 0; i < 3; ++i) bw.copy(), bw.read(), gemv();  // warm-up: pages touched, threads up
  for (int r = 0; r < rounds; ++r) {
    tc.push_back(median_seconds(0, 1, [&] { bw.copy(); }));
    tr.push_back(median_seconds(0, 1, [&] { bw.read(); }));
    tg.push_back(median_seconds(0, 1, gemv));
  }
  for (auto* v : {&tc, &tr, &tg}) std::sort(v->begin(), v->end());
  const double t = tg[tg.size() / 2];
  const double copy_bw = bw.copy_bytes() / tc[tc.size() / 2], read_bw = bw.read_bytes() / tr[tr.size() / 2];
  g_sink = y[0] + bw.dst[bw.dst.size() / 2] + static_cast<float>(bw.total);
  const double bytes = static_cast<double>(packed.size()) + scales.size() * 4.0 + x.size() * 4.0 + y.size() * 4.0;
  std::printf("(b) W4A16 GEMV N=%ld K=%ld group %ld (%.1f MiB), %d threads, median of %d rounds\n", static_cast<long>(n),
              static_cast<long>(k), static_cast<long>(group), bytes / (1 << 20), omp_get_max_threads(), rounds);
  std::printf("  STREAM-style copy %6.2f GB/s (read + write counted), read-only sweep %6.2f GB/s (%.0f MiB arrays)\n",
              copy_bw * 1e-9, read_bw * 1e-9, bw.src.size() * 4.0 / (1 << 20));
  std::printf("  GEMV %8.3f ms  %6.2f GB/s = %.0f%% of copy (goal >= 60%%), %.0f%% of read-only\n", t * 1e3,
              bytes / t * 1e-9, 100.0 * bytes / t / copy_bw, 100.0 * bytes / t / read_bw);
}

// (c) LUT (palettized) GEMV at batch 1, b-bit indices, one f16-valued table per tensor,
// against the same run's copy bandwidth. Bytes = indices + table + x + y: the table is in
// registers, so the index stream is the memory traffic. Goal: >= 60% of the copy bandwidth.
void bench_lut_gemv(Bandwidth& bw, int64_t n, int64_t k, int bits, int rounds) {
  std::mt19937 rng(3);
  const int64_t rb = mk::lut_row_bytes(k, bits);
  std::vector<uint8_t> idx(static_cast<size_t>(n * rb));
  for (auto& v : idx) v = static_cast<uint8_t>(rng());
  std::vector<float> lut(static_cast<size_t>(1) << bits), x(k), y(n);
  std::uniform_real_distribution<float> u(-0.02f, 0.02f);
  for (auto& v : lut) v = u(rng);
  for (auto& v : x) v = u(rng);
  mk::PackedLinear layer;
  layer.format = mk::LinearFormat::Lut;
  layer.n = n;
  layer.k = k;
  layer.lut = {idx.data(), lut.data(), nullptr, n, k, n, bits};
  auto gemv = [&] { mk::run_linear(layer, x.data(), 1, y.data(), mk::Backend::Cpu, nullptr); };
  std::vector<double> tc, tg;
  for (int i = 0; i < 3; ++i) bw.copy(), gemv();
  for (int r = 0; r < rounds; ++r) {
    tc.push_back(median_seconds(0, 1, [&] { bw.copy(); }));
    tg.push_back(median_seconds(0, 1, gemv));
  }
  std::sort(tc.begin(), tc.end());
  std::sort(tg.begin(), tg.end());
  const double t = tg[tg.size() / 2], copy_bw = bw.copy_bytes() / tc[tc.size() / 2];
  const double bytes = static_cast<double>(idx.size()) + lut.size() * 2.0 + x.size() * 4.0 + y.size() * 4.0;
  g_sink = y[0] + bw.dst[bw.dst.size() / 2];
  std::printf("(c) LUT GEMV %d-bit N=%ld K=%ld (%.1f MiB), %d threads, median of %d rounds\n", bits, static_cast<long>(n),
              static_cast<long>(k), bytes / (1 << 20), omp_get_max_threads(), rounds);
  std::printf("  copy %6.2f GB/s; GEMV %8.3f ms  %6.2f GB/s = %.0f%% of copy (goal >= 60%%), %.2f Gweights/s\n",
              copy_bw * 1e-9, t * 1e3, bytes / t * 1e-9, 100.0 * bytes / t / copy_bw,
              static_cast<double>(n) * k / t * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 15;
  bool quick = false, lut_only = false, gemm_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--lut-only")) lut_only = true;
    else if (!std::strcmp(argv[i], "--gemm-only")) gemm_only = true;
    else {
      std::fprintf(stderr, "usage: bench_kernels [--runs N] [--quick] [--lut-only] [--gemm-only]\n");
      return 2;
    }
  }
  const mk::CpuFeatures& f = mk::cpu_features();
  std::printf("CPU: avx2+fma %s, avx512-vnni %s; OpenMP threads %d\n", f.avx2_fma ? "yes" : "no",
              f.avx512_vnni ? "yes" : "no", omp_get_max_threads());
  if (!lut_only) bench_int8_gemm(quick ? 256 : 2048, quick ? 3 : runs);
  if (gemm_only) return 0;  // (a) alone
  Bandwidth bw(quick ? (int64_t{1} << 20) : (int64_t{1} << 25));  // 128 MiB per array: 4x the L3
  if (lut_only) {
    bench_w4a16_gemv(bw, 16384, 8192, 128, 3 * runs);  // context for the LUT numbers, same run
  } else if (quick) {
    bench_w4a16_gemv(bw, 512, 1024, 128, 3);
  } else {
    bench_w4a16_gemv(bw, 8192, 8192, 128, 3 * runs);
    bench_w4a16_gemv(bw, 16384, 8192, 128, 3 * runs);
  }
  // --lut-only skips (a) and (b) (a minute), for the LUT numbers alone.
  if (quick) {
    bench_lut_gemv(bw, 512, 1024, 3, 3);
  } else {
    for (int bits : {3, 4}) bench_lut_gemv(bw, 16384, 16384, bits, 3 * runs);
  }
  return 0;
}
