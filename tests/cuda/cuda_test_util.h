// Helpers for the CUDA kernel tests: skip without a GPU, device copies of host vectors,
// poisoned outputs, and host-side 16-bit conversions to build exactly representable inputs.
#pragma once
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/device_info.h"
#include "kernels/half.h"
#include "tests/kernels/kernel_test_util.h"

namespace modelpress::kernels::cuda::testing {

// Every CUDA test fixture derives from this: no usable GPU -> the test is skipped, with why.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (device_count(&why) == 0) GTEST_SKIP() << "no usable CUDA device: " << why;
  }
  Context& ctx() { return context(); }
};

// A device copy of a host vector; `poisoned` is a buffer filled with a byte pattern so that
// any element a kernel fails to write is caught (0xFF: NaN for f16, bf16 and f32).
// Both end with a device-wide synchronization: cudaMemcpy and cudaMemset run on the legacy
// default stream, which the backend's non-blocking stream does not wait for (a pageable
// cudaMemcpy may even return before its DMA lands), so without it a kernel could read the
// buffer before it is filled.
template <class T>
DeviceBuffer to_device(const std::vector<T>& v) {
  DeviceBuffer b(v.empty() ? 1 : v.size() * sizeof(T));
  if (!v.empty()) MP_CUDA_CHECK(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  MP_CUDA_CHECK(cudaDeviceSynchronize());
  return b;
}
inline void poison(DeviceBuffer& b, int byte = 0xFF) {
  MP_CUDA_CHECK(cudaMemset(b.data(), byte, b.bytes()));
  MP_CUDA_CHECK(cudaDeviceSynchronize());
}
inline DeviceBuffer poisoned(size_t bytes, int byte = 0xFF) {
  DeviceBuffer b(bytes ? bytes : 1);
  poison(b, byte);
  return b;
}
// Waits for the stream (reporting asynchronous faults), then copies back.
template <class T>
std::vector<T> to_host(Context& ctx, const DeviceBuffer& b, size_t count) {
  ctx.synchronize();
  std::vector<T> v(count);
  if (count) MP_CUDA_CHECK(cudaMemcpy(v.data(), b.data(), count * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

inline uint16_t f32_to_bf16_bits(float f) {  // round to nearest even (finite inputs)
  const uint32_t u = std::bit_cast<uint32_t>(f);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_bits_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// x rounded to the 16-bit type (bf16 or f16): the bits for the device and the f32 values the
// CPU reference sees, so both compute on identical inputs.
struct Rounded16 {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
inline Rounded16 round16(const std::vector<float>& x, bool bf16) {
  Rounded16 r;
  r.bits.resize(x.size());
  r.values.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    r.bits[i] = bf16 ? f32_to_bf16_bits(x[i]) : kernels::testing::f32_to_f16_bits(x[i]);
    r.values[i] = bf16 ? bf16_bits_to_f32(r.bits[i]) : f16_bits_to_f32(r.bits[i]);
  }
  return r;
}
inline std::vector<float> from16(const std::vector<uint16_t>& bits, bool bf16) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = bf16 ? bf16_bits_to_f32(bits[i]) : f16_bits_to_f32(bits[i]);
  return v;
}

// |got - want| <= out_rel * |want| + mag_rel * magnitude + abs for every element (NaN fails).
inline ::testing::AssertionResult close(const std::vector<float>& got, const std::vector<double>& want,
                                        const std::vector<double>& magnitude, double out_rel, double mag_rel,
                                        double abs = 1e-6) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double bound = out_rel * std::fabs(want[i]) + mag_rel * magnitude[i] + abs;
    if (!(err <= bound))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << ", error " << err << " > bound " << bound;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace modelpress::kernels::cuda::testing
