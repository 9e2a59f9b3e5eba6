// AVX2 + FMA W4A16 (w4a16.h; the unpacking order and workspace are in w4a16_internal.h).
//
// Unpacking: one 32-byte load is 64 weights; for j = 0..7, (v >> 4j) & 15 gives 8 of them
// as int32 lanes (element 8i + j in lane i), vcvtdq2ps makes them floats. No shuffles: only
// shifts, ands and converts, which leaves the shuffle port alone. The GEMV, compute-bound
// about as much as memory-bound here, even drops the shifts (nibbles_scaled): ~3 vector ops
// per 8 weights (and, convert, FMA). Groups are a multiple of 32, so a 64-weight step spans at
// most two groups, one per 128-bit half (lanes 0-3: elements 0-31, lanes 4-7: 32-63), and
// one scale vector {s_g0 x4, s_g1 x4} covers it.
//
// GEMV (M < 8), per output row n:
//   y[n] = sum_g s_g (sum_{k in g} u_k x_k) - sum_g s_g z_g (sum_{k in g} x_k)
// The first sum runs on raw nibbles (no zero-point subtraction per weight); the second uses
// per-group sums of x computed once per call. The weight streams from memory once (blocks of
// 16 rows meet up to 7 rows of x, 4 at a time, from cache), prefetched 1 KiB ahead; OpenMP
// splits N.
// GEMM (M >= 8): a (64 rows x 256 K) weight tile is dequantized, w = u * s - z * s, into a
// 64 KiB stack buffer (L2) and reused by every 4-row slice of x (an FMA 4 x 2 register
// tile); the full dequantized weight never exists.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_util.h"
#include "kernels/w4a16.h"
#include "kernels/w4a16_internal.h"

namespace modelpress::kernels {

namespace {

// Weights j (0..7) of a 64-weight step as floats: lane i = element 8i + j.
MP_AVX2_INLINE __m256 nibbles(__m256i v, int j) {
  const __m256i low4 = _mm256_set1_epi32(0x0F);
  __m256i u;
  if (j == 0) u = _mm256_and_si256(v, low4);
  else if (j == 7) u = _mm256_srli_epi32(v, 28);
  else u = _mm256_and_si256(_mm256_srli_epi32(v, 4 * j), low4);
  return _mm256_cvtepi32_ps(u);
}

// The GEMV's cheaper unpacking: weights j as floats times 2^(4j), lane i = element 8i + j.
// `v & (15 << 4j)` is u * 2^(4j) as an int32, exact in float, so no shift is needed; the
// GEMV's x is stored times 2^(-4j) (prepare_x) and the product is u * x exactly. j = 7 would
// set the sign bit, so it shifts down instead (its x is stored unscaled).
MP_AVX2_INLINE __m256 nibbles_scaled(__m256i v, int j) {
  if (j == 7) return _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 28));
  return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(0x0F << (4 * j))));
}
inline float nibble_x_scale(int j) { return j == 0 || j == 7 ? 1.0f : 1.0f / static_cast<float>(1 << (4 * j)); }

// The 32 or 64 weights at byte offset `byte` of a row (32 bytes, or 16 for the half step
// at the end of a K that is 32 mod 64: the upper lanes then read as 0).
MP_AVX2_INLINE __m256i load_step(const uint8_t* row, int64_t byte, bool half) {
  if (half) return _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + byte)));
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + byte));
}

// Group of each 32-weight half step, without a division per step.
struct HalfGroups {
  int64_t per_group;  // half steps per group (group / 32)
  int64_t g = 0, left;
  explicit HalfGroups(int64_t group) : per_group(group / 32), left(group / 32) {}
  int64_t next() {
    const int64_t cur = g;
    if (--left == 0) {
      ++g;
      left = per_group;
    }
    return cur;
  }
};

// ---- GEMV: rows [n0, n1) of W against MR rows of x ----

// Software prefetch distance along the weight stream. The GEMV sits between two limits of
// similar size on the development machine (Zen 3 VM: ~8 GB/s of DRAM per core, ~9 GB/s of
// unpack + FMA throughput per core with the weight in cache), so it only approaches either
// when loads are issued well ahead; 1 KiB ahead measured best of 0.5, 1 and 2 KiB (+15-20%).
// Rows are contiguous, so running past a row's end prefetches the next row, which is next.
constexpr int64_t kPrefetchBytes = 1024;

