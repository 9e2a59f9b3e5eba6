#include "kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace modelpress::kernels {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc's checks include the OS enabling the YMM/ZMM state (XGETBV), not only CPUID.
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  f.avx512_vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vnni");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
  if (const char* cap = std::getenv("MODELPRESS_KERNEL_ISA")) {
    if (std::strcmp(cap, "baseline") == 0) f = CpuFeatures{};
    else if (std::strcmp(cap, "avx2") == 0) f.avx512_vnni = f.avx512 = false;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace modelpress::kernels
