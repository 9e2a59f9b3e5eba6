// AVX-512 VNNI int8 GEMM: C (M, N) = A (M, K) . B (N, K)^T with vpdpbusd.
//
// Tuned and run on an AMD EPYC Zen 4 (AVX-512 F/BW/VL/VNNI, 2 cores; docs/PERFORMANCE.md,
// "CPU kernels" (a)). Chosen at run time only where cpu_features().avx512_vnni holds, and
// tested against the reference by tests/kernels/test_int8_gemm.cpp, which skips where the
// CPU lacks the feature.
//
// Exactness. vpdpbusd multiplies UNSIGNED bytes (its first source) by SIGNED bytes (its
// second, the one that can be a broadcast memory operand) and adds groups of four products
// straight into int32: no int16 stage, no saturation (the non-"s" form wraps). Both our
// operands are signed, so B is moved into the unsigned range:
//   sum_k a b = sum_k a (b + 128) - 128 sum_k a
// b + 128 is `b XOR 0x80` read as unsigned (any int8 b, -128 included); sum_k a (the row sums
// of A) is computed when A is packed. int32 lanes wrap on overflow (K * 128 * 255 can exceed
// 2^31 for K > 65793), but the final difference is exact modulo 2^32, hence exact whenever
// the true result fits int32 (K <= 131071, checked by the caller). The small-M path below
// uses the same identity with the roles swapped (a XOR 0x80, column sums of B).
//
// Packed path (M >= kPackMinM): the GotoBLAS/BLIS scheme with both operands packed per call.
// (Per call, not offline as convention 2 prefers: int8_gemm() takes B as the checkpoint stores
// it. Packing B costs about what the unpacked kernel needs to read it once; it pays for
// itself from M = 8 on, measured at N = K = 2048 and 4096.)
//   B: per chunk of N columns, per K slice, per panel of NR = 16 * kNV columns:
//        Bp[slice][panel][k4][NR][4] u8 = b[n][4 k4 + t] XOR 0x80 (0 in the padding)
//      so one k4 step of a panel is kNV contiguous 64-byte vectors, 16 columns x 4 bytes of K.
//   A: per MC-row block (all K), per slice, per panel of kMR rows:
//        Ap[slice][panel][k4][kMR][4] s8 = a[m][4 k4 + t] (0 in the padding)
//      each 4-byte group is broadcast to all 16 lanes (vpbroadcastd from memory).
// The micro-kernel keeps kMR x kNV accumulators of 16 int32 columns each: every lane is one
// C element, so there are no horizontal reductions; padding contributes 0 (a pad is 0 and a
// B pad is 0 unsigned). Per k4 step: kNV vector loads, kMR broadcasts, kMR * kNV vpdpbusd.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

#include "kernels/int8_gemm_blocking.h"

#define MP_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define MP_VNNI_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline

