// LUT (palettized) linear: y (M, N) = x (M, K) W^T + b with W a LutWeight
// (packed_linear.h): b-bit indices into a table of centroids per group of output rows,
// optionally times a per-row scale. No path materializes the whole dequantized weight.
//   w[n][k] = lut[g(n)][idx[n][k]] * row_scale[n]
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/packed_linear.h"

namespace modelpress::kernels {

// Index k of row n (the bit stream layout of LutWeight), for references and tests.
inline int lut_index(const LutWeight& w, int64_t n, int64_t k) {
  const uint8_t* row = w.indices + n * lut_row_bytes(w.k, w.bits);
  const int64_t bit = k * w.bits;
  // Two bytes cover any index of <= 8 bits that straddles a byte boundary.
  unsigned v = row[bit / 8];
  if ((bit % 8) + w.bits > 8) v |= static_cast<unsigned>(row[bit / 8 + 1]) << 8;
  return static_cast<int>((v >> (bit % 8)) & ((1u << w.bits) - 1u));
}

// Layout checks (bits 1..8, group_rows dividing N, pointers present); the reason in `why`.
bool lut_layout_ok(const LutWeight& w, std::string* why);

// The reference: one looked-up weight at a time, double accumulation. No workspace.
void lut_linear_ref(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y);

// Whether the AVX2 path takes this weight on this CPU (AVX2 + FMA); the reason when not.
bool lut_fast_supported(const LutWeight& w, std::string* why);
// Fast path when supported, else the reference with a log line. Needs no workspace.
void lut_linear(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y);
// The AVX2 path itself (lut_fast_supported must hold), for tests and benchmarks.
// M < 8: GEMV, the table in registers, indices unpacked 8 at a time straight from the
// packed stream; M >= 8: cache-sized tiles of the weight are looked up once into a buffer
// and reused by every row of x.
void lut_linear_avx2(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y);
// Rows [n0, n1) of the weight as f32 (times the row scales) into out ((n1 - n0) x K,
// row-major), with the AVX2 lookups (lut_fast_supported must hold). OpenMP threads.
void lut_dequantize_rows_avx2(const LutWeight& w, int64_t n0, int64_t n1, float* out);
// M >= kLutGemmRows: the weight is looked up a block of rows at a time (about 8 MiB of f32,
// never all of it) and each block goes through the dense f32 GEMM (dense_f32.h), so a
// palettized layer costs the dense GEMM plus one pass of lookups; below, the lookup GEMV.
constexpr int64_t kLutGemmRows = 16;
void lut_linear_dequant_gemm(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y);
// Whether the AVX-512 GEMV takes this call on this CPU: AVX-512 F/BW/VL/DQ, M < 8, 1..4 bits.
bool lut_avx512_supported(const LutWeight& w, int64_t m);
// The AVX-512 GEMV (lut_linear_avx512.cpp: the 16-entry table in one zmm, one vpermps per 16
// weights); calls the AVX2 path where lut_avx512_supported does not hold. For tests and
// benchmarks; lut_linear picks it by itself.
void lut_linear_avx512(const LutWeight& w, const float* bias, const float* x, int64_t m, float* y);

}  // namespace modelpress::kernels
