// W4A16: y (M, N) = x (M, K) W^T + b with W a group-wise 4-bit weight (W4Weight in
// packed_linear.h), dequantized on the fly: no path materializes the dequantized weight.
//   w[n][k] = (u[n][k] - zero[n][k / G]) * scale[n][k / G],  zero = 8 when symmetric.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/packed_linear.h"

namespace modelpress::kernels {

// The reference: one dequantized weight at a time, double accumulation. No workspace.
void w4a16_linear_ref(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y);

// Whether the AVX2 path takes this weight on this CPU (AVX2 + FMA, group a multiple of 32);
// the reason in `why` when not.
bool w4a16_fast_supported(const W4Weight& w, std::string* why);
// Scratch w4a16_linear needs for M rows (x rearranged to the unpacking order, group sums).
size_t w4a16_workspace_bytes(const W4Weight& w, int64_t m);
// Fast path when supported, else the reference with a log line.
void w4a16_linear(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y, void* workspace);
// The AVX2 path itself (w4a16_fast_supported must hold), for tests. M < 8 is a GEMV: the
// weight streams from memory once, 16 rows at a time, each block meeting the rows of x 4 at
// a time from cache; larger M dequantizes cache-sized weight tiles and runs an FMA
// register-tiled GEMM on them.
void w4a16_linear_avx2(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y, void* workspace);
// Whether the AVX-512 GEMV takes this call on this CPU: AVX-512 F/BW/VL/DQ, M < 8, group a
// multiple of 128.
bool w4a16_avx512_supported(const W4Weight& w, int64_t m);
// The AVX-512 GEMV (w4a16_avx512.cpp: a per-group 16-entry table of dequantized weights in
// one zmm, one vpermps per 16 weights); calls the AVX2 path where w4a16_avx512_supported
// does not hold. Same workspace as the AVX2 path. For tests; w4a16_linear picks it by itself.
void w4a16_linear_avx512(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y, void* workspace);

}  // namespace modelpress::kernels
