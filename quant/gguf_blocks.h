// The GGUF block formats modelpress writes (ggml-common.h layouts), 32 weights per block:
//   Q8_0: f16 d, 32 int8 q               x = d * q
//   Q4_0: f16 d, 16 bytes of nibbles     x = d * (u - 8)     u: element j low nibble of byte
//   Q4_1: f16 d, f16 m, 16 bytes         x = d * u + m           j, element j + 16 its high one
// Two ways to choose each block's parameters:
//   search off: ggml's reference quantization (quantize_row_q*_ref, which gguf-py reimplements
//     and llama-quantize runs without an importance matrix), byte for byte:
//       Q8_0: d = absmax / 127, q = roundf(x / d)
//       Q4_0: d = m / -8 with m the value of largest magnitude, u = min(15, trunc(x / d + 8.5))
//       Q4_1: d = (max - min) / 15, m = min, u = min(15, trunc((x - min) / d + 0.5))
//   search on: the least squared error parameters, found as quant/rtn.h's search_params finds
//     them (clipping ratios, least-squares refits), Q4_0 trying both signs of d (the format's
//     scale is signed: its -8 code can serve either end), Q4_1 refitting d and m as reals;
//     the codes are then the nearest for the stored f16 parameters, and a block keeps the
//     reference encoding whenever that decodes with less error. Never worse than the
//     reference, block by block.
#pragma once
#include <cstddef>
#include <cstdint>

namespace modelpress::quant {

// ggml type ids this file writes (and F16 / F32 copies).
bool gguf_quantizable_type(uint32_t type);
// Quantizes n values (a multiple of 32) of a row into blocks of `type` at `out`.
// `importance` (n values, or nullptr): the search's weight per element, the layer's
// diag(X^T X) per input column from calibration (llama.cpp's importance matrix plays this
// role): the searched blocks then minimize sum h (x - dequant)^2, the diagonal estimate of
// the layer's output error, instead of the weight error.
void quantize_gguf_blocks(uint32_t type, const float* x, int64_t n, bool search, std::byte* out,
                          const float* importance = nullptr);

}  // namespace modelpress::quant
