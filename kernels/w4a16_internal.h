// Internal to W4A16: the workspace layout shared by sizing and the AVX2 path.
//
// The AVX2 path unpacks 64 weights (32 bytes) at a time with 32-bit shifts: lane i of
// `(v >> 4j) & 15` holds element 8i + j of the 64 (nibble j of the little-endian dword i;
// low nibble first, as W4Weight stores). Rather than shuffle the weights into order, x is
// rearranged once per call into the same order, 64 at a time:
//   xp[c * 64 + j * 8 + i] = x[c * 64 + 8 i + j]   (zero past K)
// A dot product does not care about order, so weights and xp then meet lane by lane.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/packed_linear.h"
#include "kernels/workspace.h"

namespace modelpress::kernels::detail {

inline int64_t w4a16_padded_k(int64_t k) { return (k + 63) / 64 * 64; }

struct W4Scratch {
  float* xp = nullptr;    // (M, Kp) x in unpacking order, Kp = K rounded up to 64
  float* xsum = nullptr;  // (M, K / group) per-group sums of x (zero-point correction)
  size_t bytes = 0;
};

inline W4Scratch w4a16_carve(void* base, const W4Weight& w, int64_t m) {
  WorkspaceCarver c(base);
  W4Scratch s;
  s.xp = c.take<float>(m * w4a16_padded_k(w.k));
  s.xsum = c.take<float>(w.group > 0 ? m * (w.k / w.group) : 0);
  s.bytes = c.bytes();
  return s;
}

}  // namespace modelpress::kernels::detail
