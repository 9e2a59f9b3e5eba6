// Round-to-nearest (RTN) integer quantization and the bit packings checkpoints use.
//
// A b-bit code q is a signed integer (int8 storage) in a grid [lo, hi]; a value is
//   symmetric:   w ~= q * scale
//   asymmetric:  w ~= (q - zero) * scale        (zero: an integer in the same grid)
// with one (scale, zero) per tensor, per output row ("channel") or per group of `group_size`
// consecutive input columns of a row. Rounding is to nearest, ties to even (as torch.round,
// which bitsandbytes and compressed-tensors use), so a value is never off by more than half
// a step: |w - dequant(q)| <= scale / 2 (see docs/QUANTIZATION.md for the proof sketch and
// the grid choices).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "io/dtype.h"

namespace modelpress::quant {

enum class Granularity { Tensor, Channel, Group };

// Which integers a symmetric quantizer uses.
//   Restricted: [-(2^(b-1)-1), 2^(b-1)-1], scale = absmax / (2^(b-1)-1): the grid is
//               symmetric and the row absmax lands exactly on the top code (bitsandbytes'
//               LLM.int8: SCB = absmax, scale = SCB / 127).
//   Full:       [-2^(b-1), 2^(b-1)-1], scale = absmax / (2^(b-1) - 1/2): compressed-tensors'
//               min-max observer (scale = absmax / (range / 2)); one more code, and a step
//               2^(b-1)/(2^(b-1)-1/2) smaller (7% at 4 bits), at the price of +absmax
//               rounding to the clamped top code (still within half a step).
// Asymmetric quantizers always use the full grid.
enum class SymmetricGrid { Restricted, Full };

struct RtnOptions {
  int bits = 8;  // 2..8
  bool symmetric = true;
  Granularity granularity = Granularity::Channel;
  int64_t group_size = 128;  // Group: input columns per scale; must divide K
  SymmetricGrid grid = SymmetricGrid::Restricted;
  // The dtype scales are stored in. Each scale is rounded *up* to a value of this dtype
  // before the codes are computed, so the codes match the stored scale and the half-step
  // bound holds for the scale a loader reads. F32, F16 or BF16.
  DType scale_dtype = DType::F32;
  // Least-squares parameters (search_params) instead of the range rule: each group's scale
  // (and zero point) chosen for the least squared error of its values. Values may then be
  // clipped, so the half-step bound no longer holds; the squared error is never above the
  // range rule's.
  bool scale_search = false;
};

struct IntGrid {
  int lo, hi;
};
IntGrid int_grid(int bits, bool symmetric, SymmetricGrid grid);

// A quantized (N, K) matrix.
struct RtnWeight {
  int64_t n = 0, k = 0;
  int bits = 8;
  Granularity granularity = Granularity::Channel;
  int64_t group = 0;           // input columns sharing a scale (K unless Group)
  std::vector<int8_t> q;       // (N, K) codes in the grid
  std::vector<float> scales;   // Tensor: (1); Channel: (N); Group: (N, K/group)
  std::vector<int8_t> zeros;   // same layout as scales; empty when symmetric

