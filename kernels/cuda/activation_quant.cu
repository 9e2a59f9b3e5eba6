#include "kernels/cuda/activation_quant.h"

#include <algorithm>
#include <string>

#include "kernels/cuda/device_types.cuh"

namespace modelpress::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// round_half_even(x * inv) clamped to [-127, 127], NaN -> 0: detail::quantize_one on the CPU.
// __fmul_rn keeps the product a plain rounded multiply (never contracted), rintf rounds half
// to even, so the result is the CPU's bit for bit.
__device__ __forceinline__ int8_t quantize_one(float v, float inv) {
  const float r = rintf(__fmul_rn(v, inv));
  if (r >= -127.0f && r <= 127.0f) return static_cast<int8_t>(r);
  if (r > 127.0f) return 127;
  if (r < -127.0f) return -127;
  return 0;  // NaN
}

// A row whose absmax is below 127 / FLT_MAX, where 127 / absmax overflows f32: the CPU
// (detail::quantize_one_tiny_row) rounds x * 127 / absmax computed in double, so that the row
// keeps its proportions instead of every nonzero element going to +-127. Same operations here,
// each IEEE-rounded (__dmul_rn / __ddiv_rn: no contraction).
__device__ __forceinline__ int8_t quantize_one_tiny_row(float v, float amax) {
  const double r = rint(__ddiv_rn(__dmul_rn(static_cast<double>(v), 127.0), static_cast<double>(amax)));
  if (r >= -127.0 && r <= 127.0) return static_cast<int8_t>(r);
  if (r > 127.0) return 127;
  if (r < -127.0) return -127;
  return 0;  // NaN
}

// One block per row. (row) absmax over non-outlier elements -> (row, K) q.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    quantize_rows_kernel(const T* __restrict__ x, int64_t k, float threshold, int8_t* __restrict__ q, int64_t ldq,
                         float* __restrict__ row_scale, uint8_t* __restrict__ col_flags) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * k;
  const bool split = threshold > 0.0f;
  float amax = 0.0f;
  for (int64_t j = threadIdx.x; j < k; j += kThreads) {
    const float a = fabsf(dev::to_f32(xr[j]));
    if (split && a >= threshold)
      col_flags[j] = 1;  // several rows may store the same 1: a benign race
    else
      amax = fmaxf(amax, a);  // fmaxf drops a NaN, as the CPU's `a > absmax` does
  }
  amax = dev::block_max(amax);
  // IEEE division (this file is built without fast math): the CPU's 127.0f / absmax exactly.
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  const bool tiny = isinf(inv);  // absmax below 127 / FLT_MAX: the CPU's double path
  if (threadIdx.x == 0) row_scale[row] = amax / 127.0f;
  int8_t* qr = q + row * ldq;
  for (int64_t j = threadIdx.x; j < ldq; j += kThreads) {
    int8_t v = 0;
    if (j < k) {
      const float f = dev::to_f32(xr[j]);
      if (!(split && fabsf(f) >= threshold)) v = tiny ? quantize_one_tiny_row(f, amax) : quantize_one(f, inv);
    }
    qr[j] = v;
  }
}

constexpr int kCompactThreads = 1024;  // 32 warps: the warp totals fit one shared array

__global__ void __launch_bounds__(kCompactThreads)
    compact_kernel(const uint8_t* __restrict__ flags, int64_t k, int32_t* __restrict__ cols, int32_t* __restrict__ count) {
  __shared__ int warp_total[32];
  __shared__ int base;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) base = 0;
  __syncthreads();
  for (int64_t start = 0; start < k; start += kCompactThreads) {
    const int64_t j = start + threadIdx.x;
    const bool f = j < k && flags[j] != 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, f);
    if (lane == 0) warp_total[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < 32; ++w) {
      before += w < warp ? warp_total[w] : 0;
      total += warp_total[w];
    }
    // Lanes below this one in the warp, then warps below: ascending column order.
    if (f) cols[base + before + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int32_t>(j);
    __syncthreads();  // everyone has read base and warp_total
    if (threadIdx.x == 0) base += total;
    __syncthreads();
  }
  if (threadIdx.x == 0) *count = base;
}

template <typename T>
void launch_quantize(Context& ctx, const void* x, int64_t m, int64_t k, float threshold, int8_t* q, int64_t ldq,
                     float* row_scale, uint8_t* col_flags) {
  quantize_rows_kernel<T><<<static_cast<unsigned>(m), kThreads, 0, ctx.stream>>>(static_cast<const T*>(x), k, threshold,
                                                                                 q, ldq, row_scale, col_flags);
  MP_CUDA_CHECK_LAUNCH();
}

void check_rows(int64_t m) {
  if (m > 0x7FFFFFFF) throw CudaError("activation quantization: more than 2^31 - 1 rows");
}

}  // namespace

void quantize_rows(Context& ctx, DType xt, const void* x, int64_t m, int64_t k, float threshold, int8_t* q,
                   int64_t ldq, float* row_scale, uint8_t* col_flags) {
  if (m <= 0) return;
  check_rows(m);
  if (ldq < k) throw CudaError("quantize_rows: ldq < K");
  if (threshold > 0.0f && !col_flags) throw CudaError("quantize_rows: a threshold needs column flags");
  // Explicit list of instantiations (kernels/cuda/CMakeLists.txt: nvcc compiles each once).
  switch (xt) {
    case DType::F32: return launch_quantize<float>(ctx, x, m, k, threshold, q, ldq, row_scale, col_flags);
    case DType::F16: return launch_quantize<__half>(ctx, x, m, k, threshold, q, ldq, row_scale, col_flags);
    case DType::BF16: return launch_quantize<__nv_bfloat16>(ctx, x, m, k, threshold, q, ldq, row_scale, col_flags);
  }
}

void compact_outlier_columns(Context& ctx, const uint8_t* col_flags, int64_t k, int32_t* cols, int32_t* count) {
  compact_kernel<<<1, kCompactThreads, 0, ctx.stream>>>(col_flags, k, cols, count);
  MP_CUDA_CHECK_LAUNCH();
}

}  // namespace modelpress::kernels::cuda
