#include "kernels/cuda/elementwise.h"

#include <algorithm>
#include <string>

#include "kernels/cuda/device_types.cuh"

namespace modelpress::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// Rows on grid.x (up to 2^31 - 1), column blocks on grid.y (at most 65535, so capped and
// looped): no 64-bit division per element.
dim3 row_grid(int64_t m, int64_t n) {
  if (m > 0x7FFFFFFF) throw CudaError("element-wise kernel: more than 2^31 - 1 rows");
  const int64_t col_blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
  return dim3(static_cast<unsigned>(m), static_cast<unsigned>(col_blocks));
}

template <typename OutT>
__global__ void __launch_bounds__(kThreads)
    dequant_kernel(const int32_t* __restrict__ c, int64_t ldc, const float* __restrict__ rs,
                   const float* __restrict__ cs, const float* __restrict__ bias, const float* __restrict__ addend,
                   const int32_t* __restrict__ addend_count, OutT* __restrict__ y, int64_t n) {
  const int64_t i = blockIdx.x;
  const float r = rs[i];
  if (addend_count && *addend_count <= 0) addend = nullptr;
  for (int64_t j = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.y) * kThreads) {
    float v = __fmul_rn(__fmul_rn(static_cast<float>(c[i * ldc + j]), r), cs[j]);
    if (bias) v = __fadd_rn(v, bias[j]);
    if (addend) v = __fadd_rn(v, addend[i * n + j]);
    y[i * n + j] = dev::from_f32<OutT>(v);
  }
}

template <typename S, typename D>
__global__ void __launch_bounds__(kThreads) convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t count) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * kThreads)
    dst[i] = dev::from_f32<D>(dev::to_f32(src[i]));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) bias_kernel(T* __restrict__ y, int64_t ldy, const float* __restrict__ bias, int64_t n) {
  const int64_t i = blockIdx.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.y) * kThreads)
    y[i * ldy + j] = dev::from_f32<T>(__fadd_rn(dev::to_f32(y[i * ldy + j]), bias[j]));
}

template <typename OutT>
void launch_dequant(Context& ctx, const int32_t* c, int64_t ldc, const float* rs, const float* cs, const float* bias,
                    const float* addend, const int32_t* addend_count, void* y, int64_t m, int64_t n) {
  dequant_kernel<OutT><<<row_grid(m, n), kThreads, 0, ctx.stream>>>(c, ldc, rs, cs, bias, addend, addend_count,
                                                                    static_cast<OutT*>(y), n);
  MP_CUDA_CHECK_LAUNCH();
}

template <typename S, typename D>
void launch_convert(Context& ctx, const void* src, void* dst, int64_t count) {
  const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, int64_t{1} << 20);
  convert_kernel<S, D><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(static_cast<const S*>(src),
                                                                                 static_cast<D*>(dst), count);
  MP_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_bias(Context& ctx, void* y, int64_t ldy, const float* bias, int64_t m, int64_t n) {
  bias_kernel<T><<<row_grid(m, n), kThreads, 0, ctx.stream>>>(static_cast<T*>(y), ldy, bias, n);
  MP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void dequantize_int32(Context& ctx, const int32_t* c, int64_t ldc, const float* row_scale, const float* col_scale,
                      const float* bias, const float* addend, DType yt, void* y, int64_t m, int64_t n,
                      const int32_t* addend_count) {
  if (m <= 0 || n <= 0) return;
  const int32_t* ac = addend_count;
  switch (yt) {
    case DType::F32: return launch_dequant<float>(ctx, c, ldc, row_scale, col_scale, bias, addend, ac, y, m, n);
    case DType::F16: return launch_dequant<__half>(ctx, c, ldc, row_scale, col_scale, bias, addend, ac, y, m, n);
    case DType::BF16: return launch_dequant<__nv_bfloat16>(ctx, c, ldc, row_scale, col_scale, bias, addend, ac, y, m, n);
  }
}

void convert(Context& ctx, DType src_t, const void* src, DType dst_t, void* dst, int64_t count) {
  if (count <= 0) return;
  // The conversions the backend uses: f32 inputs to 16-bit, 16-bit results to f32.
  if (src_t == DType::F32 && dst_t == DType::F16) return launch_convert<float, __half>(ctx, src, dst, count);
  if (src_t == DType::F32 && dst_t == DType::BF16) return launch_convert<float, __nv_bfloat16>(ctx, src, dst, count);
  if (src_t == DType::F16 && dst_t == DType::F32) return launch_convert<__half, float>(ctx, src, dst, count);
  if (src_t == DType::BF16 && dst_t == DType::F32) return launch_convert<__nv_bfloat16, float>(ctx, src, dst, count);
  throw CudaError(std::string("convert: no conversion ") + dtype_name(src_t) + " -> " + dtype_name(dst_t));
}

void add_bias(Context& ctx, DType yt, void* y, int64_t ldy, const float* bias, int64_t m, int64_t n) {
  if (m <= 0 || n <= 0 || !bias) return;
  switch (yt) {
    case DType::F32: return launch_bias<float>(ctx, y, ldy, bias, m, n);
    case DType::F16: return launch_bias<__half>(ctx, y, ldy, bias, m, n);
    case DType::BF16: return launch_bias<__nv_bfloat16>(ctx, y, ldy, bias, m, n);
  }
}

}  // namespace modelpress::kernels::cuda
