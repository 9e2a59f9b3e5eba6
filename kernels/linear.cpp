// The one entry point of packed_linear.h: checks, workspace sizes and dispatch per format.
#include <stdexcept>
#include <string>

#include "kernels/dense_f32.h"
#include "kernels/llm_int8.h"
#include "kernels/lut_linear.h"
#include "kernels/packed_linear.h"
#include "kernels/w4a16.h"

#ifdef MODELPRESS_HAVE_CUDA
#include "kernels/cuda/linear_cuda.h"
#endif

namespace modelpress::kernels {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Cpu: return "cpu";
    case Backend::Cuda: return "cuda";
  }
  return "?";
}

const char* format_name(LinearFormat f) {
  switch (f) {
    case LinearFormat::DenseF32: return "dense-f32";
    case LinearFormat::W8A8: return "w8a8";
    case LinearFormat::LlmInt8: return "llm-int8";
    case LinearFormat::W4A16: return "w4a16";
    case LinearFormat::Lut: return "lut";
  }
  return "?";
}

namespace {

bool fail(std::string* why, const std::string& message) {
  if (why) *why = message;
  return false;
}

std::string shape(int64_t n, int64_t k) {
  // Appends rather than "(" + to_string(...): GCC 12 raises a false -Wrestrict on that form.
  std::string s = "(";
  s += std::to_string(n);
  s += ", ";
  s += std::to_string(k);
  s += ")";
  return s;
}

// Layout checks shared by every backend: the struct must describe what its format needs.
bool layout_ok(const PackedLinear& l, std::string* why) {
  const std::string name = format_name(l.format);
  if (l.n <= 0 || l.k <= 0) return fail(why, name + " layer has an empty shape " + shape(l.n, l.k));
  switch (l.format) {
    case LinearFormat::DenseF32:
      if (!l.dense) return fail(why, "dense-f32 layer has no weight");
      return true;
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8: {
      if (!l.int8.q || !l.int8.scale) return fail(why, name + " layer has no int8 weight or scales");
      if (l.int8.n != l.n || l.int8.k != l.k)
        return fail(why, name + " int8 weight " + shape(l.int8.n, l.int8.k) + " does not match the layer " +
                             shape(l.n, l.k));
      if (l.k > 131071) return fail(why, name + " K = " + std::to_string(l.k) + " exceeds the int32 GEMM limit 131071");
      if (l.format == LinearFormat::LlmInt8) {
        if (!(l.threshold >= 0.0f)) return fail(why, "llm-int8 threshold must be >= 0");
        const Fp16Columns& f = l.fp16_columns;
        if (f.count < 0 || (f.count > 0 && (!f.cols || !f.w_f16)))
          return fail(why, "llm-int8 fp16 columns: count without data");
        for (int64_t c = 0; c < f.count; ++c)
          if (f.cols[c] < 0 || f.cols[c] >= l.k || (c > 0 && f.cols[c] <= f.cols[c - 1]))
            return fail(why, "llm-int8 fp16 column list must ascend within [0, K): entry " + std::to_string(c) +
                                 " is " + std::to_string(f.cols[c]));
      }
      return true;
    }
    case LinearFormat::W4A16: {
      const W4Weight& w = l.w4;
      if (!w.packed || !w.scales) return fail(why, "w4a16 layer has no packed weight or scales");
      if (w.n != l.n || w.k != l.k)
        return fail(why, "w4a16 weight " + shape(w.n, w.k) + " does not match the layer " + shape(l.n, l.k));
      if (w.group <= 0 || w.group % 2 != 0 || w.k % w.group != 0)
        return fail(why, "w4a16 group " + std::to_string(w.group) + " must be even and divide K = " +
                             std::to_string(w.k));
      return true;
    }
    case LinearFormat::Lut: {
      if (l.lut.n != l.n || l.lut.k != l.k)
        return fail(why, "lut weight " + shape(l.lut.n, l.lut.k) + " does not match the layer " + shape(l.n, l.k));
      return lut_layout_ok(l.lut, why);
    }
  }
  return fail(why, "unknown layer format");
}

}  // namespace

bool linear_supported(const PackedLinear& layer, Backend backend, std::string* why) {
  if (!layout_ok(layer, why)) return false;
  if (backend == Backend::Cuda) {
#ifdef MODELPRESS_HAVE_CUDA
    return cuda::cuda_linear_supported(layer, why);
#else
    return fail(why, "this build has no CUDA backend (configure with -DMODELPRESS_CUDA=ON where nvcc exists)");
#endif
  }
  return true;
}

size_t linear_workspace_bytes(const PackedLinear& layer, int64_t m) {
  switch (layer.format) {
    case LinearFormat::DenseF32: return 0;
    case LinearFormat::W8A8:
    case LinearFormat::LlmInt8: return llm_int8_workspace_bytes(m, layer.n, layer.k);
    case LinearFormat::W4A16: return w4a16_workspace_bytes(layer.w4, m);
    case LinearFormat::Lut: return 0;  // reads x as it is
  }
  return 0;
}

void run_linear(const PackedLinear& layer, const float* x, int64_t m, float* y, Backend backend, void* workspace) {
  std::string why;
  if (!linear_supported(layer, backend, &why))
    throw std::invalid_argument(std::string("run_linear (") + format_name(layer.format) + " on " +
                                backend_name(backend) + "): " + why);
  if (m <= 0) return;
#ifdef MODELPRESS_HAVE_CUDA
  // The CUDA kernels take every shape the layout check admits (padding and general fallbacks
  // inside); they copy x and the weight to the device and y back (kernels/cuda/linear_cuda.h).
  if (backend == Backend::Cuda) return cuda::cuda_run_linear(layer, x, m, y);
#endif
  // Each kernel below logs once, and takes its reference path, where its fast path cannot
  // take the shape or this CPU.
  switch (layer.format) {
    case LinearFormat::DenseF32:
      return dense_f32_linear(layer.dense, layer.n, layer.k, layer.bias, x, m, y);
    case LinearFormat::W8A8: {
      PackedLinear no_outliers = layer;  // W8A8 is LLM.int8 without the decomposition
      no_outliers.threshold = 0.0f;
      no_outliers.fp16_columns = {};
      return llm_int8_linear(no_outliers, x, m, y, workspace);
    }
    case LinearFormat::LlmInt8:
      return llm_int8_linear(layer, x, m, y, workspace);
    case LinearFormat::W4A16:
      return w4a16_linear(layer.w4, layer.bias, x, m, y, workspace);
    case LinearFormat::Lut:
      return lut_linear(layer.lut, layer.bias, x, m, y);
  }
}

}  // namespace modelpress::kernels