namespace modelpress::kernels::detail {

namespace {

// GCC 12 warns about its own AVX-512 intrinsics (_mm256_undefined_si256 inside them,
// GCC PR 105593); nothing in this file reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// ---------------------------------------------------------------------------------------
// Small-M path: no packing, horizontal reductions (M < kPackMinM, e.g. decode with M = 1,
// where packing B would cost as much as the GEMM reads).
// Here A is the unsigned operand: a + 128 = a XOR 0x80, minus 128 * (column sums of B).

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

constexpr int kTileMR = 4, kTileNR = 4;
constexpr TileFn kTiles[kTileMR + 1][kTileNR + 1] = {
    {nullptr, nullptr, nullptr, nullptr, nullptr},
    {nullptr, tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>},
    {nullptr, tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>},
    {nullptr, tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>},
    {nullptr, tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>},
};

// ---------------------------------------------------------------------------------------
// Packed path.

// Register tile: kMR rows x kNV vectors of 16 columns = 24 accumulators + kNV B vectors + one
// broadcast temporary = 28 of the 32 zmm registers.
constexpr int kMR = 8, kNV = 3;
constexpr int64_t kNR = 16 * kNV;  // columns per B panel
// Cache blocking for Zen 4 (32 KiB L1d, 1 MiB L2 per core, 32 MiB L3 shared), measured at
// M = N = K = 2048 on 2 threads (GOP/s, medians of 7): kKC 256 / 512 / 1024 / 2048 gave
// 709 / 723 / 750 / 797; kMC 64 / 128 / 256 and kNC 8 / 16 / 32 panels were within noise.
//   kKC: K slice. One slice of 2048 means no round trip of C per slice; the B micro-panel
//        (kKC x kNR = 96 KiB) then streams from L2, which keeps up: a k4 step reads 192 bytes
//        for 24 vpdpbusd (24+ cycles).
//   kMC: rows of A per task; the packed A block (kMC x K, 256 KiB at K = 2048) sits in L2,
//        packed once per task and reused against every B panel of the task.
//   kNC: columns per task; the C block (kMC x kNC int32 = 384 KiB) stays in L2.
//   kBChunkBytes: packed B per chunk of N (L3-resident, read by both cores).
constexpr int64_t kKC = 2048;
constexpr int64_t kMC = 128;
constexpr int64_t kNC = 16 * kNR;  // 768 columns
constexpr int64_t kBChunkBytes = int64_t{8} << 20;
static_assert(kMC % kMR == 0 && kNC % kNR == 0 && kKC % 64 == 0, "blocking must tile evenly");

// Below this many rows the packed path's B packing costs more than it saves (measured on
// Zen 4, N = K = 2048 / 4096: equal at M = 8, packed 1.5-2x faster from M = 16).
constexpr int64_t kPackMinM = 8;

// One 64-byte-aligned scratch buffer per thread, grown on demand and kept (no page faults
// on every call).
uint8_t* scratch(std::vector<uint8_t>& buf, size_t bytes) {
  if (buf.size() < bytes + 64) buf.resize(bytes + 64);
  const auto p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t{63});
}

struct Slices {
  int64_t k4;       // 4-byte groups in all of K (K padded to a multiple of 4)
  int64_t count;    // K slices
  int64_t k4_of(int64_t s) const { return std::min(kKC / 4, k4 - s * (kKC / 4)); }
};

// r[i] (16 dwords each) <- the transpose: out r[i] lane j = in r[j] lane i.
MP_VNNI_INLINE void transpose16x16_epi32(__m512i (&r)[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) {
      t[8 * h + i] = _mm512_shuffle_i32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
      t[8 * h + 4 + i] = _mm512_shuffle_i32x4(r[8 * h + i], r[8 * h + 4 + i], 0xDD);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xDD);
  }
}

// Bp (one panel of one slice) [k4][kNR][4] u8 <- B rows n0..n0+nr, bytes k0..k0+4 k4n:
// b XOR 0x80. Pad bytes past K meet A pads, which are 0, and pad columns past N are never
// stored, so their values do not matter; nothing is read outside B. 16 rows x 64 bytes at a
// time: a 16 x 16 transpose of 4-byte groups (scalar 4-byte copies were ~5x slower, and the
// packing is the whole cost of the packed path for small M).
MP_VNNI void pack_b_panel(const int8_t* b, int64_t k, int64_t n0, int64_t nr, int64_t k0, int64_t k4n,
                          uint8_t* bp) {
  const int64_t k1 = std::min(k, k0 + 4 * k4n);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int g = 0; g < kNV; ++g) {
    const int64_t rows = std::clamp<int64_t>(nr - 16 * g, 0, 16);
    for (int64_t kb = 0; kb < k4n; kb += 16) {  // 16 groups of 4 bytes = 64 bytes of K
      const int64_t kk = k0 + 4 * kb;
      const __mmask64 mask = kk + 64 <= k1 ? ~__mmask64{0} : (kk < k1 ? (__mmask64{1} << (k1 - kk)) - 1 : 0);
      __m512i r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + (n0 + 16 * g + i) * k + kk), flip)
                        : _mm512_setzero_si512();
      transpose16x16_epi32(r);  // r[t] = group kb + t of the 16 columns
      const int64_t groups = std::min<int64_t>(16, k4n - kb);
      for (int t = 0; t < groups; ++t) _mm512_store_si512(bp + (kb + t) * (kNR * 4) + g * 64, r[t]);
    }
  }
}

// Ap (one panel of one slice) [k4][kMR][4] s8 <- A rows m0..m0+mr, bytes k0..k1 (0 padding);
// rowsum[i] = sum of those bytes of row m0 + i.
void pack_a_panel(const int8_t* a, int64_t k, int64_t m0, int64_t mr, int64_t k0, int64_t k4n, int8_t* ap,
                  int32_t* rowsum) {
  const int64_t k1 = std::min(k, k0 + 4 * k4n);
  if (mr < kMR || k1 - k0 < 4 * k4n) std::memset(ap, 0, static_cast<size_t>(k4n * kMR * 4));
  for (int64_t i = 0; i < mr; ++i) {
    const int8_t* row = a + (m0 + i) * k;
    int32_t s = 0;
    const int64_t kfull = k0 + ((k1 - k0) & ~int64_t{3});
    int64_t t = k0;
    for (; t < kfull; t += 4) {
      int32_t w;
      std::memcpy(&w, row + t, 4);
      std::memcpy(ap + ((t - k0) >> 2) * (kMR * 4) + i * 4, &w, 4);
      s += row[t] + row[t + 1] + row[t + 2] + row[t + 3];
    }
    for (; t < k1; ++t) {
      ap[((t - k0) >> 2) * (kMR * 4) + i * 4 + ((t - k0) & 3)] = row[t];
      s += row[t];
    }
    rowsum[i] = s;
  }
  for (int64_t i = mr; i < kMR; ++i) rowsum[i] = 0;
}

