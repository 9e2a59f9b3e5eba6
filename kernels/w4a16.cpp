// W4A16: reference, workspace sizing and dispatch (the AVX2 path is in w4a16_avx2.cpp).
#include "kernels/w4a16.h"

#include <string>

#include "kernels/cpu_features.h"
#include "kernels/fallback_log.h"
#include "kernels/w4a16_internal.h"

namespace modelpress::kernels {

void w4a16_linear_ref(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y) {
  const int64_t n = w.n, k = w.k, groups = w.k / w.group;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const uint8_t byte = w.packed[j * (k / 2) + t / 2];
        const int u = t % 2 == 0 ? byte & 0x0F : byte >> 4;
        const int64_t g = j * groups + t / w.group;
        const int zero = w.zeros ? w.zeros[g] : 8;
        const float wt = static_cast<float>(u - zero) * w.scales[g];
        acc += static_cast<double>(wt) * x[i * k + t];
      }
      y[i * n + j] = static_cast<float>(acc + (bias ? bias[j] : 0.0f));
    }
}

bool w4a16_fast_supported(const W4Weight& w, std::string* why) {
  if (!cpu_features().avx2_fma) {
    if (why) *why = "this CPU has no AVX2/FMA";
    return false;
  }
  if (w.group % 32 != 0) {
    // The kernel applies scales per 32-element half of a 64-element unpacking step.
    if (why) *why = "group size " + std::to_string(w.group) + " is not a multiple of 32";
    return false;
  }
  return true;
}

size_t w4a16_workspace_bytes(const W4Weight& w, int64_t m) { return detail::w4a16_carve(nullptr, w, m).bytes; }

void w4a16_linear(const W4Weight& w, const float* bias, const float* x, int64_t m, float* y, void* workspace) {
  std::string why;
  if (w4a16_fast_supported(w, &why)) {
    if (w4a16_avx512_supported(w, m)) return w4a16_linear_avx512(w, bias, x, m, y, workspace);
    return w4a16_linear_avx2(w, bias, x, m, y, workspace);
  }
  log_fallback_once("w4a16:" + std::to_string(w.n) + "x" + std::to_string(w.k) + "/g" + std::to_string(w.group) + ":" + why,
                    "W4A16 " + std::to_string(w.n) + "x" + std::to_string(w.k) + " group " + std::to_string(w.group) +
                        ": " + why + "; using the reference kernel");
  w4a16_linear_ref(w, bias, x, m, y);
}

}  // namespace modelpress::kernels
