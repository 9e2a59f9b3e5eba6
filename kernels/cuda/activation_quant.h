// Per-row dynamic int8 quantization of activations on the GPU, with LLM.int8 outlier-column
// extraction: the rule of kernels/activation_quant.h exactly (same q bits, same row scales;
// tests compare bit for bit on f32 input).
//
// One pass over x: a block per row reads the row once to find its absmax (outlier elements
// left out) and to flag outlier columns, then quantizes the same row, which the first sweep
// has just brought into L1/L2. The only cross-row step (q = 0 in every outlier column, in all
// rows) touches M x (outlier count) bytes of q and runs in llm_int8.cu's outlier product.
#pragma once
#include <cstdint>

#include "kernels/cuda/blaslt.h"

namespace modelpress::kernels::cuda {

// x (M, K) of type xt (F16, BF16 or F32), row-major, contiguous. Writes q (M, ldq) with zeros in
// columns K..ldq-1 (the GEMM's padding), row_scale (M) = absmax / 127, and sets col_flags[k] = 1
// for every outlier column (col_flags must be zeroed by the caller; threshold 0: no outliers,
// col_flags untouched and may be null).
void quantize_rows(Context& ctx, DType xt, const void* x, int64_t m, int64_t k, float threshold, int8_t* q,
                   int64_t ldq, float* row_scale, uint8_t* col_flags);

// Lists the flagged columns in ascending order into cols (capacity K) and their number into
// *count (device memory). One block: K flags are read once.
void compact_outlier_columns(Context& ctx, const uint8_t* col_flags, int64_t k, int32_t* cols, int32_t* count);

}  // namespace modelpress::kernels::cuda
