#include "kernels/cuda/w4a16.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/elementwise.h"

namespace modelpress::kernels::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

template <typename T>
__device__ __forceinline__ float2 pair_to_f32(uint32_t bits);
template <>
__device__ __forceinline__ float2 pair_to_f32<__half>(uint32_t bits) {
  __half2 h;
  memcpy(&h, &bits, sizeof h);
  return __half22float2(h);
}
template <>
__device__ __forceinline__ float2 pair_to_f32<__nv_bfloat16>(uint32_t bits) {
  __nv_bfloat162 h;
  memcpy(&h, &bits, sizeof h);
  return __bfloat1622float2(h);
}

// One warp per output row n; MT >= m rows of x (the rest predicated off). Per chunk and row of
// x, sum (u - z) x over the 32 weights, then scale once: one FADD and one FFMA per weight and
// row instead of a convert, a multiply and an FFMA. Chunk c is weights
// [32c, 32c + 32) of the row: 16 bytes, uint32 word q holding weights 8q..8q+7, weight 8q + i
// in nibble i (low nibble first: byte 4q + j holds 8q + 2j low and 8q + 2j + 1 high).
template <typename T, typename OutT, int MT>
__global__ void __launch_bounds__(kThreads)
    gemv_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                const uint8_t* __restrict__ zeros, int64_t n, int64_t k, int64_t group, const T* __restrict__ x,
                int m, const float* __restrict__ bias, OutT* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= n) return;  // the whole warp: the shuffles below stay full-warp
  const int64_t chunks = k / 32, groups = k / group;
  const uint4* wrow = reinterpret_cast<const uint4*>(packed + row * (k / 2));  // (chunks) 16 B each
  const float* srow = scales + row * groups;
  const uint8_t* zrow = zeros ? zeros + row * groups : nullptr;
  float acc[MT];
#pragma unroll
  for (int r = 0; r < MT; ++r) acc[r] = 0.0f;

  for (int64_t c = lane; c < chunks; c += 32) {
    // The weight is streamed once: the read-only path, no reuse to keep in L1.
    const uint4 v = __ldg(wrow + c);
    const int64_t g = (c * 32) / group;  // group % 32 == 0: one group per chunk
    const float s = __ldg(srow + g);
    // u - z as an exact f32 without an int-to-float conversion (I2F issues at a quarter of the
    // FP32 rate on Hopper, and there are 32 per chunk): the bits 0x4B000000 | u are the float
    // 2^23 + u, and subtracting 2^23 + z is exact.
    const float zf = 8388608.0f + static_cast<float>(zrow ? zrow[g] : 8);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
    float w[32];  // (32) u - z, in registers (constant indices only); the scale comes per chunk
#pragma unroll
    for (int q = 0; q < 4; ++q)
#pragma unroll
      for (int i = 0; i < 8; ++i) w[q * 8 + i] = __int_as_float(0x4B000000u | ((words[q] >> (4 * i)) & 0xFu)) - zf;
#pragma unroll
    for (int r = 0; r < MT; ++r) {
      if (r < m) {
        float dot = 0.0f;  // sum over the chunk of (u - z) x; times s once below
        // (32) x values of row r: 4 x 16-byte loads, x is small and shared by all warps (L1/L2).
        const uint4* xp = reinterpret_cast<const uint4*>(x + r * k + c * 32);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const uint4 xv = __ldg(xp + q);
          const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
          for (int h = 0; h < 4; ++h) {
            const float2 f = pair_to_f32<T>(xw[h]);  // elements 8q + 2h, 8q + 2h + 1
            dot = fmaf(w[q * 8 + 2 * h], f.x, dot);
            dot = fmaf(w[q * 8 + 2 * h + 1], f.y, dot);
          }
        }
        acc[r] = fmaf(s, dot, acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < MT; ++r) {
    float a = acc[r];
    for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
    if (lane == 0 && r < m) y[r * n + row] = dev::from_f32<OutT>(a + (bias ? bias[row] : 0.0f));
  }
}

// Any even group and K: one thread per output, byte loads, the reference's arithmetic.
template <typename T, typename OutT>
__global__ void __launch_bounds__(kThreads)
    simple_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                  const uint8_t* __restrict__ zeros, int64_t n, int64_t k, int64_t group, const T* __restrict__ x,
                  int64_t m, const float* __restrict__ bias, OutT* __restrict__ y) {
  const int64_t groups = k / group;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < m * n;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t i = idx / n, j = idx % n;
    float acc = 0.0f;
    for (int64_t t = 0; t < k; ++t) {
      const uint8_t byte = packed[j * (k / 2) + t / 2];
      const int u = (t & 1) ? byte >> 4 : byte & 0x0F;
      const int64_t g = j * groups + t / group;
      const int z = zeros ? zeros[g] : 8;
      acc = fmaf(static_cast<float>(u - z) * scales[g], dev::to_f32(x[i * k + t]), acc);
    }
    y[idx] = dev::from_f32<OutT>(acc + (bias ? bias[j] : 0.0f));
  }
}

