// Which compute backends this build and this machine offer. The CPU backend is always
// there; the CUDA backend needs a build with MODELPRESS_CUDA and a visible GPU.
#pragma once
#include <string>
#include <vector>

namespace modelpress::kernels {

struct BackendInfo {
  std::string name;       // "cpu", "cuda"
  bool usable = false;    // can run kernels now
  std::string detail;     // CPU features, GPU names, or why it cannot run
};

std::vector<BackendInfo> list_backends();

}  // namespace modelpress::kernels
