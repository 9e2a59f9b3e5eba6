#include "kernels/cuda/context.h"

#include <cuda_runtime.h>

namespace modelpress::kernels::cuda {

Context::Context() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky error so later calls do not report it again
    throw CudaError(std::string("no usable CUDA device: ") +
                    (err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device visible"));
  }
  MP_CUDA_CHECK(cudaSetDevice(0));
  cudaDeviceProp prop{};
  MP_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  sm_count = prop.multiProcessorCount;
  l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  device_name = prop.name;
  // A non-blocking stream: work here does not serialize against the legacy default stream.
  MP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // A constructor that throws runs no destructor: release what exists so far (thread_local
  // initialization is retried on the next context() call, which would leak one stream and one
  // handle per failed try).
  const cublasStatus_t st = cublasLtCreate(&lt);
  if (st != CUBLAS_STATUS_SUCCESS) {
    lt = nullptr;
    cudaStreamDestroy(stream);
    stream = nullptr;
    MP_CUBLAS_CHECK(st);
  }
  try {
    lt_workspace.reserve(kLtWorkspaceBytes);
  } catch (...) {
    cublasLtDestroy(lt);
    cudaStreamDestroy(stream);
    lt = nullptr;
    stream = nullptr;
    throw;
  }
}

Context::~Context() {
  // Errors are ignored: at process exit the runtime may already be unloading.
  if (lt) cublasLtDestroy(lt);
  if (stream) cudaStreamDestroy(stream);
}

void Context::synchronize() const { MP_CUDA_CHECK(cudaStreamSynchronize(stream)); }

Context& context() {
  thread_local Context ctx;
  return ctx;
}

}  // namespace modelpress::kernels::cuda
