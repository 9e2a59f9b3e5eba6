#include "kernels/cuda/llm_int8.h"

#include <algorithm>

#include "kernels/cuda/activation_quant.h"
#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/elementwise.h"

namespace modelpress::kernels::cuda {

namespace {

struct Scratch {
  int8_t* q;          // (M, Kp)
  float* row_scale;   // (M)
  uint8_t* flags;     // (K)
  int32_t* cols;      // (K)
  int32_t* count;     // (1)
  int32_t* c;         // (M, Np)
  float* yo;          // (M, N) outlier product
};

Scratch carve(void* base, int64_t m, int64_t n, int64_t k, size_t* bytes = nullptr) {
  DeviceCarver d(base);
  Scratch s;
  s.q = d.take<int8_t>(m * round_up(k, 16));
  s.row_scale = d.take<float>(m);
  s.flags = d.take<uint8_t>(k);
  s.cols = d.take<int32_t>(k);
  s.count = d.take<int32_t>(1);
  s.c = d.take<int32_t>(m * round_up(n, 16));
  s.yo = d.take<float>(m * n);
  if (bytes) *bytes = d.bytes();
  return s;
}

constexpr int kThreads = 256;

// wo (N, cp): column c < count is weight column cols[c] in 16-bit: the layer's fp16 column when
// it lists one (binary search: fp16_cols ascends), else q * scale. Zero for c >= count.
template <typename T16>
__global__ void __launch_bounds__(kThreads)
    gather_weights_kernel(const int8_t* __restrict__ q, int64_t ldq, const float* __restrict__ scale, int64_t n,
                          const int32_t* __restrict__ cols, int64_t count, int64_t cp,
                          const int32_t* __restrict__ fp16_cols, const uint16_t* __restrict__ fp16_w,
                          int64_t fp16_count, T16* __restrict__ wo) {
  const int64_t total = n * cp;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t j = idx / cp, c = idx % cp;
    float v = 0.0f;
    if (c < count) {
      const int32_t col = cols[c];
      int64_t lo = 0, hi = fp16_count;  // first fp16 column >= col
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (fp16_cols[mid] < col) lo = mid + 1;
        else hi = mid;
      }
      if (lo < fp16_count && fp16_cols[lo] == col)
        v = __half2float(__ushort_as_half(fp16_w[lo * n + j]));
      else
        v = static_cast<float>(q[j * ldq + col]) * scale[j];
    }
    wo[idx] = dev::from_f32<T16>(v);
  }
}

template <typename T16>
void launch_gather_weights(Context& ctx, const DeviceInt8Weight& w, const int32_t* cols, int64_t count, int64_t cp,
                           void* wo) {
  const int64_t blocks = std::min<int64_t>((w.n * cp + kThreads - 1) / kThreads, int64_t{1} << 16);
  gather_weights_kernel<T16><<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
      w.q, w.k_pad(), w.scale, w.n, cols, count, cp, w.fp16_cols, w.fp16_w, w.fp16_count, static_cast<T16*>(wo));
  MP_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t llm_int8_scratch_bytes(int64_t m, int64_t n, int64_t k) {
  size_t bytes = 0;
  carve(nullptr, m, n, k, &bytes);
  return bytes;
}

void int8_gemm_dequant(Context& ctx, const DeviceInt8Weight& w, const int8_t* xq, const float* row_scale,
                       const float* bias, int64_t m, int32_t* c, DType yt, void* y) {
  const int64_t np = w.n_pad(), kp = w.k_pad();
  gemm_int8(ctx, xq, kp, w.q, kp, c, np, m, np, kp);
  dequantize_int32(ctx, c, np, row_scale, w.scale, bias, nullptr, yt, y, m, w.n);
}

int64_t llm_int8_linear(Context& ctx, const DeviceInt8Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                        float threshold, DType yt, void* y, void* scratch) {
  if (m <= 0) return 0;
  const int64_t n = w.n, k = w.k, np = w.n_pad(), kp = w.k_pad();
  const Scratch s = carve(scratch, m, n, k);
  const bool split = threshold > 0.0f;
  if (split) MP_CUDA_CHECK(cudaMemsetAsync(s.flags, 0, static_cast<size_t>(k), ctx.stream));
  quantize_rows(ctx, xt, x, m, k, threshold, s.q, kp, s.row_scale, split ? s.flags : nullptr);

  int64_t count = 0;
  if (split) {
    compact_outlier_columns(ctx, s.flags, k, s.cols, s.count);
    int32_t host_count = 0;
    MP_CUDA_CHECK(cudaMemcpyAsync(&host_count, s.count, sizeof host_count, cudaMemcpyDeviceToHost, ctx.stream));
    MP_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    count = host_count;
  }
  if (count > 0) {
    // The 16-bit side in x's 16-bit type (f16 for f32 x); Cp pads the inner dimension to 8
    // elements (16 bytes) so cuBLASLt can use tensor cores; the padding is zero.
    const DType t16 = xt == DType::BF16 ? DType::BF16 : DType::F16;
    const int64_t cp = round_up(count, 8);
    DeviceCarver d(nullptr);
    d.take<uint16_t>(m * cp);
    d.take<uint16_t>(n * cp);
    ctx.outliers.reserve(d.bytes());
    DeviceCarver o(ctx.outliers.data());
    void* xo = o.take<uint16_t>(m * cp);
    void* wo = o.take<uint16_t>(n * cp);
    gather_outlier_columns(ctx, xt, x, m, k, s.cols, count, cp, s.q, kp, t16, xo);
    if (t16 == DType::BF16) launch_gather_weights<__nv_bfloat16>(ctx, w, s.cols, count, cp, wo);
    else launch_gather_weights<__half>(ctx, w, s.cols, count, cp, wo);
    gemm_16bit(ctx, t16, DType::F32, xo, cp, wo, cp, s.yo, n, m, n, cp);
  }
  gemm_int8(ctx, s.q, kp, w.q, kp, s.c, np, m, np, kp);
  dequantize_int32(ctx, s.c, np, s.row_scale, w.scale, bias, count > 0 ? s.yo : nullptr, yt, y, m, n);
  return count;
}

}  // namespace modelpress::kernels::cuda
