// W8A8 and LLM.int8 linear layers: y (M, N) = x (M, K) W^T + b with W int8 per output row.
//
//   1. x is quantized per row (activation_quant.h); with threshold > 0 its outlier columns
//      are found in the same pass and zeroed in q.
//   2. C_i32 (M, N) = q_x . q_W^T (int8_gemm.h), exact.
//   3. y = C * row_scale[m] * w.scale[n] + bias[n]                  (dequantized product)
//        + x[:, outliers] . W[:, outliers]^T in f32                  (the 16-bit side)
//      where an outlier weight column is the layer's fp16 column when Fp16Columns lists it
//      (the paper's mode), else the int8 column dequantized, q * scale (bitsandbytes' mode).
// W8A8 is the same with threshold 0: no outliers (a W8A8 layer's threshold and fp16 columns
// are ignored, whatever they hold).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/packed_linear.h"

namespace modelpress::kernels {

// Scratch both variants need for M rows (int8 x, row scales, column flags and list, C_i32).
size_t llm_int8_workspace_bytes(int64_t m, int64_t n, int64_t k);

// Layer formats W8A8 and LlmInt8 (layer.int8, layer.threshold, layer.fp16_columns, layer.bias).
// The reference: reference quantizer, reference GEMM, plain loops.
void llm_int8_linear_ref(const PackedLinear& layer, const float* x, int64_t m, float* y, void* workspace);
// The fast path: fast quantizer and GEMM (each falls back, with a log line, where the CPU
// cannot run it), OpenMP epilogue and outlier product.
void llm_int8_linear(const PackedLinear& layer, const float* x, int64_t m, float* y, void* workspace);

}  // namespace modelpress::kernels
