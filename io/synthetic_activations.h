// Synthetic layer inputs for validation when no calibration file is given. They imitate
// what the LLM.int8 paper measured in transformer hidden states: most features small and
// heavy-tailed, a few feature columns (about 0.5%) consistently 20-60x larger, so that
// |x| >= 6 occurs and the outlier path of LLM.int8 is exercised. Deterministic: the same
// (rows, cols, seed) give the same values on every machine (own PRNG and transforms, no
// std:: distributions, whose output differs between standard libraries).
//
//   x[r][c] = row_scale[r] * 0.35 * t5[r][c] * gain[c]
//   t5        Student-t with 5 degrees of freedom (normal / sqrt(chi2_5 / 5))
//   row_scale log-normal, median 1, sigma 0.25 (tokens differ in norm)
//   gain[c]   uniform in [20, 60] on the outlier columns, 1 elsewhere
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace modelpress {

struct SyntheticActivations {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;              // (rows, cols) row-major
  std::vector<int32_t> outlier_channels;  // ascending; max(1, round(0.005 * cols)) of them
};

SyntheticActivations synthetic_activations(int64_t rows, int64_t cols, uint64_t seed);

// A per-layer seed: `seed` mixed with the layer name, so every layer gets its own stream
// whatever order layers are visited in.
uint64_t layer_seed(const std::string& layer, uint64_t seed);

}  // namespace modelpress
