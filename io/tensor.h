// Tensor: a dtype, a row-major shape and the bytes, either owned or a view into a
// memory-mapped file. Views are read-only and may be unaligned (safetensors only promises
// 8-byte alignment of the data section); element access goes through memcpy-based helpers
// such as to_f32().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace modelpress {

using Shape = std::vector<int64_t>;

// Number of elements of `shape`; throws Error on a negative dimension or overflow.
int64_t shape_numel(const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "[4096, 11008]"

class Tensor {
 public:
  Tensor() = default;

  // A zero-filled tensor that owns its bytes.
  static Tensor zeros(DType dtype, Shape shape);
  // A view of `nbytes` bytes at `data`, kept valid by `owner` (for example the mapped
  // file, or a lease that releases the pages when the last view dies).
  static Tensor view(DType dtype, Shape shape, const std::byte* data, std::shared_ptr<const void> owner);
  // An owned tensor of `dtype` holding `values` converted from f32 (float dtypes only).
  static Tensor from_f32(std::span<const float> values, DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  const std::byte* data() const { return data_; }
  bool is_view() const { return !writable_; }
  // Bytes to fill in; throws Error for a read-only view.
  std::byte* mutable_data();

  // Every element as f32 (exact for all but F64, I64, I32, U32, U64 beyond 2^24).
  std::vector<float> to_f32() const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  int64_t numel_ = 0;
  const std::byte* data_ = nullptr;
  bool writable_ = false;
  std::shared_ptr<const void> owner_;
};

}  // namespace modelpress
