#include "kernels/cuda/lut_gemv.h"

#include <algorithm>

#include "kernels/cuda/cuda_check.h"

namespace modelpress::kernels::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxRows = 8;  // rows of x per launch (registers: one accumulator each)

// The 8 indices of step s: b bytes read one at a time (a step starts on any byte) into a
// 64-bit little-endian word; index i is bits [i b, i b + b).
template <int B>
__device__ __forceinline__ uint64_t step_bits(const uint8_t* __restrict__ row, int64_t s) {
  uint64_t v = 0;
#pragma unroll
  for (int j = 0; j < B; ++j) v |= static_cast<uint64_t>(__ldg(row + s * B + j)) << (8 * j);
  return v;
}

// Entry `idx` of the table: a shuffle from the lane holding it (b <= 5), or shared memory.
template <int B>
__device__ __forceinline__ float lookup(float reg_entry, const float* smem_table, int idx) {
  if constexpr (B <= 5) return __shfl_sync(0xffffffffu, reg_entry, idx);
  else return smem_table[idx];
}

// Grid: ceil(N / kWarps) blocks of kWarps warps; warp w of block b is output row b kWarps + w.
template <int B, int MT>
__global__ void __launch_bounds__(kThreads)
    lut_gemv_kernel(const uint8_t* __restrict__ indices, const float* __restrict__ lut,
                    const float* __restrict__ row_scale, int64_t n, int64_t k, int64_t group_rows,
                    const float* __restrict__ x, int m, const float* __restrict__ bias, float* __restrict__ y) {
  constexpr int kEntries = 1 << B;
  __shared__ float tables[B > 5 ? kWarps : 1][B > 5 ? kEntries : 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (row >= n) return;  // the whole warp: the shuffles below stay full-warp
  const float* table = lut + (row / group_rows) * kEntries;  // (2^b)
  float reg_entry = 0.0f;
  float* smem = tables[B > 5 ? warp : 0];
  if constexpr (B <= 5) {
    reg_entry = lane < kEntries ? __ldg(table + lane) : 0.0f;
  } else {
    for (int j = lane; j < kEntries; j += 32) smem[j] = __ldg(table + j);
    __syncwarp();
  }
  const int64_t rb = (k * B + 7) / 8, steps = k / 8;
  const uint8_t* irow = indices + row * rb;  // (rb)
  float acc[MT];
#pragma unroll
  for (int r = 0; r < MT; ++r) acc[r] = 0.0f;
  // Every lane runs every pass (lanes past the end look up entry 0 and add 0) so that the
  // shuffles always see the full warp.
  for (int64_t base = 0; base < steps; base += 32) {
    const int64_t s = base + lane;
    const bool live = s < steps;
    const uint64_t v = live ? step_bits<B>(irow, s) : 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float wv = lookup<B>(reg_entry, smem, static_cast<int>((v >> (i * B)) & (kEntries - 1)));
#pragma unroll
      for (int r = 0; r < MT; ++r)
        if (r < m && live) acc[r] = fmaf(wv, __ldg(x + r * k + s * 8 + i), acc[r]);
    }
  }
  // K % 8 tail: element steps * 8 + lane for the first K % 8 lanes.
  {
    const int64_t c = steps * 8 + lane;
    const bool live = c < k;
    int idx = 0;
    if (live) {
      const int64_t bit = c * B;
      unsigned u = __ldg(irow + bit / 8);
      if ((bit % 8) + B > 8) u |= static_cast<unsigned>(__ldg(irow + bit / 8 + 1)) << 8;
      idx = static_cast<int>((u >> (bit % 8)) & (kEntries - 1));
    }
    const float wv = lookup<B>(reg_entry, smem, idx);
#pragma unroll
    for (int r = 0; r < MT; ++r)
      if (r < m && live) acc[r] = fmaf(wv, __ldg(x + r * k + c), acc[r]);
  }
  const float scale = row_scale ? __ldg(row_scale + row) : 1.0f;
  const float b = bias ? __ldg(bias + row) : 0.0f;
#pragma unroll
  for (int r = 0; r < MT; ++r) {
    float v = acc[r];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0 && r < m) y[r * n + row] = v * scale + b;
  }
}

