// 1-D clustering on weighted unique values: the data structure eDKM's uniquification
// produces (quant/edkm.h) and the building blocks every clustering pass shares: k-means++
// and optimal (dynamic programming) initialization, plain k-means (Lloyd) as the baseline,
// and the nearest-centroid assignment.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace modelpress::quant {

// Distinct values in ascending order, each with its multiplicity (or, for the sensitivity-
// weighted variant, the summed importance of the weights holding it). Weights are > 0.
struct WeightedValues {
  std::vector<float> value;
  std::vector<double> weight;
  size_t size() const { return value.size(); }
};

// The unique values of x[0, count) with their counts (times importance[i] when given, per
// element). Exact: no binning (the eDKM pass bins to 16-bit keys before calling this for
// large inputs; see edkm.cpp). x must be finite.
WeightedValues unique_values(const float* x, int64_t count, const float* importance = nullptr);

// Initial centroids (ascending, exactly k of them). With fewer distinct values than k, the
// distinct values themselves, the last repeated: an exact representation and no centroid
// without a value. `seed` drives k-means++'s sampling (probability proportional to weight,
// then to weight x squared distance to the nearest chosen centroid).
std::vector<float> kmeans_plus_plus(const WeightedValues& v, int k, uint64_t seed);
// The k centroids minimizing sum_u weight_u (value_u - nearest centroid)^2 exactly: dynamic
// programming over contiguous runs of the sorted values, O(k U log U) with the monotone
// divide-and-conquer split search (1-D optimal clusters are contiguous), each split also
// bounded below by the previous round's. `threads` > 1 splits each round's search across
// threads for large tables (the same result).
std::vector<float> kmeans_optimal_1d(const WeightedValues& v, int k, int threads = 1);
// The same by brute force over every split, for tests (tiny U only); returns the cost.
double kmeans_optimal_1d_brute_cost(const WeightedValues& v, int k);

// sum_u weight_u (value_u - nearest centroid)^2.
double clustering_cost(const WeightedValues& v, const std::vector<float>& centroids);

// Lloyd's k-means from `init` (ascending): hard assignment, weighted means, until no
// centroid moves by more than `epsilon` or `max_iters` rounds. A centroid left without
// values keeps its place (no division by an empty cluster). Returns the iterations run.
int kmeans_lloyd(const WeightedValues& v, std::vector<float>& centroids, int max_iters, double epsilon);

// Index of the nearest of `centroids` (ascending) to x; ties go to the lower index.
int nearest_centroid(const std::vector<float>& centroids, float x);

}  // namespace modelpress::quant
