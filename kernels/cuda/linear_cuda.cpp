// Host side of the CUDA run_linear path (linear_cuda.h). Plain C++: it only calls the device
// API of kernels/cuda, so it lives in modelpress_kernels and can log through fallback_log.h.
#include "kernels/cuda/linear_cuda.h"

#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/blaslt.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/llm_int8.h"
#include "kernels/cuda/lut_gemv.h"
#include "kernels/cuda/w4_mma_layout.h"
#include "kernels/cuda/w4a16.h"
#include "kernels/fallback_log.h"

namespace modelpress::kernels::cuda {

namespace {

void upload(void* dst, const void* src, size_t bytes, Context& ctx) {
  if (bytes) MP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx.stream));
}

// Uploads the int8 weight padded to (n_pad, k_pad) with zeros, its scales and any fp16
// columns, carved from ctx.weights.
DeviceInt8Weight upload_int8(Context& ctx, const PackedLinear& l, const float** bias) {
  const Int8Weight& w = l.int8;
  DeviceInt8Weight d;
  d.n = w.n;
  d.k = w.k;
  const int64_t np = d.n_pad(), kp = d.k_pad();
  const Fp16Columns& f = l.fp16_columns;
  auto carve = [&](DeviceCarver& c) {
    int8_t* q = c.take<int8_t>(np * kp);
    float* s = c.take<float>(d.n);
    float* b = c.take<float>(l.bias ? d.n : 0);
    int32_t* cols = c.take<int32_t>(f.count);
    uint16_t* fw = c.take<uint16_t>(f.count * d.n);
    return std::make_tuple(q, s, b, cols, fw);
  };
  DeviceCarver size(nullptr);
  carve(size);
  ctx.weights.reserve(size.bytes());
  DeviceCarver c(ctx.weights.data());
  auto [q, s, b, cols, fw] = carve(c);
  if (np != d.n || kp != d.k) MP_CUDA_CHECK(cudaMemsetAsync(q, 0, static_cast<size_t>(np * kp), ctx.stream));
  copy_rows_to_device(q, static_cast<size_t>(kp), w.q, static_cast<size_t>(w.k), static_cast<size_t>(w.k),
                      static_cast<size_t>(w.n), ctx.stream);
  upload(s, w.scale, sizeof(float) * d.n, ctx);
  if (l.bias) upload(b, l.bias, sizeof(float) * d.n, ctx);
  upload(cols, f.cols, sizeof(int32_t) * f.count, ctx);
  upload(fw, f.w_f16, sizeof(uint16_t) * f.count * d.n, ctx);
  d.q = q;
  d.scale = s;
  d.fp16_cols = f.count ? cols : nullptr;
  d.fp16_w = f.count ? fw : nullptr;
  d.fp16_count = f.count;
  *bias = l.bias ? b : nullptr;
  return d;
}

}  // namespace

bool cuda_linear_supported(const PackedLinear& layer, std::string* why) {
  std::string reason;
  if (device_count(&reason) == 0) {
    if (why) *why = "no usable CUDA device (" + reason + ")";
    return false;
  }
  switch (layer.format) {
    case LinearFormat::DenseF32:
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8:
    case LinearFormat::W4A16:
    case LinearFormat::Lut: return true;
    default:
      if (why) *why = std::string("no CUDA kernel for ") + format_name(layer.format);
      return false;
  }
}

