// Owning device memory (RAII) and the few copies the CUDA backend needs. Plain C++: usable from
// .cpp files (bench, tests) as well as .cu files.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace modelpress::kernels::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { allocate(bytes); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  // Grows to at least `bytes` (contents are not kept: scratch memory). cudaMalloc is slow and
  // synchronizes the device, so callers keep buffers and let them grow rather than reallocate.
  void reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    release();
    allocate(bytes);
  }

  void* data() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void allocate(size_t bytes) {
    if (bytes == 0) return;
    MP_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    bytes_ = bytes;
  }
  void release() noexcept {
    // A destructor must not throw; a failing cudaFree here means the context is already
    // broken, which the next checked call reports.
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Hands out 256-byte aligned pieces of one buffer (cuBLASLt's preferred alignment, and more
// than any vector load needs). The same carver sizes the buffer (with a null base) and carves
// it, so the two cannot disagree.
class DeviceCarver {
 public:
  static constexpr size_t kAlign = 256;
  explicit DeviceCarver(void* base) : base_(static_cast<unsigned char*>(base)) {}
  template <class T>
  T* take(int64_t count) {
    offset_ = (offset_ + kAlign - 1) / kAlign * kAlign;
    T* p = base_ ? reinterpret_cast<T*>(base_ + offset_) : nullptr;
    offset_ += static_cast<size_t>(count > 0 ? count : 0) * sizeof(T);
    return p;
  }
  size_t bytes() const { return offset_ + kAlign; }

 private:
  unsigned char* base_;
  size_t offset_ = 0;
};

// A 2-D copy between host and device, row pitch in bytes on each side; the rest of a wider
// destination row is left as it is (callers zero padded buffers first).
inline void copy_rows_to_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                                size_t rows, cudaStream_t stream) {
  if (rows == 0 || row_bytes == 0) return;
  MP_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, cudaMemcpyHostToDevice, stream));
}

}  // namespace modelpress::kernels::cuda
