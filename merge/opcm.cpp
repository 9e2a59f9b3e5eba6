#include "merge/opcm.h"

#include <cblas.h>

#include <algorithm>

#include "io/error.h"

namespace modelpress::merge {

std::vector<float> opcm_project(const Svd& prev, int64_t r, std::span<const float> tau) {
  const int64_t m = prev.m, n = prev.n, k = prev.k;
  if (static_cast<int64_t>(tau.size()) != m * n) throw Error("opcm_project: task vector size does not match the SVD");
  std::vector<float> out(tau.begin(), tau.end());
  if (k == 0 || !(prev.s[0] > 0)) return out;
  r = std::clamp<int64_t>(r, 0, k);
  const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k), R = static_cast<int>(r);

  // W = tau V_k  (m, k)
  std::vector<float> w(static_cast<size_t>(m * k));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, tau.data(), N, prev.vt.data(), N, 0.0f, w.data(), K);

  // T = M V_k^T  (k, n): rows < r from the r x r block, rows >= r from the diagonal.
  std::vector<float> t(static_cast<size_t>(k * n), 0.0f);
  if (r > 0) {
    std::vector<float> block(static_cast<size_t>(r * r));  // U_r^T W_r  (r, r)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, R, M, 1.0f, prev.u.data(), K, w.data(), K, 0.0f,
                block.data(), R);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, N, R, 1.0f, block.data(), R, prev.vt.data(), N, 0.0f,
                t.data(), N);
  }
  for (int64_t i = r; i < k; ++i) {
    double d = 0;  // u_i^T tau v_i, the diagonal entry of P
    for (int64_t p = 0; p < m; ++p) d += static_cast<double>(prev.u[p * k + i]) * w[p * k + i];
    const float df = static_cast<float>(d);
    const float* v = prev.vt.data() + i * n;
    float* row = t.data() + i * n;
    for (int64_t j = 0; j < n; ++j) row[j] = df * v[j];
  }
  // tau' = tau - U_k T
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, -1.0f, prev.u.data(), K, t.data(), N, 1.0f,
              out.data(), N);
  return out;
}

}  // namespace modelpress::merge
