// GPU discovery for the CUDA backend (compiled only with MODELPRESS_CUDA).
#pragma once
#include <string>

namespace modelpress::kernels::cuda {

// Number of usable CUDA devices; 0 when the driver or a GPU is missing, with the reason in
// `why` (the CUDA runtime's error string).
int device_count(std::string* why);
// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)".
std::string device_description(int device);

}  // namespace modelpress::kernels::cuda
