// The state a continual merge carries from one run to the next. It lives in the output
// folder beside the merged weights, as modelpress_merge_state.json, so that folder is at
// once a loadable checkpoint and the `--state` of the next run (docs/MERGING.md, "State").
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelpress {
class Checkpoint;
}

namespace modelpress::merge {

inline constexpr const char* kStateFile = "modelpress_merge_state.json";

struct MergeState {
  std::string method;                      // "opcm", "average", "task-arithmetic", "continual-ties"
  std::string base_path;                   // as given when the merge started (informative)
  std::string base_fingerprint;            // checkpoint_fingerprint(base), 16 hex digits
  std::vector<std::string> models;         // every model merged so far, in merge order
  // checkpoint_fingerprint of each model (a continuation refuses one already merged); empty
  // strings for models merged by a version-1 state, which did not record them.
  std::vector<std::string> model_fingerprints;
  // Each model's weight: its task-vector scale (task-arithmetic, continual-ties) or its weight
  // in the mean (average; the sum of these is the mean's divisor). Empty for OPCM.
  std::vector<double> weights;
  // OPCM: ||tau_i|| over the whole model for every merged model (their count and sum give
  // the mean the merged task vector is rescaled to), and lambda_t, the divisor that turned
  // the unscaled sum S_t into the stored merged task vector (merged = base + S_t / lambda_t).
  std::vector<double> task_vector_norms;
  double lambda = 1.0;
  double alpha = 0.5;  // opcm, last run
  double density = 0;  // continual-ties, last run (fraction kept)
};

nlohmann::ordered_json state_to_json(const MergeState& state);
// Reads DIR/modelpress_merge_state.json (version 2, or version 1 as written before per-model
// weights and fingerprints: its single scale becomes every model's weight, its "ties" method
// "continual-ties"); throws Error naming the file when it is missing or malformed.
MergeState read_merge_state(const std::string& dir);

// A 64-bit fingerprint (16 hex digits) of a checkpoint's tensor names, dtypes and shapes and
// of 16 evenly spaced 64-byte samples of every tensor's data (all of a tensor under 4 KiB).
// Cheap (a few pages per tensor) and enough to tell a different base apart: two different
// pretrained models differ in every sampled byte. It does not prove byte equality.
std::string checkpoint_fingerprint(const Checkpoint& checkpoint);

}  // namespace modelpress::merge
