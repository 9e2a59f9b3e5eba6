// AVX2 + FMA LUT linear (lut_linear.h).
//
// Unpacking: 8 consecutive indices of a b-bit row stream are exactly b bytes starting on a
// byte (LutWeight's layout), so one 32-bit broadcast load (vbroadcastss: a load-port op)
// and one variable shift (vpsrlvd by 0, b, 2b, ..., 7b) leave index i in the low bits of
// lane i, for b <= 4.
// Wider indices (b = 5..8) take one 64-bit load split into two 32-bit halves of 4 indices.
//
// Lookup, with the table in registers:
//   b <= 3: vpermps reads only the low 3 bits of each lane, so no mask is needed when the
//           8-entry register holds the table repeated with period 2^b (entry i = lut[i mod
//           2^b]): whatever the higher bits of a lane hold, its low b bits pick the entry.
//   b = 4:  two vpermps (entries 0-7, 8-15) and a blend on index bit 3, moved to the sign
//           bit by a shift (vblendvps selects on the sign).
//   b >= 5: the 32..256-entry table does not fit in registers; a masked vgatherdps reads it
//           from L1 (it is at most 1 KiB).
// So a step of 8 weights costs a load, a shift, a permute and one FMA per row of x for
// b <= 3: the GEMV stays close to the memory stream of b / 8 bytes per weight.
//
// GEMV (M < 8): blocks of 16 weight rows per OpenMP task, each meeting up to 7 rows of x,
// 4 at a time, so the indices stream from memory once. GEMM (M >= 8): (16 rows x 512 K)
// weight tiles are looked up (times the row scale) into a 32 KiB stack buffer and reused
// by every 4-row slice of x with an FMA 4 x 2 register tile.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/avx2_util.h"
#include "kernels/lut_linear.h"

namespace modelpress::kernels {

namespace {

// Bytes one step's load reads (it may read past the step's own b bytes).
template <int B>
constexpr int64_t kLoadBytes = B <= 4 ? 4 : 8;

// The 8 indices of the step whose first byte is p, as int32 lanes (lane i = index i). For
// b <= 4 the lanes keep higher garbage bits that the lookup ignores; b >= 5 is masked.
template <int B>
MP_AVX2_INLINE __m256i step_indices(const uint8_t* p) {
  if constexpr (B <= 4) {
    // vbroadcastss from memory is a load-port op; a GPR broadcast (vmovd + vpbroadcastd) would
    // take two shuffle-port ops, and vpermps already needs that port once per step.
    const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    return _mm256_srlv_epi32(_mm256_castps_si256(_mm256_broadcast_ss(reinterpret_cast<const float*>(p))), shifts);
  } else {
    uint64_t v;
    std::memcpy(&v, p, 8);
    const auto lo = static_cast<uint32_t>(v), hi = static_cast<uint32_t>(v >> (4 * B));  // indices 0-3 | 4-7
    const __m256i both = _mm256_set_m128i(_mm_set1_epi32(static_cast<int>(hi)), _mm_set1_epi32(static_cast<int>(lo)));
    const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B);
    return _mm256_and_si256(_mm256_srlv_epi32(both, shifts), _mm256_set1_epi32((1 << B) - 1));
  }
}

// The same near the end of the buffer, where a full-width load would run past it: the
// bytes that exist, zeros after.
template <int B>
MP_AVX2_INLINE __m256i step_indices_safe(const uint8_t* p, int64_t avail) {
  uint8_t buf[8] = {};
  std::memcpy(buf, p, static_cast<size_t>(std::min<int64_t>(avail, kLoadBytes<B>)));
  return step_indices<B>(buf);
}

// One group's table, held as the lookup wants it.
struct Table {
  __m256 lo, hi;     // b <= 3: the table repeated to 8 entries; b = 4: entries 0-7, 8-15
  const float* mem;  // b >= 5: gathered from memory
};

template <int B>
MP_AVX2_INLINE Table make_table(const float* lut) {
  Table t{_mm256_setzero_ps(), _mm256_setzero_ps(), lut};
  if constexpr (B <= 3) {
    alignas(32) float rep[8];
    for (int i = 0; i < 8; ++i) rep[i] = lut[i % (1 << B)];
    t.lo = _mm256_load_ps(rep);
  } else if constexpr (B == 4) {
    t.lo = _mm256_loadu_ps(lut);
    t.hi = _mm256_loadu_ps(lut + 8);
  }
  return t;
}

template <int B>
MP_AVX2_INLINE __m256 lookup(const Table& t, __m256i idx) {
  if constexpr (B <= 3) {
    return _mm256_permutevar8x32_ps(t.lo, idx);
  } else if constexpr (B == 4) {
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));  // index bit 3 -> sign
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.lo, idx), _mm256_permutevar8x32_ps(t.hi, idx), bit3);
  } else {
    return _mm256_i32gather_ps(t.mem, idx, 4);
  }
}

// Steps of row n whose full-width load stays inside the index buffer (all of them but,
// possibly, the last few steps of the last rows).
template <int B>
inline int64_t unchecked_steps(const LutWeight& w, int64_t n, int64_t steps) {
  const int64_t rb = lut_row_bytes(w.k, B), avail = (w.n - n) * rb;
  if (avail < kLoadBytes<B>) return 0;
  return std::min(steps, (avail - kLoadBytes<B>) / B + 1);
}