// Adds step c (64 weights, unpacked from v) times the MR rows of xp into the partial sums d.
template <int MR, int CH>
MP_AVX2_INLINE void step_dot(__m256i v, const float* xp, int64_t kp, int64_t c, __m256 (&d)[MR][CH]) {
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    const __m256 f = nibbles_scaled(v, j);  // (8) u * 2^(4j) as float
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256 xv = _mm256_load_ps(xp + r * kp + c * 64 + j * 8);  // (8) x * 2^(-4j), same order
      d[r][j % CH] = _mm256_fmadd_ps(f, xv, d[r][j % CH]);
    }
  }
}

// y[r][n] = sum_g s_g (sum_{k in g} u_k x_k) - sum_g s_g z_g xsum_g + bias.
// WHOLE (group % 64 == 0): each group is whole 64-weight steps, so the scale is applied
// once per group. Otherwise (group % 64 == 32) a step may straddle two groups and gets a
// per-half scale vector.
template <int MR, bool WHOLE>
MP_AVX2 void gemv_rows(const W4Weight& w, const float* xp, int64_t kp, const float* xsum, const float* bias,
                       int64_t n0, int64_t n1, float* y, int64_t ldy) {
  // Two dependency chains per x row while registers allow (MR <= 2): a step's 8 FMAs would
  // otherwise wait on each other's 4-cycle latency.
  constexpr int CH = MR <= 2 ? 2 : 1;
  const int64_t k = w.k, groups = w.k / w.group, steps = (k + 63) / 64;
  const bool half_tail = k % 64 != 0;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.packed + n * (k / 2);  // (K/2)
    const float* sc = w.scales + n * groups;      // (K/G)
    __m256 acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_ps();
    if constexpr (WHOLE) {
      const int64_t per_group = w.group / 64;
      for (int64_t g = 0, c = 0; g < groups; ++g) {
        __m256 d[MR][CH];
        for (int r = 0; r < MR; ++r)
          for (int h = 0; h < CH; ++h) d[r][h] = _mm256_setzero_ps();
        for (int64_t e = 0; e < per_group; ++e, ++c) {
          _mm_prefetch(reinterpret_cast<const char*>(row + c * 32 + kPrefetchBytes), _MM_HINT_T0);
          step_dot<MR, CH>(load_step(row, c * 32, false), xp, kp, c, d);
        }
        const __m256 s = _mm256_set1_ps(sc[g]);
        for (int r = 0; r < MR; ++r)
          acc[r] = _mm256_fmadd_ps(CH == 2 ? _mm256_add_ps(d[r][0], d[r][CH - 1]) : d[r][0], s, acc[r]);
      }
    } else {
      HalfGroups hg(w.group);
      for (int64_t c = 0; c < steps; ++c) {
        const bool half = half_tail && c == steps - 1;
        const int64_t g0 = hg.next(), g1 = half ? g0 : hg.next();
        const __m256 svec = _mm256_set_m128(_mm_set1_ps(sc[g1]), _mm_set1_ps(sc[g0]));  // lanes 0-3 | 4-7
        _mm_prefetch(reinterpret_cast<const char*>(row + c * 32 + kPrefetchBytes), _MM_HINT_T0);
        __m256 d[MR][CH];
        for (int r = 0; r < MR; ++r)
          for (int h = 0; h < CH; ++h) d[r][h] = _mm256_setzero_ps();
        step_dot<MR, CH>(load_step(row, c * 32, half), xp, kp, c, d);
        for (int r = 0; r < MR; ++r)
          acc[r] = _mm256_fmadd_ps(CH == 2 ? _mm256_add_ps(d[r][0], d[r][CH - 1]) : d[r][0], svec, acc[r]);
      }
    }
    // Zero-point correction: sum_g s_g z_g xsum_g, 8 groups at a time.
    for (int r = 0; r < MR; ++r) {
      const float* xs = xsum + r * groups;
      __m256 corr = _mm256_setzero_ps();
      int64_t g = 0;
      for (; g + 8 <= groups; g += 8) {
        const __m256 z = w.zeros ? _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                       _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.zeros + n * groups + g))))
                                 : _mm256_set1_ps(8.0f);
        corr = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(sc + g), z), _mm256_loadu_ps(xs + g), corr);
      }
      float cr = hsum(corr);
      for (; g < groups; ++g) cr += sc[g] * static_cast<float>(w.zeros ? w.zeros[n * groups + g] : 8) * xs[g];
      y[r * ldy + n] = hsum(acc[r]) - cr + (bias ? bias[n] : 0.0f);
    }
  }
}

