// Runs a merge plan (merge_config.h) the way mergekit does, tensor by tensor: the output's
// layers are the plan's slices in order (the `models:` form is one slice over every layer),
// each output tensor merged from the matching tensor of every source of its slice by the
// plan's method (merge_methods.h), embeddings from the first slice's sources and the
// tensors after the layer stack (final norm, head) from the last slice's. Writes the
// checkpoint through the checkpoint writer (complete or absent), with config.json from the
// base model (the layer count updated for `slices:`), the tokenizer donor's side files, the
// YAML it was made from (mergekit_config.yml) and a model card (README.md).
//
// Numbers: inputs are read as f32 (first rounded to the plan's `dtype` when it names one,
// as mergekit casts on load), sums over models accumulate in double, and each output is
// rounded once to out_dtype, else dtype, else the stored dtype (docs/MERGING.md).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "merge/merge_config.h"

namespace modelpress::merge {

struct BatchMergeOptions {
  uint64_t seed = 0;  // DARE's drop masks
  uint64_t max_shard_bytes = 5'000'000'000;
  bool overwrite = false;
  std::string version;  // written into the model card
};

struct BatchMergeReport {
  std::string method;
  std::string base;                 // empty when the plan has none
  std::vector<std::string> models;  // every referenced model but the base, first-seen order
  size_t tensors = 0;               // written
  int64_t layers = 0;               // in the output's layer stack
  std::string out_dtype;            // "BF16", ..., or "as stored"
};

using BatchMergeProgress = std::function<void(size_t step, size_t total, const std::string& tensor)>;

// Throws Error naming the file, tensor or configuration entry for: a model that cannot be
// opened, models of different architectures, a layer_range outside a model, tensors whose
// shapes differ, a method that needs a base model without one, a missing required
// parameter (weight), density outside (0, 1], a t outside [0, 1].
BatchMergeReport run_batch_merge(const MergePlan& plan, const std::string& out, const BatchMergeOptions& options,
                                 const BatchMergeProgress& progress = {});

}  // namespace modelpress::merge
