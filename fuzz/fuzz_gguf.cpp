// Fuzz target: a GGUF file opened as a checkpoint (header, metadata, tensor infos, alignment)
// and every tensor read, which dequantizes the block types (Q4_0 ... Q6_K, IQ4_NL, IQ4_XS).
#include "fuzz/fuzz_input_file.h"
#include "io/checkpoint.h"
#include "io/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = modelpress::fuzz::write_input(data, size, ".gguf");
  try {
    const modelpress::Checkpoint ck = modelpress::Checkpoint::open(path);
    for (const auto& t : ck.tensors()) (void)ck.read(t);
    (void)ck.architecture();
  } catch (const modelpress::Error&) {
  }
  return 0;
}