using GemvFn = void (*)(const W4Weight&, const float*, int64_t, const float*, const float*, int64_t, int64_t, float*,
                        int64_t);
constexpr GemvFn kGemv[2][5] = {
    {nullptr, gemv_rows<1, false>, gemv_rows<2, false>, gemv_rows<3, false>, gemv_rows<4, false>},
    {nullptr, gemv_rows<1, true>, gemv_rows<2, true>, gemv_rows<3, true>, gemv_rows<4, true>},
};

// ---- GEMM: dequantized tiles ----
constexpr int64_t kTileN = 64, kTileK = 256;  // 64 KiB of f32 weights: L2, reused by all of M's block
constexpr int64_t kBlockM = 48;
constexpr int kMR = 4, kNR = 2;

// tile (rows n0..n1, xp-ordered K range [k0, k0 + kb)) = dequantized weights.
MP_AVX2 void dequant_tile(const W4Weight& w, int64_t n0, int64_t n1, int64_t k0, int64_t kb, float* tile) {
  const int64_t k = w.k, groups = w.k / w.group;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.packed + n * (k / 2);
    const float* sc = w.scales + n * groups;
    float* out = tile + (n - n0) * kTileK;
    for (int64_t c = k0 / 64; c * 64 < k0 + kb; ++c) {
      const bool half = c * 64 + 32 >= k;  // only the last step of a K = 32 mod 64
      const int64_t g0 = (c * 64) / w.group, g1 = half ? g0 : (c * 64 + 32) / w.group;
      const float z0 = w.zeros ? w.zeros[n * groups + g0] : 8.0f, z1 = w.zeros ? w.zeros[n * groups + g1] : 8.0f;
      const __m256 svec = _mm256_set_m128(_mm_set1_ps(sc[g1]), _mm_set1_ps(sc[g0]));
      const __m256 nzs = _mm256_set_m128(_mm_set1_ps(-z1 * sc[g1]), _mm_set1_ps(-z0 * sc[g0]));
      const __m256i v = load_step(row, c * 32, half);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        _mm256_store_ps(out + (c * 64 - k0) + j * 8, _mm256_fmadd_ps(nibbles(v, j), svec, nzs));  // (8) w
    }
  }
}

// y[m0.., n0..] += xp (MR, kb) . tile (NR, kb)^T
template <int MR, int NR>
MP_AVX2 void tile_dot(const float* xp, int64_t kp, const float* tile, int64_t kb, float* y, int64_t ldy) {
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int s = 0; s < NR; ++s) acc[r][s] = _mm256_setzero_ps();
  for (int64_t t = 0; t < kb; t += 8) {
    __m256 xv[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) xv[r] = _mm256_load_ps(xp + r * kp + t);  // (8)
#pragma GCC unroll 2
    for (int s = 0; s < NR; ++s) {
      const __m256 wv = _mm256_load_ps(tile + s * kTileK + t);  // (8)
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) acc[r][s] = _mm256_fmadd_ps(xv[r], wv, acc[r][s]);
    }
  }
  float sum[MR][NR];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int s = 0; s < NR; ++s) sum[r][s] = hsum(acc[r][s]);
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NR; ++s) y[r * ldy + s] += sum[r][s];
}

using TileDotFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t);
constexpr TileDotFn kTileDots[kMR + 1][kNR + 1] = {
    {nullptr, nullptr, nullptr},
    {nullptr, tile_dot<1, 1>, tile_dot<1, 2>},
    {nullptr, tile_dot<2, 1>, tile_dot<2, 2>},
    {nullptr, tile_dot<3, 1>, tile_dot<3, 2>},
    {nullptr, tile_dot<4, 1>, tile_dot<4, 2>},
};

