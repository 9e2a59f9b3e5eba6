// cuBLASLt GEMMs in the project's row-major convention: Y (M, N) = X (M, K) . W (N, K)^T, with
// X, W and Y row-major and leading dimensions in elements.
//
// cuBLASLt is column-major. A row-major (R, C) matrix with leading dimension ld is the
// column-major (C, R) matrix with the same ld, so Y^T (N, M) = W (N, K) . X^T (K, M) is computed
// with A = W read as column-major (K, N) and TRANSA = T, B = X read as column-major (K, M) and
// TRANSB = N, D = Y read as column-major (N, M). That "TN" form is also the one layout cuBLASLt's
// int8 tensor-core (IMMA) kernels take with the default column order on Ampere and Hopper
// (the COL32 / COL4_4R2_8C orders are Turing/Ampere only and not supported on Hopper).
#pragma once
#include <cstdint>

#include "kernels/cuda/context.h"

namespace modelpress::kernels::cuda {

enum class DType { F16, BF16, F32 };
const char* dtype_name(DType t);
inline int dtype_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

// X, W in `ab` (F16 or BF16), Y in `out` (F16, BF16 or F32; a 16-bit Y must match `ab`);
// f32 accumulation (CUBLAS_COMPUTE_32F; no TF32 or 16-bit accumulation). Asynchronous on
// ctx.stream.
void gemm_16bit(Context& ctx, DType ab, DType out, const void* x, int64_t ldx, const void* w, int64_t ldw, void* y,
                int64_t ldy, int64_t m, int64_t n, int64_t k);

// C_i32 (M, N) = Xq (M, K) . Wq (N, K)^T, exact int32 (CUBLAS_COMPUTE_32I, alpha = 1, beta = 0).
// IMMA requirements, checked (CudaError otherwise): N, K, ldx, ldw and ldc multiples of 4 and
// every pointer 16-byte aligned. The CUDA linear path pads N and K to multiples of 16 with
// zeros, which leaves the product unchanged.
void gemm_int8(Context& ctx, const int8_t* xq, int64_t ldx, const int8_t* wq, int64_t ldw, int32_t* c, int64_t ldc,
               int64_t m, int64_t n, int64_t k);

}  // namespace modelpress::kernels::cuda
