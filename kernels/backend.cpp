#include "kernels/backend.h"

#ifdef MODELPRESS_HAVE_CUDA
#include "kernels/cuda/device_info.h"
#endif

namespace modelpress::kernels {

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> out;
  std::string features;
  __builtin_cpu_init();
  auto add = [&](bool has, const char* name) {
    if (has) features += (features.empty() ? "" : " ") + std::string(name);
  };
  // __builtin_cpu_supports needs string literals, hence one line per feature.
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  add(__builtin_cpu_supports("f16c"), "f16c");
  add(__builtin_cpu_supports("avx512f"), "avx512f");
  add(__builtin_cpu_supports("avx512bw"), "avx512bw");
  add(__builtin_cpu_supports("avx512vnni"), "avx512vnni");
  add(__builtin_cpu_supports("avxvnni"), "avxvnni");
  out.push_back({"cpu", true, features.empty() ? "baseline x86-64" : features});
#ifdef MODELPRESS_HAVE_CUDA
  std::string why;
  const int n = cuda::device_count(&why);
  std::string detail;
  for (int i = 0; i < n; ++i) detail += (i ? "; " : "") + cuda::device_description(i);
  out.push_back({"cuda", n > 0, n > 0 ? detail : why});
#else
  out.push_back({"cuda", false, "not built (configure with -DMODELPRESS_CUDA=ON where nvcc exists)"});
#endif
  return out;
}

}  // namespace modelpress::kernels
