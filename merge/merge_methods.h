// The per-tensor math of the batch merge methods, as their papers define them and mergekit
// computes them (mergekit/merge_methods/: generalized_task_arithmetic.py, linear.py,
// slerp.py, model_stock.py; mergekit/sparsify.py). Pure functions over flat f32 tensors;
// every sum over models accumulates in double and the caller rounds once, to the output
// dtype, at the end (docs/MERGING.md, "Numbers").
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace modelpress::merge {

// Magnitude trimming (TIES, Yadav et al. 2023): keeps the k = max(1, floor(density * n))
// entries of largest |value| and zeroes the rest. Equal magnitudes at the threshold go to the lower
// index (mergekit's argsort leaves their order unspecified). density >= 1 keeps all.
void trim_by_magnitude(std::span<float> delta, double density);

// DARE (Yu et al. 2024): drops each entry with probability 1 - density and, with `rescale`,
// multiplies the survivors by 1 / density so the expected task vector is unchanged. The
// draws come from a counter-based generator keyed by (seed, stream, index), so the mask is
// the same whatever the thread count or the order tensors are visited in. density >= 1
// keeps all.
void dare_drop(std::span<float> delta, double density, bool rescale, uint64_t seed, uint64_t stream);

// A stream id for dare_drop from a tensor name and a model's index: each model and tensor
// gets its own mask.
uint64_t dare_stream(const std::string& tensor, size_t model_index);

enum class Sparsify { None, Magnitude, Random };

struct TaskArithmeticOptions {
  Sparsify sparsify = Sparsify::None;
  bool consensus = false;   // TIES sign election ("sum": the sign of the summed weighted deltas)
  bool normalize = false;   // divide by the sum of the (agreeing) weights
  double lambda = 1.0;      // scale of the merged task vector
  // DARE: survivors times 1 / density (the paper; mergekit 0.1 instead matches the L1 norm of
  // the undropped vector, equal in expectation). Magnitude trimming: survivors scaled to the
  // untrimmed L1 norm (mergekit's `rescale` for ties, off by default).
  bool rescale = false;
  uint64_t seed = 0;        // DARE
};

// mergekit's generalized task arithmetic, shared by task_arithmetic, ties, dare_ties and
// dare_linear. With deltas d_i = theta_i - theta_0 after sparsification and weights w_i:
//   consensus: elected sign s = sign(sum_i w_i d_i) with 0 counted as +; entry i agrees when
//              sign(w_i d_i) == s (a zero entry never agrees);
//   mixed     = sum_i [agrees] w_i d_i       (every i without consensus)
//   divisor   = sum_i [agrees] w_i           (a zero divisor, or without consensus one under
//                                             1e-8 in magnitude, counts as 1)
//   theta     = theta_0 + lambda * (normalize ? mixed / divisor : mixed)
// `deltas` are consumed (sparsified in place). densities: one per model (ignored without
// sparsification). tensor: the name DARE's stream is keyed by. Returns theta in f32 from a
// double accumulation, computed in place of `base` (pass it with std::move to save a copy).
std::vector<float> task_arithmetic_merge(std::vector<float> base, std::vector<std::vector<float>>& deltas,
                                         std::span<const double> weights, std::span<const double> densities,
                                         const TaskArithmeticOptions& options, const std::string& tensor);

// Weighted mean: sum_i w_i theta_i / sum_i w_i (normalize) or the plain weighted sum.
std::vector<float> linear_merge(const std::vector<std::vector<float>>& tensors, std::span<const double> weights,
                                bool normalize);

// Spherical interpolation from v0 (t = 0) to v1 (t = 1), treating each tensor as one vector:
// with unit directions u0, u1 (norms under 1e-8 left unnormalized) and dot = u0 . u1, when
// |dot| > 0.9995 the two are nearly collinear and the result is the linear (1-t) v0 + t v1;
// otherwise theta = acos(dot) and the result is
//   sin((1-t) theta) / sin(theta) * v0 + sin(t theta) / sin(theta) * v1.
std::vector<float> slerp_merge(double t, std::span<const float> v0, std::span<const float> v1);

// Model Stock (Jang et al. 2024): with N >= 2 fine-tuned models, offsets o_i = theta_i -
// theta_0, cos = the mean over pairs i < j of the cosine between o_i and o_j (per output row
// when filter_wise, over the whole tensor otherwise; norms clamped below at 1e-6 and the
// cosine clipped to [-1, 1]), t = N cos / (1 + (N - 1) cos), and
//   theta = t * mean_i theta_i + (1 - t) * theta_0.
// rows: the tensor's first dimension (1 for a vector) when filter_wise.
std::vector<float> model_stock_merge(std::span<const float> base, const std::vector<std::vector<float>>& models,
                                     bool filter_wise, int64_t rows);

}  // namespace modelpress::merge
