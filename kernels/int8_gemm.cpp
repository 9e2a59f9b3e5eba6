// int8 GEMM: the reference, the OpenMP blocking driver shared by the fast paths, and the
// run-time choice between them.
#include "kernels/int8_gemm.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu_features.h"
#include "kernels/fallback_log.h"
#include "kernels/int8_gemm_blocking.h"

namespace modelpress::kernels {

namespace {

// |C| <= K * 128 * 128 must fit int32.
constexpr int64_t kMaxK = 131071;

void check_shape(int64_t m, int64_t n, int64_t k) {
  if (m < 0 || n < 0 || k < 0 || k > kMaxK)
    throw std::invalid_argument("int8_gemm: shape (M=" + std::to_string(m) + ", N=" + std::to_string(n) +
                                ", K=" + std::to_string(k) + ") is out of range (0 <= K <= 131071)");
}

}  // namespace

const char* int8_gemm_path_name(Int8GemmPath p) {
  switch (p) {
    case Int8GemmPath::Reference: return "reference";
    case Int8GemmPath::Avx2: return "avx2";
    case Int8GemmPath::Avx512Vnni: return "avx512-vnni";
  }
  return "?";
}

void int8_gemm_ref(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
  check_shape(m, n, k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int32_t s = 0;
      for (int64_t t = 0; t < k; ++t) s += static_cast<int32_t>(a[i * k + t]) * static_cast<int32_t>(b[j * k + t]);
      c[i * n + j] = s;
    }
}

bool int8_has_min_value(const int8_t* a, int64_t count) {
  // Branch-free so the compiler vectorizes it: one pass over A costs 1/N of the GEMM.
  int found = 0;
  for (int64_t i = 0; i < count; ++i) found |= a[i] == -128;
  return found != 0;
}

namespace detail {

void int8_gemm_blocked(Int8BlockFn block, const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n,
                       int64_t k) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::memset(c, 0, static_cast<size_t>(m * n) * sizeof(int32_t));
    return;
  }
  // K slices of equal size (a multiple of 64, the widest step) rather than KC plus a sliver.
  const int64_t slices = (k + kInt8KC - 1) / kInt8KC;
  const int64_t kc = ((k + slices - 1) / slices + 63) / 64 * 64;
  const int64_t mblocks = (m + kInt8MC - 1) / kInt8MC;
  const int64_t nblocks = (n + kInt8NC - 1) / kInt8NC;
  const int64_t tasks = mblocks * nblocks;
  // Threads only where there is work to share: ~1 M multiply-adds per thread start. A
  // product of a few rows (decoding) streams its weight instead, and splits from 256 K on.
  const int64_t min_work = m <= 4 ? int64_t{1} << 18 : int64_t{1} << 20;
  const bool parallel = tasks > 1 && m * n * k >= min_work;
  // Consecutive tasks walk N within one block of A, which then stays in cache.
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t m0 = (t / nblocks) * kInt8MC, n0 = (t % nblocks) * kInt8NC;
    const int64_t m1 = std::min(m, m0 + kInt8MC), n1 = std::min(n, n0 + kInt8NC);
    for (int64_t k0 = 0; k0 < k; k0 += kc) block(a, b, c, k, n, m0, m1, n0, n1, k0, std::min(k, k0 + kc), k0 > 0);
  }
}

}  // namespace detail

void int8_gemm_avx2(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
  check_shape(m, n, k);
  detail::int8_gemm_blocked(detail::int8_block_avx2, a, b, c, m, n, k);
}

void int8_gemm_avx512vnni(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
  check_shape(m, n, k);
  detail::int8_gemm_avx512vnni_driver(a, b, c, m, n, k);
}

Int8GemmPath int8_gemm_best_path() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512_vnni) return Int8GemmPath::Avx512Vnni;
  if (f.avx2_fma) return Int8GemmPath::Avx2;
  return Int8GemmPath::Reference;
}

void int8_gemm(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
  check_shape(m, n, k);
  switch (int8_gemm_best_path()) {
    case Int8GemmPath::Avx512Vnni:
      return int8_gemm_avx512vnni(a, b, c, m, n, k);
    case Int8GemmPath::Avx2:
      if (!int8_has_min_value(a, m * k)) return int8_gemm_avx2(a, b, c, m, n, k);
      log_fallback_once("int8_gemm:a=-128",
                        "int8 GEMM: A holds -128, which the AVX2 kernel cannot take exactly; using the "
                        "reference GEMM (quantize activations to [-127, 127])");
      break;
    case Int8GemmPath::Reference:
      log_fallback_once("int8_gemm:isa", "int8 GEMM: this CPU has no AVX2; using the reference GEMM");
      break;
  }
  int8_gemm_ref(a, b, c, m, n, k);
}

}  // namespace modelpress::kernels