// The fast kernel, for b <= 5 and K % 32 == 0: each block owns kFastRows output rows and its
// warps split K (many warps, each with all its loads in flight at once: the kernel is bound by
// reading the weight); each lane takes one 32-index chunk per pass (b 32-bit words of each row:
// index i of the chunk is bits [i b, i b + b) of those words, extracted with a constant shift or
// funnel shift), so a pass covers 1024 columns. Every lane holds table entry (lane mod 2^b) of each of its rows' tables:
// a lookup is one __shfl_sync whose source lane is the shifted word itself, since the bits above
// the index only add multiples of 2^b to the lane, which the replicated table ignores (no mask).
// x is loaded once per 8 columns and used for all kFastRows rows; the next pass's index words
// are loaded before this pass computes (a register double buffer).
constexpr int kFastRows = 4;
constexpr int kFastMaxTokens = 4;

template <int B>
struct FastWords {
  uint32_t w[kFastRows][B];
};

template <int B>
__device__ __forceinline__ FastWords<B> fast_load(const uint32_t* __restrict__ idx, int64_t words_per_row,
                                                  int64_t row0, int64_t n, int64_t chunk, bool live) {
  FastWords<B> f;
#pragma unroll
  for (int r = 0; r < kFastRows; ++r)
#pragma unroll
    for (int j = 0; j < B; ++j)
      f.w[r][j] = live && row0 + r < n ? __ldg(idx + (row0 + r) * words_per_row + chunk * B + j) : 0u;
  return f;
}

// Index i (0..31) of a chunk, with junk above bit b (harmless: see above). Called with constants
// only (unrolled loops), so the word choice and shifts fold away.
template <int B>
__device__ __forceinline__ uint32_t chunk_index(const uint32_t (&w)[B], int i) {
  const int bit = i * B, wi = bit / 32, off = bit % 32;
  if (off + B > 32 && wi + 1 < B) return __funnelshift_r(w[wi], w[wi + 1], off);
  return w[wi] >> off;
}

template <int B, int MT>
__global__ void __launch_bounds__(kThreads)
    lut_fast_kernel(const uint32_t* __restrict__ indices, const float* __restrict__ lut,
                    const float* __restrict__ row_scale, int64_t n, int64_t k, int64_t group_rows,
                    const float* __restrict__ x, int m, const float* __restrict__ bias, float* __restrict__ y) {
  constexpr int kEntries = 1 << B;
  __shared__ float sums[kWarps][kFastRows][MT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kFastRows;  // the block's rows; its warps split K
  float table[kFastRows];
#pragma unroll
  for (int r = 0; r < kFastRows; ++r)
    table[r] = row0 + r < n ? __ldg(lut + ((row0 + r) / group_rows) * kEntries + (lane & (kEntries - 1))) : 0.0f;
  const int64_t chunks = k / 32, words_per_row = k * B / 32;
  float acc[kFastRows][MT];
#pragma unroll
  for (int r = 0; r < kFastRows; ++r)
#pragma unroll
    for (int t = 0; t < MT; ++t) acc[r][t] = 0.0f;

  // Warp w takes the passes w, w + kWarps, ... of 1024 columns (one pass each at K = 8192). The
  // trip count is the same for every warp of the block (a warp past the end does dead, masked
  // work): with a warp-dependent count the compiler cannot prove the shuffles convergent and
  // wraps each one in a slow divergence-safe sequence.
  constexpr int kStride = 32 * kWarps;
  const int trips = static_cast<int>((chunks + kStride - 1) / kStride);
  int64_t chunk = warp * 32 + lane;
  FastWords<B> cur = fast_load<B>(indices, words_per_row, row0, n, chunk, chunk < chunks);
  for (int trip = 0; trip < trips; ++trip, chunk += kStride) {
    const bool live = chunk < chunks;
    const FastWords<B> next = fast_load<B>(indices, words_per_row, row0, n, chunk + kStride, chunk + kStride < chunks);
#pragma unroll
    for (int sub = 0; sub < 4; ++sub) {
      float xv[MT][8];
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
        if (live && t < m) {
          const float4* xp = reinterpret_cast<const float4*>(x + t * k + chunk * 32 + sub * 8);
          a = __ldg(xp);
          b = __ldg(xp + 1);
        }
        xv[t][0] = a.x, xv[t][1] = a.y, xv[t][2] = a.z, xv[t][3] = a.w;
        xv[t][4] = b.x, xv[t][5] = b.y, xv[t][6] = b.z, xv[t][7] = b.w;
      }
#pragma unroll
      for (int r = 0; r < kFastRows; ++r)
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float wv = __shfl_sync(0xffffffffu, table[r], static_cast<int>(chunk_index<B>(cur.w[r], sub * 8 + i)));
#pragma unroll
          for (int t = 0; t < MT; ++t) acc[r][t] = live ? fmaf(wv, xv[t][i], acc[r][t]) : acc[r][t];
        }
    }
    cur = next;
  }
  // Each warp's sums, then the warps' in a fixed order (deterministic).
