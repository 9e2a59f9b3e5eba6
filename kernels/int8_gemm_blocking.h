// Internal to the int8 GEMM: the cache blocking shared by the ISA-specific paths, and the
// signature of their per-block functions. The driver (int8_gemm.cpp) splits C into
// (MC, NC) blocks, hands blocks to OpenMP threads, and walks K in KC slices; a block function
// computes one (block, K slice) with register tiles.
#pragma once
#include <cstdint>

namespace modelpress::kernels::detail {

// KC * NC bytes of B (256 KiB) plus MC * KC of A (96 KiB) stay in the 512 KiB L2 while each
// MR-row tile of A (6-8 KiB) is reused from L1 against every NR-row tile of B. MC is a
// multiple of both paths' MR (3 and 4).
inline constexpr int64_t kInt8KC = 2048;  // K slice (bytes per row)
inline constexpr int64_t kInt8NC = 128;   // rows of B per block
inline constexpr int64_t kInt8MC = 48;    // rows of A per block

// C[m0:m1, n0:n1] (+)= A[m0:m1, k0:k1] . B[n0:n1, k0:k1]^T; `accumulate` false for the first
// K slice (it overwrites C, so C needs no zeroing). lda = ldb = K, ldc = N.
using Int8BlockFn = void (*)(const int8_t* a, const int8_t* b, int32_t* c, int64_t k, int64_t n,
                             int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                             bool accumulate);

void int8_block_avx2(const int8_t* a, const int8_t* b, int32_t* c, int64_t k, int64_t n, int64_t m0,
                     int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool accumulate);
void int8_block_avx512vnni(const int8_t* a, const int8_t* b, int32_t* c, int64_t k, int64_t n, int64_t m0,
                           int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool accumulate);

// The AVX-512 VNNI path has a driver of its own (int8_gemm_avx512.cpp): it packs A and B
// into panels and blocks for Zen 4; below 8 rows of A it runs int8_block_avx512vnni through
// int8_gemm_blocked (no packing).
void int8_gemm_avx512vnni_driver(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k);

// Runs `block` over all of C with OpenMP.
void int8_gemm_blocked(Int8BlockFn block, const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n,
                       int64_t k);

}  // namespace modelpress::kernels::detail
