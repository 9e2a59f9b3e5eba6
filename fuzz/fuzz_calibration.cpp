// Fuzz target: a calibration file (safetensors with modelpress-calibration metadata): every
// layer's rows and statistics read at the width its tensor declares.
#include "fuzz/fuzz_input_file.h"
#include "io/calibration.h"
#include "io/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = modelpress::fuzz::write_input(data, size, ".safetensors");
  try {
    const modelpress::CalibrationFile file = modelpress::CalibrationFile::open(path);
    (void)file.source();
    for (const auto& layer : file.layers()) {
      for (const int64_t width : {int64_t{1}, int64_t{4}, int64_t{16}}) {
        try {
          (void)file.read(layer, width, 8);
          (void)file.read_stats(layer, width);
        } catch (const modelpress::Error&) {
        }
      }
    }
  } catch (const modelpress::Error&) {
  }
  return 0;
}
