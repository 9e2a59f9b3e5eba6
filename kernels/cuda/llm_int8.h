// W8A8 and the LLM.int8() mixed product on the GPU, on device-resident operands:
//
//   1. quantize_rows: x -> q (M, Kp) int8, row scales, outlier-column flags (one pass over x)
//   2. with outliers: compact the flags into an ascending column list and its length, on the
//      device; one kernel reads that length there (the host never waits for it), computes
//      yo (M, N) f32 = x[:, cols] . W[:, cols]^T in f32 from x and the weight's columns (the
//      fp16 column where the layer has one, else q * scale; gathered a tile at a time into
//      shared memory: the full weight is never dequantized), and zeroes those columns in q
//   3. C (M, Np) int32 = q . Wq^T through cuBLASLt int8 (CUBLAS_COMPUTE_32I)
//   4. one fused epilogue: y = C * row_scale * w_scale + bias (+ yo when there are outliers),
//      in the output type.
// Threshold 0 (W8A8): steps 2 and the addend vanish.
#pragma once
#include <cstdint>

#include "kernels/cuda/blaslt.h"

namespace modelpress::kernels::cuda {

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// An int8 weight on the device, padded for the IMMA GEMM: q is (n_pad, k_pad) with
// n_pad = round_up(n, 16), k_pad = round_up(k, 16) and zeros outside (n, k) (a zero row or
// column adds nothing to the product). scale (n) f32: w ~= q * scale.
struct DeviceInt8Weight {
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  int64_t n = 0, k = 0;
  // LLM.int8 paper mode, optional: 16-bit weight columns for listed outlier columns.
  const int32_t* fp16_cols = nullptr;  // ascending (count)
  const uint16_t* fp16_w = nullptr;    // (count, n) f16 bits
  int64_t fp16_count = 0;
  int64_t n_pad() const { return round_up(n, 16); }
  int64_t k_pad() const { return round_up(k, 16); }
};

// Scratch for M rows (q, row scales, flags, column list and count, int32 product, f32 outlier
// product), 256-byte aligned pieces.
size_t llm_int8_scratch_bytes(int64_t m, int64_t n, int64_t k);

// y (M, N) of type yt (F16, BF16 or F32) = x (M, K) of type xt (F16, BF16 or F32) . W^T + bias.
// threshold 0: W8A8. bias (N) f32 on the device or null. Asynchronous on ctx.stream: nothing
// waits on the host.
void llm_int8_linear(Context& ctx, const DeviceInt8Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                     float threshold, DType yt, void* y, void* scratch);

// The number of outlier columns the last llm_int8_linear with this scratch and threshold > 0
// found (waits for the stream): for reports and tests.
int64_t llm_int8_outlier_count(Context& ctx, const void* scratch, int64_t m, int64_t n, int64_t k);

// The GEMM and epilogue alone, for activations already quantized (bench "int8-gemm"):
// xq (M, k_pad) int8 with row_scale (M), c (M, n_pad) int32 scratch.
void int8_gemm_dequant(Context& ctx, const DeviceInt8Weight& w, const int8_t* xq, const float* row_scale,
                       const float* bias, int64_t m, int32_t* c, DType yt, void* y);

}  // namespace modelpress::kernels::cuda