void cuda_run_linear(const PackedLinear& l, const float* x, int64_t m, float* y) {
  Context& ctx = context();
  const int64_t n = l.n, k = l.k;
  const size_t x_bytes = sizeof(float) * static_cast<size_t>(m * k);
  const size_t y_bytes = sizeof(float) * static_cast<size_t>(m * n);

  switch (l.format) {
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8: {
      const float* bias = nullptr;
      const DeviceInt8Weight w = upload_int8(ctx, l, &bias);
      const float threshold = l.format == LinearFormat::W8A8 ? 0.0f : l.threshold;
      DeviceCarver size(nullptr);
      size.take<float>(m * k);
      size.take<float>(m * n);
      size.take<unsigned char>(static_cast<int64_t>(llm_int8_scratch_bytes(m, n, k)));
      ctx.scratch.reserve(size.bytes());
      DeviceCarver c(ctx.scratch.data());
      float* dx = c.take<float>(m * k);
      float* dy = c.take<float>(m * n);
      void* scratch = c.take<unsigned char>(static_cast<int64_t>(llm_int8_scratch_bytes(m, n, k)));
      upload(dx, x, x_bytes, ctx);
      llm_int8_linear(ctx, w, bias, DType::F32, dx, m, threshold, DType::F32, dy, scratch);
      MP_CUDA_CHECK(cudaMemcpyAsync(y, dy, y_bytes, cudaMemcpyDeviceToHost, ctx.stream));
      break;
    }
    case LinearFormat::W4A16: {
      const W4Weight& w = l.w4;
      const int64_t groups = w.k / w.group;
      const bool mma_ok = m <= 16 && w4a16_mma_supported(DeviceW4Weight{nullptr, nullptr, nullptr, w.n, w.k, w.group},
                                                          nullptr);
      // One carving function for sizing and carving, its takes in sequence (a make_tuple of
      // takes would leave their order unspecified).
      auto carve = [&](DeviceCarver& c) {
        uint8_t* packed = c.take<uint8_t>(w.n * (w.k / 2));
        float* scales = c.take<float>(w.n * groups);
        uint8_t* zeros = c.take<uint8_t>(w.zeros ? w.n * groups : 0);
        float* bias = c.take<float>(l.bias ? n : 0);
        // The tensor-core layout, made on the device from `packed` (w4a16.h), where it applies.
        uint8_t* mma = c.take<uint8_t>(mma_ok ? w4_mma_bytes(w.n, w.k) : 0);
        return std::make_tuple(packed, scales, zeros, bias, mma);
      };
      DeviceCarver size(nullptr);
      carve(size);
      ctx.weights.reserve(size.bytes());
      DeviceCarver c(ctx.weights.data());
      auto [packed, scales, zeros, bias, mma] = carve(c);
      upload(packed, w.packed, static_cast<size_t>(w.n * (w.k / 2)), ctx);
      upload(scales, w.scales, sizeof(float) * static_cast<size_t>(w.n * groups), ctx);
      if (w.zeros) upload(zeros, w.zeros, static_cast<size_t>(w.n * groups), ctx);
      if (l.bias) upload(bias, l.bias, sizeof(float) * n, ctx);
      DeviceW4Weight dw{packed, scales, w.zeros ? zeros : nullptr, w.n, w.k, w.group};
      if (mma_ok) {
        w4a16_repack_mma(ctx, dw, mma);
        dw.mma = mma;
      }

      DeviceCarver ssize(nullptr);
      ssize.take<float>(m * k);
      ssize.take<uint16_t>(m * k);
      ssize.take<float>(m * n);
      ctx.scratch.reserve(ssize.bytes());
      DeviceCarver sc(ctx.scratch.data());
      float* dx = sc.take<float>(m * k);
      uint16_t* dx16 = sc.take<uint16_t>(m * k);
      float* dy = sc.take<float>(m * n);
      upload(dx, x, x_bytes, ctx);
      convert(ctx, DType::F32, dx, DType::F16, dx16, m * k);
      const std::string path = w4a16_linear(ctx, dw, l.bias ? bias : nullptr, DType::F16, dx16, m, DType::F32, dy);
      if (path == "simple") {
        std::string why;
        w4a16_gemv_supported(dw, &why);
        log_fallback_once("cuda-w4a16:" + std::to_string(n) + "x" + std::to_string(k) + "/g" + std::to_string(w.group),
                          "CUDA W4A16 " + std::to_string(n) + "x" + std::to_string(k) + " group " +
                              std::to_string(w.group) + ": " + why + "; using the simple kernel");
      }
      MP_CUDA_CHECK(cudaMemcpyAsync(y, dy, y_bytes, cudaMemcpyDeviceToHost, ctx.stream));
      break;
    }
    case LinearFormat::DenseF32: {
      // The baseline: cuBLASLt f16 GEMM (f32 accumulation and output) on f16 copies of x and W.
      DeviceCarver size(nullptr);
      auto carve = [&](DeviceCarver& c) {
        float* w32 = c.take<float>(n * k);
        uint16_t* w16 = c.take<uint16_t>(n * k);
        float* bias = c.take<float>(l.bias ? n : 0);
        float* x32 = c.take<float>(m * k);
        uint16_t* x16 = c.take<uint16_t>(m * k);
        float* dy = c.take<float>(m * n);
        return std::make_tuple(w32, w16, bias, x32, x16, dy);
      };
      carve(size);
      ctx.scratch.reserve(size.bytes());
      DeviceCarver c(ctx.scratch.data());
      auto [w32, w16, bias, x32, x16, dy] = carve(c);
      upload(w32, l.dense, sizeof(float) * static_cast<size_t>(n * k), ctx);
      upload(x32, x, x_bytes, ctx);
      if (l.bias) upload(bias, l.bias, sizeof(float) * n, ctx);
      convert(ctx, DType::F32, w32, DType::F16, w16, n * k);
      convert(ctx, DType::F32, x32, DType::F16, x16, m * k);
      gemm_16bit(ctx, DType::F16, DType::F32, x16, k, w16, k, dy, n, m, n, k);
      if (l.bias) add_bias(ctx, DType::F32, dy, n, bias, m, n);
      MP_CUDA_CHECK(cudaMemcpyAsync(y, dy, y_bytes, cudaMemcpyDeviceToHost, ctx.stream));
      break;
    }
    case LinearFormat::Lut: {
      // Indices, tables and row scales as they are (kernels/cuda/lut_gemv.h); x stays f32.
      const LutWeight& w = l.lut;
      const int64_t rb = lut_row_bytes(w.k, w.bits), entries = (n / w.group_rows) * (int64_t{1} << w.bits);
      auto carve = [&](DeviceCarver& c) {
        uint8_t* idx = c.take<uint8_t>(n * rb);
        float* lut = c.take<float>(entries);
        float* rs = c.take<float>(w.row_scale ? n : 0);
        float* bias = c.take<float>(l.bias ? n : 0);
        float* dx = c.take<float>(m * k);
        float* dy = c.take<float>(m * n);
        return std::make_tuple(idx, lut, rs, bias, dx, dy);
      };
      DeviceCarver size(nullptr);
      carve(size);
      ctx.scratch.reserve(size.bytes());
      DeviceCarver c(ctx.scratch.data());
      auto [idx, lut, rs, bias, dx, dy] = carve(c);
      upload(idx, w.indices, static_cast<size_t>(n * rb), ctx);
      upload(lut, w.lut, sizeof(float) * static_cast<size_t>(entries), ctx);
      if (w.row_scale) upload(rs, w.row_scale, sizeof(float) * n, ctx);
      if (l.bias) upload(bias, l.bias, sizeof(float) * n, ctx);
      upload(dx, x, x_bytes, ctx);
      const DeviceLutWeight dw{idx, lut, w.row_scale ? rs : nullptr, n, k, w.group_rows, w.bits};
      lut_linear(ctx, dw, l.bias ? bias : nullptr, dx, m, dy);
      MP_CUDA_CHECK(cudaMemcpyAsync(y, dy, y_bytes, cudaMemcpyDeviceToHost, ctx.stream));
      break;
    }
    default: throw CudaError(std::string("no CUDA kernel for ") + format_name(l.format));
  }
  ctx.synchronize();  // y is the caller's host memory: complete before returning
}

}  // namespace modelpress::kernels::cuda
