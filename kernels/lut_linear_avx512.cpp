// AVX-512 LUT GEMV (lut_linear.h), b = 1..4 bits, M < 8. Everything else goes to the AVX2
// path (lut_linear_avx2.cpp).
//
// Why a second kernel: the AVX2 GEMV is compute-bound (per 8 weights a broadcast load, a
// variable shift, a permute, an FMA; b = 4 two permutes and a blend more). With zmm the whole
// 16-entry table is one register, so one vpermps is the lookup for every b <= 4 (b < 4: the
// table repeated with period 2^b, so index bits above b need no mask), and the unpacking
// becomes immediate shifts of one load:
//
//   a block is 128 weights = 16 b bytes of a row. Dword lane i (i = 0..15) is made to hold
//   the b bytes of indices 8i .. 8i+7 in its low bits (b = 4: the plain 64-byte load;
//   b = 2, 1: a zero-extending load of 16-bit / 8-bit units; b = 3: vpermd + vpshufb of 48
//   bytes). Then (v >> b j) has index 8i + j in the low bits of lane i, for j = 0..7.
//
// So a step of 16 weights costs one shift, one vpermps and one FMA per row of x. The order
// (lane i of step j = weight 8i + j) is matched by rearranging x once per call:
//   xp[c * 128 + j * 16 + i] = x[c * 128 + 8 i + j]   (zero past K)
// A row's last block loads only the row's bytes (masked load), so nothing past the index
// buffer is read and indices past K are 0 (x there is 0 too).

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* values
// once inlined into masked loads and reductions (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/lut_linear.h"

#define MP_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))
#define MP_AVX512_INLINE __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq"), always_inline)) inline

namespace modelpress::kernels {

namespace {

constexpr int64_t kBlock = 128;  // weights per unpacking block

// The block of 16 b bytes at p as 16 dword lanes, lane i = the b bytes of indices 8i..8i+7
// in its low bits. `partial`: only `avail` (< 16 b) bytes exist, the rest read as 0.
template <int B>
MP_AVX512_INLINE __m512i load_block(const uint8_t* p, int64_t avail, bool partial) {
  const __mmask64 m = partial ? (avail >= 64 ? ~__mmask64{0} : ((__mmask64{1} << avail) - 1)) : ~__mmask64{0};
  __m512i v;
  if constexpr (B == 4) {
    v = partial ? _mm512_maskz_loadu_epi8(m, p) : _mm512_loadu_si512(p);
  } else if constexpr (B == 2) {
    const __m256i h = partial ? _mm256_maskz_loadu_epi8(static_cast<__mmask32>(m), p)
                              : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    v = _mm512_cvtepu16_epi32(h);
  } else if constexpr (B == 1) {
    const __m128i h = partial ? _mm_maskz_loadu_epi8(static_cast<__mmask16>(m), p)
                              : _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    v = _mm512_cvtepu8_epi32(h);
  } else {
    // 48 bytes: 128-bit lane q gets source dwords 3q..3q+2 (bytes 12q..12q+11), then each
    // dword i' of it bytes 3i'..3i'+2 of those (the fourth byte is the next index's, which
    // the period-8 table ignores: only bits 0-3 of a lane are read, and bit 3 is a don't-care).
    const __m512i raw = _mm512_maskz_loadu_epi8(m & ((__mmask64{1} << 48) - 1), p);
    const __m512i q = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 8, 9, 10, 11, 11), raw);
    v = _mm512_shuffle_epi8(q, _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 11, 11)));
  }
  // Keep the block in a register: GCC otherwise folds the load into each of the 7 shifts
  // (the same bytes loaded once per index step).
  asm("" : "+v"(v));
  return v;
}

// The table as vpermps wants it: 16 entries, period 2^b.
template <int B>
MP_AVX512_INLINE __m512 make_table(const float* lut) {
  if constexpr (B == 4) return _mm512_loadu_ps(lut);
  alignas(64) float rep[16];
  for (int i = 0; i < 16; ++i) rep[i] = lut[i % (1 << B)];
  return _mm512_load_ps(rep);
}

// Weights of K per pass over a block's rows, per row of x: 16 KiB of x at batch 1, so x
// stays in L1 while the block's rows stream past it. Unchunked, a 16384-wide x (64 KiB) came
// from L2 for every row and the GEMV ran at 2/3 of its speed with x in L1.
constexpr int64_t kChunk = 4096;
// Software prefetch: the same columns two rows further down the block, i.e. what is read two
// row segments (2 x 1.5-2 KiB at 3-4 bits) from now. The hardware prefetcher alone does not
// keep up with 16 interleaved segment streams; 1, 2 and 4 rows ahead measured within noise
// of each other. NTA: the indices are read once (T0 measured the same).
constexpr int64_t kPfRows = 2;

