// The backend a model-running command (forward, eval, calibrate) puts its linear layers on:
// "cpu"; "cuda", an error when no CUDA device is usable (the user asked for the GPU); "auto",
// cuda when usable, else cpu.
#pragma once
#include <string>

#include "kernels/packed_linear.h"

namespace modelpress::cli {

// `name` (optional) receives "cpu" or "cuda".
kernels::Backend model_backend(const std::string& wanted, std::string* name = nullptr);

}  // namespace modelpress::cli