// ---- GEMV: rows [n0, n1) of W against MR rows of x ----

constexpr int64_t kPrefetchBytes = 2048;  // along the index stream (rows are contiguous)

template <int B, int MR>
MP_AVX2 void gemv_rows(const LutWeight& w, const float* bias, const float* x, int64_t n0, int64_t n1, float* y) {
  const int64_t k = w.k, n_all = w.n, rb = lut_row_bytes(k, B), steps = k / 8;
  const int64_t entries = int64_t{1} << B;
  // Independent accumulators per row of x: consecutive FMAs into one register wait on each
  // other's 4-cycle latency (with two chains batch 1 ran at half an FMA per cycle). Four for
  // one row; two when registers are shared among more rows.
  constexpr int CH = MR == 1 ? 4 : 2;
  // Whole rows, one after another: the index stream stays sequential for the hardware
  // prefetcher. (Chunking K so that x stays in L1 across the block's rows measured 15-25%
  // slower: 16 interleaved streams.)
  float partial[16][MR] = {};  // (rows of the block, rows of x): n1 - n0 <= 16
  {
    const int64_t c0 = 0, c1 = steps;
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* row = w.indices + n * rb;  // (rb)
      const Table t = make_table<B>(w.lut + (n / w.group_rows) * entries);
      const int64_t fast = std::min(c1, unchecked_steps<B>(w, n, steps));
      __m256 acc[MR][4];
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 4; ++h) acc[r][h] = _mm256_setzero_ps();
      int64_t s = c0;
      for (; s + 4 <= fast; s += 4) {
        if (s % 16 == 0) _mm_prefetch(reinterpret_cast<const char*>(row + s * B + kPrefetchBytes), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
          const __m256 wv = lookup<B>(t, step_indices<B>(row + (s + u) * B));  // (8) weights (s+u)*8..
#pragma GCC unroll 4
          for (int r = 0; r < MR; ++r)
            acc[r][u % CH] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * k + (s + u) * 8), acc[r][u % CH]);
        }
      }
      for (; s < c1; ++s) {
        const __m256i idx =
            s < fast ? step_indices<B>(row + s * B) : step_indices_safe<B>(row + s * B, (n_all - n) * rb - s * B);
        const __m256 wv = lookup<B>(t, idx);
        for (int r = 0; r < MR; ++r) acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * k + s * 8), acc[r][0]);
      }
      for (int r = 0; r < MR; ++r)
        partial[n - n0][r] += hsum(_mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
    }
  }
  for (int64_t n = n0; n < n1; ++n) {
    const float* table = w.lut + (n / w.group_rows) * entries;
    const float scale = w.row_scale ? w.row_scale[n] : 1.0f;
    for (int r = 0; r < MR; ++r) {
      float sum = partial[n - n0][r];
      for (int64_t c = steps * 8; c < k; ++c) sum += table[lut_index(w, n, c)] * x[r * k + c];  // K % 8 tail
      y[r * n_all + n] = sum * scale + (bias ? bias[n] : 0.0f);
    }
  }
}

// ---- GEMM: looked-up tiles ----
constexpr int64_t kTileN = 16, kTileK = 512;  // 32 KiB of f32 weights: L1/L2, reused by all of M
constexpr int kMR = 4, kNR = 2;

// tile (rows n0..n1, columns [k0, k0 + kb)) = w, times the row scale; k0 % 8 == 0; row r of
// the tile at tile + (r - n0) * ld (32-byte aligned when tile and ld are).
template <int B>
MP_AVX2 void lookup_tile(const LutWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t kb, float* tile,
                         int64_t ld = kTileK) {
  const int64_t k = w.k, rb = lut_row_bytes(k, B), steps = k / 8, entries = int64_t{1} << B;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.indices + n * rb;
    const float* table = w.lut + (n / w.group_rows) * entries;
    const Table t = make_table<B>(table);
    const float scale = w.row_scale ? w.row_scale[n] : 1.0f;
    const __m256 sv = _mm256_set1_ps(scale);
    const int64_t fast = unchecked_steps<B>(w, n, steps);
    float* out = tile + (n - n0) * ld;
    int64_t c = k0;
    for (; c + 8 <= k0 + kb; c += 8) {
      const int64_t s = c / 8;
      const __m256i idx = s < fast ? step_indices<B>(row + s * B) : step_indices_safe<B>(row + s * B, (w.n - n) * rb - s * B);
      _mm256_storeu_ps(out + (c - k0), _mm256_mul_ps(lookup<B>(t, idx), sv));  // (8)
    }
    for (; c < k0 + kb; ++c) out[c - k0] = table[lut_index(w, n, c)] * scale;
  }
}

