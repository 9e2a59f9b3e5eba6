// Thin singular value decomposition of a row-major f32 matrix, the cost centre of OPCM.
//
// Routine: LAPACK sgesdd (divide and conquer) through LAPACKE, linked against OpenBLAS
// (Debian liblapacke-dev + libopenblas-dev), the same driver NumPy's np.linalg.svd calls.
// bench/svd_vs_numpy.sh measures the two on the same matrices (docs/PERFORMANCE.md).
//
// Layout trick: a row-major m x n matrix A is the column-major n x m matrix A^T. sgesdd on
// A^T = Uc S Vc^T gives A = Vc S Uc^T, so LAPACK's column-major "VT" (k x m) is, byte for
// byte, A's U as a row-major m x k matrix, and its "U" (n x k) is A's V^T as a row-major
// k x n matrix. No transposed copies in or out.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace modelpress::merge {

struct Svd {
  int64_t m = 0, n = 0, k = 0;  // A is m x n, k = min(m, n)
  std::vector<float> u;   // (m, k) row-major: left singular vectors as columns
  std::vector<float> s;   // (k) descending, >= 0
  std::vector<float> vt;  // (k, n) row-major: right singular vectors as rows
};

// A = U diag(s) V^T for the row-major (m, n) matrix `a`. Throws Error naming `what` when
// LAPACK does not converge or the input holds NaN/Inf.
Svd svd_thin(std::span<const float> a, int64_t m, int64_t n, const std::string& what = "matrix");

// "LAPACK sgesdd (LAPACKE) on OpenBLAS 0.3.21 ..." for benchmark and report lines.
std::string svd_routine();

// OPCM's split rank (fusion_bench: argmax(cumsum(s) / sum(s) > alpha)): the first index
// whose cumulative share of the singular-value sum exceeds alpha; 0 when none does (an
// all-zero spectrum, or alpha >= 1 up to rounding), as argmax of an all-false mask is 0.
int64_t split_rank(std::span<const float> s, double alpha);

}  // namespace modelpress::merge
