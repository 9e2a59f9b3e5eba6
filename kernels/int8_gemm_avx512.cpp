// AVX-512 VNNI int8 GEMM: C (M, N) = A (M, K) . B (N, K)^T with vpdpbusd.
//
// NOT RUN on the development machine (AMD Zen 3: AVX2 only). It is compiled everywhere,
// chosen at run time only where cpu_features().avx512_vnni holds, and tested by the same
// test as the AVX2 path, which skips where the CPU lacks the feature.
//
// vpdpbusd multiplies unsigned by signed bytes and adds groups of four products straight
// into int32 (no int16 stage, no saturation), so the offset trick is exact here:
//   sum_k a b = sum_k (a + 128) b - 128 sum_k b
// a + 128 is `a XOR 0x80` read as unsigned (any int8 a, -128 included). sum_k b comes from
// one more vpdpbusd per B row and step, with all-ones unsigned bytes; it is shared by the
// MR rows of the tile. int32 lanes wrap on overflow (K * 255 * 128 can exceed 2^31 for
// K > 65792) but the final difference is exact whenever the true result fits int32.
//
// Register tile: MR = 4 rows of A x NR = 4 rows of B: 16 accumulators + 4 B + 4 row sums +
// constants in 32 zmm registers; 64 bytes of K per step.
#include <immintrin.h>

#include <algorithm>

#include "kernels/int8_gemm_blocking.h"

#define MP_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define MP_VNNI_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline

namespace modelpress::kernels::detail {

namespace {

// GCC 12 warns about its own AVX-512 intrinsics (_mm256_undefined_si256 inside them,
// GCC PR 105593); nothing in this file reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Sum of the 16 int32 lanes. (GCC 12's _mm512_reduce_add_epi32 trips -Wuninitialized in its
// own header.) Wrap-around addition, as the accumulators.
MP_VNNI_INLINE uint32_t hsum_epi32(__m512i v) {
  const __m512i s = _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, 0xEE));  // lanes 8..15 onto 0..7
  const __m256i h = _mm512_castsi512_si256(s);
  __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(q));
}

template <int MR, int NR>
MP_VNNI_INLINE void step(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, __m512i (&acc)[MR][NR],
                         __m512i (&bsum)[NR], __m512i flip, __m512i ones_u8) {
  __m512i bv[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    bv[j] = _mm512_loadu_si512(b + j * ldb);               // (64) s8
    bsum[j] = _mm512_dpbusd_epi32(bsum[j], ones_u8, bv[j]);  // (16) s32: partial sum_k b
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m512i au = _mm512_xor_si512(_mm512_loadu_si512(a + i * lda), flip);  // (64) u8: a + 128
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], au, bv[j]);  // (16) s32
  }
}

template <int MR, int NR>
MP_VNNI void tile(const int8_t* a, const int8_t* b, int32_t* c, int64_t lda, int64_t ldb, int64_t ldc, int64_t kc,
                  bool accumulate) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones_u8 = _mm512_set1_epi8(1);
  __m512i acc[MR][NR], bsum[NR];
  for (int j = 0; j < NR; ++j) bsum[j] = _mm512_setzero_si512();
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
  const int64_t kmain = kc & ~int64_t{63};
  for (int64_t kk = 0; kk < kmain; kk += 64) step<MR, NR>(a + kk, lda, b + kk, ldb, acc, bsum, flip, ones_u8);
  for (int j = 0; j < NR; ++j) {
    // Unsigned wrap-around arithmetic: exact modulo 2^32, see the file comment.
    const uint32_t offset = hsum_epi32(bsum[j]) * 128u;
    for (int i = 0; i < MR; ++i) {
      // K tail (at most 63 products): scalar, so the vector loop never reads past a row.
      auto v = static_cast<int32_t>(hsum_epi32(acc[i][j]) - offset);
      for (int64_t t = kmain; t < kc; ++t) v += static_cast<int32_t>(a[i * lda + t]) * b[j * ldb + t];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
    }
  }
}

using TileFn = void (*)(const int8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t, int64_t, bool);

constexpr int kMR = 4, kNR = 4;
constexpr TileFn kTiles[kMR + 1][kNR + 1] = {
    {nullptr, nullptr, nullptr, nullptr, nullptr},
    {nullptr, tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>},
    {nullptr, tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>},
    {nullptr, tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>},
    {nullptr, tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>},
};

}  // namespace

void int8_block_avx512vnni(const int8_t* a, const int8_t* b, int32_t* c, int64_t k, int64_t n, int64_t m0,
                           int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool accumulate) {
  const int64_t kc = k1 - k0;
  for (int64_t i = m0; i < m1; i += kMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR, m1 - i));
    for (int64_t j = n0; j < n1; j += kNR) {
      const int nr = static_cast<int>(std::min<int64_t>(kNR, n1 - j));
      kTiles[mr][nr](a + i * k + k0, b + j * k + k0, c + i * n + j, k, k, n, kc, accumulate);
    }
  }
}

}  // namespace modelpress::kernels::detail
