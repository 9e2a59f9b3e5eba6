// Element types of checkpoint tensors, named as safetensors names them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace modelpress {

enum class DType : uint8_t {
  F64, F32, F16, BF16, F8_E4M3, F8_E5M2,
  I64, I32, I16, I8,
  U64, U32, U16, U8,
  BOOL,
};

size_t dtype_size(DType t);                   // bytes per element
std::string_view dtype_name(DType t);         // "F32", "BF16", ... as in safetensors headers
std::optional<DType> parse_dtype(std::string_view name);
bool dtype_is_float(DType t);                 // F64 .. F8_E5M2

}  // namespace modelpress