// C (MR, 16 NV) (+)= Ap (MR, 4 k4n) . Bp (16 NV, 4 k4n)^T - 128 rowsum; `last` masks the
// columns of the last vector that lie inside N.
template <int MR, int NV>
MP_VNNI void micro(const int8_t* ap, const uint8_t* bp, int64_t k4n, const int32_t* rowsum, int32_t* c,
                   int64_t ldc, __mmask16 last, bool accumulate) {
  __m512i acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
#pragma GCC unroll 2
  for (int64_t t = 0; t < k4n; ++t) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(bp + v * 64);  // (16 cols, 4 k) u8
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t a4;
      std::memcpy(&a4, ap + i * 4, 4);
      const __m512i av = _mm512_set1_epi32(a4);  // (4 k) s8 x 16 lanes
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], bv[v], av);  // (16) s32
    }
    bp += kNR * 4;
    ap += kMR * 4;
  }
  // The accumulators go to a buffer in plain, fully unrolled stores, and the epilogue works
  // from there: any loop over acc[][] that GCC does not unroll (the masked, accumulating
  // epilogue is too big for it) makes it keep the accumulators in memory inside the k loop
  // as well (measured: 18 spill stores per 24 vpdpbusd).
  alignas(64) int32_t out[MR][NV * 16];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_si512(&out[i][v * 16], acc[i][v]);
  for (int i = 0; i < MR; ++i) {
    // Wrap-around int32: exact modulo 2^32, see the file comment.
    const __m512i off = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(rowsum[i]) * 128u));
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mask = v == NV - 1 ? last : __mmask16(0xFFFF);
      __m512i r = _mm512_sub_epi32(_mm512_load_si512(&out[i][v * 16]), off);
      int32_t* cp = c + i * ldc + v * 16;
      if (accumulate) r = _mm512_add_epi32(r, _mm512_maskz_loadu_epi32(mask, cp));
      _mm512_mask_storeu_epi32(cp, mask, r);
    }
  }
}

using MicroFn = void (*)(const int8_t*, const uint8_t*, int64_t, const int32_t*, int32_t*, int64_t, __mmask16,
                         bool);

// The explicit list of instantiated micro-kernels (convention 7): the full tile and every edge.
template <int MR>
constexpr MicroFn kMicroRow[kNV + 1] = {nullptr, micro<MR, 1>, micro<MR, 2>, micro<MR, 3>};
constexpr const MicroFn* kMicro[kMR + 1] = {nullptr,        kMicroRow<1>, kMicroRow<2>, kMicroRow<3>, kMicroRow<4>,
                                            kMicroRow<5>, kMicroRow<6>, kMicroRow<7>, kMicroRow<8>};
static_assert(kMR == 8 && kNV == 3, "update kMicroRow / kMicro");

thread_local std::vector<uint8_t> tl_b_buf, tl_a_buf;

