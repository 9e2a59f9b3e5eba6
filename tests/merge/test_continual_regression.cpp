// Why OPCM exists, on a synthetic continual setting (docs/MERGING.md, "Functional check").
// Each task t is a linear regression y = W_t x whose inputs live in a task subspace
// span(B_t) (B_t: 48 x 2, orthonormal, drawn at random per task). Its fine-tuned weights
// are W_t = W_0 + C + A_t B_t^T: a low-rank update in the task's own subspace plus a drift C
// (rank 2, the same norm) that every fine-tuning shares, as fine-tuned task vectors do.
// A merged W is scored per task by the relative error on the task's inputs,
// ||(W - W_t) B_t||_F^2 / ||(W_t - W_0) B_t||_F^2, averaged over tasks.
// Task arithmetic adds the shared drift T times; averaging divides each task's own update by
// T; OPCM projects each new update off what is merged (the drift is merged once) and keeps
// the merged distance at the mean task-vector norm. The test asserts OPCM beats averaging
// and task arithmetic at 8, 14 and 20 tasks and prints the table for docs/MERGING.md.
#include <gtest/gtest.h>

#include <cstdio>

#include "merge/continual.h"
#include "tests/merge/merge_test_util.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::gaussian_values;
using testing::MatD;
using testing::TempDir;
using testing::to_mat;

constexpr int64_t kOut = 64, kIn = 48, kRank = 2;
const char* kName = "model.layers.0.mlp.down_proj.weight";

MatD orthonormal(int64_t rows, int64_t cols, uint64_t seed) {
  const MatD g = to_mat(gaussian_values(static_cast<size_t>(rows * cols), seed), rows, cols);
  return Eigen::HouseholderQR<MatD>(g).householderQ() * MatD::Identity(rows, cols);
}

void write(const std::string& dir, const MatD& w) {
  testing::write_checkpoint(dir, {{kName, Tensor::from_f32(testing::to_vec(w), DType::F32, {w.rows(), w.cols()})}});
}

struct Results {
  double opcm, average, task_arithmetic, ties;
};

Results run_setting(int tasks, uint64_t seed) {
  TempDir dir;
  const MatD w0 = to_mat(gaussian_values(kOut * kIn, seed), kOut, kIn) / std::sqrt(double(kIn));
  MatD drift = to_mat(gaussian_values(kOut * kRank, seed + 1), kOut, kRank) * orthonormal(kIn, kRank, seed + 2).transpose();
  drift /= drift.norm();
  write(dir / "base", w0);
  std::vector<MatD> deltas, inputs;
  std::vector<std::string> paths;
  for (int t = 0; t < tasks; ++t) {
    const MatD b = orthonormal(kIn, kRank, seed + 100 + t);
    MatD own = to_mat(gaussian_values(kOut * kRank, seed + 200 + t), kOut, kRank) * b.transpose();
    own /= own.norm();
    deltas.push_back(drift + own);
    inputs.push_back(b);
    paths.push_back(dir / ("task" + std::to_string(t)));
    write(paths.back(), w0 + deltas.back());
  }
  auto score = [&](merge::MergeMethod m) {
    merge::ContinualOptions o;
    o.method = m;
    const std::string out = dir / merge::method_name(m);
    merge::merge_continual(dir / "base", paths, "", out, o);
    const MatD w = to_mat(testing::tensor_f32(out, kName), kOut, kIn);
    double err = 0;
    for (int t = 0; t < tasks; ++t)
      err += ((w - w0 - deltas[t]) * inputs[t]).squaredNorm() / (deltas[t] * inputs[t]).squaredNorm();
    return err / tasks;
  };
  return {score(merge::MergeMethod::Opcm), score(merge::MergeMethod::Average),
          score(merge::MergeMethod::TaskArithmetic), score(merge::MergeMethod::ContinualTies)};
}

TEST(ContinualRegression, OpcmBeatsAveragingAndTaskArithmetic) {
  std::printf("| tasks | OPCM (alpha 0.5) | average | task arithmetic (s 0.3) | TIES (s 0.5, top 20%%) |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  for (int tasks : {8, 14, 20}) {
    const Results r = run_setting(tasks, 42);
    std::printf("| %d | %.3f | %.3f | %.3f | %.3f |\n", tasks, r.opcm, r.average, r.task_arithmetic, r.ties);
    EXPECT_LT(r.opcm, r.average) << tasks << " tasks";
    EXPECT_LT(r.opcm, r.task_arithmetic) << tasks << " tasks";
  }
}

}  // namespace
}  // namespace modelpress
