// AVX-512 W4A16 GEMV (w4a16.h): M < 8, group a multiple of 128. Everything else goes to the
// AVX2 path (w4a16_avx2.cpp).
//
// Why: the AVX2 GEMV spends 3 vector ops per 8 weights (and, convert, FMA) plus the group
// scale and zero-point work. Here a nibble becomes its dequantized weight in one vpermps:
// per group, the 16 possible weights (u - z) * s (u = 0..15) are one zmm table, computed as
// the reference does (exact u - z, one f32 product), and the lookup replaces mask + convert
// + scale; no zero-point correction is left. Unpacking, 128 weights (64 bytes, one load) at
// a time: dword lane i holds weights 8i .. 8i+7 (nibble j = weight 8i + j, low nibble first
// as W4Weight stores), so (v >> 4j) has weight 8i + j's nibble in the low 4 bits of lane i,
// which is all vpermps reads. x is rearranged once per call into that order:
//   xp[c * 128 + j * 16 + i] = x[c * 128 + 8 i + j]
// (the workspace's xp; K is a multiple of the group, so of 128, and no padding is needed).
// A step of 16 weights: one shift, one vpermps, one FMA per row of x.

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* values
// once inlined into masked loads and reductions (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu_features.h"
#include "kernels/w4a16.h"
#include "kernels/w4a16_internal.h"

#define MP_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

namespace modelpress::kernels {

namespace {

constexpr int64_t kBlock = 128;  // weights per 64-byte load

// Weights of K per pass over a block's rows, per row of x: 16 KiB of x at batch 1, so x
// stays in L1 while the block's rows stream past it (whole groups; at least one).
constexpr int64_t kChunk = 4096;
// Software prefetch: the same columns two rows further down the block (two row segments,
// 2 x 2 KiB, ahead); the hardware prefetcher alone does not keep up with 16 segment streams
// (none: 4.9 ms, 1 row: 3.8, 2 rows: 3.55, 4 rows: 3.7 at 16384 x 8192). NTA: the weight is
// read once (T0 measured the same).
constexpr int64_t kPfRows = 2;

// Rows [n0, n1) (at most 16) of W against MR rows of xp (row stride k).
template <int MR>
MP_AVX512 void gemv_rows(const W4Weight& w, const float* xp, const float* bias, int64_t n0, int64_t n1, float* y,
                         int64_t ldy) {
  constexpr int CH = MR == 1 ? 4 : 2;  // independent FMA chains per row of x
  const int64_t k = w.k, rb = k / 2, groups = w.k / w.group, per_group = w.group / kBlock;
  const int64_t chunk_groups = std::max<int64_t>(1, kChunk / MR / w.group);
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  float partial[16][MR] = {};  // (rows of the block, rows of x)
  for (int64_t g0 = 0; g0 < groups; g0 += chunk_groups) {
    const int64_t g1 = std::min(groups, g0 + chunk_groups);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* row = w.packed + n * rb;  // (K/2)
      const float* sc = w.scales + n * groups;  // (K/G)
      const uint8_t* zp = w.zeros ? w.zeros + n * groups : nullptr;
      __m512 acc[MR][CH];
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < CH; ++h) acc[r][h] = _mm512_setzero_ps();
      for (int64_t g = g0, c = g0 * per_group; g < g1; ++g) {
        const float z = zp ? static_cast<float>(zp[g]) : 8.0f;
        // (16) the weights u = 0..15 dequantize to in this group: (u - z) exact, times s rounded once.
        const __m512 table = _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_set1_ps(z)), _mm512_set1_ps(sc[g]));
        for (int64_t e = 0; e < per_group; ++e, ++c) {
          _mm_prefetch(reinterpret_cast<const char*>(row + kPfRows * rb + c * 64), _MM_HINT_NTA);
          __m512i v = _mm512_loadu_si512(row + c * 64);  // (16) dwords of 8 nibbles
          // Keep v in a register: GCC otherwise folds the load into each of the 7 shifts,
          // 8 loads of the same 64 bytes per block (measured 40% slower in cache).
          asm("" : "+v"(v));
          const float* xc = xp + c * kBlock;
#pragma GCC unroll 8
          for (int j = 0; j < 8; ++j) {
            const __m512i idx = j == 0 ? v : _mm512_srli_epi32(v, 4 * j);  // nibble of weight 8i + j in lane i
            const __m512 wv = _mm512_permutexvar_ps(idx, table);          // (16) dequantized weights
#pragma GCC unroll 4
            for (int r = 0; r < MR; ++r)
              acc[r][j % CH] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xc + r * k + j * 16), acc[r][j % CH]);
          }
        }
      }
      for (int r = 0; r < MR; ++r) {
        __m512 s = acc[r][0];
        for (int h = 1; h < CH; ++h) s = _mm512_add_ps(s, acc[r][h]);
        partial[n - n0][r] += _mm512_reduce_add_ps(s);
      }
    }
  }
  for (int64_t n = n0; n < n1; ++n)
    for (int r = 0; r < MR; ++r) y[r * ldy + n] = partial[n - n0][r] + (bias ? bias[n] : 0.0f);
}

using GemvFn = void (*)(const W4Weight&, const float*, const float*, int64_t, int64_t, float*, int64_t);
constexpr GemvFn kGemv[5] = {nullptr, gemv_rows<1>, gemv_rows<2>, gemv_rows<3>, gemv_rows<4>};

}  // namespace

bool w4a16_avx512_supported(const W4Weight& w, int64_t m) {
  return cpu_features().avx512 && m < 8 && w.group > 0 && w.group % kBlock == 0 && w.k % w.group == 0;
}

void w4a16_linear_avx512(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y, void* workspace) {
  if (!w4a16_avx512_supported(w, m)) return w4a16_linear_avx2(w, bias, x, m, y, workspace);
  const int64_t n = w.n, k = w.k;
  if (m <= 0 || n <= 0) return;
  // K % 128 == 0, so the workspace's xp (M rows of K rounded up to 64) holds M rows of K.
  float* xp = detail::w4a16_carve(workspace, w, m).xp;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; c += kBlock)
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) xp[r * k + c + j * 16 + i] = x[r * k + c + 8 * i + j];
  constexpr int64_t kRows = 16;
  const int64_t blocks = (n + kRows - 1) / kRows;
  // Dynamic, 4 blocks (64 rows) at a time: both threads finish together even when one of
  // them loses its core for a while.
#pragma omp parallel for schedule(dynamic, 4) if (blocks > 1 && n * k >= (int64_t{1} << 18))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kRows, j1 = std::min(n, j0 + kRows);
    for (int64_t i = 0; i < m; i += 4)
      kGemv[std::min<int64_t>(4, m - i)](w, xp + i * k, bias, j0, j1, y + i * n, n);
  }
}

}  // namespace modelpress::kernels