void gemm_packed(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
  Slices sl{(k + 3) / 4, 0};
  sl.count = (sl.k4 + kKC / 4 - 1) / (kKC / 4);
  const int64_t kpad = sl.k4 * 4;
  // Columns per B chunk: a multiple of kNC (whole tasks), at least one task wide.
  const int64_t chunk_cols = std::max<int64_t>(kNC, kBChunkBytes / kpad / kNC * kNC);
  const int64_t mblocks = (m + kMC - 1) / kMC;
  const int64_t mpanels_max = kMC / kMR;
  const size_t a_bytes = static_cast<size_t>(mpanels_max * kMR * kpad);
  const size_t rowsum_bytes = static_cast<size_t>(sl.count * kMC) * sizeof(int32_t);
  const bool parallel = m * n * k >= (int64_t{1} << 20);

  for (int64_t c0 = 0; c0 < n; c0 += chunk_cols) {
    const int64_t c1 = std::min(n, c0 + chunk_cols);
    const int64_t panels = (c1 - c0 + kNR - 1) / kNR;
    // Bp [slice][panel][k4][kNR][4]; slice s starts at panels * kNR * 4 * (s * kKC / 4).
    uint8_t* bp = scratch(tl_b_buf, static_cast<size_t>(panels * kNR * kpad));
    const int64_t nblocks = (c1 - c0 + kNC - 1) / kNC;
    const int64_t tasks = mblocks * nblocks;
#pragma omp parallel if (parallel)
    {
#pragma omp for schedule(static)
      for (int64_t u = 0; u < sl.count * panels; ++u) {
        const int64_t s = u / panels, p = u % panels;
        const int64_t k4n = sl.k4_of(s);
        pack_b_panel(b, k, c0 + p * kNR, std::min(kNR, c1 - c0 - p * kNR), s * kKC, k4n,
                     bp + panels * kNR * s * kKC + p * kNR * 4 * k4n);
      }
      // (implicit barrier: all of Bp is packed)
      // Tasks (M block, N block), M-block-major, split into contiguous ranges per thread so a
      // thread packs each of its A blocks once.
      const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
      const int64_t t0 = tasks * tid / nt, t1 = tasks * (tid + 1) / nt;
      uint8_t* abuf = t1 > t0 ? scratch(tl_a_buf, a_bytes + rowsum_bytes) : nullptr;
      auto* ap = reinterpret_cast<int8_t*>(abuf);
      auto* rowsum = reinterpret_cast<int32_t*>(abuf + a_bytes);
      int64_t packed_mb = -1;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t mb = t / nblocks, nb = t % nblocks;
        const int64_t m0 = mb * kMC, m1 = std::min(m, m0 + kMC);
        const int64_t mpanels = (m1 - m0 + kMR - 1) / kMR;
        if (mb != packed_mb) {
          // Ap [slice][panel][k4][kMR][4], rowsum [slice][kMC]
          for (int64_t s = 0; s < sl.count; ++s) {
            const int64_t k4n = sl.k4_of(s);
            for (int64_t p = 0; p < mpanels; ++p)
              pack_a_panel(a, k, m0 + p * kMR, std::min<int64_t>(kMR, m1 - m0 - p * kMR), s * kKC, k4n,
                           ap + mpanels * kMR * s * kKC + p * kMR * 4 * k4n, rowsum + s * kMC + p * kMR);
          }
          packed_mb = mb;
        }
        const int64_t j0 = c0 + nb * kNC, j1 = std::min(c1, j0 + kNC);
        for (int64_t s = 0; s < sl.count; ++s) {
          const int64_t k4n = sl.k4_of(s);
          const int8_t* aps = ap + mpanels * kMR * s * kKC;
          const uint8_t* bps = bp + panels * kNR * s * kKC;
          for (int64_t j = j0; j < j1; j += kNR) {
            const int64_t cols = std::min(kNR, j1 - j);
            const int nv = static_cast<int>((cols + 15) / 16);
            const auto last = static_cast<__mmask16>((1u << (cols - 16 * (nv - 1))) - 1u);
            const uint8_t* bpp = bps + ((j - c0) / kNR) * kNR * 4 * k4n;
            for (int64_t p = 0; p < mpanels; ++p) {
              const int mr = static_cast<int>(std::min<int64_t>(kMR, m1 - m0 - p * kMR));
              kMicro[mr][nv](aps + p * kMR * 4 * k4n, bpp, k4n, rowsum + s * kMC + p * kMR,
                             c + (m0 + p * kMR) * n + j, n, last, s > 0);
            }
          }
        }
      }
    }
  }
}

}  // namespace

void int8_block_avx512vnni(const int8_t* a, const int8_t* b, int32_t* c, int64_t k, int64_t n, int64_t m0,
                           int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool accumulate) {
  const int64_t kc = k1 - k0;
  for (int64_t i = m0; i < m1; i += kTileMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kTileMR, m1 - i));
    for (int64_t j = n0; j < n1; j += kTileNR) {
      const int nr = static_cast<int>(std::min<int64_t>(kTileNR, n1 - j));
      kTiles[mr][nr](a + i * k + k0, b + j * k + k0, c + i * n + j, k, k, n, kc, accumulate);
    }
  }
}

void int8_gemm_avx512vnni_driver(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
  if (m == 0 || n == 0) return;
  if (m < kPackMinM || k == 0) return int8_gemm_blocked(int8_block_avx512vnni, a, b, c, m, n, k);
  gemm_packed(a, b, c, m, n, k);
}

}  // namespace modelpress::kernels::detail