void gemm_block(const W4Weight& w, const float* xp, int64_t kp, const float* bias, int64_t m0, int64_t m1,
                int64_t n0, int64_t n1, float* y) {
  const int64_t n = w.n;
  for (int64_t i = m0; i < m1; ++i)
    for (int64_t j = n0; j < n1; ++j) y[i * n + j] = bias ? bias[j] : 0.0f;
  alignas(32) float tile[kTileN * kTileK];  // (64, 256) dequantized weights
  for (int64_t k0 = 0; k0 < kp; k0 += kTileK) {
    const int64_t kb = std::min(kTileK, kp - k0);
    dequant_tile(w, n0, n1, k0, kb, tile);
    for (int64_t i = m0; i < m1; i += kMR) {
      const int mr = static_cast<int>(std::min<int64_t>(kMR, m1 - i));
      for (int64_t j = n0; j < n1; j += kNR) {
        const int nr = static_cast<int>(std::min<int64_t>(kNR, n1 - j));
        kTileDots[mr][nr](xp + i * kp + k0, kp, tile + (j - n0) * kTileK, kb, y + i * n + j, n);
      }
    }
  }
}

// x -> xp (unpacking order, zero padded; times 2^(-4j) for the GEMV's nibbles_scaled) and
// per-group sums of x. A power-of-two scale is exact unless it takes x below 2^-126 (x under
// ~2^-98 then loses bits: far below anything a product can notice).
void prepare_x(const W4Weight& w, const float* x, int64_t m, bool scaled, float* xp, float* xsum) {
  const int64_t k = w.k, kp = detail::w4a16_padded_k(k), groups = w.k / w.group;
#pragma omp parallel for schedule(static) if (m * k >= (int64_t{1} << 16))
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k;
    float* out = xp + r * kp;
    for (int64_t c = 0; c < kp; c += 64)
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) {
          const int64_t src = c + 8 * i + j;
          out[c + j * 8 + i] = src < k ? xr[src] * (scaled ? nibble_x_scale(j) : 1.0f) : 0.0f;
        }
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0.0f;
      for (int64_t t = 0; t < w.group; ++t) s += xr[g * w.group + t];
      xsum[r * groups + g] = s;
    }
  }
}

}  // namespace

void w4a16_linear_avx2(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y, void* workspace) {
  const int64_t n = w.n, kp = detail::w4a16_padded_k(w.k), groups = w.k / w.group;
  if (m <= 0 || n <= 0) return;
  const detail::W4Scratch s = detail::w4a16_carve(workspace, w, m);
  prepare_x(w, x, m, /*scaled=*/m < 8, s.xp, s.xsum);
  if (m < 8) {
    // Blocks of 16 weight rows per task; each block meets every 4-row slice of x while it is
    // in L1/L2, so the weight streams from memory once whatever M is.
    constexpr int64_t kRows = 16;
    const int64_t blocks = (n + kRows - 1) / kRows;
    const bool whole = w.group % 64 == 0;
    // Dynamic, 4 blocks at a time: the cores are shared (other processes, a VM), and with a
    // static split the GEMV waits for whichever thread lost its core for a while.
#pragma omp parallel for schedule(dynamic, 4) if (blocks > 1 && n * w.k >= (int64_t{1} << 18))
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = b * kRows, j1 = std::min(n, j0 + kRows);
      for (int64_t i = 0; i < m; i += 4)
        kGemv[whole][std::min<int64_t>(4, m - i)](w, s.xp + i * kp, kp, s.xsum + i * groups, bias, j0, j1, y + i * n, n);
    }
    return;
  }
  const int64_t mblocks = (m + kBlockM - 1) / kBlockM, nblocks = (n + kTileN - 1) / kTileN;
#pragma omp parallel for schedule(dynamic, 1) if (mblocks * nblocks > 1)
  for (int64_t t = 0; t < mblocks * nblocks; ++t) {
    const int64_t m0 = (t / nblocks) * kBlockM, n0 = (t % nblocks) * kTileN;
    gemm_block(w, s.xp, kp, bias, m0, std::min(m, m0 + kBlockM), n0, std::min(n, n0 + kTileN), y);
  }
}

}  // namespace modelpress::kernels
