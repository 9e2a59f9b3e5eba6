// Weight clustering (palettization): DKM (Cho et al., differentiable k-means) computed the
// eDKM way (Apple 2023: over the unique weight values with their multiplicities), plus
// plain k-means (Lloyd) as the baseline. The result is a PackedLayer of format Lut: b-bit
// indices into one table of 2^b centroids per tensor or per group of output rows.
//
// DKM, as the issue and the paper state it, over values w_i and centroids c_j:
//   d_ij = (w_i - c_j)^2,  a_ij = softmax_j(-d_ij / tau),  c_j <- sum_i a_ij w_i / sum_i a_ij
// with tau taken relative to the table's variance (DkmParams), so the result does not depend
// on the weights' scale,
// repeated until no centroid moves by more than epsilon (relative: see DkmParams) or
// max_iters rounds; then every weight takes its nearest centroid (hard assignment).
// Uniquification: a_ij depends only on the value w_i, so with U distinct values u and
// multiplicities m_u the update is c_j = sum_u m_u a_uj u / sum_u m_u a_uj: O(U k) per
// round and an attention map of U x k instead of (weights) x k. 16-bit weights have at
// most 65,536 distinct values; f32 weights are keyed by their nearest f16 (docs/
// CLUSTERING.md: the attention sees values within 2^-11 relative of the weight; the final
// hard assignment uses the exact value).
// Sensitivity weighting (SqueezeLLM-style): with an importance h_k per input column (the
// diagonal of X^T X from calibration rows), weight w[n][k] counts h_k times, so m_u becomes
// the summed importance of the weights holding u; the update and k-means alike minimize
// sum h_k (w - c)^2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/tensor.h"
#include "quant/kmeans1d.h"
#include "quant/packed_layer.h"

namespace modelpress::quant {

enum class ClusterAlgorithm { Dkm, KMeans };
enum class ClusterInit {
  Auto,            // the exact 1-D optimum (coremltools uses it up to 1024 unique values only;
                   // here at every size: docs/CLUSTERING.md measures the cost)
  KMeansPlusPlus,  // weighted k-means++ on the unique values
  Optimal1D,       // the exact 1-D k-means optimum (dynamic programming)
};

// The default relative temperature, chosen on all-MiniLM-L6-v2 (docs/CLUSTERING.md).
constexpr double kDefaultRelativeTau = 1e-3;

struct DkmParams {
  // Softmax temperature relative to the table's weighted variance: a_ij ~ exp(-(w_i - c_j)^2 /
  // (tau var(w))), the same at any weight scale. (coremltools' palett_tau is absolute, 1e-4 in
  // squared weight units: relative 0.04 at std 0.05, 25 at std 0.002, where it collapses.)
  double tau = kDefaultRelativeTau;
  int max_iters = 8;      // rounds at most
  // Stop when no centroid moves by more than epsilon x the table's standard deviation.
  double epsilon = 1e-4;
  int threads = 1;        // threads for one table's rounds (the pass sets it for a lone table)
};

struct ClusterOptions {
  int bits = 4;              // 1..8: 2^bits centroids
  int64_t group_size = 0;    // output rows per table; 0: one table for the whole tensor
  ClusterAlgorithm algorithm = ClusterAlgorithm::Dkm;
  ClusterInit init = ClusterInit::Auto;
  DkmParams dkm;
  int kmeans_iters = 30;     // Lloyd rounds at most (KMeans)
  // Divide each output row by its absmax before clustering and store the scale per row
  // (coremltools enable_per_channel_scale, min_max scheme).
  bool channel_scale = false;
  DType lut_dtype = DType::F16;  // F16, F32, or I8 (int8 codes, one f32 scale per table)
  uint64_t seed = 0;             // k-means++ sampling
};

// Throws Error "<name>.weight: ..." for bits outside 1..8, a group size that does not
// divide the rows, a LUT dtype other than F16/F32/I8, a weight that is not 2-D float, or a
// NaN/Inf (naming its index). `importance` (optional): K non-negative values, the diagonal
// of X^T X of the layer's calibration inputs. Fewer distinct values than centroids give an
// exact table (the values themselves, the last repeated), never NaN.
PackedLayer cluster_weight(const std::string& name, const Tensor& weight, const Tensor* bias,
                           const ClusterOptions& options, const std::vector<float>* importance = nullptr);

// ---- The pieces, for tests and the accuracy benchmark ----

// DKM rounds on weighted unique values, from `centroids` (ascending, updated in place,
// sorted on return). A centroid whose attention underflows to 0 for every value keeps its
// place. Returns the rounds run. Float lanes with double sums every 512 values.
int dkm_iterate(const WeightedValues& values, std::vector<float>& centroids, const DkmParams& params);
// The same on every weight (no uniquification), in double with std::exp: the computation
// eDKM replaces, for the equality test.
int dkm_iterate_dense_reference(const float* w, int64_t count, std::vector<float>& centroids, const DkmParams& params);

// Bytes of the attention map, (rows x k) elements of `element_bytes` each: rows = weights
// without uniquification, rows = unique values with it.
inline uint64_t dkm_attention_bytes(uint64_t rows, int k, int element_bytes) {
  return rows * static_cast<uint64_t>(k) * static_cast<uint64_t>(element_bytes);
}

// The unique values of rows [0, rows) x K of `x` keyed by 16 bits: `bf16` keys by bf16
// (exact for bf16 weights), else by the nearest f16 (exact for f16 weights); values beyond
// f16's range, or all below its smallest normal 2^-14, fall back to exact f32 uniquification. `importance` (K, optional) weighs
// column k. Histogram over the 65,536 keys for large inputs, a sort for small ones.
WeightedValues unique_values_16bit(const float* x, int64_t rows, int64_t k, bool bf16, const float* importance);

// The pass's fast route to the same result for f16 keys: sortable f16 keys of x (negatives'
// bits flipped, positives' top bit set, so unsigned order is value order; F16C where the
// CPU has it), and the unique values of rows x K keys. x must be within f16's range.
void f16_sort_keys(const float* x, int64_t count, uint16_t* keys);
// The same for values that are bf16 already (their top 16 bits, exact).
void bf16_sort_keys(const float* x, int64_t count, uint16_t* keys);
WeightedValues unique_from_keys(const uint16_t* keys, int64_t rows, int64_t k, bool bf16, const float* importance);

// Centroids for one table: initialization, then DKM or Lloyd. If DKM left a centroid that is
// no value's nearest (merged into others: a temperature too high for the data), the start
// refined by Lloyd is returned instead and *collapsed (optional) is set.
std::vector<float> cluster_values(const WeightedValues& values, const ClusterOptions& options,
                                  bool* collapsed = nullptr);

}  // namespace modelpress::quant
