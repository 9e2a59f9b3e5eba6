#include "kernels/cuda/llm_int8.h"

#include <algorithm>

#include "kernels/cuda/activation_quant.h"
#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/elementwise.h"

namespace modelpress::kernels::cuda {

namespace {

struct Scratch {
  int8_t* q;          // (M, Kp)
  float* row_scale;   // (M)
  uint8_t* flags;     // (K)
  int32_t* cols;      // (K)
  int32_t* count;     // (1)
  int32_t* c;         // (M, Np)
  float* yo;          // (M, N) outlier product
};

Scratch carve(void* base, int64_t m, int64_t n, int64_t k, size_t* bytes = nullptr) {
  DeviceCarver d(base);
  Scratch s;
  s.q = d.take<int8_t>(m * round_up(k, 16));
  s.row_scale = d.take<float>(m);
  s.flags = d.take<uint8_t>(k);
  s.cols = d.take<int32_t>(k);
  s.count = d.take<int32_t>(1);
  s.c = d.take<int32_t>(m * round_up(n, 16));
  s.yo = d.take<float>(m * n);
  if (bytes) *bytes = d.bytes();
  return s;
}

constexpr int kThreads = 256;
constexpr int kTileI = 64, kTileJ = 64, kChunk = 32;  // rows of x, rows of W, outlier columns per step

// yo (M, N) f32 = sum over the *count outlier columns c of x[i][cols[c]] * w[j][cols[c]], with
// w the layer's fp16 column where it lists one (binary search: fp16_cols ascends), else
// q * scale. f32 products and sums, x in its own precision: the CPU's arithmetic, and no
// rounding of x to 16 bits (an f32 outlier above 65504 would become inf in f16). The count is
// read on the device, so the host never waits for it; with no outliers every block returns at
// once. Blocks with blockIdx.x == 0 then zero those columns of q in their rows (an outlier
// column leaves the int8 product in every row).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    outlier_product_kernel(const T* __restrict__ x, int64_t k, int64_t m, const int32_t* __restrict__ cols,
                           const int32_t* __restrict__ count_ptr, int8_t* __restrict__ q, int64_t ldq,
                           const int8_t* __restrict__ wq, int64_t ldw, const float* __restrict__ scale, int64_t n,
                           const int32_t* __restrict__ fp16_cols, const uint16_t* __restrict__ fp16_w,
                           int64_t fp16_count, float* __restrict__ yo) {
  const int count = *count_ptr;
  if (count <= 0) return;
  __shared__ float xs[kTileI][kChunk + 1];
  __shared__ float ws[kChunk][kTileJ];
  __shared__ int32_t col_s[kChunk], fidx[kChunk];
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTileI, j0 = static_cast<int64_t>(blockIdx.x) * kTileJ;
  const int tj = threadIdx.x % kTileJ, ti0 = (threadIdx.x / kTileJ) * (kTileI / 4);
  float acc[kTileI / 4];
#pragma unroll
  for (int r = 0; r < kTileI / 4; ++r) acc[r] = 0.0f;
  for (int c0 = 0; c0 < count; c0 += kChunk) {
    const int cn = min(kChunk, count - c0);
    if (threadIdx.x < kChunk) {
      int32_t col = 0, f = -1;
      if (static_cast<int>(threadIdx.x) < cn) {
        col = cols[c0 + threadIdx.x];
        int64_t lo = 0, hi = fp16_count;  // first fp16 column >= col
        while (lo < hi) {
          const int64_t mid = (lo + hi) / 2;
          if (fp16_cols[mid] < col) lo = mid + 1;
          else hi = mid;
        }
        if (lo < fp16_count && fp16_cols[lo] == col) f = static_cast<int32_t>(lo);
      }
      col_s[threadIdx.x] = col;
      fidx[threadIdx.x] = f;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kTileI * kChunk; e += kThreads) {
      const int r = e / kChunk, c = e % kChunk;
      const int64_t i = i0 + r;
      xs[r][c] = c < cn && i < m ? dev::to_f32(x[i * k + col_s[c]]) : 0.0f;
    }
    for (int e = threadIdx.x; e < kChunk * kTileJ; e += kThreads) {
      const int c = e / kTileJ, jj = e % kTileJ;
      const int64_t j = j0 + jj;
      float v = 0.0f;
      if (c < cn && j < n)
        v = fidx[c] >= 0 ? __half2float(__ushort_as_half(fp16_w[fidx[c] * n + j]))
                         : static_cast<float>(wq[j * ldw + col_s[c]]) * scale[j];
      ws[c][jj] = v;
    }
    __syncthreads();
    for (int c = 0; c < cn; ++c) {
      const float wv = ws[c][tj];
#pragma unroll
      for (int r = 0; r < kTileI / 4; ++r) acc[r] = fmaf(xs[ti0 + r][c], wv, acc[r]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < kTileI / 4; ++r) {
    const int64_t i = i0 + ti0 + r, j = j0 + tj;
    if (i < m && j < n) yo[i * n + j] = acc[r];
  }
  if (blockIdx.x == 0)
    for (int64_t e = threadIdx.x; e < int64_t{kTileI} * count; e += kThreads) {
      const int64_t i = i0 + e / count;
      if (i < m) q[i * ldq + cols[e % count]] = 0;
    }
}

template <typename T>
void launch_outlier_product(Context& ctx, const DeviceInt8Weight& w, const void* x, int64_t m, const Scratch& s) {
  if (m > int64_t{65535} * kTileI) throw CudaError("llm_int8_linear: more than 65535 x 64 rows");
  const dim3 grid(static_cast<unsigned>((w.n + kTileJ - 1) / kTileJ), static_cast<unsigned>((m + kTileI - 1) / kTileI));
  outlier_product_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(
      static_cast<const T*>(x), w.k, m, s.cols, s.count, s.q, w.k_pad(), w.q, w.k_pad(), w.scale, w.n, w.fp16_cols,
      w.fp16_w, w.fp16_count, s.yo);
  MP_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t llm_int8_scratch_bytes(int64_t m, int64_t n, int64_t k) {
  size_t bytes = 0;
  carve(nullptr, m, n, k, &bytes);
  return bytes;
}

void int8_gemm_dequant(Context& ctx, const DeviceInt8Weight& w, const int8_t* xq, const float* row_scale,
                       const float* bias, int64_t m, int32_t* c, DType yt, void* y) {
  const int64_t np = w.n_pad(), kp = w.k_pad();
  gemm_int8(ctx, xq, kp, w.q, kp, c, np, m, np, kp);
  dequantize_int32(ctx, c, np, row_scale, w.scale, bias, nullptr, yt, y, m, w.n);
}

void llm_int8_linear(Context& ctx, const DeviceInt8Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                     float threshold, DType yt, void* y, void* scratch) {
  if (m <= 0) return;
  const int64_t n = w.n, k = w.k, np = w.n_pad(), kp = w.k_pad();
  const Scratch s = carve(scratch, m, n, k);
  const bool split = threshold > 0.0f;
  if (split) MP_CUDA_CHECK(cudaMemsetAsync(s.flags, 0, static_cast<size_t>(k), ctx.stream));
  quantize_rows(ctx, xt, x, m, k, threshold, s.q, kp, s.row_scale, split ? s.flags : nullptr);
  if (split) {
    compact_outlier_columns(ctx, s.flags, k, s.cols, s.count);
    switch (xt) {
      case DType::F32: launch_outlier_product<float>(ctx, w, x, m, s); break;
      case DType::F16: launch_outlier_product<__half>(ctx, w, x, m, s); break;
      case DType::BF16: launch_outlier_product<__nv_bfloat16>(ctx, w, x, m, s); break;
    }
  }
  gemm_int8(ctx, s.q, kp, w.q, kp, s.c, np, m, np, kp);
  dequantize_int32(ctx, s.c, np, s.row_scale, w.scale, bias, split ? s.yo : nullptr, yt, y, m, n,
                   split ? s.count : nullptr);
}

int64_t llm_int8_outlier_count(Context& ctx, const void* scratch, int64_t m, int64_t n, int64_t k) {
  const Scratch s = carve(const_cast<void*>(scratch), m, n, k);
  int32_t count = 0;
  MP_CUDA_CHECK(cudaMemcpyAsync(&count, s.count, sizeof count, cudaMemcpyDeviceToHost, ctx.stream));
  ctx.synchronize();
  return count;
}

}  // namespace modelpress::kernels::cuda
