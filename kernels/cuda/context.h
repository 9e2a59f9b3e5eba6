// Per-thread CUDA state for the backend: the device's stream, a cuBLASLt handle and its
// workspace, and grow-only scratch buffers reused across calls (cudaMalloc synchronizes the
// device, so nothing on the per-call path allocates once the buffers are large enough).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "kernels/cuda/device_buffer.h"

namespace modelpress::kernels::cuda {

struct Context {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer lt_workspace;  // cuBLASLt's scratch (kLtWorkspaceBytes)
  DeviceBuffer weights;       // run_linear: the layer's weight, uploaded per call
  DeviceBuffer scratch;       // run_linear: activations, quantized x, int32 product, outputs
  DeviceBuffer tile;          // W4A16 for M > 16: one dequantized weight tile
  int sm_count = 0;
  size_t l2_bytes = 0;
  std::string device_name;

  // cuBLASLt picks among more (split-K, stream-K) algorithms with a workspace; 32 MiB is what
  // NVIDIA recommends for Hopper.
  static constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  void synchronize() const;
};

// This thread's context on device 0, created on first use. Throws CudaError (one line) when
// no device is usable.
Context& context();

}  // namespace modelpress::kernels::cuda
