// Each layer's importance per input column from a calibration file, for the passes that
// weigh their error by it (cluster --calib, quantize --method q4_0 ... --calib): diag(X^T X)
// from the Gram matrix over every token when the file has statistics (modelpress
// calibrate), else the sum over the recorded rows of x_k^2. The file's layers have Hugging
// Face module names; `module_name` maps the pass's name to them (GGUF blk.N.attn_q, say).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace modelpress::cli {

using Importance = std::function<std::vector<float>(const std::string& module, int64_t in_features)>;

// Opens the file now (an Error names it when it is not a calibration file); each call names
// the file and the layer when the layer is missing or has another width.
Importance calibration_importance(const std::string& path,
                                  std::function<std::string(const std::string&)> module_name = {});

}  // namespace modelpress::cli