#pragma unroll
  for (int r = 0; r < kFastRows; ++r)
#pragma unroll
    for (int t = 0; t < MT; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
      if (lane == 0) sums[warp][r][t] = v;
    }
  __syncthreads();
  if (threadIdx.x < kFastRows * MT) {
    const int r = threadIdx.x / MT, t = threadIdx.x % MT;
    const int64_t row = row0 + r;
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += sums[w][r][t];
    if (row < n && t < m) {
      const float scale = row_scale ? __ldg(row_scale + row) : 1.0f;
      y[t * n + row] = v * scale + (bias ? __ldg(bias + row) : 0.0f);
    }
  }
}

template <int B, int MT>
void launch_fast_rows(Context& ctx, const DeviceLutWeight& w, const float* bias, const float* x, int m, float* y) {
  const int64_t blocks = (w.n + kFastRows - 1) / kFastRows;
  lut_fast_kernel<B, MT><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
      reinterpret_cast<const uint32_t*>(w.indices), w.lut, w.row_scale, w.n, w.k, w.group_rows, x, m, bias, y);
  MP_CUDA_CHECK_LAUNCH();
}

template <int B>
void launch(Context& ctx, const DeviceLutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  if constexpr (B <= 5) {
    if (lut_fast_supported(w) && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
      // Slices of up to kFastMaxTokens rows of x; each reads the weight once.
      for (int64_t r0 = 0; r0 < m; r0 += kFastMaxTokens) {
        const int rows = static_cast<int>(std::min<int64_t>(kFastMaxTokens, m - r0));
        if (rows == 1) launch_fast_rows<B, 1>(ctx, w, bias, x + r0 * w.k, 1, y + r0 * w.n);
        else if (rows == 2) launch_fast_rows<B, 2>(ctx, w, bias, x + r0 * w.k, 2, y + r0 * w.n);
        else launch_fast_rows<B, kFastMaxTokens>(ctx, w, bias, x + r0 * w.k, rows, y + r0 * w.n);
      }
      return;
    }
  }
  const int64_t blocks = (w.n + kWarps - 1) / kWarps;
  for (int64_t r0 = 0; r0 < m; r0 += kMaxRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxRows, m - r0));
    // Instantiated for 1 and 8 rows: batch 1 (decode) keeps one accumulator; anything else
    // predicates off the rows it does not have.
    if (rows == 1)
      lut_gemv_kernel<B, 1><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
          w.indices, w.lut, w.row_scale, w.n, w.k, w.group_rows, x + r0 * w.k, 1, bias, y + r0 * w.n);
    else
      lut_gemv_kernel<B, kMaxRows><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
          w.indices, w.lut, w.row_scale, w.n, w.k, w.group_rows, x + r0 * w.k, rows, bias, y + r0 * w.n);
    MP_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

bool lut_fast_supported(const DeviceLutWeight& w) {
  return w.bits >= 1 && w.bits <= 5 && w.k % 32 == 0 && reinterpret_cast<uintptr_t>(w.indices) % 4 == 0;
}

void lut_linear(Context& ctx, const DeviceLutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
  if (m <= 0 || w.n <= 0) return;
  switch (w.bits) {
    case 1: return launch<1>(ctx, w, bias, x, m, y);
    case 2: return launch<2>(ctx, w, bias, x, m, y);
    case 3: return launch<3>(ctx, w, bias, x, m, y);
    case 4: return launch<4>(ctx, w, bias, x, m, y);
    case 5: return launch<5>(ctx, w, bias, x, m, y);
    case 6: return launch<6>(ctx, w, bias, x, m, y);
    case 7: return launch<7>(ctx, w, bias, x, m, y);
    case 8: return launch<8>(ctx, w, bias, x, m, y);
    default: throw CudaError("lut_linear: index width " + std::to_string(w.bits) + " is outside 1..8");
  }
}

}  // namespace modelpress::kernels::cuda
