// Status checks for every CUDA runtime, cuBLAS(Lt) call and kernel launch in kernels/cuda.
// Each failure throws CudaError with one line: "<file>:<line>: <call>: <library message>",
// which cli/ prints as it prints any error. Exit code 0 proves nothing on a GPU, so nothing
// in kernels/cuda may call the runtime without one of these.
//
//   MP_CUDA_CHECK(cudaMemcpyAsync(...));     // runtime calls
//   MP_CUBLAS_CHECK(cublasLtMatmul(...));    // cuBLAS / cuBLASLt calls
//   kernel<<<grid, block, smem, stream>>>(...);
//   MP_CUDA_CHECK_LAUNCH();                  // after EVERY launch: a bad configuration
//                                            // (grid, shared memory) is only reported here
//
// Usable from .cu and .cpp files alike (plain C++ apart from the CUDA headers).
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace modelpress::kernels::cuda {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// cuBLAS has no public error-string function before 11.4 and cuBLASLt reports cublasStatus_t,
// so both go through cublasGetStatusString (CUDA >= 11.4; this project needs 12+).
[[noreturn]] inline void throw_cuda_error(const char* file, int line, const char* call, const char* message) {
  std::string s = file;
  s += ":";
  s += std::to_string(line);
  s += ": ";
  s += call;
  s += ": ";
  s += message;
  throw CudaError(s);
}

inline void check_cuda(cudaError_t status, const char* file, int line, const char* call) {
  if (status != cudaSuccess) throw_cuda_error(file, line, call, cudaGetErrorString(status));
}

inline void check_cublas(cublasStatus_t status, const char* file, int line, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cuda_error(file, line, call, cublasGetStatusString(status));
}

}  // namespace modelpress::kernels::cuda

#define MP_CUDA_CHECK(call) ::modelpress::kernels::cuda::check_cuda((call), __FILE__, __LINE__, #call)
#define MP_CUBLAS_CHECK(call) ::modelpress::kernels::cuda::check_cublas((call), __FILE__, __LINE__, #call)
// cudaGetLastError both reports and clears a launch error, so the next check does not see a
// stale one. Asynchronous faults inside the kernel surface at the next synchronizing call,
// which is checked too.
#define MP_CUDA_CHECK_LAUNCH() \
  ::modelpress::kernels::cuda::check_cuda(cudaGetLastError(), __FILE__, __LINE__, "kernel launch")
