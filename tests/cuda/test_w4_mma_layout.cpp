// The tensor-core layout of 4-bit weights (kernels/cuda/w4_mma_layout.h), checked on the CPU so
// that it runs without a GPU: the mapping is a bijection, and a warp emulated from the PTX ISA's
// fragment definitions of mma.m16n8k16 (A: a0..a7 at (groupID [+8], 2 threadID_in_group + i [+8]);
// B: b0..b3 at (2 threadID_in_group + i [+8], groupID); C: c0..c3 at (groupID [+8],
// 2 threadID_in_group + i)), fed exactly as w4a16_mma.cu feeds it (one 16-byte word per lane
// and tile, x words 2j and 2j + 1), computes the same product as the row-major weight.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "kernels/cuda/w4_mma_layout.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels::cuda {
namespace {

using kernels::testing::Rng;

TEST(W4MmaLayout, IsABijectionWithItsInverse) {
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{16, 64}, {37, 128}, {130, 192}}) {
    const int64_t np = (n + 15) / 16 * 16;
    ASSERT_EQ(w4_mma_bytes(n, k), np * k / 2);
    std::set<int64_t> seen;
    for (int64_t r = 0; r < np; ++r)
      for (int64_t c = 0; c < k; ++c) {
        const W4MmaPlace p = w4_mma_place(r, c, k);
        ASSERT_GE(p.byte, 0);
        ASSERT_LT(p.byte, w4_mma_bytes(n, k));
        ASSERT_TRUE(p.shift == 0 || p.shift == 4);
        ASSERT_TRUE(seen.insert(p.byte * 2 + p.shift / 4).second) << "row " << r << " col " << c;
        int64_t rr = -1, cc = -1;
        w4_mma_element(p.byte, p.shift, k, &rr, &cc);
        ASSERT_EQ(rr, r);
        ASSERT_EQ(cc, c);
      }
  }
}

// One 16 x 64 tile times 8 tokens through an emulated warp, against the plain product.
TEST(W4MmaLayout, EmulatedWarpMatchesTheProduct) {
  Rng rng;
  const int64_t n = 16, k = 128, tokens = 8;
  std::vector<int> w(n * k);  // u - 8, the integers the kernel multiplies
  for (auto& v : w) v = rng.integer(0, 15);
  std::vector<uint8_t> layout(static_cast<size_t>(w4_mma_bytes(n, k)), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const W4MmaPlace p = w4_mma_place(r, c, k);
      layout[p.byte] |= static_cast<uint8_t>(w[r * k + c] << p.shift);
    }
  std::vector<int> x(tokens * k);
  for (auto& v : x) v = rng.integer(-9, 9);

  std::vector<long> d(n * tokens, 0);  // D (16 rows, 8 tokens), from the C fragments
  for (int64_t kb = 0; kb < k / 64; ++kb)
    for (int j = 0; j < 4; ++j) {
      // Each lane's registers, as the kernel forms them.
      int a[32][8], b[32][4];
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        uint32_t word = 0;
        for (int byte = 0; byte < 4; ++byte)
          word |= static_cast<uint32_t>(layout[kb * 512 + lane * 16 + j * 4 + byte]) << (8 * byte);
        for (int q = 0; q < 4; ++q) {
          const uint32_t pair = (word >> (4 * q)) & 0x000F000Fu;  // register q: low half, high half
          a[lane][2 * q] = static_cast<int>(pair & 0xF);
          a[lane][2 * q + 1] = static_cast<int>(pair >> 16);
        }
        // x words 2j, 2j + 1 of x[token g][kb 64 + 16 t .. + 15]: elements 4j .. 4j + 3.
        for (int i = 0; i < 4; ++i) b[lane][i] = x[g * k + kb * 64 + 16 * t + 4 * j + i];
      }
      // The mma, by the PTX definitions of where each register element sits.
      int A[16][16], B[16][8];
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        for (int i = 0; i < 8; ++i) {
          const int row = g + ((i / 2) % 2) * 8, col = 2 * t + i % 2 + (i / 4) * 8;
          A[row][col] = a[lane][i];
        }
        for (int i = 0; i < 4; ++i) B[2 * t + i % 2 + (i / 2) * 8][g] = b[lane][i];
      }
      for (int r = 0; r < 16; ++r)
        for (int tok = 0; tok < 8; ++tok)
          for (int c = 0; c < 16; ++c) d[r * tokens + tok] += static_cast<long>(A[r][c]) * B[c][tok];
    }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t tok = 0; tok < tokens; ++tok) {
      long want = 0;
      for (int64_t c = 0; c < k; ++c) want += static_cast<long>(w[r * k + c]) * x[tok * k + c];
      ASSERT_EQ(d[r * tokens + tok], want) << "row " << r << " token " << tok;
    }
}

}  // namespace
}  // namespace modelpress::kernels::cuda
