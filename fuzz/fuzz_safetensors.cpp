// Fuzz target: a .safetensors file opened as a checkpoint (header parsing and validation,
// tensor classification) and every tensor read; small float tensors are converted to f32,
// which touches every byte the header claims.
#include "fuzz/fuzz_input_file.h"
#include "io/checkpoint.h"
#include "io/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = modelpress::fuzz::write_input(data, size, ".safetensors");
  try {
    const modelpress::Checkpoint ck = modelpress::Checkpoint::open(path);
    for (const auto& t : ck.tensors()) {
      const modelpress::Tensor x = ck.read(t);
      if (x.numel() <= (1 << 16)) (void)x.to_f32();
    }
  } catch (const modelpress::Error&) {
  }
  return 0;
}