// (nt, K) tile of T: rows n0..n0+nt-1 of W dequantized. Group is even, so a byte's two weights
// share a group.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dequant_tile_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                        const uint8_t* __restrict__ zeros, int64_t k, int64_t group, int64_t n0, int64_t nt,
                        T* __restrict__ tile) {
  const int64_t half_k = k / 2, groups = k / group, total = nt * half_k;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = idx / half_k, b = idx % half_k, row = n0 + r;
    const uint8_t byte = packed[row * half_k + b];
    const int64_t g = row * groups + (2 * b) / group;
    const int z = zeros ? zeros[g] : 8;
    const float s = scales[g];
    tile[r * k + 2 * b] = dev::from_f32<T>(static_cast<float>((byte & 0x0F) - z) * s);
    tile[r * k + 2 * b + 1] = dev::from_f32<T>(static_cast<float>((byte >> 4) - z) * s);
  }
}

template <typename T, typename OutT, int MT>
void launch_gemv(Context& ctx, const DeviceW4Weight& w, const float* bias, const void* x, int64_t m, void* y) {
  const int64_t blocks = (w.n + kWarps - 1) / kWarps;
  gemv_kernel<T, OutT, MT><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
      w.packed, w.scales, w.zeros, w.n, w.k, w.group, static_cast<const T*>(x), static_cast<int>(m), bias,
      static_cast<OutT*>(y));
  MP_CUDA_CHECK_LAUNCH();
}

// The explicit instantiation list of the GEMV: MT in {1, 2, 4, 8, 16}.
template <typename T, typename OutT>
void gemv_for_m(Context& ctx, const DeviceW4Weight& w, const float* bias, const void* x, int64_t m, void* y) {
  if (m <= 1) return launch_gemv<T, OutT, 1>(ctx, w, bias, x, m, y);
  if (m <= 2) return launch_gemv<T, OutT, 2>(ctx, w, bias, x, m, y);
  if (m <= 4) return launch_gemv<T, OutT, 4>(ctx, w, bias, x, m, y);
  if (m <= 8) return launch_gemv<T, OutT, 8>(ctx, w, bias, x, m, y);
  return launch_gemv<T, OutT, 16>(ctx, w, bias, x, m, y);
}

template <typename T, typename OutT>
void launch_simple(Context& ctx, const DeviceW4Weight& w, const float* bias, const void* x, int64_t m, void* y) {
  const int64_t blocks = std::min<int64_t>((m * w.n + kThreads - 1) / kThreads, int64_t{1} << 16);
  simple_kernel<T, OutT><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
      w.packed, w.scales, w.zeros, w.n, w.k, w.group, static_cast<const T*>(x), m, bias, static_cast<OutT*>(y));
  MP_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_dequant_tile(Context& ctx, const DeviceW4Weight& w, int64_t n0, int64_t nt, void* tile) {
  const int64_t blocks = std::min<int64_t>((nt * (w.k / 2) + kThreads - 1) / kThreads, int64_t{1} << 16);
  dequant_tile_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
      w.packed, w.scales, w.zeros, w.k, w.group, n0, nt, static_cast<T*>(tile));
  MP_CUDA_CHECK_LAUNCH();
}


}  // namespace

