// DenseF32: reference, the baseline (SSE2) Eigen build, and the choice of Eigen build.
#include "kernels/dense_f32.h"

#include <Eigen/Core>

#include <algorithm>

#include "kernels/cpu_features.h"

namespace modelpress::kernels {

void dense_f32_linear_ref(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                          float* y) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias ? bias[j] : 0.0;
      for (int64_t t = 0; t < k; ++t) acc += static_cast<double>(x[i * k + t]) * w[j * k + t];
      y[i * n + j] = static_cast<float>(acc);
    }
}

namespace detail {

void dense_f32_eigen_baseline(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                              float* y)
#include "kernels/dense_f32_eigen.inc"

bool dense_f32_avx512_available() {
  const CpuFeatures& f = cpu_features();
  return f.avx512 && f.avx2_fma;
}

}  // namespace detail

const char* dense_f32_path_name() {
  if (detail::dense_f32_avx512_available()) return "avx512+fma";
  return cpu_features().avx2_fma ? "avx2+fma" : "sse2";
}

void dense_f32_linear(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m, float* y) {
  if (m <= 0 || n <= 0) return;
  if (detail::dense_f32_avx512_available()) return detail::dense_f32_eigen_avx512(w, n, k, bias, x, m, y);
  if (cpu_features().avx2_fma) return detail::dense_f32_eigen_avx2(w, n, k, bias, x, m, y);
  detail::dense_f32_eigen_baseline(w, n, k, bias, x, m, y);
}

}  // namespace modelpress::kernels
