#include "merge/svd.h"

#include <lapacke.h>

#include <cmath>

#include "io/error.h"

// OpenBLAS's own entry point: names the library and the CPU kernel it picked at run time.
extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace modelpress::merge {

Svd svd_thin(std::span<const float> a, int64_t m, int64_t n, const std::string& what) {
  if (m <= 0 || n <= 0 || static_cast<int64_t>(a.size()) != m * n)
    throw Error(what + ": SVD of an empty or mis-sized matrix");
  for (float x : a)
    if (!std::isfinite(x)) throw Error(what + ": NaN or Inf in the matrix to decompose");
  Svd r;
  r.m = m;
  r.n = n;
  r.k = std::min(m, n);
  // sgesdd overwrites its input: work on a copy (A^T column-major = A row-major, see svd.h).
  std::vector<float> x(a.begin(), a.end());
  r.s.resize(static_cast<size_t>(r.k));
  r.u.resize(static_cast<size_t>(m * r.k));
  r.vt.resize(static_cast<size_t>(r.k * n));
  const lapack_int rows = static_cast<lapack_int>(n), cols = static_cast<lapack_int>(m);
  // Column-major on A^T (rows = n, cols = m): its U (n x k, ld n) is our V^T (k x n row-major),
  // its VT (k x m, ld k) is our U (m x k row-major).
  const lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', rows, cols, x.data(), rows, r.s.data(),
                                         r.vt.data(), rows, r.u.data(), static_cast<lapack_int>(r.k));
  if (info != 0)
    throw Error(what + ": LAPACK sgesdd failed (info " + std::to_string(info) +
                (info > 0 ? ", did not converge)" : ", bad argument)"));
  return r;
}

std::string svd_routine() {
  std::string text = "LAPACK sgesdd via LAPACKE on ";
  text += openblas_get_config();
  text += " (core ";
  text += openblas_get_corename();
  text += ")";
  return text;
}

int64_t split_rank(std::span<const float> s, double alpha) {
  double total = 0;
  for (float v : s) total += v;
  if (!(total > 0)) return 0;
  double cum = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    cum += s[i];
    if (cum / total > alpha) return static_cast<int64_t>(i);
  }
  return 0;
}

}  // namespace modelpress::merge
