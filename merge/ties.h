// TIES merging (Yadav et al. 2023) of two flat task vectors, as fusion_bench's continual
// TIES (fusion_bench/method/opcm/ties_merging.py) applies it to [merged task vector, new
// task vector]: trim each to its top-k magnitudes, elect a sign per entry, disjoint mean.
#pragma once
#include <span>
#include <vector>

namespace modelpress::merge {

// Keeps the entries whose |value| is at least the (d - floor(d * keep))-th smallest |value|
// (fusion_bench topk_values_mask: the threshold entry itself and ties with it survive, so
// floor(d * keep) + 1 entries stay when magnitudes are distinct), zeroes the rest.
// keep in (0, 1]; keep >= 1 (or floor(d * keep) == d) keeps everything.
void ties_trim(std::span<float> v, double keep);

// Trims copies of a and b, elects sign(sum) per entry (a zero sum takes the sign of the sum
// of all elected signs, the "majority sign"), and averages the trimmed entries that agree
// with the elected sign (entries that are zero or disagree do not count).
std::vector<float> ties_merge(std::span<const float> a, std::span<const float> b, double keep);

}  // namespace modelpress::merge
