// The CUDA side of run_linear (kernels/packed_linear.h), on host pointers: the layer's weight
// and x are copied to the device, the format's kernels run, y comes back in host memory.
//
// The weight is uploaded on every call. That keeps run_linear's contract (host spans, nothing
// cached behind the caller's back, no stale copy when a host buffer is freed and its address
// reused by the next layer), and makes it right for checking (`modelpress validate --backend
// cuda`), but its wall time includes the PCIe transfer. `modelpress bench --backend cuda`
// times the kernels on device-resident operands instead (CUDA events).
//
// Numerics: x is quantized from f32 directly (W8A8, LLM.int8: the CPU's q bit for bit); the
// 16-bit parts (the LLM.int8 outlier product, W4A16's activations, the dense baseline) run in
// f16 with f32 accumulation; every output is written in f32.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/packed_linear.h"

namespace modelpress::kernels::cuda {

// Whether the CUDA backend runs this (layout-checked) layer here: a usable device and a format
// with CUDA kernels. The reason in `why` when not.
bool cuda_linear_supported(const PackedLinear& layer, std::string* why);
// y (M, N) = x (M, K) W^T + b on the GPU; synchronous (y is valid on return).
void cuda_run_linear(const PackedLinear& layer, const float* x, int64_t m, float* y);

}  // namespace modelpress::kernels::cuda
