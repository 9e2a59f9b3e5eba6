// Reading GGUF files (llama.cpp / ggml), versions 2 and 3, little-endian: mmap, full
// validation of the header, zero-copy access to tensor bytes and dequantization to f32.
// Layout (ggml docs/gguf.md): "GGUF", u32 version, u64 tensor_count, u64 kv_count, the KV
// pairs, the tensor infos, padding to `general.alignment` (default 32), the data section.
// Every tensor must be aligned, lie inside the file, not overlap another and have a unique
// name; ne[0] must be a whole number of the type's blocks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/gguf_dequant.h"
#include "io/mapped_file.h"
#include "io/tensor.h"

namespace modelpress {

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order: ne[0] is the fastest-varying dimension
  uint32_t type;             // ggml type id, see gguf_dequant.h
  uint64_t offset;           // relative to the data section
  uint64_t nbytes;           // from ne and the type's block size
  Shape shape() const;       // row-major, outermost first: ne reversed
};

class GgufFile {
 public:
  static constexpr uint64_t kDefaultAlignment = 32;
  static constexpr int kMaxArrayNesting = 16;  // arrays of arrays deeper than this are rejected

  // Maps and validates `path`; throws Error naming the file, the problem and the byte
  // offset where it was found.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }  // absolute offset of the data section
  uint64_t file_size() const { return file_->size(); }

  // Every KV pair in file order. Strings are kept byte for byte as the file has them, which
  // need not be valid UTF-8: print with json::error_handler_t::replace.
  const nlohmann::ordered_json& metadata() const { return metadata_; }
  // Each KV pair's whole record (key, value type, value) as the file stores it, in file
  // order, so that a writer can carry metadata over with its exact value types.
  struct KvRecord {
    std::string key;
    std::span<const std::byte> bytes;
  };
  std::vector<KvRecord> kv_records() const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // header order
  const GgufTensorInfo* find(std::string_view name) const;

  // The tensor's bytes in the mapping, no copy; valid while this GgufFile (or a copy) lives.
  std::span<const std::byte> raw(const GgufTensorInfo& t) const;
  // An owned F32 tensor of shape t.shape(). Throws Error naming the tensor and its type when
  // the type cannot be dequantized.
  Tensor read_f32(const GgufTensorInfo& t) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_start_ = 0;
  nlohmann::ordered_json metadata_ = nlohmann::ordered_json::object();
  std::vector<std::pair<uint64_t, uint64_t>> kv_ranges_;  // [offset, size) of each KV record
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace modelpress
