#include "cli/model_backend.h"

#include "io/error.h"
#include "kernels/backend.h"

namespace modelpress::cli {

kernels::Backend model_backend(const std::string& wanted, std::string* name) {
  if (name) *name = "cpu";
  if (wanted == "cpu") return kernels::Backend::Cpu;
  std::string why = "built without CUDA";
  for (const auto& b : kernels::list_backends()) {
    if (b.name != "cuda") continue;
    if (b.usable) {
      if (name) *name = "cuda";
      return kernels::Backend::Cuda;
    }
    why = b.detail;
  }
  if (wanted == "cuda") throw Error("--backend cuda: not available (" + why + "); use --backend cpu or auto");
  return kernels::Backend::Cpu;
}

}  // namespace modelpress::cli