bool w4a16_gemv_supported(const DeviceW4Weight& w, std::string* why) {
  if (w.k % 32 != 0 || w.group % 32 != 0) {
    if (why) *why = "K = " + std::to_string(w.k) + " and group " + std::to_string(w.group) + " must be multiples of 32";
    return false;
  }
  return true;
}

const char* w4a16_linear(Context& ctx, const DeviceW4Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                         DType yt, void* y) {
  if (xt == DType::F32 || (yt != xt && yt != DType::F32))
    throw CudaError(std::string("w4a16_linear: unsupported types ") + dtype_name(xt) + " -> " + dtype_name(yt));
  if (xt == DType::BF16 && yt == DType::F32)
    throw CudaError("w4a16_linear: bf16 x with f32 output is not instantiated (use f16 x)");
  if (w.n <= 0 || w.k <= 0 || w.group <= 0 || w.group % 2 || w.k % w.group)
    throw CudaError("w4a16_linear: group " + std::to_string(w.group) + " must be even and divide K = " +
                    std::to_string(w.k));
  if (m <= 0) return "gemv";
  // The explicit (x, y) type list: (f16, f16), (bf16, bf16), and (f16, f32) for run_linear,
  // whose callers want f32 results without a rounding to 16 bits.
  const bool bf = xt == DType::BF16, f32_out = yt == DType::F32;
  if (m <= 16) {
    // 16-byte loads of x rows and weight rows need 16-byte aligned bases.
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w.packed) % 16 == 0;
    if (w.mma && aligned && reinterpret_cast<uintptr_t>(w.mma) % 16 == 0 && w4a16_mma_supported(w, nullptr)) {
      w4a16_mma_linear(ctx, w, bias, xt, x, m, yt, y);
      return "mma";
    }
    if (aligned && w4a16_gemv_supported(w, nullptr)) {
      if (bf) gemv_for_m<__nv_bfloat16, __nv_bfloat16>(ctx, w, bias, x, m, y);
      else if (f32_out) gemv_for_m<__half, float>(ctx, w, bias, x, m, y);
      else gemv_for_m<__half, __half>(ctx, w, bias, x, m, y);
      return "gemv";
    }
    if (bf) launch_simple<__nv_bfloat16, __nv_bfloat16>(ctx, w, bias, x, m, y);
    else if (f32_out) launch_simple<__half, float>(ctx, w, bias, x, m, y);
    else launch_simple<__half, __half>(ctx, w, bias, x, m, y);
    return "simple";
  }
  // M > 16: tiles of nt rows (a multiple of 128, so every tile's slice of y stays 256-byte
  // aligned for cuBLASLt) of about 16 MiB of 16-bit weights: small enough to stay in L2 between
  // the dequantization and the GEMM that reads it.
  const int64_t tile_rows = std::max<int64_t>(128, ((int64_t{16} << 20) / (w.k * 2)) / 128 * 128);
  const int64_t nt_max = std::min(tile_rows, w.n);
  ctx.tile.reserve(static_cast<size_t>(nt_max * w.k * 2));
  for (int64_t n0 = 0; n0 < w.n; n0 += nt_max) {
    const int64_t nt = std::min(nt_max, w.n - n0);
    if (bf) launch_dequant_tile<__nv_bfloat16>(ctx, w, n0, nt, ctx.tile.data());
    else launch_dequant_tile<__half>(ctx, w, n0, nt, ctx.tile.data());
    void* y_tile = static_cast<char*>(y) + n0 * dtype_bytes(yt);
    gemm_16bit(ctx, xt, yt, x, w.k, ctx.tile.data(), w.k, y_tile, w.n, m, nt, w.k);
  }
  add_bias(ctx, yt, y, w.n, bias, m, w.n);
  return "tiles";
}

}  // namespace modelpress::kernels::cuda
