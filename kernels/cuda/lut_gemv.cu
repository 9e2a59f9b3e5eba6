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

template <int B>
void launch(Context& ctx, const DeviceLutWeight& w, const float* bias, const float* x, int64_t m, float* y) {
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
