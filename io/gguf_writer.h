// Writing GGUF v3 files (ggml docs/gguf.md): "GGUF", version 3, tensor and KV counts, the KV
// pairs, the tensor infos, padding to the alignment (32), then each tensor's bytes at an
// aligned offset. Streaming: every tensor is declared first (name, ggml shape, type), which
// fixes the offsets, and its bytes are then written in declaration order, one at a time, so
// memory stays near one tensor. The file is written under a temporary name beside the target
// and renamed when complete: a failed or interrupted run leaves no partial GGUF.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace modelpress {

class GgufWriter {
 public:
  static constexpr uint64_t kAlignment = 32;

  // Throws Error naming `path` when it exists (unless overwrite) or its folder does not.
  GgufWriter(std::string path, bool overwrite);
  ~GgufWriter();  // removes the temporary file unless finish() succeeded
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, in the order added. A key may be added once.
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_string(const std::string& key, const std::string& value);
  // A whole KV record as another GGUF stores it (GgufFile::kv_records): key, type, value.
  void add_record(const std::string& key, std::span<const std::byte> record);
  bool has_key(const std::string& key) const;

  // `ne`: GGUF order, ne[0] the fastest-varying dimension. Returns the tensor's byte size.
  uint64_t declare_tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type);
  // The declared tensors' bytes, in declaration order; each must have the declared size.
  void write_tensor(std::span<const std::byte> bytes);
  // After the last tensor: moves the file into place.
  void finish();

  const std::string& path() const { return path_; }

 private:
  void add_kv(const std::string& key, uint32_t type, const std::string& value_bytes);
  void begin_data();  // writes the header once every tensor is declared

  struct Declared {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset, nbytes;
  };
  std::string path_, temporary_;
  bool overwrite_ = false, finished_ = false, data_begun_ = false;
  int fd_ = -1;
  std::vector<std::string> keys_;
  std::string kv_bytes_;
  std::vector<Declared> tensors_;
  uint64_t data_size_ = 0;
  size_t next_ = 0;       // the next tensor write_tensor expects
  uint64_t position_ = 0;  // bytes written to the file so far
  uint64_t data_base_ = 0; // where the data section starts (the aligned header size)
};

}  // namespace modelpress
