// EWA (Huang et al. 2023, "Experts Weights Averaging"): every MoE layer becomes one dense
// FFN whose weights are the mean of its experts' weights, or (share-rate mode) every expert
// moves toward that mean, W_i <- (1 - b) W_i + b mean_j W_j, keeping the MoE. The step
// leaves the mean of the experts unchanged, so collapsing after any number of steps gives
// the same dense FFN.
//
// Expert detection, the naming rules of each family and what happens to shared experts and
// routers are listed in docs/MERGING.md ("EWA"); ewa.cpp holds them in one table.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace modelpress {
class Checkpoint;
}

namespace modelpress::merge {

// One MoE layer as found in a checkpoint.
struct MoeBlock {
  std::string prefix;        // module holding the experts, "model.layers.3.block_sparse_moe"
  std::string dense_prefix;  // where its dense FFN goes, "model.layers.3.mlp"
  bool fused = false;        // 3-D experts (transformers v5): one tensor, expert dim first
  int64_t experts = 0;
  // projection ("w1", "gate_proj", "wi", or fused "gate_up_proj") -> parameter ("weight",
  // "bias") -> tensor name per expert (one name for fused experts)
  std::map<std::string, std::map<std::string, std::vector<std::string>>> projections;
  std::vector<std::string> routers;  // dropped by the collapse
  std::vector<std::string> shared;   // shared-expert weights: "<prefix>.shared_expert(s).<proj>.weight"
  std::string shared_gate;           // Qwen2-MoE's sigmoid gate of the shared expert ("" if none)
};

struct ExpertScan {
  std::string family;  // "mixtral", "qwen", "switch", "fused"
  std::vector<MoeBlock> blocks;
};

// Finds every MoE layer. Throws Error naming the checkpoint and listing the patterns looked
// for when there is none, and naming the tensor for incomplete or inconsistent experts.
ExpertScan find_experts(const Checkpoint& ck, const std::string& label);

struct EwaOptions {
  // < 0: collapse to dense. In [0, 1]: the share-rate step, keeping the MoE.
  double share_rate = -1;
  uint64_t max_shard_bytes = 5'000'000'000;
  bool overwrite = false;
};

struct EwaReport {
  std::string family, architecture_in, architecture_out;
  size_t moe_layers = 0, experts = 0;
  size_t tensors_in = 0, tensors_out = 0, dropped = 0;  // dropped: routers
  int64_t intermediate_size = 0;                        // of the dense FFN (collapse)
  std::vector<std::string> notes;                       // shared experts, padding, ...
  size_t expert_means = 0;  // share-rate: per-projection expert means computed (one per projection and block)
};

using EwaProgress = std::function<void(size_t index, size_t total, const std::string& tensor)>;

EwaReport ewa_checkpoint(const Checkpoint& in, const std::string& out, const EwaOptions& options,
                         const EwaProgress& progress = {});

// The mean of `n` equally shaped f32 arrays read one at a time by `get(i)` (accumulated in
// double so the order of experts does not matter to rounding).
std::vector<float> mean_of(size_t n, const std::function<std::vector<float>(size_t)>& get);

}  // namespace modelpress::merge
