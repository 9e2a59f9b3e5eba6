// The OPCM numerics on odd shapes: svd_thin (LAPACK sgesdd) against Eigen's JacobiSVD in
// double, split_rank on known spectra, the thin-SVD projection against the paper's
// full-matrix formula written out literally, and TIES on known answers.
#include <gtest/gtest.h>

#include "merge/opcm.h"
#include "merge/svd.h"
#include "merge/ties.h"
#include "io/error.h"
#include "tests/merge/merge_test_util.h"

namespace modelpress {
namespace {

using testing::gaussian_values;
using testing::MatD;
using testing::to_mat;
using testing::to_vec;

struct Dims {
  int64_t m, n;
};
const Dims kShapes[] = {{1, 1}, {7, 3}, {3, 7}, {33, 65}, {130, 17}, {64, 64}};

TEST(Svd, MatchesJacobiOnOddShapes) {
  uint64_t seed = 1;
  for (const auto [m, n] : kShapes) {
    const std::vector<float> a = gaussian_values(static_cast<size_t>(m * n), seed++);
    const merge::Svd svd = merge::svd_thin(a, m, n);
    ASSERT_EQ(svd.k, std::min(m, n));
    const MatD A = to_mat(a, m, n);
    Eigen::JacobiSVD<MatD> ref(A);
    const double tol = 1e-5 * ref.singularValues()(0);
    for (int64_t i = 0; i < svd.k; ++i) EXPECT_NEAR(svd.s[i], ref.singularValues()(i), tol) << m << "x" << n << " i " << i;
    // U diag(s) V^T reconstructs A; U and V have orthonormal columns.
    const MatD U = to_mat(svd.u, m, svd.k), Vt = to_mat(svd.vt, svd.k, n);
    Eigen::VectorXd s(svd.k);
    for (int64_t i = 0; i < svd.k; ++i) s(i) = svd.s[i];
    EXPECT_LT((U * s.asDiagonal() * Vt - A).cwiseAbs().maxCoeff(), 1e-5 * (1 + A.cwiseAbs().maxCoeff())) << m << "x" << n;
    EXPECT_LT((U.transpose() * U - MatD::Identity(svd.k, svd.k)).cwiseAbs().maxCoeff(), 1e-5);
    EXPECT_LT((Vt * Vt.transpose() - MatD::Identity(svd.k, svd.k)).cwiseAbs().maxCoeff(), 1e-5);
  }
}

TEST(Svd, RejectsNonFiniteInput) {
  std::vector<float> a(6, 1.0f);
  a[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(merge::svd_thin(a, 2, 3, "layer.weight"), Error);
}

TEST(Svd, SplitRankKnownSpectra) {
  // cumsum / sum = 0.4, 0.7, 0.9, 1.0: first share above alpha.
  const std::vector<float> s{4, 3, 2, 1};
  EXPECT_EQ(merge::split_rank(s, 0.5), 1);
  EXPECT_EQ(merge::split_rank(s, 0.3), 0);
  EXPECT_EQ(merge::split_rank(s, 0.7), 2);  // 0.7 is not above 0.7
  EXPECT_EQ(merge::split_rank(s, 0.95), 3);
  EXPECT_EQ(merge::split_rank(s, 1.0), 0);  // nothing exceeds 1: argmax of all-false
  EXPECT_EQ(merge::split_rank(std::vector<float>{0, 0, 0}, 0.5), 0);
}

// The paper's projection with full square U and V, as fusion_bench computes it.
MatD project_literal(const MatD& prev, const MatD& tau, double alpha) {
  Eigen::JacobiSVD<MatD> svd(prev, Eigen::ComputeFullU | Eigen::ComputeFullV);
  std::vector<float> s(svd.singularValues().size());
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(svd.singularValues()(static_cast<int64_t>(i)));
  const int64_t r = merge::split_rank(s, alpha);
  MatD p = svd.matrixU().transpose() * tau * svd.matrixV();
  for (int64_t i = 0; i < std::min(p.rows(), p.cols()); ++i) p(i, i) = 0;
  p.topLeftCorner(r, r).setZero();
  return svd.matrixU() * p * svd.matrixV().transpose();
}

TEST(OpcmProject, MatchesFullMatrixFormulaOnOddShapes) {
  uint64_t seed = 100;
  for (const auto [m, n] : kShapes) {
    for (double alpha : {0.0, 0.3, 0.5, 0.9}) {
      // A prev with a decaying spectrum, so the split rank moves with alpha.
      MatD prev = to_mat(gaussian_values(static_cast<size_t>(m * n), seed++), m, n);
      for (int64_t i = 0; i < m; ++i) prev.row(i) *= 1.0 / (1 + i);
      const std::vector<float> prev_f = to_vec(prev), tau_f = gaussian_values(static_cast<size_t>(m * n), seed++);
      const MatD tau = to_mat(tau_f, m, n);
      const merge::Svd svd = merge::svd_thin(prev_f, m, n);
      const MatD got = to_mat(merge::opcm_project(svd, merge::split_rank(svd.s, alpha), tau_f), m, n);
      const MatD want = project_literal(to_mat(prev_f, m, n), tau, alpha);
      EXPECT_LT((got - want).cwiseAbs().maxCoeff(), 2e-4 * (1 + tau.cwiseAbs().maxCoeff()))
          << m << "x" << n << " alpha " << alpha;
    }
  }
}

TEST(OpcmProject, RemovesTheMergedSubspace) {
  // tau = prev itself: every component of tau lies on prev's singular pairs (diagonal of P),
  // so nothing survives the projection.
  const int64_t m = 9, n = 5;
  const std::vector<float> prev = gaussian_values(m * n, 7);
  const merge::Svd svd = merge::svd_thin(prev, m, n);
  const std::vector<float> out = merge::opcm_project(svd, merge::split_rank(svd.s, 0.5), prev);
  for (float x : out) EXPECT_NEAR(x, 0.0f, 1e-5f);
}

TEST(OpcmProject, ZeroPreviousLeavesTauUnchanged) {
  const std::vector<float> zero(12, 0.0f), tau = gaussian_values(12, 3);
  const merge::Svd svd = merge::svd_thin(zero, 3, 4);
  EXPECT_EQ(merge::opcm_project(svd, 0, tau), tau);
}

TEST(Ties, TrimKeepsTopMagnitudesWithTies) {
  std::vector<float> v{0.1f, -3, 2, -0.5f, 2, 0};
  // floor(6 * 0.5) = 3, threshold the (6 - 3) = 3rd smallest |v| = 0.5; |v| >= 0.5 stays, so
  // (as in fusion_bench) one more than floor(d * keep) survives when magnitudes are distinct.
  merge::ties_trim(v, 0.5);
  EXPECT_EQ(v, (std::vector<float>{0, -3, 2, -0.5f, 2, 0}));
  std::vector<float> all{1, -2};
  merge::ties_trim(all, 1.0);
  EXPECT_EQ(all, (std::vector<float>{1, -2}));
}

TEST(Ties, ElectAndDisjointMean) {
  // keep everything: entries agreeing with sign(a + b) are averaged.
  const std::vector<float> a{1, -2, 3, -1, 0}, b{3, 1, -1, 1, 0};
  // sums 4, -1, 2, 0, 0 -> signs +, -, +, 0, 0; majority sign of (+1 -1 +1) = +.
  const std::vector<float> got = merge::ties_merge(a, b, 1.0);
  EXPECT_EQ(got, (std::vector<float>{2, -2, 3, 1, 0}));
}

}  // namespace
}  // namespace modelpress