  int64_t groups_per_row() const { return granularity == Granularity::Tensor ? 1 : k / group; }
  // Index into scales / zeros of element (row, col).
  int64_t param_index(int64_t row, int64_t col) const {
    return granularity == Granularity::Tensor ? 0 : row * groups_per_row() + col / group;
  }
};

// Quantizes w (N, K) row-major. Throws Error for bits outside 2..8, a group size that does
// not divide K, a scale dtype other than F32/F16/BF16, or a non-finite value (naming its
// index). A group (or row, or tensor) with no nonzero value gets q = 0, zero 0 (symmetric)
// and the scale dtype's machine epsilon as scale (compressed-tensors does the same), never
// 0, NaN or Inf.
RtnWeight quantize_rtn(std::span<const float> w, int64_t n, int64_t k, const RtnOptions& options);
// (q - zero) * scale for every element, (N, K).
std::vector<float> dequantize_rtn(const RtnWeight& q);

// The building blocks, exposed for the passes (which run them row by row, in parallel).
//
// x rounded to the nearest integer, ties to even, for |x| < 2^22 (adding and subtracting
// 1.5 * 2^23 leaves the float's integer part rounded in the default rounding mode; unlike
// std::nearbyint this compiles to two vector adds on any x86-64).
inline float round_half_even(float x) {
  constexpr float magic = 12582912.0f;  // 1.5 * 2^23
  return (x + magic) - magic;
}
// The smallest value of `dtype` that is >= s (s >= 0, finite); F32 returns s. Throws Error
// for a dtype other than F32/F16/BF16 or when s is past the dtype's largest finite value.
float round_scale_up(float s, DType dtype);
// Machine epsilon of a scale dtype (2^-23, 2^-10, 2^-7): the scale of an all-zero group.
float scale_epsilon(DType dtype);

// Scale and zero point of one group from its minimum and maximum (finite).
struct GroupParams {
  float scale;
  int zero;  // 0 when symmetric
};
GroupParams choose_params(float min_value, float max_value, const RtnOptions& options);
// Scale and zero point of one group for the least squared error sum (x - dequant(q))^2, the
// codes q being x rounded to nearest in the grid (for a fixed scale and zero the best codes).
// As llama.cpp's block quantizers do, it tries a grid of clipping ratios and refits each
// candidate's scale (and, asymmetric, its offset) in closed form for the codes it gives;
// the best candidate, its scale rounded to nearest in the scale dtype, is kept only if its
// error is below the range rule's (choose_params over [min, max], which is returned
// otherwise). min_value and max_value: the group's minimum and maximum. Scales stay > 0
// (compressed-tensors readers, modelpress's own included, refuse negative scales; a
// signed scale is what lets llama.cpp's Q4_0 use the -8 code on either side).
GroupParams search_params(const float* x, int64_t count, float min_value, float max_value, const RtnOptions& options);
// sum (x - (q(x) - zero) * scale)^2 with q(x) the nearest code in the grid: the error of
// quantizing a group with these parameters (double accumulation).
double group_error(const float* x, int64_t count, GroupParams params, IntGrid grid);
// q[i] = clamp(round_half_even(w[i] / scale) + zero, grid).
void quantize_values(const float* w, int64_t count, GroupParams params, IntGrid grid, int8_t* q);

// ---- Packing -------------------------------------------------------------------------
//
// int8 codes are stored as they are (bitsandbytes' CB, compressed-tensors int-quantized).
//
// 4-bit, two per byte, low nibble first (the kernels' W4Weight layout): the unsigned code
// u = q + 8 of element c of a row is in byte c / 2, in the low nibble when c is even. Rows
// of odd length are padded with a zero high nibble. (rows, cols) -> (rows, ceil(cols / 2)).
std::vector<uint8_t> pack_nibbles(std::span<const int8_t> q, int64_t rows, int64_t cols);
std::vector<int8_t> unpack_nibbles(std::span<const uint8_t> packed, int64_t rows, int64_t cols);

// compressed-tensors' pack_to_int32 (compressors/pack_quantized/helpers.py): each row is a
// little-endian bit stream of int32 words; element c occupies bits [c*b, c*b + b) as the
// unsigned code q + 2^(b-1), so 32/b codes fill a word exactly for b in {1, 2, 4, 8} and
// codes straddle words otherwise (the current dense layout). Bits past the last element
// are 0. (rows, cols) -> (rows, ceil(cols * b / 32)). For b = 4 the bytes equal
// pack_nibbles' when cols is a multiple of 8.
std::vector<int32_t> pack_int32(std::span<const int8_t> q, int64_t rows, int64_t cols, int bits);
std::vector<int8_t> unpack_int32(std::span<const int32_t> packed, int64_t rows, int64_t cols, int bits);
// The same along dimension 0 (compressed-tensors packs asymmetric zero points this way):
// column j of the (rows, cols) input becomes column j of a (ceil(rows * b / 32), cols) output.
std::vector<int32_t> pack_int32_dim0(std::span<const int8_t> q, int64_t rows, int64_t cols, int bits);
std::vector<int8_t> unpack_int32_dim0(std::span<const int32_t> packed, int64_t rows, int64_t cols, int bits);
inline int64_t packed_int32_words(int64_t count, int bits) { return (count * bits + 31) / 32; }

}  // namespace modelpress::quant
