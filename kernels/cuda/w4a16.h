// W4A16 on the GPU: y (M, N) = x (M, K) . W^T + b with W a group-wise 4-bit weight in the
// W4Weight layout of kernels/packed_linear.h (uploaded as is: the kernels never repack).
//
// M <= 16 (decode) with the weight also in the tensor-core layout (w4_mma_layout.h, made once
// by w4a16_repack_mma; K and group multiples of 64): w4a16_mma.cu, mma.m16n8k16 on A fragments
// dequantized in registers. This is the fast path.
// M <= 16 otherwise: a GEMV-style kernel, one warp per output row. Each lane loads 16 bytes of
// the packed row (32 weights, one group) per step and dequantizes them in registers,
//   w = (u - zero) * scale       (scale, zero per group of K; zero 8 when symmetric),
// as sum((u - zero) x) * scale per chunk, for up to 16 rows of x (f32 accumulation); a warp
// reduction finishes each output. The weight is read once, whatever M: that is the whole point at decode batch
// sizes, where the product is bound by reading the weight (4.25 bits per weight at group 128
// with f32 scales, against 16 for f16: the ceiling of the speed-up is 16 / 4.25 = 3.76x).
// Needs K % 32 == 0, group % 32 == 0 (a lane's 32 weights share one scale) and 16-byte aligned
// x and packed weight; other shapes take a simple kernel (one thread per output, byte loads),
// with a log line.
// M > 16: the weight is dequantized in tiles of rows into a 16-bit buffer that stays in L2,
// and each tile goes through the cuBLASLt 16-bit GEMM (tensor cores).
#pragma once
#include <cstdint>
#include <string>

#include "kernels/cuda/blaslt.h"

namespace modelpress::kernels::cuda {

struct DeviceW4Weight {
  const uint8_t* packed = nullptr;  // (N, K/2), low nibble first
  const float* scales = nullptr;    // (N, K/group)
  const uint8_t* zeros = nullptr;   // (N, K/group) or null (symmetric: zero point 8)
  int64_t n = 0, k = 0, group = 0;
  // The same weight in the tensor-core layout (w4_mma_bytes(n, k) bytes), or null.
  const uint8_t* mma = nullptr;
};

// Whether the tensor-core kernel takes this weight's shape (K, group multiples of 64).
bool w4a16_mma_supported(const DeviceW4Weight& w, std::string* why);
// Writes w.packed in the tensor-core layout to `out` (w4_mma_bytes(n, k) bytes, 16-byte
// aligned). Asynchronous on ctx.stream. Needs K % 64 == 0.
void w4a16_repack_mma(Context& ctx, const DeviceW4Weight& w, uint8_t* out);
// The tensor-core kernel alone (w4a16_linear picks it); M <= 16, w.mma set.
void w4a16_mma_linear(Context& ctx, const DeviceW4Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                      DType yt, void* y);

// Whether the fast GEMV kernel takes this weight (x alignment aside); the reason when not.
bool w4a16_gemv_supported(const DeviceW4Weight& w, std::string* why);

// x (M, K) of type xt (F16 or BF16), contiguous; y (M, N) of type yt (xt or F32), contiguous;
// bias (N) f32 or null. Asynchronous on ctx.stream. Returns the path taken: "mma", "gemv", "simple"
// (the slow general kernel: the caller logs it) or "tiles".
const char* w4a16_linear(Context& ctx, const DeviceW4Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                  DType yt, void* y);

}  // namespace modelpress::kernels::cuda
