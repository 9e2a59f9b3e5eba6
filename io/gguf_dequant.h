// ggml tensor types as GGUF files store them: ids, names, block sizes, and dequantization to
// f32 for the types we can read. Block layouts follow ggml's ggml-common.h (block_q4_0 ...)
// and the reference dequantize_row_* functions in ggml-quants.c.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace modelpress {

// The ggml_type ids used in GGUF tensor infos (ggml.h). Ids 4, 5, 31-33 and 36-38 were
// removed from ggml and are treated as unknown.
namespace ggml_type {
inline constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
                          Q8_1 = 9, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14,
                          Q8_K = 15, IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19,
                          IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25,
                          I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34,
                          TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42;
}  // namespace ggml_type

struct GgmlTypeTraits {
  uint32_t block_elems;  // elements per block (1 for plain types, 256 for K-quants)
  uint32_t block_bytes;  // bytes per block
  bool dequantizable;    // ggml_dequantize() handles it
};

std::string ggml_type_name(uint32_t type);                     // "Q4_0"; "type 99" if unknown
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type);  // nullopt for unknown ids

// Dequantizes n elements (a multiple of the block size) of `type` at `src` (any alignment,
// little-endian) into dst. Throws Error for unknown or non-dequantizable types and for an n
// that is not a whole number of blocks.
void ggml_dequantize(uint32_t type, const std::byte* src, float* dst, int64_t n);

}  // namespace modelpress