// Rows [n0, n1) (at most 16) of W against MR rows of xp (rearranged x, row stride kp).
template <int B, int MR>
MP_AVX512 void gemv_rows(const LutWeight& w, const float* bias, const float* xp, int64_t kp, int64_t n0, int64_t n1,
                         float* y) {
  constexpr int CH = MR == 1 ? 4 : 2;  // independent FMA chains per row of x
  constexpr int64_t kBlockBytes = 16 * B;
  constexpr int64_t kChunkBlocks = std::max<int64_t>(8, kChunk / MR / kBlock);
  const int64_t rb = lut_row_bytes(w.k, B), blocks = kp / kBlock, entries = int64_t{1} << B;
  // Blocks of a row that lie wholly inside the row's bytes.
  const int64_t whole = rb / kBlockBytes;
  float partial[16][MR] = {};  // (rows of the block, rows of x)
  for (int64_t c0 = 0; c0 < blocks; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(blocks, c0 + kChunkBlocks);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* row = w.indices + n * rb;  // (rb)
      const __m512 table = make_table<B>(w.lut + (n / w.group_rows) * entries);
      __m512 acc[MR][CH];
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < CH; ++h) acc[r][h] = _mm512_setzero_ps();
      for (int64_t c = c0; c < c1; ++c) {
        const bool partial_block = c >= whole;
        _mm_prefetch(reinterpret_cast<const char*>(row + kPfRows * rb + c * kBlockBytes), _MM_HINT_NTA);
        const __m512i v = load_block<B>(row + c * kBlockBytes, rb - c * kBlockBytes, partial_block);  // (16) b-byte chunks
        const float* xc = xp + c * kBlock;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
          const __m512i idx = j == 0 ? v : _mm512_srli_epi32(v, B * j);  // index 8i + j in lane i
          const __m512 wv = _mm512_permutexvar_ps(idx, table);          // (16) weights
#pragma GCC unroll 4
          for (int r = 0; r < MR; ++r)
            acc[r][j % CH] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xc + r * kp + j * 16), acc[r][j % CH]);
        }
      }
      for (int r = 0; r < MR; ++r) {
        __m512 s = acc[r][0];
        for (int h = 1; h < CH; ++h) s = _mm512_add_ps(s, acc[r][h]);
        partial[n - n0][r] += _mm512_reduce_add_ps(s);
      }
    }
  }
  for (int64_t n = n0; n < n1; ++n) {
    const float scale = w.row_scale ? w.row_scale[n] : 1.0f;
    for (int r = 0; r < MR; ++r) y[r * w.n + n] = partial[n - n0][r] * scale + (bias ? bias[n] : 0.0f);
  }
}

// x (m, K) -> xp (m, kp) in the unpacking order, zero past K.
void prepare_x(const float* x, int64_t m, int64_t k, int64_t kp, float* xp) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k;
    float* out = xp + r * kp;
    for (int64_t c = 0; c < kp; c += kBlock)
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
          const int64_t src = c + 8 * i + j;
          out[c + j * 16 + i] = src < k ? xr[src] : 0.0f;
        }
  }
}

template <int B>
void run(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  const int64_t n = w.n, kp = (w.k + kBlock - 1) / kBlock * kBlock;
  // The rearranged x (m * kp floats, at most 7 rows): per call, like a workspace would be;
  // one allocation against a GEMV that streams the whole weight.
  std::vector<float> xp(static_cast<size_t>(m * kp));
  prepare_x(x, m, w.k, kp, xp.data());
  using GemvFn = void (*)(const LutWeight&, const float*, const float*, int64_t, int64_t, int64_t, float*);
  constexpr GemvFn kGemv[5] = {nullptr, gemv_rows<B, 1>, gemv_rows<B, 2>, gemv_rows<B, 3>, gemv_rows<B, 4>};
  constexpr int64_t kRows = 16;
  const int64_t blocks = (n + kRows - 1) / kRows;
  // Dynamic, 4 blocks (64 rows) at a time: fine enough that both threads finish together
  // even when one loses its core for a while.
#pragma omp parallel for schedule(dynamic, 4) if (blocks > 1 && n * w.k >= (int64_t{1} << 18))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kRows, j1 = std::min(n, j0 + kRows);
    for (int64_t i = 0; i < m; i += 4)
      kGemv[std::min<int64_t>(4, m - i)](w, bias, xp.data() + i * kp, kp, j0, j1, y + i * n);
  }
}

}  // namespace

bool lut_avx512_supported(const LutWeight& w, int64_t m) {
  return cpu_features().avx512 && m < 8 && w.bits >= 1 && w.bits <= 4 && lut_layout_ok(w, nullptr);
}

void lut_linear_avx512(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  if (m <= 0 || w.n <= 0) return;
  if (!lut_avx512_supported(w, m)) return lut_linear_avx2(w, bias, x, m, y);
  switch (w.bits) {
    case 1: return run<1>(w, bias, x, m, y);
    case 2: return run<2>(w, bias, x, m, y);
    case 3: return run<3>(w, bias, x, m, y);
    case 4: return run<4>(w, bias, x, m, y);
    default: break;
  }
}

}  // namespace modelpress::kernels
