// Tensor: a dtype, a row-major shape and the bytes, either owned or a view into a
// memory-mapped file. Views are read-only and may be unaligned (safetensors only promises
// 8-byte alignment of the data section); element access goes through memcpy-based helpers
// such as to_f32().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace modelpress {

class MappedFile;

// Where a view's bytes lie in a file, so a writer can copy them in the kernel
// (copy_file_range) instead of through user space.
struct FileSpan {
  const MappedFile* file;
  uint64_t offset;
};

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
  // The same, for bytes that lie unchanged at `span` in a mapped file kept alive by `owner`.
  static Tensor file_view(DType dtype, Shape shape, const std::byte* data, std::shared_ptr<const void> owner,
                          FileSpan span);
  // An owned tensor of `dtype` holding `values` converted from f32 (float dtypes only).
  static Tensor from_f32(std::span<const float> values, DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  const std::byte* data() const { return data_; }
  bool is_view() const { return !writable_; }
  // Set for views straight out of a file (see file_view).
  const std::optional<FileSpan>& file_span() const { return file_span_; }
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
  std::optional<FileSpan> file_span_;
};

}  // namespace modelpress
