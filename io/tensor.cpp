#include "io/tensor.h"

#include <limits>

#include "io/error.h"
#include "io/float_convert.h"

namespace modelpress {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("negative dimension in shape " + shape_to_string(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw Error("shape " + shape_to_string(shape) + " has too many elements");
    n *= d;
  }
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  auto bytes = std::make_shared<std::vector<std::byte>>(t.nbytes());
  t.data_ = bytes->data();
  t.writable_ = true;
  t.owner_ = std::move(bytes);
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const std::byte* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::file_view(DType dtype, Shape shape, const std::byte* data, std::shared_ptr<const void> owner,
                         FileSpan span) {
  Tensor t = view(dtype, std::move(shape), data, std::move(owner));
  t.file_span_ = span;
  return t;
}

Tensor Tensor::from_f32(std::span<const float> values, DType dtype, Shape shape) {
  Tensor t = zeros(dtype, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw Error("from_f32: " + std::to_string(values.size()) + " values for shape " +
                shape_to_string(t.shape()));
  convert_from_f32(dtype, values.data(), t.mutable_data(), values.size());
  return t;
}

std::byte* Tensor::mutable_data() {
  if (!writable_) throw Error("tensor is a read-only view of a file; copy it before writing");
  return const_cast<std::byte*>(data_);
}

std::vector<float> Tensor::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel_));
  convert_to_f32(dtype_, data_, out.data(), out.size());
  return out;
}

}  // namespace modelpress