// y[i.., j..] += x (MR, kb) . tile (NR, kb)^T
template <int MR, int NR>
MP_AVX2 void tile_dot(const float* x, int64_t ldx, const float* tile, int64_t kb, float* y, int64_t ldy) {
  __m256 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NR; ++s) acc[r][s] = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= kb; t += 8) {
    __m256 xv[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + t);  // (8)
#pragma GCC unroll 2
    for (int s = 0; s < NR; ++s) {
      const __m256 wv = _mm256_load_ps(tile + s * kTileK + t);  // (8)
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) acc[r][s] = _mm256_fmadd_ps(xv[r], wv, acc[r][s]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NR; ++s) {
      float sum = hsum(acc[r][s]);
      for (int64_t u = t; u < kb; ++u) sum += x[r * ldx + u] * tile[s * kTileK + u];
      y[r * ldy + s] += sum;
    }
}

using TileDotFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t);
constexpr TileDotFn kTileDots[kMR + 1][kNR + 1] = {
    {nullptr, nullptr, nullptr},
    {nullptr, tile_dot<1, 1>, tile_dot<1, 2>},
    {nullptr, tile_dot<2, 1>, tile_dot<2, 2>},
    {nullptr, tile_dot<3, 1>, tile_dot<3, 2>},
    {nullptr, tile_dot<4, 1>, tile_dot<4, 2>},
};

template <int B>
void gemm_block(const LutWeight& w, const float* bias, const float* x, int64_t m, int64_t n0, int64_t n1, float* y) {
  const int64_t n = w.n, k = w.k;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n0; j < n1; ++j) y[i * n + j] = bias ? bias[j] : 0.0f;
  alignas(32) float tile[kTileN * kTileK];  // (16, 512) looked-up weights
  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    const int64_t kb = std::min(kTileK, k - k0);
    lookup_tile<B>(w, n0, n1, k0, kb, tile);
    for (int64_t i = 0; i < m; i += kMR) {
      const int mr = static_cast<int>(std::min<int64_t>(kMR, m - i));
      for (int64_t j = n0; j < n1; j += kNR) {
        const int nr = static_cast<int>(std::min<int64_t>(kNR, n1 - j));
        kTileDots[mr][nr](x + i * k + k0, k, tile + (j - n0) * kTileK, kb, y + i * n + j, n);
      }
    }
  }
}

template <int B>
void run(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  const int64_t n = w.n;
  constexpr int64_t kRows = 16;
  const int64_t blocks = (n + kRows - 1) / kRows;
  if (m < 8) {
    using GemvFn = void (*)(const LutWeight&, const float*, const float*, int64_t, int64_t, float*);
    constexpr GemvFn kGemv[5] = {nullptr, gemv_rows<B, 1>, gemv_rows<B, 2>, gemv_rows<B, 3>, gemv_rows<B, 4>};
    // Dynamic, 4 blocks at a time: the cores are shared, and a static split waits for
    // whichever thread lost its core for a while (as the W4A16 GEMV).
#pragma omp parallel for schedule(dynamic, 4) if (blocks > 1 && n * w.k >= (int64_t{1} << 18))
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = b * kRows, j1 = std::min(n, j0 + kRows);
      for (int64_t i = 0; i < m; i += 4)
        kGemv[std::min<int64_t>(4, m - i)](w, bias, x + i * w.k, j0, j1, y + i * n);
    }
    return;
  }
  // Each task owns 16 output columns for all of M: a tile is looked up once per task.
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b)
    gemm_block<B>(w, bias, x, m, b * kRows, std::min(n, b * kRows + kRows), y);
}

template <int B>
void dequantize_rows(const LutWeight& w, int64_t n0, int64_t n1, float* out) {
#pragma omp parallel for schedule(static) if ((n1 - n0) * w.k >= (int64_t{1} << 18))
  for (int64_t r = n0; r < n1; r += 16) lookup_tile<B>(w, r, std::min(n1, r + 16), 0, w.k, out + (r - n0) * w.k, w.k);
}

}  // namespace

void lut_dequantize_rows_avx2(const LutWeight& w, int64_t n0, int64_t n1, float* out) {
  switch (w.bits) {
    case 1: return dequantize_rows<1>(w, n0, n1, out);
    case 2: return dequantize_rows<2>(w, n0, n1, out);
    case 3: return dequantize_rows<3>(w, n0, n1, out);
    case 4: return dequantize_rows<4>(w, n0, n1, out);
    case 5: return dequantize_rows<5>(w, n0, n1, out);
    case 6: return dequantize_rows<6>(w, n0, n1, out);
    case 7: return dequantize_rows<7>(w, n0, n1, out);
    case 8: return dequantize_rows<8>(w, n0, n1, out);
    default: break;
  }
}

void lut_linear_avx2(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  if (m <= 0 || w.n <= 0) return;
  switch (w.bits) {
    case 1: return run<1>(w, bias, x, m, y);
    case 2: return run<2>(w, bias, x, m, y);
    case 3: return run<3>(w, bias, x, m, y);
    case 4: return run<4>(w, bias, x, m, y);
    case 5: return run<5>(w, bias, x, m, y);
    case 6: return run<6>(w, bias, x, m, y);
    case 7: return run<7>(w, bias, x, m, y);
    case 8: return run<8>(w, bias, x, m, y);
    default: break;
  }
}

}  // namespace modelpress::kernels
