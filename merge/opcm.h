// OPCM's per-matrix step (Tang et al. 2025, "Merging Models on the Fly Without Retraining";
// fusion_bench/method/opcm/opcm.py, merge_linear_weights), on plain f32 spans.
//
// With prev = U S V^T (full SVD) and P = U^T tau V, the paper zeroes P's diagonal and its
// leading r x r block and maps back: tau' = U P V^T. Every zeroed entry lies in the first
// k = min(m, n) rows and columns, and U U^T = I for the full U, so
//     tau' = tau - U_k M V_k^T,  M = [U_r^T tau V_r  on the r x r block; u_i^T tau v_i on
//                                     the diagonal for r <= i < k; 0 elsewhere]
// which needs only the thin SVD: two (m, n, k) GEMMs instead of two (m, m, n) + (m, n, n)
// ones, and no m x m or n x n matrices. tests/merge compares it with the full-matrix
// formula written out literally.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "merge/svd.h"

namespace modelpress::merge {

// tau (m x n row-major) projected off prev's subspace, keeping the split rank r. A prev
// with an all-zero spectrum has no subspace to avoid: tau comes back unchanged (fusion_bench
// would zero the diagonal in an arbitrary basis; see docs/MERGING.md).
std::vector<float> opcm_project(const Svd& prev, int64_t r, std::span<const float> tau);

}  // namespace modelpress::merge
