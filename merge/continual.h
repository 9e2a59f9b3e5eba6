// The streaming driver behind `modelpress merge opcm|average|task-arithmetic|continual-ties`: merges
// task models into a base one at a time, tensor by tensor, and writes the merged checkpoint
// with its state (merge_state.h) so a later run can continue the merge.
//
// Memory: every input is memory-mapped and read one tensor at a time; the work per tensor
// holds the base, the running merged tensor, one task vector and (OPCM) one SVD, whatever
// the number of models. OPCM's rescaling needs the norm of the whole merged task vector
// before any output tensor can be written, so OPCM makes two passes: the first writes the
// unscaled merged task vector S_t to a scratch file beside the output (f32, deleted at the
// end), the second writes base + S_t / lambda_t. The baselines make one pass.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "merge/merge_state.h"

namespace modelpress::merge {

enum class MergeMethod { Opcm, Average, TaskArithmetic, ContinualTies };
std::string method_name(MergeMethod m);  // "opcm", "average", "task-arithmetic", "continual-ties"

struct ContinualOptions {
  MergeMethod method = MergeMethod::Opcm;
  double alpha = 0.5;    // opcm: split rank at this share of the singular-value sum
  // task-arithmetic (default 0.3), continual-ties (default 0.5): every model's weight unless
  // `weights` gives one per model. Must be finite when given.
  std::optional<double> scale;
  std::vector<double> weights;  // one per added model (average: its weight in the mean), or empty
  double density = 0.2;  // continual-ties: fraction of each task vector's entries kept by magnitude
  bool allow_repeat = false;  // merge a model the state already holds (same fingerprint)
  bool shuffle = false;  // merge the added models in an order drawn from `seed`
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 5'000'000'000;
  bool overwrite = false;
};

struct ContinualReport {
  std::string method;
  std::vector<std::string> added;          // this run's models, in merge order
  size_t models_total = 0;                 // including earlier runs
  size_t tensors = 0, projected = 0;       // projected: 2-D linear weights (OPCM)
  std::vector<double> task_vector_norms;   // this run's models
  double lambda = 1, mean_norm = 0;        // OPCM after this run
  double merged_norm = 0;                  // ||merged - base|| over the whole model
  double svd_seconds = 0;                  // OPCM: time inside svd_thin
  MergeState state;                        // as written to the output
};

// step: 0-based index of the work item, of `total`; pass: 1 or 2 (OPCM's rescale).
using ContinualProgress = std::function<void(size_t step, size_t total, const std::string& tensor)>;

// Merges `models` into `base` (starting a new merge) or into the previous merge at
// `state_dir` (a previous output folder, non-empty to continue), writing `out`. `base` may
// be empty for average, whose mean does not involve it. Sums over this run's models
// accumulate in double and each output tensor is rounded once to its dtype. Throws Error
// naming the file and tensor for inputs whose tensor names, shapes or dtypes differ from the
// base's, a state folder made with another base or another method, NaN/Inf in a task
// vector, or bad options; the output appears only when complete.
ContinualReport merge_continual(const std::string& base, const std::vector<std::string>& models,
                                const std::string& state_dir, const std::string& out, const ContinualOptions& options,
                                const ContinualProgress& progress = {});

}  // namespace modelpress::merge
