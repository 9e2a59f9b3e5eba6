// The element-wise kernels of the CUDA backend: the int8 GEMM's dequantization epilogue,
// dtype conversions and a bias add.
//
// Why the epilogue is a kernel of its own: cuBLASLt's int8 tensor-core path
// (CUBLAS_COMPUTE_32I) writes int32 (or int8 with one per-row alpha vector); it has no output
// type f16/bf16/f32 for int8 inputs and no way to apply a per-token (row of x) scale, so
// y = C * row_scale * col_scale + bias cannot be fused into the GEMM. It runs as one fused
// pass over the int32 product instead: read C once, write y once (bitsandbytes does the same,
// kdequant_mm_int32_fp16). At 8192^3 that pass moves 8192^2 x (4 + 2) bytes, about 0.12 ms on
// an H100 next to about 0.6 ms for the GEMM at its int8 peak: the main reason the W8A8 goal
// (1.7x f16) is hard without a custom GEMM with the epilogue in registers.
#pragma once
#include <cstdint>

#include "kernels/cuda/blaslt.h"

namespace modelpress::kernels::cuda {

// y (M, N) row-major, contiguous, of type yt (F16, BF16, F32):
//   y[i][j] = C[i][j] * row_scale[i] * col_scale[j] + bias[j] + addend[i][j]
// C (M, ldc) int32; bias (N) and addend (M, N) f32, each optional (null). In f32, in that
// order, without contraction: with f32 output it matches the CPU's epilogue bit for bit.
// addend_count (device, optional): the addend is read only when *addend_count > 0 (LLM.int8's
// outlier product exists only when some column has outliers, which only the device knows).
void dequantize_int32(Context& ctx, const int32_t* c, int64_t ldc, const float* row_scale, const float* col_scale,
                      const float* bias, const float* addend, DType yt, void* y, int64_t m, int64_t n,
                      const int32_t* addend_count = nullptr);

// dst = src converted (f32 -> f16 / bf16 rounds to nearest even). count elements.
void convert(Context& ctx, DType src_t, const void* src, DType dst_t, void* dst, int64_t count);

// y (M, N) of type yt, leading dimension ldy: y[i][j] += bias[j] (bias f32). A 16-bit y is
// rounded twice (GEMM, then here); used where cuBLASLt wrote y without the bias.
void add_bias(Context& ctx, DType yt, void* y, int64_t ldy, const float* bias, int64_t m, int64_t n);

}  // namespace modelpress::kernels::cuda
