// Carving typed, 64-byte aligned arrays out of a caller-owned workspace (convention 3: the
// caller owns memory; kernels align inside it). The same carver sizes the workspace (with a
// null base) and hands out the pointers, so the two can never disagree.
#pragma once
#include <cstddef>
#include <cstdint>

namespace modelpress::kernels {

class WorkspaceCarver {
 public:
  static constexpr size_t kAlign = 64;  // a cache line, and the widest vector load (zmm)

  explicit WorkspaceCarver(void* base) : base_(static_cast<unsigned char*>(base)) {}

  template <class T>
  T* take(int64_t count) {
    // Worst case for an unaligned base: kAlign - 1 bytes of padding before each array.
    used_ += kAlign - 1;
    unsigned char* p = nullptr;
    if (base_) {
      const auto addr = reinterpret_cast<uintptr_t>(base_ + offset_);
      const uintptr_t aligned = (addr + kAlign - 1) & ~static_cast<uintptr_t>(kAlign - 1);
      p = reinterpret_cast<unsigned char*>(aligned);
      offset_ = static_cast<size_t>(p - base_);
    }
    const size_t bytes = static_cast<size_t>(count > 0 ? count : 0) * sizeof(T);
    offset_ += bytes;
    used_ += bytes;
    return reinterpret_cast<T*>(p);
  }
  // Upper bound of the bytes taken so far, whatever the base's alignment.
  size_t bytes() const { return used_; }

 private:
  unsigned char* base_;
  size_t offset_ = 0;
  size_t used_ = 0;
};

}  // namespace modelpress::kernels
