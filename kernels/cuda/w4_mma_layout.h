// The tensor-core layout of a 4-bit weight: W4Weight's nibbles (row-major, low nibble first)
// rearranged so that one 16-byte load per lane gives a warp the A operands of four
// mma.m16n8k16 instructions, with no shuffles or shared memory between load and use.
//
// The weight is cut into tiles of 16 rows x 64 columns of K, stored one after another along K
// (tile (rb, kb) at byte (rb * K/64 + kb) * 512), 512 bytes each: lane l's 16 bytes at l * 16.
// In a tile, the 4 k16 chunks j = 0..3 are the lane's 32-bit words j. In word j, nibble p holds
// the element that the mma's A fragment wants in register q = p % 4, half e = p / 4 (so that
// (word >> 4q) & 0x000F000F yields register q's two halves in one mask):
//   register q = hi_row + 2 hi_col: row g + 8 hi_row, mma column 2t + e + 8 hi_col
// with g = l / 4, t = l % 4 (the PTX ISA's groupID and threadID_in_group for m16n8k16).
//
// The mma's 16 columns of chunk j are a permutation of the tile's K columns, the same for W and
// x (a dot product does not care about order), chosen so that each lane's x operands are 16
// consecutive elements: mma column c of chunk j <-> K column 16 t + 4 j + idx, where t = (c % 8) / 2
// and idx = c % 2 + 2 (c / 8). Lane (g, t) then loads x[token g][16 t .. 16 t + 15] of the tile as
// two 16-byte loads, and its B registers for chunk j are words 2j and 2j + 1 of those 32 bytes.
//
// Rows past N (the last tile when N % 16 != 0) hold nibble 0; their outputs are never written.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define MP_HOST_DEVICE __host__ __device__
#else
#define MP_HOST_DEVICE
#endif

namespace modelpress::kernels::cuda {

constexpr int64_t kW4MmaTileRows = 16, kW4MmaTileK = 64, kW4MmaTileBytes = 512;

// Bytes of the layout for an (N, K) weight, K % 64 == 0: N rounded up to 16, times K / 2.
MP_HOST_DEVICE inline int64_t w4_mma_bytes(int64_t n, int64_t k) { return (n + 15) / 16 * 16 * (k / 2); }

struct W4MmaPlace {
  int64_t byte;  // offset in the layout
  int shift;     // 0: low nibble, 4: high nibble
};

// Where element (row, col) of the weight lives in the layout.
MP_HOST_DEVICE inline W4MmaPlace w4_mma_place(int64_t row, int64_t col, int64_t k) {
  const int64_t rb = row / 16, kb = col / 64;
  const int rr = static_cast<int>(row % 16), kk = static_cast<int>(col % 64);
  const int g = rr % 8, hi_row = rr / 8;
  const int t = kk / 16, j = (kk % 16) / 4, idx = kk % 4;
  const int e = idx % 2, hi_col = idx / 2;
  const int lane = g * 4 + t, q = hi_row + 2 * hi_col, p = q + 4 * e;
  return {(rb * (k / 64) + kb) * kW4MmaTileBytes + lane * 16 + j * 4 + p / 2, (p % 2) * 4};
}

// The inverse: the element at nibble `shift` of layout byte `byte`.
MP_HOST_DEVICE inline void w4_mma_element(int64_t byte, int shift, int64_t k, int64_t* row, int64_t* col) {
  const int64_t tile = byte / kW4MmaTileBytes, kbs = k / 64;
  const int64_t rb = tile / kbs, kb = tile % kbs;
  const int within = static_cast<int>(byte % kW4MmaTileBytes);
  const int lane = within / 16, j = (within % 16) / 4, p = 2 * (within % 4) + shift / 4;
  const int q = p % 4, e = p / 4, hi_row = q % 2, hi_col = q / 2;
  const int g = lane / 4, t = lane % 4;
  *row = rb * 16 + g + 8 * hi_row;
  *col = kb * 64 + 16 * t + 4 * j + 2 * hi_col + e;
}

}  // namespace modelpress::kernels::cuda
