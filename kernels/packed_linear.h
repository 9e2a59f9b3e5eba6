// Packed weight formats and the one entry point that runs a packed linear layer,
// y = x W^T + b, on a backend. Layer 1: raw pointers and shapes only, no project types.
// Every format here has a CPU reference (kernels/*_ref.cpp), a fast CPU path and, where it
// pays, a CUDA path; tests compare each fast path with the reference.
//
// Shapes: x (M, K) row-major f32, y (M, N) row-major f32, W (N, K) ("out, in"), as
// PyTorch's nn.Linear stores it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace modelpress::kernels {

enum class Backend { Cpu, Cuda };
const char* backend_name(Backend b);

// int8 weight with one scale per output row (LLM.int8 / W8A8):
//   w[n][k] ~= q[n][k] * scale[n]
// bitsandbytes stores SCB = row absmax, so scale = SCB / 127; compressed-tensors stores
// weight_scale = scale directly.
struct Int8Weight {
  const int8_t* q = nullptr;     // (N, K) row-major
  const float* scale = nullptr;  // (N)
  int64_t n = 0, k = 0;
};

// Weight columns kept in 16-bit beside the int8 weight (the LLM.int8 paper's outlier
// columns, known from calibration). Column cols[c] of W is w_f16[c * N + n], f16 bits.
struct Fp16Columns {
  const int32_t* cols = nullptr;  // ascending column indices
  const uint16_t* w_f16 = nullptr;  // (count, N)
  int64_t count = 0;
};

// Group-wise 4-bit weight (W4A16), groups of `group` along K:
//   w[n][k] = (u[n][k] - zero[n][k / group]) * scale[n][k / group]
// u in [0, 15] is stored two per byte, low nibble first: element k of row n is in byte
// n * K/2 + k/2, the low nibble when k is even. Symmetric quantization has zeros == null
// and zero point 8 (u = q + 8 for signed q in [-8, 7], the compressed-tensors convention).
struct W4Weight {
  const uint8_t* packed = nullptr;  // (N, K/2)
  const float* scales = nullptr;    // (N, K/group)
  const uint8_t* zeros = nullptr;   // (N, K/group), or null for symmetric
  int64_t n = 0, k = 0, group = 0;  // K % group == 0, group even
};

// Palettized weight (eDKM / k-means weight clustering): every weight is an index into a
// lookup table of 2^bits f32 centroids, one table per group of `group_rows` consecutive
// output rows (group_rows = N: one table for the tensor), optionally times a per-row scale:
//   w[n][k] = lut[(n / group_rows) * 2^bits + idx[n][k]] * (row_scale ? row_scale[n] : 1)
// Indices: each row is its own little-endian bit stream of lut_row_bytes(K, bits) bytes;
// index k occupies bits [k * bits, k * bits + bits) (LSB first, as Core ML packs them), so
// a row starts on a byte and 8 indices are exactly `bits` bytes. Bits past K are 0.
struct LutWeight {
  const uint8_t* indices = nullptr;  // (N, lut_row_bytes(K, bits))
  const float* lut = nullptr;        // (N / group_rows, 2^bits)
  const float* row_scale = nullptr;  // (N), or null
  int64_t n = 0, k = 0, group_rows = 0;
  int bits = 0;  // 1..8
};
inline int64_t lut_row_bytes(int64_t k, int bits) { return (k * bits + 7) / 8; }

enum class LinearFormat {
  DenseF32,  // dense f32 weight: the baseline every other format is measured against
  W8A8,      // int8 weight x int8 activations quantized per row (dynamic, symmetric)
  LlmInt8,   // W8A8 plus LLM.int8 decomposition of outlier activation columns
  W4A16,     // 4-bit weight, f32 activations, dequantized on the fly
  Lut,       // palettized weight (LutWeight), f32 activations, looked up on the fly
};
const char* format_name(LinearFormat f);

struct PackedLinear {
  LinearFormat format = LinearFormat::DenseF32;
  int64_t n = 0, k = 0;
  const float* dense = nullptr;  // DenseF32: (N, K)
  Int8Weight int8;               // W8A8, LlmInt8
  W4Weight w4;                   // W4A16
  LutWeight lut;                 // Lut
  // LlmInt8: a column of x holding any |x| >= threshold is an outlier column: it is left out
  // of the int8 product (and of the row absmax) and multiplied in floating point. 0 turns
  // the decomposition off (then LlmInt8 == W8A8). Precisely, as bitsandbytes: the row absmax
  // leaves out the elements >= threshold; kernels/activation_quant.h has the full rule.
  float threshold = 6.0f;
  // LlmInt8: 16-bit weights for outlier columns (paper mode). Outlier columns not listed
  // here use the int8 weight dequantized, as bitsandbytes does.
  Fp16Columns fp16_columns;
  const float* bias = nullptr;   // (N) or null
};

// "Can it run?" before running (CUTLASS can_implement): false with the reason in `why`.
bool linear_supported(const PackedLinear& layer, Backend backend, std::string* why);
// Bytes of scratch memory run_linear needs for M rows; the caller owns it.
size_t linear_workspace_bytes(const PackedLinear& layer, int64_t m);
// y = x W^T + b with the layer's kernel. `workspace` holds linear_workspace_bytes(layer, m)
// bytes (any alignment is fine: kernels align inside it).
void run_linear(const PackedLinear& layer, const float* x, int64_t m, float* y, Backend backend, void* workspace);

}  // namespace modelpress::kernels
