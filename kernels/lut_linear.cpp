// LUT linear: layout checks, the reference and dispatch (the AVX2 path is in
// lut_linear_avx2.cpp).
#include "kernels/lut_linear.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/dense_f32.h"
#include "kernels/fallback_log.h"

namespace modelpress::kernels {

bool lut_layout_ok(const LutWeight& w, std::string* why) {
  auto fail = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  if (w.bits < 1 || w.bits > 8) return fail("lut index width " + std::to_string(w.bits) + " is outside 1..8 bits");
  if (!w.indices || !w.lut) return fail("lut layer has no indices or table");
  if (w.group_rows <= 0 || w.n % w.group_rows != 0)
    return fail("lut group of " + std::to_string(w.group_rows) + " rows does not divide N = " + std::to_string(w.n));
  return true;
}

void lut_linear_ref(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  const int64_t n = w.n, k = w.k, entries = int64_t{1} << w.bits;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float* table = w.lut + (j / w.group_rows) * entries;
      const float s = w.row_scale ? w.row_scale[j] : 1.0f;
      double acc = 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const float wt = table[lut_index(w, j, t)] * s;  // the weight a loader computes
        acc += static_cast<double>(wt) * x[i * k + t];
      }
      y[i * n + j] = static_cast<float>(acc + (bias ? bias[j] : 0.0f));
    }
}

bool lut_fast_supported(const LutWeight& w, std::string* why) {
  if (!cpu_features().avx2_fma) {
    if (why) *why = "this CPU has no AVX2/FMA";
    return false;
  }
  return lut_layout_ok(w, why);
}

void lut_linear_dequant_gemm(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  const int64_t n = w.n, k = w.k;
  if (m <= 0 || n <= 0) return;
  // Blocks of rows whose f32 copy is about 8 MiB (a multiple of 16 rows), reused by all of M.
  const int64_t rows = std::min(n, std::max<int64_t>(16, (int64_t{8} << 20) / (4 * std::max<int64_t>(k, 1)) / 16 * 16));
  thread_local std::vector<float> tile, y_tile;
  tile.resize(static_cast<size_t>(rows * k));
  if (rows < n) y_tile.resize(static_cast<size_t>(m * rows));
  for (int64_t n0 = 0; n0 < n; n0 += rows) {
    const int64_t nt = std::min(rows, n - n0);
    lut_dequantize_rows_avx2(w, n0, n0 + nt, tile.data());
    if (nt == n) return dense_f32_linear(tile.data(), n, k, bias, x, m, y);  // one block: y directly
    dense_f32_linear(tile.data(), nt, k, bias ? bias + n0 : nullptr, x, m, y_tile.data());
    for (int64_t i = 0; i < m; ++i) std::copy_n(y_tile.data() + i * nt, nt, y + i * n + n0);
  }
}

void lut_linear(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  std::string why;
  if (lut_fast_supported(w, &why)) {
    if (m >= kLutGemmRows) return lut_linear_dequant_gemm(w, bias, x, m, y);
    if (lut_avx512_supported(w, m)) return lut_linear_avx512(w, bias, x, m, y);
    return lut_linear_avx2(w, bias, x, m, y);
  }
  log_fallback_once("lut:" + std::to_string(w.n) + "x" + std::to_string(w.k) + "/b" + std::to_string(w.bits) + ":" + why,
                    "LUT " + std::to_string(w.n) + "x" + std::to_string(w.k) + " " + std::to_string(w.bits) +
                        "-bit: " + why + "; using the reference kernel");
  lut_linear_ref(w, bias, x, m, y);
}

}  // namespace modelpress::kernels
