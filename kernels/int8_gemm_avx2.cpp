// AVX2 int8 GEMM: C (M, N) = A (M, K) . B (N, K)^T with vpmaddubsw.
//
// vpmaddubsw multiplies UNSIGNED bytes by SIGNED bytes and adds adjacent pairs into int16
// with saturation; both our operands are signed. The sign trick moves B's sign onto A:
//   a * b = |b| * (sign(b) * a)      (vpabsb on B, vpsignb on A: negate a where b < 0,
//                                     zero where b == 0)
// so u = |b| in [0, 128] is the unsigned operand and s = +-a the signed one. A pair sum is
// |u0 s0 + u1 s1| <= 2 * 128 * 127 = 32512 <= 32767: no saturation, the result is exact,
// PROVIDED a != -128 (negating -128 overflows int8, and 2 * 128 * 128 = 32768 would
// saturate). Hence the precondition A in [-127, 127]; B may hold any int8. Our activation
// quantizer clamps to [-127, 127], and int8_gemm() checks A before choosing this path.
// (The other classic fix, A + 128 as unsigned, saturates: 2 * 255 * 127 = 64770.)
// vpmaddwd with ones then widens the int16 pairs to int32 before accumulating.
//
// Register tile: MR rows of A x NR rows of B, one 8 x int32 accumulator per (m, n) pair,
// reduced horizontally once per K slice. Per 32-byte k step: NR loads + NR vpabsb of B, MR
// loads of A, and MR * NR x (vpsignb, vpmaddubsw, vpmaddwd, vpaddd). Those four vector ops
// per 32 multiply-adds are the cost floor: Zen 3 issues at most four vector ops a cycle.
// MR = 3, NR = 2 (6 accumulators + 2 x 2 B registers + A + ones + a temporary = 13 of the
// 16 ymm registers) measured fastest of 4x2, 3x2, 2x3, 3x3, 4x3, 2x4, 3x4 (GCC spills
// accumulators of the larger tiles). M = 1 (decode) uses MR = 1, NR = 4: B streams from
// memory, four rows at a time keep four independent chains in flight.
#include <immintrin.h>

#include <algorithm>

#include "kernels/int8_gemm_blocking.h"

#define MP_AVX2 __attribute__((target("avx2")))
#define MP_AVX2_INLINE __attribute__((target("avx2"), always_inline)) inline

namespace modelpress::kernels::detail {

namespace {

MP_AVX2_INLINE int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// One 32-byte k step of the (MR, NR) tile. a: MR rows with stride lda, b: NR rows, stride ldb.
template <int MR, int NR>
MP_AVX2_INLINE void step(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, __m256i (&acc)[MR][NR],
                         __m256i ones) {
  __m256i bs[NR], bu[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    bs[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j * ldb));
    bu[j] = _mm256_abs_epi8(bs[j]);  // (32) u8: |-128| = 0x80 reads as 128 unsigned
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i * lda));
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m256i s = _mm256_sign_epi8(av, bs[j]);       // (32) s8: a * sign(b)
      const __m256i p = _mm256_maddubs_epi16(bu[j], s);    // (16) s16: exact, see above
      acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(p, ones));  // (8) s32
    }
  }
}

// C tile (MR, NR) (+)= A (MR, kc) . B (NR, kc)^T.
template <int MR, int NR>
MP_AVX2 void tile(const int8_t* a, const int8_t* b, int32_t* c, int64_t lda, int64_t ldb, int64_t ldc, int64_t kc,
                  bool accumulate) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  const int64_t kmain = kc & ~int64_t{31};
  for (int64_t kk = 0; kk < kmain; kk += 32) step<MR, NR>(a + kk, lda, b + kk, ldb, acc, ones);
  // Reduce in fully unrolled loops of their own: any loop over acc that GCC does not
  // unroll makes it keep the accumulators in memory inside the k loop as well.
  int32_t sum[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) sum[i][j] = hsum_epi32(acc[i][j]);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      // K tail (K % 32 != 0, at most 31 products): scalar, so the vector loop never reads
      // past a row.
      int32_t v = sum[i][j];
      for (int64_t t = kmain; t < kc; ++t) v += static_cast<int32_t>(a[i * lda + t]) * b[j * ldb + t];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
    }
}

using TileFn = void (*)(const int8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t, int64_t, bool);

// The explicit list of instantiated tiles (convention 7): full tiles and every edge.
constexpr int kMR = 3, kNR = 2, kNR1 = 4;
constexpr TileFn kTiles[kMR + 1][kNR1 + 1] = {
    {nullptr, nullptr, nullptr, nullptr, nullptr},
    {nullptr, tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>},
    {nullptr, tile<2, 1>, tile<2, 2>, nullptr, nullptr},
    {nullptr, tile<3, 1>, tile<3, 2>, nullptr, nullptr},
};

}  // namespace

void int8_block_avx2(const int8_t* a, const int8_t* b, int32_t* c, int64_t k, int64_t n, int64_t m0, int64_t m1,
                     int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool accumulate) {
  const int64_t kc = k1 - k0;
  for (int64_t i = m0; i < m1; i += kMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR, m1 - i));
    const int nr_full = mr == 1 ? kNR1 : kNR;
    for (int64_t j = n0; j < n1; j += nr_full) {
      const int nr = static_cast<int>(std::min<int64_t>(nr_full, n1 - j));
      kTiles[mr][nr](a + i * k + k0, b + j * k + k0, c + i * n + j, k, k, n, kc, accumulate);
    }
  }
}

}  // namespace modelpress::kernels::detail
