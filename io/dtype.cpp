#include "io/dtype.h"

#include <array>

namespace modelpress {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};

// The single table of dtypes: order matches the enum.
constexpr std::array<DTypeInfo, 15> kDTypes{{
    {DType::F64, "F64", 8},       {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},     {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},       {DType::I32, "I32", 4},         {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},         {DType::U64, "U64", 8},         {DType::U32, "U32", 4},
    {DType::U16, "U16", 2},       {DType::U8, "U8", 1},           {DType::BOOL, "BOOL", 1},
}};

const DTypeInfo& info(DType t) { return kDTypes[static_cast<size_t>(t)]; }

}  // namespace

size_t dtype_size(DType t) { return info(t).size; }
std::string_view dtype_name(DType t) { return info(t).name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.type;
  return std::nullopt;
}

bool dtype_is_float(DType t) {
  switch (t) {
    case DType::F64: case DType::F32: case DType::F16: case DType::BF16:
    case DType::F8_E4M3: case DType::F8_E5M2:
      return true;
    default:
      return false;
  }
}

}  // namespace modelpress
